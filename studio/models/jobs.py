import secrets
import uuid

from django.conf import settings
from django.db import models


class JobState(models.TextChoices):
    QUEUED = "queued", "Queued"
    SUBMITTING = "submitting", "Submitting"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELED = "canceled", "Canceled"
    EXPIRED = "expired", "Expired"


TERMINAL_STATES = frozenset(
    {JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELED, JobState.EXPIRED}
)
ACTIVE_STATES = frozenset({JobState.QUEUED, JobState.SUBMITTING, JobState.RUNNING})


# A job's files as members and API callers name them, and the fields that hold them.
FILE_FIELDS = {"video": "video", "poster": "poster", "input": "input_image"}


# The columns of templates/studio/_job_card.html (title and provider_label read provider, model
# and params).
CARD_FIELDS = (
    "provider", "model", "params", "state", "progress", "poster", "video", "deleted_at",
    "created_at", "creator__email",
)  # fmt: skip


class JobQuerySet(models.QuerySet):
    def for_user(self, user):
        """Only jobs of teams the user belongs to: every team-scoped lookup starts here."""
        return self.filter(team__memberships__user=user)

    def active(self):
        return self.filter(state__in=ACTIVE_STATES)

    def finished_videos(self):
        return self.filter(state=JobState.SUCCEEDED).exclude(video="")

    def for_cards(self):
        """Just what a job card (templates/studio/_job_card.html) shows, with its creator: a row
        without the provider's last answer and the bookkeeping columns converts in a third less
        time. A card reading any other field would cost a query per card, which the page query
        tests catch."""
        return self.select_related("creator").only(*CARD_FIELDS)


