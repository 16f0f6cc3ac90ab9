"""The image of a new-job form submission: a file chosen now, else one the form kept.

A browser cannot refill a file input, so a form re-shown after a refusal keeps the member's
image on our side, as an `ImageUpload` of the team, and carries its id; "make another like this"
carries the source job's id. Either is shared as a `StoredImage` (never deleted with a job,
exactly as the API's `image_id` and a retried job share theirs), and only ever within the team.
"""

from __future__ import annotations

import logging
import uuid

from django.core.files.uploadedfile import UploadedFile

from studio.access import find_team_job
from studio.jobs.submit import JobRefused, StoredImage
from studio.models import ImageUpload, Job, Membership, Team
from studio.uploads import UploadRefused, check_image

logger = logging.getLogger(__name__)

GONE = "The image kept from before is no longer available; choose the image again."


def team_upload(team: Team, upload_id) -> ImageUpload | None:
    try:
        return ImageUpload.objects.filter(team=team, pk=uuid.UUID(str(upload_id))).first()
    except ValueError:  # not a UUID: no such image either
        return None


def stored(team: Team, kept_id: str = "", from_job_id: str = "") -> StoredImage | None:
    """The kept image (an upload id, else a job whose input it is), refused unless the team's."""
    if kept_id:
        upload = team_upload(team, kept_id)
        if upload is None:
            raise JobRefused({"image": [GONE]})
        return StoredImage(upload.file.name, upload.width, upload.height)
    if from_job_id:
        job = find_team_job(team, from_job_id)
        if job is None or not job.input_image:
            raise JobRefused({"image": [GONE]})
        return source_image(job)
    return None


def source_image(job: Job) -> StoredImage:
    """A job's input, shared as studio.jobs.retry shares it: deleting either job keeps it."""
    return StoredImage(job.input_image.name, job.input_width, job.input_height)


def chosen(
    team: Team, upload: UploadedFile | None, kept_id: str = "", from_job_id: str = ""
) -> UploadedFile | StoredImage | None:
    """A file chosen now replaces whatever was kept."""
    if upload is not None:
        return upload
    return stored(team, kept_id, from_job_id)


def keep(membership: Membership, upload: UploadedFile) -> ImageUpload | None:
    """Store a refused submission's image for the form to offer again; None if it is no image
    we accept, or the storage refuses it (the member then chooses it again, as before)."""
    try:
        checked = check_image(upload)
    except UploadRefused:
        return None
    kept = ImageUpload(
        team=membership.team,
        user=membership.user,
        width=checked.width,
        height=checked.height,
        size=upload.size,
    )
    try:
        kept.file.save(checked.storage_name(), upload, save=True)
    except OSError as error:
        logger.error("Media storage refused a kept image: %s", error)
        return None
    return kept


def after_refusal(
    membership: Membership, upload: UploadedFile | None, kept_id: str = "", from_job_id: str = ""
) -> ImageUpload | Job | None:
    """What a refused form should hold on to: the file just chosen (stored now, if it is an
    image we accept), else what it held before, if that is still the team's."""
    if upload is not None:
        return keep(membership, upload)
    if kept_id:
        return team_upload(membership.team, kept_id)
    if from_job_id:
        job = find_team_job(membership.team, from_job_id)
        return job if job is not None and job.input_image else None
    return None
