"""Render a still image into a short H.264 MP4 with camera motion.

How it stays fast: the picture is cropped and scaled once to a working image
only as large as the tightest camera window needs (output size x max zoom), and
converted once to YUV (BT.709, limited range). Each frame is then three
near-1:1 bilinear resizes of the Y, U and V planes with a float crop box
(sub-pixel smooth motion), copied straight into a yuv420p frame: no per-frame
RGB->YUV conversion. Frames are made in a worker thread while the main thread
encodes (Pillow's resampling and libx264 both release the GIL).
"""

from __future__ import annotations

import math
import os
import queue
import secrets
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from fractions import Fraction
from pathlib import Path

import av
from PIL import Image

from .motion import camera_path, max_zoom
from .settings import RenderResult, RenderSettings, output_size
from .source import open_picture, oriented_size, working_image

CODEC = "libx264"
X264_PRESET = "veryfast"
X264_CRF = 20
POSTER_QUALITY = 85
# How often should_stop() is asked (it may cost a database query): often enough that a canceled
# render stops within about half a second, rarely enough to cost nothing next to the encoding.
STOP_CHECK_SECONDS = 0.5
# ...and once as soon as the encoder is going: preparing the picture can take a while itself.
STOP_CHECK_FIRST = 4  # frames
QUEUE_FRAMES = 6  # frames made ahead of the encoder
_BT709 = 1  # AVCOL_SPC/PRI/TRC_BT709
_LIMITED_RANGE = 1  # AVCOL_RANGE_MPEG

Progress = Callable[[int, int], object]
ShouldStop = Callable[[], bool]


class RenderStopped(Exception):
    """should_stop() asked the render to stop; no output file was left behind."""


def _yuv_planes(rgb: Image.Image) -> tuple[Image.Image, Image.Image, Image.Image]:
    """The working image as BT.709 limited-range Y, U, V planes ("L" images, 4:2:0)."""
    frame = av.VideoFrame(rgb.width, rgb.height, "rgb24")
    plane = frame.planes[0]
    plane.update(rgb.tobytes("raw", "RGB", plane.line_size))
    yuv = frame.reformat(
        format="yuv420p", dst_colorspace="ITU709", src_color_range="JPEG", dst_color_range="MPEG"
    )
    return tuple(
        Image.frombuffer("L", (p.width, p.height), bytes(p), "raw", "L", p.line_size, 1)
        for p in yuv.planes
    )


def _make_frame(planes, box, size: tuple[int, int], index: int, fps: int) -> av.VideoFrame:
    frame = av.VideoFrame(size[0], size[1], "yuv420p")
    x0, y0, x1, y1 = box
    chroma_box = (x0 / 2, y0 / 2, x1 / 2, y1 / 2)
    for i, (plane, source) in enumerate(zip(frame.planes, planes, strict=True)):
        pixels = source.resize(
            (plane.width, plane.height),
            Image.Resampling.BILINEAR,
            box=box if i == 0 else chroma_box,
        )
        plane.update(pixels.tobytes("raw", "L", plane.line_size))
    frame.pts = index
    frame.time_base = Fraction(1, fps)
    frame.colorspace = _BT709
    frame.color_range = _LIMITED_RANGE
    return frame


class _FrameMaker(threading.Thread):
    """Makes frames ahead of the encoder into a small bounded queue."""

    DONE = object()

    def __init__(self, make: Callable[[int], av.VideoFrame], count: int):
        super().__init__(name="render-frames", daemon=True)
        self.make = make
        self.count = count
        self.queue: queue.Queue = queue.Queue(maxsize=QUEUE_FRAMES)
        self.cancelled = threading.Event()

    def _put(self, item) -> bool:
        while not self.cancelled.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run(self) -> None:
        try:
            for index in range(self.count):
                if not self._put(self.make(index)):
                    return
        except BaseException as exc:  # handed to the encoding thread, which re-raises it
            self._put(exc)
            return
        self._put(self.DONE)

    def frames(self):
        while True:
            item = self.queue.get()
            if item is self.DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def stop(self) -> None:
        self.cancelled.set()
        self.join()


def _temp_path(final: Path) -> Path:
    """A hidden sibling of `final` (same filesystem, so the rename is atomic)."""
    return final.with_name(f".{final.name}.{secrets.token_hex(6)}.part")


