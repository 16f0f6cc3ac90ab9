"""Outbound webhooks: the endpoints a team registers and every delivery made to them."""

from django.conf import settings
from django.db import models


class WebhookEvent(models.TextChoices):
    JOB_STARTED = "job.started", "A job started (the provider took it)"
    JOB_SUCCEEDED = "job.succeeded", "A job finished with its video"
    JOB_FAILED = "job.failed", "A job failed or expired (its credits returned)"
    JOB_CANCELED = "job.canceled", "A job was canceled"
    CREDITS_LOW = "credits.low", "The team's available credits fell to the warning level"


class WebhookEndpoint(models.Model):
    """A URL of the team's own software that receives the events it asked for, signed with its
    own `whsec_` secret (Standard Webhooks)."""

    team = models.ForeignKey(
        "studio.Team", on_delete=models.CASCADE, related_name="webhook_endpoints"
    )
    url = models.URLField(max_length=2000)
    description = models.CharField(max_length=200, blank=True)
    events = models.JSONField(default=list, help_text="Event types this endpoint receives.")
    secret = models.CharField(max_length=100, help_text="whsec_ + base64 of the signing key.")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    enabled = models.BooleanField(default=True)
    failing_since = models.DateTimeField(
        null=True, blank=True, help_text="First failure since the last success."
    )
    disabled_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self):
        return f"webhook endpoint {self.url} of {self.team}"


class DeliveryState(models.TextChoices):
    PENDING = "pending", "Waiting to be sent"
    SENDING = "sending", "Being sent"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed (no more attempts)"


class WebhookDelivery(models.Model):
    """One event for one endpoint: the message (its `webhook-id` is the same on every attempt,
    so a receiver can drop repeats) and how sending it went."""

    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    message_id = models.CharField(max_length=64, unique=True)
    event = models.CharField(max_length=32, choices=WebhookEvent.choices)
    payload = models.JSONField()
    state = models.CharField(
        max_length=10, choices=DeliveryState.choices, default=DeliveryState.PENDING
    )
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    claimed_until = models.DateTimeField(
        null=True, blank=True, help_text="A worker is sending it until then."
    )
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["endpoint", "-created_at"]),
            models.Index(
                fields=["next_attempt_at"],
                name="webhook_delivery_due",
                condition=models.Q(state__in=["pending", "sending"]),
            ),
        ]

    def __str__(self):
        return f"{self.event} {self.message_id} → {self.endpoint_id} ({self.state})"
