"""Camera paths over a still image.

A camera path is a sequence of crop windows ("boxes") over a working image. Each
box has the output's aspect ratio and lies entirely inside the working image, so
no frame ever shows anything outside the picture. Boxes are floats: the resampler
reads them with sub-pixel precision, which keeps slow moves smooth (no jitter).
"""

from __future__ import annotations

from collections.abc import Iterator

MOTIONS = ("zoom_in", "zoom_out", "pan_left", "pan_right", "pan_up", "pan_down", "ken_burns")

Box = tuple[float, float, float, float]

# How far the camera moves per step of `strength` (1-10).
ZOOM_PER_STEP = 0.05  # zoom_in/zoom_out/ken_burns: strength 5 -> 1.25x, 10 -> 1.5x
PAN_ZOOM_PER_STEP = 0.04  # pans: the window is 1/(1 + 0.04 * strength) of the picture

# Ken Burns drift: where the window's free space is split at the end of the move
# (0 = flush left/top, 0.5 = centred, 1 = flush right/bottom).
KEN_BURNS_END_ANCHOR = (0.7, 0.35)

# Direction of travel for each pan, as (dx, dy) of the window: the camera moves
# towards the named side, so the picture appears to slide the other way.
_PAN_DIRECTIONS = {
    "pan_left": (-1, 0),
    "pan_right": (1, 0),
    "pan_up": (0, -1),
    "pan_down": (0, 1),
}


def smoothstep(t: float) -> float:
    """Ease in and out: zero speed at both ends, 0 -> 0 and 1 -> 1."""
    t = min(1.0, max(0.0, t))
    return t * t * (3.0 - 2.0 * t)


def max_zoom(motion: str, strength: int) -> float:
    """The largest zoom factor the path reaches (1.0 = the whole picture).

    The working image is prepared at output size times this factor, so that the
    tightest window maps 1:1 onto output pixels.
    """
    if motion not in MOTIONS:
        raise ValueError(f"motion must be one of {', '.join(MOTIONS)}, got {motion!r}")
    if motion in _PAN_DIRECTIONS:
        return 1.0 + PAN_ZOOM_PER_STEP * strength
    return 1.0 + ZOOM_PER_STEP * strength


def _window(size: tuple[int, int], zoom: float, anchor: tuple[float, float]) -> Box:
    """A window `zoom` times smaller than `size`, placed by `anchor` in the free space."""
    width, height = size
    w, h = width / zoom, height / zoom
    x = (width - w) * anchor[0]
    y = (height - h) * anchor[1]
    return (x, y, x + w, y + h)


def camera_box(motion: str, strength: int, t: float, size: tuple[int, int]) -> Box:
    """The crop window at time `t` (0 = first frame, 1 = last) over an image of `size`."""
    top = max_zoom(motion, strength)
    e = smoothstep(t)
    if motion == "zoom_in":
        return _window(size, 1.0 + (top - 1.0) * e, (0.5, 0.5))
    if motion == "zoom_out":
        return _window(size, top - (top - 1.0) * e, (0.5, 0.5))
    if motion == "ken_burns":
        # Zoom in while drifting off-centre. At zoom 1 the anchor has no effect,
        # so the move starts on the whole picture and ends on a detail.
        ax = 0.5 + (KEN_BURNS_END_ANCHOR[0] - 0.5) * e
        ay = 0.5 + (KEN_BURNS_END_ANCHOR[1] - 0.5) * e
        return _window(size, 1.0 + (top - 1.0) * e, (ax, ay))
    dx, dy = _PAN_DIRECTIONS[motion]
    # Travel from one edge of the free space to the other along the pan axis.
    ax = 0.5 if dx == 0 else (e if dx > 0 else 1.0 - e)
    ay = 0.5 if dy == 0 else (e if dy > 0 else 1.0 - e)
    return _window(size, top, (ax, ay))


def camera_path(motion: str, strength: int, frames: int, size: tuple[int, int]) -> Iterator[Box]:
    """One crop window per frame; the first and last frames sit at the ends of the move."""
    last = max(1, frames - 1)
    for i in range(frames):
        yield camera_box(motion, strength, i / last, size)
