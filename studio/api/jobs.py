"""Jobs: create (idempotent with a key), list, get, cancel, retry, delete, add audio."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from django.db import transaction
from django.http import Http404
from ninja import Field, Query, Router, Schema, Status
from ninja.errors import HttpError

from studio.api import idempotency, job_requests, job_rows, pages
from studio.api.auth import writer
from studio.api.bodies import FILE, STRING, URL, body, fields, job_fields
from studio.api.errors import answers
from studio.api.filters import moment
from studio.api.images import fetch_image
from studio.api.job_requests import BadRequest, read_json
from studio.api.pages import DEFAULT_LIMIT, MAX_LIMIT, PageMeta
from studio.api.payloads import JobOut, job_data, unsettled
from studio.jobs import derived
from studio.jobs.deletion import delete_video
from studio.jobs.retry import retry_job
from studio.jobs.states import cancel, may_cancel
from studio.jobs.submit import submit_job
from studio.models import Job, JobState

router = Router(tags=["jobs"])


class JobPage(Schema):
    items: list[JobOut]
    page: PageMeta


class JobFilters(Schema):
    state: list[JobState] | None = None
    # Shapes checked before anything reaches SQL (PostgreSQL refuses a NUL byte in text).
    provider: str | None = Field(None, pattern=r"^[a-z0-9_]{1,32}$")
    member: str | None = Field(None, max_length=254, pattern=r"^[^\x00]+$")  # a member's e-mail
    created_after: datetime | None = None
    created_before: datetime | None = None
    include_deleted: bool = True
    cursor: str | None = None
    limit: int = DEFAULT_LIMIT


def team_job(request, job_id: UUID) -> Job:
    job = job_rows.one(job_id, team_id=request.caller.team.pk)
    if job is None:
        raise Http404("No such job")
    return job


def _answer(request, job: Job):
    """The job as it is now (its settlement may just have changed)."""
    return Status(200, job_data(team_job(request, job.pk)))


def _created(job: Job):
    return Status(201, job_data(unsettled(job)))


def idempotent(request, digest: str, make):
    """Run `make()` (which creates one job) under the request's Idempotency-Key, if it has one."""
    key = request.headers.get(idempotency.HEADER)
    if key is None:
        return _created(make())
    team = request.caller.team
    held = idempotency.claim(team, idempotency.check_key(key), digest)
    if isinstance(held, idempotency.Replay):
        return Status(held.status_code, held.answer)
    try:
        with transaction.atomic():  # the job and the key's answer: both or neither
            job = make()
            response = _created(job)
            idempotency.answer(held, response.status_code, response.value, job)
    except BaseException:
        idempotency.release(held)
        raise
    return response


CREATE_DOC = """Create a job from an image and a provider's model.

Send **JSON** — `{"provider", "model", "params": {...}, "image_url" | "image_id"}` — or
**multipart/form-data** with the file in `image`, `provider`, `model` and each parameter as its
own field (files a model takes beside the image, such as Kling's `tail_image` or AKOOL's `audio`,
under the same names as on the new-job form). Parameters left out take their defaults; see
`GET /providers` for each model's parameter schema. With an `Idempotency-Key` header the same
request sent again returns the first answer and creates nothing more."""

CREATE_BODY = body(
    json=fields(
        job_fields(image_url=URL, image_id={"type": "string", "format": "uuid"}),
        required=["provider", "model"],
    ),
    multipart=fields(
        {"provider": STRING, "model": STRING, "image": FILE},
        required=["provider", "model", "image"],
        additionalProperties=True,  # each parameter, and files beside the image, by name
    ),
)
IDEMPOTENCY_HEADER = {
    "in": "header",
    "name": idempotency.HEADER,
    "required": False,
    "schema": {"type": "string", "maxLength": idempotency.MAX_KEY_LENGTH},
    "description": "Any unique string, kept 48 hours: the same request again returns the "
    "first answer; another request with it answers 422; one still in flight, 409.",
}


