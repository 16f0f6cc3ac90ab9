"""What we keep about provider accounts: their shared rate-limit bucket, and incidents staff
must look at (submissions whose outcome is unknown, filtered generations the provider billed)."""

from django.db import models


class ProviderAccount(models.Model):
    """One API key of one provider, shared by every worker process: a token bucket refilled at
    the account's allowed rate, and a pause after the provider answered 429."""

    provider = models.CharField(max_length=32)
    fingerprint = models.CharField(max_length=16)
    tokens = models.FloatField(default=0)
    refilled_at = models.DateTimeField(null=True, blank=True)
    paused_until = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["provider", "fingerprint"], name="one_account_per_key")
        ]

    def __str__(self):
        return f"{self.provider} account {self.fingerprint}"


class IncidentKind(models.TextChoices):
    OUTCOME_UNKNOWN = "outcome_unknown", "Submission outcome unknown"
    FILTERED_CHARGED = "filtered_charged", "Filtered, probably charged by the provider"
    KEY_MISMATCH = "key_mismatch", "Submitted with a key no longer configured"


class ProviderIncident(models.Model):
    """Something staff should reconcile with the provider's bill."""

    job = models.ForeignKey("studio.Job", on_delete=models.CASCADE, related_name="incidents")
    provider = models.CharField(max_length=32)
    kind = models.CharField(max_length=20, choices=IncidentKind.choices)
    detail = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["job", "kind"], name="one_incident_per_job_and_kind")
        ]

    def __str__(self):
        return f"{self.get_kind_display()}: {self.job_id}"
