"""Copying a provider's finished video into our storage: streamed to disk with a size cap, checked
to decode, given a poster, size and duration; a GIF is converted to MP4 for the player and kept
for download. Only then is the job a success and its credits captured."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
from django.conf import settings
from django.core.files.storage import default_storage
from django.utils import timezone
from PIL import Image

from studio.jobs import scratch, steps
from studio.jobs.scratch import StoredFiles, save_file
from studio.jobs.states import transition
from studio.models import Job, JobState
from studio.providers import get_provider
from studio.providers.base import ProviderError

S = JobState
log = logging.getLogger(__name__)
CHUNK = 256 * 1024


class UnusableOutput(ValueError):
    """The provider's file is not a video we can play."""


@dataclass(frozen=True)
class VideoFacts:
    width: int
    height: int
    duration: float
    frames: int


def collect_output(job_id) -> None:
    job = Job.objects.filter(pk=job_id, state=S.RUNNING).exclude(output_ref="").first()
    if job is None:
        return
    provider = get_provider(job.provider)
    with scratch.folder("output", job.pk) as tmp:  # a killed worker's is removed by the sweep
        raw = Path(tmp) / f"raw.{job.output_format or 'mp4'}"
        try:
            _download(provider, job, raw)
            facts, video, poster = _finish(raw, Path(tmp), job.output_format)
        except ProviderError as error:
            expired = job.output_expires_at and timezone.now() >= job.output_expires_at
            if error.permanent or expired:
                _fail(
                    job,
                    f"{provider.label} deleted the video before we could copy it ({error}). "
                    "Your credits were returned.",
                )
            else:
                steps.retry_later(provider, job, error, S.RUNNING)
            return
        except UnusableOutput as error:
            _fail(job, f"{provider.label} sent a file we cannot play ({error}).")
            return
        _store_and_succeed(job, facts, video, poster, raw if video != raw else None)


def _download(provider, job: Job, target: Path) -> None:
    limit = settings.MAX_OUTPUT_BYTES
    written = 0
    with target.open("wb") as out:
        if job.output_ref.startswith("stored:"):
            with default_storage.open(job.output_ref.removeprefix("stored:"), "rb") as source:
                while chunk := source.read(CHUNK):
                    out.write(chunk)
            return
        with provider.open_output(job, job.output_ref) as chunks:
            for chunk in chunks:
                written += len(chunk)
                if written > limit:
                    raise UnusableOutput(f"it is larger than {limit // (1024 * 1024)} MB")
                out.write(chunk)


def _finish(raw: Path, folder: Path, fmt: str) -> tuple[VideoFacts, Path, Path]:
    poster = folder / "poster.jpg"
    try:
        if fmt == "gif":
            video = folder / "video.mp4"
            facts = gif_to_mp4(raw, video)
        else:
            video = raw
            facts = probe(raw)
        make_poster(video, poster)
    except (av.FFmpegError, OSError, StopIteration, ZeroDivisionError) as error:
        raise UnusableOutput(type(error).__name__) from None
    return facts, video, poster


def probe(path: Path) -> VideoFacts:
    """Decode the whole file once: a video that does not decode end to end is refused."""
    with av.open(str(path)) as container:
        if not container.streams.video:
            raise UnusableOutput("it has no video stream")
        stream = container.streams.video[0]
        frames, last = 0, 0.0
        for frame in container.decode(stream):
            frames += 1
            if frame.time is not None:
                last = max(last, frame.time)
        if frames == 0:
            raise UnusableOutput("it has no frames")
        rate = float(stream.average_rate or 24)
        duration = float(container.duration / 1_000_000) if container.duration else 0.0
        return VideoFacts(
            stream.codec_context.width,
            stream.codec_context.height,
            round(max(duration, last + 1 / rate), 3),
            frames,
        )


def gif_to_mp4(gif: Path, target: Path) -> VideoFacts:
    """An animated GIF → H.264 MP4 (yuv420p, even sides) that every browser plays."""
    with Image.open(gif) as image:
        width, height = image.size
        width, height = width + width % 2, height + height % 2
        frames, durations = [], []
        try:
            while True:
                frames.append(image.convert("RGB").resize((width, height)))
                durations.append(max(int(image.info.get("duration", 100) or 100), 20))
                image.seek(image.tell() + 1)
        except EOFError:
            pass
    fps = max(1, min(30, round(1000 / (sum(durations) / len(durations)))))
    with av.open(str(target), "w", options={"movflags": "+faststart"}) as out:
        stream = out.add_stream("libx264", rate=Fraction(fps, 1))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for picture in frames:
            for packet in stream.encode(av.VideoFrame.from_image(picture)):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return VideoFacts(width, height, round(len(frames) / fps, 3), len(frames))


def make_poster(video: Path, target: Path) -> None:
    with av.open(str(video)) as container:
        frame = next(container.decode(video=0))
        frame.to_image().save(target, "JPEG", quality=85)


def _store_and_succeed(job: Job, facts: VideoFacts, video: Path, poster: Path, original):
    base = f"{job.team_id}/{job.pk.hex}"
    # Whatever was stored is deleted again if storing the rest or the transition fails, or if the
    # job was canceled, expired or collected by another worker meanwhile: it belongs to nobody.
    with StoredFiles() as stored:
        names = {
            "video": stored.add(_store(video, f"videos/{base}.mp4")),
            "poster": stored.add(_store(poster, f"posters/{base}.jpg")),
        }
        if original is not None:
            names["original_output"] = stored.add(
                _store(original, f"originals/{base}.{job.output_format}")
            )
        stored_raw = _stored_raw(job)
        won = transition(
            job,
            S.RUNNING,
            S.SUCCEEDED,
            video_width=facts.width,
            video_height=facts.height,
            video_duration=facts.duration,
            video_bytes=default_storage.size(names["video"]),
            output_ref="",
            **names,
        )
        if won:
            stored.keep()
    if won and stored_raw:
        default_storage.delete(stored_raw)


def _store(path: Path, name: str) -> str:
    return save_file(path, name)


def _stored_raw(job: Job) -> str:
    """The name of the provider's output when we had to keep it ourselves (see steps)."""
    return job.output_ref.removeprefix("stored:") if job.output_ref.startswith("stored:") else ""


def _fail(job: Job, message: str) -> None:
    stored_raw = _stored_raw(job)
    if transition(job, S.RUNNING, S.FAILED, error=message, output_ref="") and stored_raw:
        default_storage.delete(stored_raw)