@router.post(
    "",
    response=answers(201, JobOut),
    summary="Create a job",
    description=CREATE_DOC,
    openapi_extra={"requestBody": CREATE_BODY, "parameters": [IDEMPOTENCY_HEADER]},
)
def create_job(request):
    caller = writer(request)
    wanted = job_requests.read(request)

    def make():
        image = job_requests.image_of(wanted, caller.team, fetch_image)
        return submit_job(caller.membership, image, wanted.provider, wanted.params, wanted.files)

    return idempotent(request, wanted.digest, make)


@router.get("", response=answers(200, JobPage), summary="List the team's jobs, newest first")
def list_jobs(request, filters: Query[JobFilters]):
    limit = min(max(filters.limit, 1), MAX_LIMIT)
    query = job_rows.JobQuery(
        team_id=request.caller.team.pk,
        states=tuple(filters.state or ()),
        provider=filters.provider or "",
        member_email=filters.member or "",
        created_after=moment(filters.created_after, "created_after"),
        created_before=moment(filters.created_before, "created_before"),
        live_only=not filters.include_deleted,
        after=pages.decode(filters.cursor) if filters.cursor else None,
        limit=limit + 1,
    )
    rows, next_cursor = pages.split(job_rows.read(query), limit)
    return Status(
        200,
        {
            "items": [job_data(job) for job in rows],
            "page": {"next_cursor": next_cursor, "limit": limit},
        },
    )


@router.get("/{job_id}", response=answers(200, JobOut), summary="One job")
def get_job(request, job_id: UUID):
    return Status(200, job_data(team_job(request, job_id)))


@router.post(
    "/{job_id}/cancel",
    response=answers(200, JobOut),
    summary="Cancel a job no provider has taken yet, or a local render under way",
)
def cancel_job(request, job_id: UUID):
    caller = writer(request)
    job = team_job(request, job_id)
    if not may_cancel(caller.membership, job):
        raise HttpError(403, "Only whoever submitted the job, or an admin, can cancel it.")
    if not cancel(job):
        raise HttpError(409, "This job has already started or finished; it cannot be canceled.")
    return _answer(request, job)


@router.post(
    "/{job_id}/retry",
    response=answers(201, JobOut),
    summary="A new job with the same image, model, parameters and files",
    openapi_extra={"parameters": [IDEMPOTENCY_HEADER]},
)
def retry(request, job_id: UUID):
    caller = writer(request)
    job = team_job(request, job_id)
    digest = idempotency.request_digest(request.method, request.path, {}, {})
    return idempotent(request, digest, lambda: retry_job(caller.membership, job))


@router.delete("/{job_id}", response=answers(200, JobOut), summary="Delete a finished job's video")
def delete_job(request, job_id: UUID):
    caller = writer(request)
    job = team_job(request, job_id)
    delete_video(caller.membership, job)
    return _answer(request, job)


ADD_AUDIO_BODY = body(
    json=fields({"audio_type": {"type": "string", "enum": ["ai"]}}),
    multipart=fields({"audio_type": {"type": "string", "enum": ["ai", "upload"]}, "audio": FILE}),
)


@router.post(
    "/{job_id}/add-audio",
    response=answers(201, JobOut),
    summary="A new job adding an audio track to this finished AKOOL video",
    openapi_extra={"requestBody": ADD_AUDIO_BODY, "parameters": [IDEMPOTENCY_HEADER]},
)
def add_audio(request, job_id: UUID):
    caller = writer(request)
    source = team_job(request, job_id)
    if request.content_type == "application/json":
        data, files = read_json(request), {}
        fields = data
    elif request.content_type == "multipart/form-data":
        data, files = request.POST, request.FILES
        fields = sorted((k, data.getlist(k)) for k in data)
    else:
        raise BadRequest(415, "unsupported_media_type", "Send JSON or multipart/form-data.")
    contents = {name: job_requests.file_bytes(upload) for name, upload in files.items()}
    digest = idempotency.request_digest(request.method, request.path, fields, contents)
    return idempotent(
        request, digest, lambda: derived.add_audio(caller.membership, source, data, files)
    )
