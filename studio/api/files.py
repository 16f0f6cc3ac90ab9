"""Links to a job's video, poster and input for API callers and webhook receivers: signed,
expiring URLs naming the job, the file and the team, served by our app. A link is issued only to
the team (in its API answers and its own webhooks), and checks again on every use that the job
is still the team's and its file still exists."""

from django.conf import settings
from django.core import signing
from django.http import Http404
from django.urls import reverse
from django.views.decorators.http import require_safe

from studio.media import file_response
from studio.models import Job

SALT = "studio.api-file"
LINK_MAX_AGE = 24 * 3600  # long enough for a webhook retried over a day to still link its video
FIELDS = {"video": "video", "poster": "poster", "input": "input_image"}


def signed_file_url(job: Job, kind: str) -> str | None:
    """The link to one of the job's files, or None while it has none."""
    if not getattr(job, FIELDS[kind]):
        return None
    token = signing.dumps([job.pk.hex, job.team_id, kind], salt=SALT, compress=True)
    return settings.PUBLIC_BASE_URL + reverse("api_file", args=[token])


@require_safe
def api_file(request, token: str):
    try:
        job_hex, team_id, kind = signing.loads(token, salt=SALT, max_age=LINK_MAX_AGE)
        field_name = FIELDS[kind]
    except (signing.BadSignature, ValueError, TypeError, KeyError):
        raise Http404("No such file") from None
    job = Job.objects.filter(pk=job_hex, team_id=team_id).only("pk", field_name).first()
    field = getattr(job, field_name, None)
    if not field:
        raise Http404("No such file")
    name = f"{str(job.pk)[:8]}-{kind}.{field.name.rsplit('.', 1)[-1]}"
    return file_response(
        request, field, download_name=name if request.GET.get("download") else None
    )
