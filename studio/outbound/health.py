"""An endpoint's health: `failing_since` marks the first failure after its last success, and an
endpoint that has done nothing but fail for WEBHOOK_DISABLE_AFTER_DAYS is disabled, with the
reason on the team's settings page and a mail to the team's owners."""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse

from studio.models import WebhookEndpoint
from studio.outbound.endpoints import disable

log = logging.getLogger(__name__)


def endpoint_answered(endpoint_id: int) -> None:
    WebhookEndpoint.objects.filter(pk=endpoint_id, failing_since__isnull=False).update(
        failing_since=None
    )


def endpoint_failed(endpoint: WebhookEndpoint, error: str, now: datetime) -> bool:
    """Record a failure; True if it disabled the endpoint."""
    WebhookEndpoint.objects.filter(pk=endpoint.pk, failing_since__isnull=True).update(
        failing_since=now
    )
    days = settings.WEBHOOK_DISABLE_AFTER_DAYS
    failing_long = WebhookEndpoint.objects.filter(
        pk=endpoint.pk, enabled=True, failing_since__lte=now - timedelta(days=days)
    )
    since = failing_long.values_list("failing_since", flat=True).first()
    if since is None:
        return False
    reason = (
        f"Disabled on {now:%Y-%m-%d}: every delivery has failed since {since:%Y-%m-%d %H:%M} UTC "
        f"({days} days or more). The last error: {error}"
    )
    with transaction.atomic():
        if not disable(endpoint, reason, now):
            return False  # another sender disabled it first and sent the notice
        _tell_owners(endpoint, reason)
    log.warning("webhook endpoint %s of team %s disabled", endpoint.pk, endpoint.team_id)
    return True


def _tell_owners(endpoint: WebhookEndpoint, reason: str) -> None:
    team = endpoint.team
    owners = list(team.memberships.owners().values_list("user__email", flat=True))
    page = settings.PUBLIC_BASE_URL + reverse("webhook_endpoint", args=[team.slug, endpoint.pk])
    body = (
        f"We stopped sending webhooks to {endpoint.url} for {team}.\n\n{reason}\n\n"
        f"Fix the receiver, then turn the endpoint back on and send again what it missed:\n{page}"
    )
    transaction.on_commit(  # a mail server that is down must not undo the disabling
        lambda: send_mail(f"Webhook endpoint disabled in {team}", body, None, owners),
        robust=True,
    )
