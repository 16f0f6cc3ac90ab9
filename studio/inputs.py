"""The input image, and the files sent beside it (an end frame, masks, an audio track), as a
provider fetches them: signed, expiring URLs served by our app (never a public media folder). The
signature names the job (or the asset); it lapses after INPUT_URL_MAX_AGE, and the file is gone
from this route once the job has finished."""

from django.conf import settings
from django.core import signing
from django.http import FileResponse, Http404
from django.urls import reverse
from django.views.decorators.http import require_safe

from studio.models import Job, JobAsset

SALT = "studio.provider-input"
ASSET_SALT = "studio.provider-asset"
INPUT_URL_MAX_AGE = 6 * 3600  # a provider's queue can hold a job for hours before it fetches


def signed_input_url(job: Job) -> str:
    token = signing.dumps(job.pk.hex, salt=SALT)
    return settings.PUBLIC_BASE_URL + reverse("provider_input", args=[token])


def signed_asset_url(asset: JobAsset) -> str:
    token = signing.dumps(asset.pk, salt=ASSET_SALT)
    return settings.PUBLIC_BASE_URL + reverse("provider_asset", args=[token])


@require_safe  # GET or HEAD: some fetchers look before they take
def provider_input(request, token: str):
    try:
        job_hex = signing.loads(token, salt=SALT, max_age=INPUT_URL_MAX_AGE)
    except signing.BadSignature:  # forged, altered or expired
        raise Http404("No such image") from None
    job = Job.objects.filter(pk=job_hex).only("pk", "state", "provider_input").first()
    if job is None or job.is_terminal or not job.provider_input:
        raise Http404("No such image")
    content_type = "image/png" if job.provider_input.name.endswith(".png") else "image/jpeg"
    response = FileResponse(job.provider_input.open("rb"), content_type=content_type)
    response["Cache-Control"] = "private, no-store"
    return response


@require_safe
def provider_asset(request, token: str):
    try:
        asset_id = signing.loads(token, salt=ASSET_SALT, max_age=INPUT_URL_MAX_AGE)
    except signing.BadSignature:
        raise Http404("No such file") from None
    asset = JobAsset.objects.select_related("job").filter(pk=asset_id).first()
    if asset is None or asset.job.is_terminal:
        raise Http404("No such file")
    response = FileResponse(asset.file.open("rb"), content_type=asset.content_type)
    response["Cache-Control"] = "private, no-store"
    return response
