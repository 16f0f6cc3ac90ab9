"""A job as the API shows it: the same dict answers `GET /jobs/{id}`, fills the job list and is
the `data` of every job webhook, so a receiver and a poller read the same fields."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from django.conf import settings
from pydantic import BaseModel

from studio.api import job_rows
from studio.api.files import file_links
from studio.jobs import eta
from studio.models import EntryKind, Job


# Plain pydantic models, not ninja's Schema: ninja wraps every object it validates to read Django
# attributes, which made checking a page of 25 jobs cost 5 ms instead of 0.3 ms (bench/api.py).
class EtaOut(BaseModel):
    at: datetime
    seconds_left: int
    source: str


class VideoOut(BaseModel):
    url: str
    download_url: str
    poster_url: str | None
    width: int | None
    height: int | None
    duration: float | None
    bytes: int | None


class JobOut(BaseModel):
    id: UUID
    state: str
    provider: str
    provider_label: str
    model: str
    params: dict
    title: str
    progress: int
    eta: EtaOut | None
    status_note: str
    error: str
    price_quoted: int
    price_charged: int | None  # once captured
    refunded: bool
    refund_reason: str
    creator: str | None
    source_job: UUID | None
    input_url: str | None
    input_width: int
    input_height: int
    video: VideoOut | None
    page_url: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    deleted_at: datetime | None


def unsettled(job: Job) -> Job:
    """A job just made, with its team and creator at hand: nothing need be read back."""
    job.settled_kind = job.settled_amount = job.settled_reason = None
    job.creator_email, job.team_slug = job.creator.email, job.team.slug
    return job


def job_data(job: Job) -> dict:
    """The API's view of a job, read through studio.api.job_rows (or just made: `unsettled`)."""
    if not hasattr(job, "settled_kind"):
        job = job_rows.one(job.pk)
    guess = eta.estimate(job)
    links = file_links(job)
    released = job.settled_kind == EntryKind.RELEASE
    return {
        "id": job.pk,
        "state": job.state,
        "provider": job.provider,
        "provider_label": job.provider_label,
        "model": job.model,
        "params": job.params,
        "title": job.title,
        "progress": guess.progress if guess else job.progress,
        "eta": {"at": guess.at, "seconds_left": guess.seconds_left, "source": guess.source}
        if guess
        else None,
        "status_note": job.status_note,
        "error": job.error,
        "price_quoted": job.price_quoted,
        "price_charged": job.settled_amount if job.settled_kind == EntryKind.CAPTURE else None,
        "refunded": released,
        "refund_reason": job.settled_reason if released else "",
        "creator": job.creator_email,
        "source_job": job.source_job_id,
        "input_url": links["input"],
        "input_width": job.input_width,
        "input_height": job.input_height,
        "video": _video(job, links),
        "page_url": f"{settings.PUBLIC_BASE_URL}/t/{job.team_slug}/jobs/{job.pk}/",
        "created_at": job.created_at,
        "started_at": job.running_at,
        "finished_at": job.finished_at,
        "deleted_at": job.deleted_at,
    }


def _video(job: Job, links: dict) -> dict | None:
    url = links["video"]
    if url is None:
        return None
    return {
        "url": url,
        "download_url": url + "?download=1",
        "poster_url": links["poster"],
        "width": job.video_width,
        "height": job.video_height,
        "duration": job.video_duration,
        "bytes": job.video_bytes,
    }