class Job(models.Model):
    """One image-to-video request of a team. It belongs to the team, not to whoever made it."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    team = models.ForeignKey("studio.Team", on_delete=models.CASCADE, related_name="jobs")
    creator = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="jobs"
    )
    provider = models.CharField(max_length=32)
    model = models.CharField(max_length=64, blank=True)
    params = models.JSONField(default=dict)
    input_image = models.FileField(upload_to="inputs/%Y/%m/")
    input_width = models.PositiveIntegerField(default=0)
    input_height = models.PositiveIntegerField(default=0)

    price_version = models.ForeignKey(
        "studio.PriceBookVersion", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    price_quoted = models.PositiveIntegerField(default=0, help_text="Credits reserved for the job.")
    provider_credits_used = models.FloatField(
        null=True, blank=True, help_text="What the provider reports it took, beside our price."
    )
    state = models.CharField(max_length=12, choices=JobState.choices, default=JobState.QUEUED)
    error = models.TextField(blank=True, help_text="What went wrong, in words a member can act on.")
    progress = models.PositiveSmallIntegerField(default=0, help_text="Percent done, 0–100.")

    provider_job_id = models.CharField(max_length=255, blank=True)
    key_fingerprint = models.CharField(
        max_length=16, blank=True, help_text="Which provider key submitted it (never the key)."
    )
    submit_attempts = models.PositiveIntegerField(default=0)
    poll_attempts = models.PositiveIntegerField(default=0)
    transient_errors = models.PositiveIntegerField(
        default=0, help_text="Provider errors in a row; resets on a good answer."
    )
    next_poll_at = models.DateTimeField(
        null=True, blank=True, help_text="When the job engine looks at this job next."
    )
    last_polled_at = models.DateTimeField(null=True, blank=True)
    deadline_at = models.DateTimeField(null=True, blank=True)
    eta_at = models.DateTimeField(null=True, blank=True, help_text="The provider's hint.")
    status_note = models.CharField(
        max_length=200, blank=True, help_text="What the job waits for, in words (a slot, a retry)."
    )
    outcome_unknown_at = models.DateTimeField(
        null=True, blank=True, help_text="A submission was sent but its answer never came."
    )
    claimed_provider_id = models.CharField(
        max_length=255, blank=True, help_text="An id a callback named, until a poll confirms it."
    )
    webhook_token = models.CharField(
        max_length=64, unique=True, null=True, default=None, editable=False
    )
    provider_input = models.FileField(upload_to="provider-inputs/%Y/%m/", blank=True)
    output_ref = models.TextField(
        blank=True, help_text="The provider's finished output, until our copy exists."
    )
    output_format = models.CharField(max_length=8, blank=True)
    output_expires_at = models.DateTimeField(null=True, blank=True)
    last_response = models.JSONField(null=True, blank=True, help_text="Kept for support.")

    created_at = models.DateTimeField(auto_now_add=True)
    submitting_at = models.DateTimeField(null=True, blank=True)
    running_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    video = models.FileField(upload_to="videos/%Y/%m/", blank=True)
    poster = models.FileField(upload_to="posters/%Y/%m/", blank=True)
    video_width = models.PositiveIntegerField(null=True, blank=True)
    video_height = models.PositiveIntegerField(null=True, blank=True)
    video_duration = models.FloatField(null=True, blank=True, help_text="Seconds.")
    video_bytes = models.PositiveBigIntegerField(null=True, blank=True)
    original_output = models.FileField(
        upload_to="originals/%Y/%m/", blank=True, help_text="The provider's GIF, kept for download."
    )
    # A job made from another's finished video (AKOOL: an audio track added to it).
    source_job = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="derived_jobs"
    )
    # Deleting a video removes our copy at once; the provider's copy (where it keeps one we can
    # delete) follows through the engine, retried while the provider says it is busy.
    deleted_at = models.DateTimeField(null=True, blank=True)
    provider_delete_due_at = models.DateTimeField(
        null=True, blank=True, help_text="When to ask the provider to delete its copy next."
    )
    provider_deleted_at = models.DateTimeField(null=True, blank=True)

    objects = JobQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["team", "-created_at"]),
            # The gallery's default view, a page at a time: its pages are index-only scans.
            models.Index(
                fields=["team", "-created_at", "id"],
                name="job_team_gallery",
                condition=models.Q(state="succeeded", deleted_at__isnull=True)
                & ~models.Q(video=""),
            ),
            models.Index(fields=["state", "next_poll_at"]),
            models.Index(fields=["state", "deadline_at"]),
            models.Index(fields=["provider", "state", "next_poll_at"]),
            models.Index(fields=["finished_at", "provider"]),  # the staff reconciliation
            models.Index(
                fields=["provider_delete_due_at"],
                name="job_provider_delete_due",
                condition=models.Q(provider_delete_due_at__isnull=False),
            ),
        ]

    def __str__(self):
        return f"{self.provider} job {self.id} ({self.state})"

    def save(self, *args, **kwargs):
        if self.webhook_token is None:
            self.webhook_token = secrets.token_urlsafe(32)
        super().save(*args, **kwargs)

    @property
    def title(self) -> str:
        """What a person calls this job: its camera move or prompt, else its model."""
        p = self.params
        first = str(p.get("motion") or "").replace("_", " ").capitalize()
        first = first or str(p.get("prompt") or "")[:40].strip() or self.model_label
        parts = [first]
        parts += [f"{p['duration']} s"] if p.get("duration") else []
        parts += [str(p["resolution"])] if p.get("resolution") else []
        return " · ".join(parts)

    @property
    def model_label(self) -> str:
        from studio.providers import PROVIDERS

        provider = PROVIDERS.get(self.provider)
        spec = provider.model(self.model) if provider else None
        return spec.label if spec else self.model or "Video"

    @property
    def provider_label(self) -> str:
        from studio.providers import label_of

        return label_of(self.provider)

    @property
    def provider_keeps_copy(self) -> bool:
        from studio.providers import PROVIDERS

        provider = PROVIDERS.get(self.provider)
        return bool(provider and provider.deletes_remote and self.provider_job_id)

    @property
    def settlement(self):
        """The capture or release of this job's credits, once it has one (an active job has none:
        its polled status costs no query for it)."""
        if not self.is_terminal:
            return None
        return self.ledger.filter(kind__in=["capture", "release"]).first()

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    @property
    def is_active(self) -> bool:
        return self.state in ACTIVE_STATES


class AssetRole(models.TextChoices):
    TAIL_IMAGE = "tail_image", "End frame"
    STATIC_MASK = "static_mask", "Static mask"
    DYNAMIC_MASK = "dynamic_mask", "Dynamic mask"
    AUDIO = "audio", "Audio track"


class JobAsset(models.Model):
    """A file a job sends beside its image: an end frame, a motion-brush mask (with its
    trajectory), an audio track. Providers fetch it through a signed URL (studio.inputs)."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="assets")
    role = models.CharField(max_length=16, choices=AssetRole.choices)
    position = models.PositiveSmallIntegerField(default=0, help_text="Order among its role.")
    file = models.FileField(upload_to="job-assets/%Y/%m/")
    content_type = models.CharField(max_length=64)
    trajectory = models.JSONField(
        default=list, blank=True, help_text="A dynamic mask's path: [[x, y], ...] in image pixels."
    )

    class Meta:
        ordering = ["role", "position"]
        constraints = [
            models.UniqueConstraint(fields=["job", "role", "position"], name="one_asset_per_slot")
        ]

    def __str__(self):
        return f"{self.get_role_display()} {self.position} of job {self.job_id}"
