"""What the job page and the job cards show a person: parameters by their form labels, the refund
line's reason, whether a job may still be canceled. Computed from the job row alone: no queries."""

from django import template

from studio.jobs import states
from studio.models import JobState
from studio.providers import PROVIDERS

register = template.Library()


@register.filter
def param_rows(job) -> list[tuple[str, str]]:
    """[(label, value)] of the job's parameters, from the same declarations as the form."""
    provider = PROVIDERS.get(job.provider)
    spec = provider.model(job.model) if provider else None
    if spec is not None:
        return spec.describe(job.params or {})
    # A model no adapter offers any more: its keys, made readable.
    return [
        (str(key).replace("_", " ").capitalize(), str(value))
        for key, value in (job.params or {}).items()
        if value not in (None, "")
    ]


@register.filter
def refund_sentence(reason: str) -> str:
    """A release reason ending in exactly one full stop (or its own ? or !)."""
    reason = states.tidy_reason(reason)
    return reason if reason.endswith(("?", "!")) else f"{reason}."


@register.filter
def cancel_offer(job, membership) -> str:
    """ "cancel" where this member may cancel the job now, "paid" where they could have but a
    remote provider is already making (and charging for) it, else ""."""
    if not states.may_cancel(membership, job):
        return ""
    if states.cancellable(job):
        return "cancel"
    if job.state in (JobState.SUBMITTING, JobState.RUNNING):
        return "paid"
    return ""
