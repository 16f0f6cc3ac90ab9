"""The built-in local engine: camera motion over the still, rendered on our own machine.

It needs no provider account, so the whole product works offline. It still walks the job through
the common state machine, so it behaves like every remote provider to the rest of the product.
"""

import logging
import time
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.utils import timezone
from django_q.tasks import async_task
from PIL import Image, ImageOps

from studio.engine import ASPECTS, MOTIONS, RESOLUTIONS, RenderSettings, RenderStopped, render_video
from studio.engine.settings import DURATION_RANGE, FPS_RANGE, STRENGTH_RANGE
from studio.jobs import scratch
from studio.jobs.scratch import StoredFiles
from studio.jobs.states import transition
from studio.models import Job, JobState
from studio.providers.base import Provider, Status
from studio.providers.params import Choice, Int, ModelSpec

log = logging.getLogger(__name__)
S = JobState
STALL_MARGIN_SECONDS = 60


def _labels(values):
    return [(v, v.replace("_", " ").capitalize()) for v in values]


CAMERA_MOTION = ModelSpec(
    key="camera-motion-v1",
    label="Camera motion",
    help="Camera moves over your still image, rendered on this server.",
    params=(
        Int("duration", "Duration", *map(int, DURATION_RANGE), 5, unit="seconds"),
        Choice("resolution", "Resolution", list(RESOLUTIONS), "720p"),
        Choice(
            "aspect",
            "Aspect ratio",
            [("source", "From the image")] + [(a, a) for a in ASPECTS if a != "source"],
            "source",
        ),
        Int("fps", "Frames per second", *FPS_RANGE, 24),
        Choice("motion", "Camera motion", _labels(MOTIONS), "zoom_in"),
        Int("strength", "Motion strength", *STRENGTH_RANGE, 5),
    ),
)


class LocalEngine(Provider):
    key = "local"
    label = "Local engine (on this server)"
    models = (CAMERA_MOTION,)
    remote = False
    deadline = timedelta(seconds=settings.LOCAL_ENGINE_DEADLINE_SECONDS)
    queue_deadline = timedelta(0)  # the deadline counts from creation, as it always has
    submit_timeout = 30.0  # a render task not picked up by then is handed out again
    resend_safe = True

    def price_keys(self, model: str, params: dict) -> dict:
        return {"duration": params.get("duration")}

    def submit(self, job: Job) -> None:
        """Hand the render to a worker, which moves the job itself (see render)."""
        async_task("studio.tasks.render_local", str(job.pk), group="renders")

    def poll(self, jobs) -> dict:
        """A running render is polled only when it has outlived every render's time limit: its
        worker died (killed, or the machine restarted)."""
        stopped = Status(
            "failed", message="The worker stopped while rendering this video. Please try again."
        )
        return {job.pk: stopped for job in jobs}

    def render(self, job: Job) -> None:
        stall_at = timezone.now() + timedelta(
            seconds=settings.TASK_TIME_LIMIT + STALL_MARGIN_SECONDS
        )
        claimed = transition(
            job, S.SUBMITTING, S.RUNNING, provider_job_id=f"local-{job.pk}", next_poll_at=stall_at
        )
        if not claimed:
            return  # rendered by another delivery of this task, or canceled
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

    def _render_and_store(self, job: Job) -> None:
        render_settings = RenderSettings.from_mapping(job.params)
        give_up_at = time.monotonic() + settings.TASK_TIME_LIMIT
        # Stored files are deleted again unless the job takes them; the scratch folder of a
        # killed worker is removed by the sweep (studio/jobs/scratch.py).
        with scratch.folder("render", job.pk) as tmp, StoredFiles() as stored:
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
            if _should_stop(job, give_up_at):  # canceled during the last frames: store nothing
                raise RenderStopped("the job left the running state as its render finished")
            video_name = stored.add(_store(video_path, f"videos/{job.team_id}/{job.pk.hex}.mp4"))
            poster_name = stored.add(_store(poster_path, f"posters/{job.team_id}/{job.pk.hex}.jpg"))
            if time.monotonic() > give_up_at:  # the time limit covers storing and finishing too
                raise TimeoutError(f"rendering took longer than {settings.TASK_TIME_LIMIT} seconds")
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
            if won:  # else canceled or expired meanwhile: the files belong to nobody
                stored.keep()


def _store(path: Path, name: str) -> str:
    return scratch.save_file(path, name)


def _report_progress(job: Job, done: int, total: int) -> None:
    Job.objects.filter(pk=job.pk, state=S.RUNNING).update(
        progress=min(99, done * 100 // max(total, 1)),
        last_response={"frames_done": done, "frames_total": total},
    )


def _should_stop(job: Job, give_up_at: float) -> bool:
    if time.monotonic() > give_up_at:
        raise TimeoutError(f"rendering took longer than {settings.TASK_TIME_LIMIT} seconds")
    return not Job.objects.filter(pk=job.pk, state=S.RUNNING).exists()
