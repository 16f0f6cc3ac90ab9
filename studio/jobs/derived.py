"""Jobs made from another job's finished video: AKOOL adds an audio track to a video it made
(`updateVideoAudio` with the first video's id). The new job is priced from the audio rows of
the price book, shows the first job's image, and links back to it."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.db.models import Q
from django.utils import timezone

from studio.billing.prices import PriceUnavailable, Quote, quote_job
from studio.jobs.submit import JobRefused, create_reserved
from studio.models import Job, JobState, Membership
from studio.providers import PROVIDERS, choose
from studio.providers.base import AssetsRefused

AUDIO_PROVIDER, AUDIO_SOURCE_MODEL, AUDIO_MODEL = "akool", "image2video", "add-audio"


def audio_source_problem(job: Job) -> str:
    """Why audio cannot be added to this job's video ("" when it can)."""
    provider = PROVIDERS.get(AUDIO_PROVIDER)
    if job.provider != AUDIO_PROVIDER or job.model != AUDIO_SOURCE_MODEL:
        return "Audio can be added only to videos AKOOL made."
    if job.state != JobState.SUCCEEDED or not job.provider_job_id:
        return "Audio can be added once the video is finished."
    if job.deleted_at is not None:
        return "This video was deleted."
    if job.finished_at and timezone.now() - job.finished_at > provider.output_retention:
        days = provider.output_retention.days
        return f"AKOOL keeps a video {days} days; this one is older, so it can take no audio."
    if reason := provider.unavailable_reason():
        return f"AKOOL is unavailable: {reason}"
    return ""


def audio_params(source: Job, data) -> dict:
    return {
        "model": AUDIO_MODEL,
        "audio_type": data.get("audio_type", ""),
        "video_length": source.params.get("video_length"),
    }


def audio_price(source: Job) -> Quote | None:
    """What adding audio to this video costs (None where it cannot be priced or added)."""
    if audio_source_problem(source):
        return None
    try:
        return quote_job(PROVIDERS[AUDIO_PROVIDER], AUDIO_MODEL, audio_params(source, {}))
    except PriceUnavailable:
        return None


def add_audio(membership: Membership, source: Job, data, files=None) -> Job:
    """A new job that adds an audio track (AI-made or the member's file) to `source`'s video."""
    if not membership.can_submit:
        raise PermissionDenied("Viewers can watch and download, but not submit jobs.")
    if problem := audio_source_problem(source):
        raise JobRefused({"source": [problem]})
    pending = Q(state__in=[JobState.QUEUED, JobState.SUBMITTING, JobState.RUNNING])
    if source.derived_jobs.filter(pending, model=AUDIO_MODEL).exists():
        raise JobRefused({"source": ["Audio is already being added to this video."]})
    provider, spec, clean, errors = choose(AUDIO_PROVIDER, audio_params(source, data))
    drafts = []
    if not errors:
        try:
            drafts = provider.take_assets(spec.key, clean, files or {}, data, None)
        except AssetsRefused as refusal:
            errors = refusal.errors
    if not errors:
        try:
            price = quote_job(provider, spec.key, clean)
        except PriceUnavailable as missing:
            errors = {"source": [str(missing)]}
    if errors:
        raise JobRefused(errors)
    job = Job(
        team=membership.team,
        creator=membership.user,
        provider=provider.key,
        model=spec.key,
        params=clean,
        source_job=source,
        input_image=source.input_image.name,  # shared with the source: never deleted through us
        input_width=source.input_width,
        input_height=source.input_height,
    )
    return create_reserved(job, provider, price, drafts, owns_image=False)
