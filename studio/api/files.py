"""Links to a job's video, poster and input for API callers and webhook receivers: signed,
expiring URLs naming the job and its team, served by our app. A link is issued only to the team
(in its API answers and its own webhooks), and checks again on every use that the job is still
the team's and its file still exists. One signature covers a job's files: a list of jobs signs
once per job."""

from django.conf import settings
from django.core import signing
from django.http import Http404
from django.views.decorators.http import require_safe

from studio.media import file_response
from studio.models import Job
from studio.models.jobs import FILE_FIELDS

SIGNER = signing.TimestampSigner(salt="studio.api-file")
LINK_MAX_AGE = 3 * 24 * 3600  # outlives a webhook retried over ~28 h; GET the job for fresh links


def file_links(job: Job) -> dict[str, str | None]:
    """{kind: link} for each of the job's files (None while it has none)."""
    token = SIGNER.sign(f"{job.pk.hex}.{job.team_id}")
    base = f"{settings.PUBLIC_BASE_URL}/api/v1/files/{token}/"
    return {
        kind: f"{base}{kind}/" if getattr(job, name) else None for kind, name in FILE_FIELDS.items()
    }


@require_safe
def api_file(request, token: str, kind: str):
    try:
        job_hex, team_id = SIGNER.unsign(token, max_age=LINK_MAX_AGE).split(".")
        field_name = FILE_FIELDS[kind]
        job = Job.objects.filter(pk=job_hex, team_id=int(team_id)).only("pk", field_name).first()
    except (signing.BadSignature, ValueError, KeyError):  # forged, expired, or not ours
        raise Http404("No such file") from None
    field = getattr(job, field_name, None)
    if not field:
        raise Http404("No such file")
    name = f"{str(job.pk)[:8]}-{kind}.{field.name.rsplit('.', 1)[-1]}"
    return file_response(
        request, field, download_name=name if request.GET.get("download") else None
    )
