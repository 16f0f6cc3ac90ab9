import hashlib

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
