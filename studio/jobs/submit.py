"""Creating a job: the one write that checks the image, the parameters and the role together."""

from django.core.exceptions import PermissionDenied
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.utils import timezone

from studio.billing import budgets, ledger
from studio.billing.errors import CreditError
from studio.billing.prices import PriceUnavailable, quote
from studio.models import Job, Membership
from studio.providers import choose
from studio.tasks import enqueue_job
from studio.uploads import UploadRefused, check_image


class JobRefused(ValueError):
    """The submission is refused; `errors` maps each field to what is wrong with it."""

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))
        self.errors = errors


def submit_job(
    membership: Membership, image: UploadedFile | None, provider_key: str, params: dict
) -> Job:
    """Create a queued job for the member's team and hand it to the workers.

    Nothing is stored unless every check passes.
    """
    if not membership.can_submit:
        raise PermissionDenied("Viewers can watch and download, but not submit jobs.")
    errors: dict[str, list[str]] = {}
    provider, spec, clean, errors = choose(provider_key, params)
    if image is None:
        errors["image"] = ["Choose an image to animate."]
    else:
        try:
            checked = check_image(image)
        except UploadRefused as refusal:
            errors["image"] = [str(refusal)]
    if not errors:
        try:
            price = quote(provider.key, spec.key, provider.price_keys(spec.key, clean))
        except PriceUnavailable as missing:
            errors["provider"] = [str(missing)]
    if errors:
        raise JobRefused(errors)

    now = timezone.now()
    job = Job(
        team=membership.team,
        creator=membership.user,
        provider=provider.key,
        model=spec.key,
        params=clean,
        price_version=price.version,
        price_quoted=price.amount,
        # Waiting for a provider slot counts too: a job nobody could send expires and is refunded.
        deadline_at=now + provider.figure(provider.queue_deadline + provider.deadline),
        next_poll_at=now,
        input_width=checked.width,
        input_height=checked.height,
    )
    job.input_image.save(checked.storage_name(), image, save=False)
    try:
        with transaction.atomic():  # reserve, create and enqueue: all of it or none of it
            job.save()
            ledger.reserve(job)
            budgets.send_warnings(job.team, job.creator)
            enqueue_job(job)
    except CreditError as refusal:
        job.input_image.delete(save=False)
        raise JobRefused({"credits": [str(refusal)]}) from None
    except BaseException:
        # An error after the commit (an on_commit step) leaves a real job that needs its file.
        if not Job.objects.filter(pk=job.pk).exists():
            job.input_image.delete(save=False)  # the row never existed: neither may its file
        raise
    return job
