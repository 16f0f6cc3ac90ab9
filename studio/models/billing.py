"""Credits: an append-only ledger with a cached account beside it, and a versioned price book."""

from django.conf import settings
from django.db import models
from django.db.models import F, Q


class EntryKind(models.TextChoices):
    GRANT = "grant", "Grant"
    RESERVE = "reserve", "Reserve"
    CAPTURE = "capture", "Capture"
    RELEASE = "release", "Release"
    ADJUSTMENT = "adjustment", "Adjustment"


# How each kind moves the cached figures: (balance, held) per credit of `amount`.
EFFECTS = {
    EntryKind.GRANT: (1, 0),
    EntryKind.ADJUSTMENT: (1, 0),  # amount is signed for adjustments
    EntryKind.RESERVE: (0, 1),
    EntryKind.CAPTURE: (-1, -1),
    EntryKind.RELEASE: (0, -1),
}


class CreditAccount(models.Model):
    """A team's cached balance and held credits, always updated in the ledger's transaction."""

    team = models.OneToOneField("studio.Team", on_delete=models.CASCADE, related_name="credits")
    balance = models.BigIntegerField(default=0)
    held = models.BigIntegerField(default=0)
    monthly_cap = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="Most credits the team may commit per calendar month."
    )
    low_balance_level = models.PositiveBigIntegerField(
        default=50, help_text="Warn when available credits fall to this level or below."
    )

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(held__gte=0), name="held_not_negative"),
            models.CheckConstraint(
                condition=Q(balance__gte=F("held")), name="available_not_negative"
            ),
        ]

    def __str__(self):
        return f"{self.team}: {self.available} available"

    @property
    def available(self) -> int:
        return self.balance - self.held


class LedgerEntry(models.Model):
    """One credit movement. Rows are only ever added."""

    team = models.ForeignKey("studio.Team", on_delete=models.CASCADE, related_name="ledger")
    kind = models.CharField(max_length=12, choices=EntryKind.choices)
    amount = models.BigIntegerField(help_text="Credits; positive except for negative adjustments.")
    job = models.ForeignKey(
        "studio.Job", on_delete=models.PROTECT, null=True, blank=True, related_name="ledger"
    )
    member = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="Whose job this is, for per-member usage.",
    )
    provider = models.CharField(max_length=32, blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="Who did it; empty for the system (a worker).",
    )
    reason = models.CharField(max_length=300, blank=True)
    reservation = models.OneToOneField(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="settlement",
        help_text="For a capture or release: the reservation it settles.",
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            # A job is reserved at most once, and settled (captured or released) at most once:
            # facts of the database, whatever the code above it does.
            models.UniqueConstraint(
                fields=["job"], condition=Q(kind="reserve"), name="one_reservation_per_job"
            ),
            models.UniqueConstraint(
                fields=["job"],
                condition=Q(kind__in=["capture", "release"]),
                name="one_settlement_per_job",
            ),
            # No settlement without the reservation it settles ("never without a reservation").
            models.CheckConstraint(
                condition=~Q(kind__in=["capture", "release"]) | Q(reservation__isnull=False),
                name="settlement_names_its_reservation",
            ),
            models.CheckConstraint(
                condition=Q(kind="adjustment") | Q(amount__gte=0), name="amount_not_negative"
            ),
            models.CheckConstraint(
                condition=Q(kind__in=["grant", "adjustment"]) | Q(job__isnull=False),
                name="job_entries_name_their_job",
            ),
        ]
        indexes = [models.Index(fields=["team", "-created_at"])]

    def __str__(self):
        return f"{self.kind} {self.amount} ({self.team})"


class PriceBookVersion(models.Model):
    """One edition of the price book. Editing prices makes a new version; jobs keep theirs."""

    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    note = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-id"]
        get_latest_by = "id"

    def __str__(self):
        return f"price book v{self.pk}"


class PriceRule(models.Model):
    """A row of a provider's price table. Empty / null match fields mean "any"."""

    version = models.ForeignKey(PriceBookVersion, on_delete=models.CASCADE, related_name="rules")
    provider = models.CharField(max_length=32)
    model = models.CharField(max_length=64, blank=True)
    resolution = models.CharField(max_length=16, blank=True)
    duration = models.PositiveIntegerField(null=True, blank=True, help_text="Seconds.")
    plan = models.CharField(max_length=32, blank=True, help_text="The provider plan we hold.")
    audio = models.BooleanField(null=True, blank=True, help_text="Audio only (AKOOL).")
    per_video = models.PositiveIntegerField(default=0)
    per_second = models.PositiveIntegerField(default=0)
    published = models.BooleanField(
        default=True, help_text="False: the provider publishes no price; staff set this one."
    )
    source = models.CharField(max_length=200, blank=True, help_text="Where the figure comes from.")

    class Meta:
        ordering = ["provider", "model", "resolution", "duration"]

    def __str__(self):
        return f"{self.provider} {self.model} {self.resolution} {self.duration or ''}"

    def price(self, duration: int | None) -> int:
        return self.per_video + self.per_second * (duration or 0)


class BudgetWarning(models.Model):
    """A warning sent for a team in a period; unique, so each is sent once per period."""

    team = models.ForeignKey("studio.Team", on_delete=models.CASCADE, related_name="warnings")
    key = models.CharField(max_length=80)
    period = models.CharField(max_length=7, help_text="YYYY-MM")
    message = models.CharField(max_length=300)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["team", "key", "period"], name="one_warning_per_period")
        ]

    def __str__(self):
        return f"{self.team} {self.period}: {self.message}"


class AuditEntry(models.Model):
    """A staff action: who did what to which object, with the values before and after."""

    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    action = models.CharField(max_length=60)
    target = models.CharField(max_length=200)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    reason = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name_plural = "audit entries"

    def __str__(self):
        return f"{self.actor} {self.action} {self.target}"
