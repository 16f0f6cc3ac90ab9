import hashlib
import uuid

from django.conf import settings
from django.db import models


class TokenScope(models.TextChoices):
    READ = "read", "Read only"
    READ_WRITE = "rw", "Read and write"


def token_digest(raw: str) -> str:
    """What is stored of a token: its SHA-256. Tokens are long random strings, so a fast hash
    is enough; a leaked table cannot be turned back into tokens."""
    return hashlib.sha256(raw.encode()).hexdigest()


class ApiToken(models.Model):
    """A key for the REST API. It acts as its member in its team, with that member's current
    role; it stops working when revoked or when the member leaves the team."""

    team = models.ForeignKey("studio.Team", on_delete=models.CASCADE, related_name="api_tokens")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=80)
    scope = models.CharField(max_length=4, choices=TokenScope.choices, default=TokenScope.READ)
    prefix = models.CharField(max_length=12, help_text="The token's start, to recognise it.")
    digest = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.name} ({self.prefix}…) of {self.user} in {self.team}"

    @property
    def can_write(self) -> bool:
        return self.scope == TokenScope.READ_WRITE


class ImageUpload(models.Model):
    """An image a team uploaded through the API, to start jobs from by its id (several jobs
    may share it; it is never deleted with them)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    team = models.ForeignKey("studio.Team", on_delete=models.CASCADE, related_name="image_uploads")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    file = models.FileField(upload_to="inputs/%Y/%m/")
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    size = models.PositiveBigIntegerField(help_text="Bytes.")
    source_url = models.URLField(max_length=2000, blank=True, help_text="Where we fetched it.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["team", "-created_at"])]

    def __str__(self):
        return f"image {self.id} of {self.team}"


class IdempotencyKey(models.Model):
    """One `Idempotency-Key` of a team: the request it first came with (as a digest) and, once
    that request finished, its answer. `answered_at` is null while the first is in flight."""

    team = models.ForeignKey("studio.Team", on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    request_digest = models.CharField(max_length=64)
    started_at = models.DateTimeField()
    answered_at = models.DateTimeField(null=True, blank=True)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    answer = models.JSONField(null=True, blank=True)
    job = models.ForeignKey(
        "studio.Job", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["team", "key"], name="one_idempotency_key_per_team")
        ]
        indexes = [models.Index(fields=["started_at"])]

    def __str__(self):
        return f"idempotency key {self.key!r} of team {self.team_id}"