def _encode(maker: _FrameMaker, path: Path, settings: RenderSettings, size, progress, should_stop):
    total = settings.frame_count
    step = max(1, math.ceil(total / 20))  # a progress report at least every 5%
    with av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream(CODEC, rate=settings.fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.time_base = Fraction(1, settings.fps)
        stream.options = {"preset": X264_PRESET, "crf": str(X264_CRF)}
        ctx = stream.codec_context
        ctx.colorspace = ctx.color_primaries = ctx.color_trc = _BT709
        ctx.color_range = _LIMITED_RANGE
        done = 0
        next_check = time.monotonic() + STOP_CHECK_SECONDS
        for frame in maker.frames():
            container.mux(stream.encode(frame))
            done += 1
            due = done == STOP_CHECK_FIRST or time.monotonic() >= next_check
            if should_stop is not None and due:
                if should_stop():
                    raise RenderStopped(f"stopped after {done} of {total} frames")
                next_check = time.monotonic() + STOP_CHECK_SECONDS
            if progress is not None and done % step == 0 and done < total:
                progress(done, total)
        container.mux(stream.encode(None))
    if done != total:
        raise RuntimeError(f"made {done} frames, expected {total}")


def render_video(
    image: Image.Image | str | os.PathLike,
    out_path: str | os.PathLike,
    settings: RenderSettings,
    *,
    poster_path: str | os.PathLike | None = None,
    progress: Progress | None = None,
    should_stop: ShouldStop | None = None,
) -> RenderResult:
    """Render `image` with `settings` into an H.264/yuv420p faststart MP4 at `out_path`.

    The file appears at `out_path` only once complete (written next to it, then
    renamed). `progress(frames_done, total)` is called at least every 5% and at
    the end; `should_stop()` is checked about every half second and, if true, the
    partial file is removed and RenderStopped is raised.
    """
    settings.validate()
    out_path = Path(out_path)
    poster = Path(poster_path) if poster_path is not None else None
    if should_stop is not None and should_stop():
        raise RenderStopped("stopped before rendering started")

    opened_here = not isinstance(image, Image.Image)
    img, apply_orientation = open_picture(image)
    try:
        size = output_size(
            oriented_size(img, apply_orientation), settings.resolution, settings.aspect
        )
        zoom = max_zoom(settings.motion, settings.strength)
        work_size = (2 * math.ceil(size[0] * zoom / 2), 2 * math.ceil(size[1] * zoom / 2))
        work = working_image(
            img,
            work_size,
            size[0] / size[1],  # the exact output shape, so nothing is stretched
            apply_orientation=apply_orientation,
            allow_draft=opened_here,
        )
    finally:
        if opened_here:
            img.close()
    planes = _yuv_planes(work)
    boxes = list(camera_path(settings.motion, settings.strength, settings.frame_count, work_size))
    poster_image = None
    if poster is not None:
        poster_image = work.resize(size, Image.Resampling.BILINEAR, box=boxes[0])
    del work

    out_path.parent.mkdir(parents=True, exist_ok=True)
    temp_video = _temp_path(out_path)
    temp_poster = None
    maker = _FrameMaker(lambda i: _make_frame(planes, boxes[i], size, i, settings.fps), len(boxes))
    try:
        maker.start()
        try:
            _encode(maker, temp_video, settings, size, progress, should_stop)
        finally:
            maker.stop()
        if poster is not None:
            poster.parent.mkdir(parents=True, exist_ok=True)
            temp_poster = _temp_path(poster)
            poster_image.save(temp_poster, "JPEG", quality=POSTER_QUALITY)
            os.replace(temp_poster, poster)
            temp_poster = None
        os.replace(temp_video, out_path)
        temp_video = None
    finally:
        for leftover in (temp_video, temp_poster):
            if leftover is not None:
                with suppress(OSError):
                    leftover.unlink()

    frames = len(boxes)
    if progress is not None:
        progress(frames, frames)
    return RenderResult(
        width=size[0],
        height=size[1],
        frames=frames,
        fps=settings.fps,
        duration=frames / settings.fps,
        size_bytes=out_path.stat().st_size,
    )
