"""Trying a finished job again: a new job with the same image, model, parameters and files,
priced and reserved as any new job (the first job and its ledger rows stay as they are)."""

from __future__ import annotations

from studio.jobs.submit import JobRefused, StoredImage, submit_job
from studio.models import Job, Membership
from studio.providers.base import AssetDraft


def retry_job(membership: Membership, job: Job) -> Job:
    if not job.is_terminal:
        raise JobRefused({"job": ["This job has not finished; try it again once it has."]})
    if job.source_job_id:
        raise JobRefused(
            {"job": ["This job was made from another job's video; start it from that video."]}
        )
    image = StoredImage(job.input_image.name, job.input_width, job.input_height)
    params = {**job.params, "model": job.model}
    return submit_job(membership, image, job.provider, params, drafts=_copies(job))


def _copies(job: Job) -> list[AssetDraft]:
    """The job's files beside its image, copied: an adapter may rewrite a job's own files."""
    drafts = []
    for asset in job.assets.all():
        with asset.file.open("rb") as stored:
            data = stored.read()
        drafts.append(
            AssetDraft(
                role=asset.role,
                data=data,
                extension=asset.file.name.rsplit(".", 1)[-1],
                content_type=asset.content_type,
                position=asset.position,
                trajectory=asset.trajectory,
            )
        )
    return drafts
