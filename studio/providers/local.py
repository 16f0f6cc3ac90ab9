"""The built-in local engine: camera motion over the still, rendered on our own machine.

It needs no provider account, so the whole product works offline. It still walks the job through
the common state machine, so it behaves like every remote provider to the rest of the product.
"""

import logging
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from django import forms
from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage
from django.db.models import F
from PIL import Image, ImageOps

from studio.engine import ASPECTS, MOTIONS, RESOLUTIONS, RenderSettings, RenderStopped, render_video
from studio.engine.settings import DURATION_RANGE, FPS_RANGE, STRENGTH_RANGE
from studio.jobs.states import transition
from studio.models import Job, JobState
from studio.providers.base import Provider, bounded_int

log = logging.getLogger(__name__)
S = JobState
STALL_MARGIN_SECONDS = 60


def _labels(values):
    return [(v, v.replace("_", " ").capitalize()) for v in values]


class LocalParams(forms.Form):
    duration = bounded_int("Duration", *map(int, DURATION_RANGE), initial=5, unit="seconds")
    resolution = forms.ChoiceField(choices=[(r, r) for r in RESOLUTIONS], initial="720p")
    aspect = forms.ChoiceField(
        choices=[("source", "From the image")] + [(a, a) for a in ASPECTS if a != "source"],
        initial="source",
        label="Aspect ratio",
    )
    fps = bounded_int("Frames per second", *FPS_RANGE, initial=24)
    motion = forms.ChoiceField(choices=_labels(MOTIONS), initial="zoom_in", label="Camera motion")
    strength = bounded_int("Motion strength", *STRENGTH_RANGE, initial=5)


class LocalEngine(Provider):
    key = "local"
    label = "Local engine (on this server)"
    models = (("camera-motion-v1", "Camera motion"),)
    params_form = LocalParams
    deadline = timedelta(seconds=settings.LOCAL_ENGINE_DEADLINE_SECONDS)

    def execute(self, job: Job) -> None:
        if not transition(job, S.QUEUED, S.SUBMITTING, submit_attempts=F("submit_attempts") + 1):
            return  # someone else took it, or it was canceled
        transition(job, S.SUBMITTING, S.RUNNING, provider_job_id=f"local-{job.pk}")
        try:
            self._render_and_store(job)
        except RenderStopped:
            log.info("render of %s stopped: the job left the running state", job.pk)
        except Exception as error:  # any failure of the render is the job's failure, said plainly
            log.exception("local render of %s failed", job.pk)
            # Our own checks word their messages for people; anything else may carry server
            # paths, so members get a reference and the log keeps the detail.
            said = (
                str(error) if isinstance(error, ValueError | TimeoutError) else "an internal error"
            )
            transition(
                job,
                S.RUNNING,
                S.FAILED,
                error=f"The local engine could not make this video: {said} (job {job.pk}).",
            )

    def sweep(self, now) -> int:
        """Fail jobs whose worker died mid-render: no render outlives TASK_TIME_LIMIT."""
        stalled_before = now - timedelta(seconds=settings.TASK_TIME_LIMIT + STALL_MARGIN_SECONDS)
        failed = 0
        for state, since in ((S.SUBMITTING, "submitting_at"), (S.RUNNING, "running_at")):
            stalled = Job.objects.filter(
                provider=self.key, state=state, **{f"{since}__lt": stalled_before}
            )
            for job_id in stalled.values_list("pk", flat=True):
                failed += transition(
                    job_id,
                    state,
                    S.FAILED,
                    error="The worker stopped while rendering this video. Please try again.",
                )
        return failed

    def _render_and_store(self, job: Job) -> None:
        render_settings = RenderSettings.from_mapping(job.params)
        give_up_at = time.monotonic() + settings.TASK_TIME_LIMIT
        with tempfile.TemporaryDirectory(prefix="render-") as tmp:
            video_path, poster_path = Path(tmp) / "video.mp4", Path(tmp) / "poster.jpg"
            with job.input_image.open("rb") as source, Image.open(source) as image:
                result = render_video(
                    ImageOps.exif_transpose(image),
                    video_path,
                    render_settings,
                    poster_path=poster_path,
                    progress=lambda done, total: _report_progress(job, done, total),
                    should_stop=lambda: _should_stop(job, give_up_at),
                )
            video_name = _store(video_path, f"videos/{job.team_id}/{job.pk.hex}.mp4")
            poster_name = _store(poster_path, f"posters/{job.team_id}/{job.pk.hex}.jpg")
        won = transition(
            job,
            S.RUNNING,
            S.SUCCEEDED,
            video=video_name,
            poster=poster_name,
            video_width=result.width,
            video_height=result.height,
            video_duration=result.duration,
            video_bytes=result.size_bytes,
        )
        if not won:  # canceled or expired meanwhile: the files belong to nobody
            default_storage.delete(video_name)
            default_storage.delete(poster_name)


def _store(path: Path, name: str) -> str:
    with path.open("rb") as handle:
        return default_storage.save(name, File(handle))


def _report_progress(job: Job, done: int, total: int) -> None:
    Job.objects.filter(pk=job.pk, state=S.RUNNING).update(
        progress=min(99, done * 100 // max(total, 1)),
        last_response={"frames_done": done, "frames_total": total},
    )


def _should_stop(job: Job, give_up_at: float) -> bool:
    if time.monotonic() > give_up_at:
        raise TimeoutError(f"rendering took longer than {settings.TASK_TIME_LIMIT} seconds")
    return not Job.objects.filter(pk=job.pk, state=S.RUNNING).exists()
