"""Creating a job: the one write that checks the image, the parameters and the role together."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

from django.core.exceptions import PermissionDenied
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.utils import timezone

from studio.billing import budgets, ledger
from studio.billing.errors import CreditError
from studio.billing.prices import PriceUnavailable, quote_job
from studio.models import Job, JobAsset, Membership
from studio.providers import choose
from studio.providers.base import AssetDraft, AssetsRefused
from studio.tasks import enqueue_job
from studio.uploads import ALLOWED_FORMATS, CheckedImage, UploadRefused, check_image_header

logger = logging.getLogger(__name__)


class JobRefused(ValueError):
    """The submission is refused; `errors` maps each field to what is wrong with it."""

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))
        self.errors = errors


class StorageUnavailable(JobRefused):
    """The media storage refused a write (read-only, full, gone): nothing was stored or charged,
    and the member may try again later."""

    def __init__(self):
        super().__init__(
            {
                "image": [
                    "We could not store your image right now; nothing was charged. "
                    "Please try again in a few minutes."
                ]
            }
        )


@dataclass(frozen=True)
class StoredImage:
    """An input image already in storage and checked (an API upload, a job retried): a new job
    shares the file and never deletes it."""

    name: str
    width: int
    height: int

    @property
    def checked(self) -> CheckedImage:
        extension = self.name.rsplit(".", 1)[-1].lower()
        formats = {ext: fmt for fmt, ext in ALLOWED_FORMATS.items() if fmt != "MPO"}
        return CheckedImage(
            format=formats.get(extension, "JPEG"), width=self.width, height=self.height
        )


def submit_job(
    membership: Membership,
    image: UploadedFile | StoredImage | None,
    provider_key: str,
    params: dict,
    files=None,
    *,
    drafts: list[AssetDraft] | None = None,
) -> Job:
    """Create a queued job for the member's team and hand it to the workers. `files` holds what
    the model sends beside the image (an end frame, masks, an audio track); `drafts` replaces
    them with files already checked (a retried job's).

    Nothing is stored unless every check passes.
    """
    if not membership.can_submit:
        raise PermissionDenied("Viewers can watch and download, but not submit jobs.")
    errors: dict[str, list[str]] = {}
    provider, spec, clean, errors = choose(provider_key, params)
    if spec is not None and spec.key not in dict(provider.model_choices()):
        # A model made only from another job (AKOOL's add-audio): see studio.jobs.derived.
        spec, errors = None, {"model": [f"{spec.label} is made from a finished video's page."]}
    checked, confirm_decoded = None, None
    if image is None:
        errors["image"] = ["Choose an image to animate."]
    elif isinstance(image, StoredImage):
        checked = image.checked
    else:
        try:
            # The header now; the decode (over 20 ms for a phone photo) is waited for only just
            # before the reservation, so storing the file and writing the job overlap it.
            checked, confirm_decoded = check_image_header(image)
        except UploadRefused as refusal:
            errors["image"] = [str(refusal)]
    if spec is not None and checked is not None:
        if problem := provider.check_input(spec.key, checked.width, checked.height):
            errors["image"] = [problem]
        try:
            if drafts is None:
                drafts = provider.take_assets(spec.key, clean, files or {}, params, checked)
        except AssetsRefused as refusal:
            errors |= refusal.errors
    if not errors:
        try:
            price = quote_job(provider, spec.key, clean)
        except PriceUnavailable as missing:
            errors["provider"] = [str(missing)]
    if errors:
        if confirm_decoded is not None and "image" not in errors:
            try:  # every problem said at once
                confirm_decoded()
            except UploadRefused as refusal:
                errors["image"] = [str(refusal)]
        raise JobRefused(errors)

    job = Job(
        team=membership.team,
        creator=membership.user,
        provider=provider.key,
        model=spec.key,
        params=clean,
        input_width=checked.width,
        input_height=checked.height,
    )
    owns_image = not isinstance(image, StoredImage)  # a stored image is shared, never ours
    if owns_image:
        try:
            job.input_image.save(checked.storage_name(), image, save=False)
        except OSError as error:
            logger.error("Media storage refused an input image: %s", error)
            raise StorageUnavailable() from error
    else:
        job.input_image.name = image.name
    return create_reserved(
        job,
        provider,
        price,
        drafts or [],
        owns_image=owns_image,
        confirm_image=confirm_decoded,
        limit=membership.monthly_limit,
    )


def create_reserved(
    job: Job,
    provider,
    price,
    drafts=(),
    *,
    owns_image: bool,
    confirm_image=None,
    limit=budgets.UNREAD,
) -> Job:
    """Save a new job with its files and its reservation, all of it or none of it, and hand it
    to the engine. `owns_image`: the job's input file was stored for it (and goes if it fails);
    a job made from another's output shares that job's file and never deletes it.
    `confirm_image` raises UploadRefused if the image turns out damaged: the job is then never
    reserved nor committed. `limit`: the creator's monthly limit, when the caller has their
    membership in hand."""
    now = timezone.now()
    job.price_version = price.version
    job.price_quoted = price.amount
    # Waiting for a provider slot counts too: a job nobody could send expires and is refunded.
    job.deadline_at = now + provider.figure(provider.queue_deadline + provider.deadline_for(job))
    job.next_poll_at = now
    assets: list[JobAsset] = []

    def discard_files():
        if owns_image:
            job.input_image.delete(save=False)
        for asset in assets:
            asset.file.delete(save=False)

    try:
        for draft in drafts:
            assets.append(_stored(draft))
    except OSError as error:
        logger.error("Media storage refused a job's file: %s", error)
        discard_files()
        raise StorageUnavailable() from error

    try:
        with transaction.atomic():  # reserve, create and enqueue: all of it or none of it
            job.save()
            for asset in assets:
                asset.job = job
            JobAsset.objects.bulk_create(assets)
            if limit is budgets.UNREAD:
                limit = budgets.member_limit(job.team, job.creator)  # read once for both
            if confirm_image is not None:
                confirm_image()  # before the team's account is locked, and nothing is reserved
            held = ledger.reserve(job, limit=limit)
            budgets.send_warnings(job.team, job.creator, limit=limit, account=held)
            enqueue_job(job)
    except CreditError as refusal:
        discard_files()
        raise JobRefused({"credits": [str(refusal)]}) from None
    except UploadRefused as refusal:
        discard_files()
        raise JobRefused({"image": [str(refusal)]}) from None
    except BaseException:
        # An error after the commit (an on_commit step) leaves a real job that needs its files.
        if not Job.objects.filter(pk=job.pk).exists():
            discard_files()  # the row never existed: neither may its files
        raise
    return job


def _stored(draft: AssetDraft) -> JobAsset:
    asset = JobAsset(
        role=draft.role,
        position=draft.position,
        content_type=draft.content_type,
        trajectory=draft.trajectory,
    )
    name = f"{uuid.uuid4().hex}.{draft.extension}"  # never a name the uploader chose
    asset.file.save(name, ContentFile(draft.data), save=False)
    return asset
