"""What to render (RenderSettings), what came out (RenderResult) and the output frame size."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .motion import MOTIONS

RESOLUTIONS = {"480p": 480, "720p": 720, "1080p": 1080}  # the short side of the output
ASPECTS = ("source", "16:9", "9:16", "1:1")

DURATION_RANGE = (1.0, 10.0)  # seconds
FPS_RANGE = (8, 30)
STRENGTH_RANGE = (1, 10)

# "source" keeps the picture's own shape, but nothing wider than 21:9 or taller than 9:21.
MIN_SOURCE_ASPECT = 9 / 21
MAX_SOURCE_ASPECT = 21 / 9

_FIXED_ASPECTS = {"16:9": 16 / 9, "9:16": 9 / 16, "1:1": 1.0}


class InvalidSettings(ValueError):
    """A render parameter is out of range; `field` names it (e.g. "duration")."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class RenderSettings:
    duration: float = 5.0  # seconds, 1-10
    resolution: str = "720p"  # a key of RESOLUTIONS
    aspect: str = "source"  # one of ASPECTS
    fps: int = 24  # 8-30
    motion: str = "zoom_in"  # one of MOTIONS
    strength: int = 5  # 1-10, how far the camera moves

    @classmethod
    def from_mapping(cls, values) -> RenderSettings:
        """The settings named in `values` (a job's params, a command's options); others ignored."""
        names = cls.__dataclass_fields__
        return cls(**{name: values[name] for name in names if values.get(name) is not None})

    def validate(self) -> None:
        """Raise InvalidSettings (a ValueError) naming the first bad field and its limit."""
        lo, hi = DURATION_RANGE
        if not _is_number(self.duration) or not lo <= self.duration <= hi:
            raise InvalidSettings(
                "duration",
                f"duration must be between {lo:g} and {hi:g} seconds, got {self.duration!r}",
            )
        if self.resolution not in RESOLUTIONS:
            raise InvalidSettings(
                "resolution",
                f"resolution must be one of {', '.join(RESOLUTIONS)}, got {self.resolution!r}",
            )
        if self.aspect not in ASPECTS:
            raise InvalidSettings(
                "aspect", f"aspect must be one of {', '.join(ASPECTS)}, got {self.aspect!r}"
            )
        lo, hi = FPS_RANGE
        if not _is_int(self.fps) or not lo <= self.fps <= hi:
            raise InvalidSettings(
                "fps", f"fps must be a whole number between {lo} and {hi}, got {self.fps!r}"
            )
        if self.motion not in MOTIONS:
            raise InvalidSettings(
                "motion", f"motion must be one of {', '.join(MOTIONS)}, got {self.motion!r}"
            )
        lo, hi = STRENGTH_RANGE
        if not _is_int(self.strength) or not lo <= self.strength <= hi:
            raise InvalidSettings(
                "strength",
                f"strength must be a whole number between {lo} and {hi}, got {self.strength!r}",
            )

    @property
    def frame_count(self) -> int:
        return round(self.duration * self.fps)


@dataclass(frozen=True)
class RenderResult:
    width: int
    height: int
    frames: int
    fps: int
    duration: float  # seconds = frames / fps
    size_bytes: int


def _even(value: float) -> int:
    return max(2, 2 * round(value / 2))


def output_aspect(image_size: tuple[int, int], aspect: str) -> float:
    """Width / height of the output for an image of `image_size` (before rounding)."""
    if aspect == "source":
        width, height = image_size
        if width <= 0 or height <= 0:
            raise ValueError(f"image size must be positive, got {width}x{height}")
        return min(MAX_SOURCE_ASPECT, max(MIN_SOURCE_ASPECT, width / height))
    try:
        return _FIXED_ASPECTS[aspect]
    except KeyError:
        raise InvalidSettings(
            "aspect", f"aspect must be one of {', '.join(ASPECTS)}, got {aspect!r}"
        ) from None


def output_size(image_size: tuple[int, int], resolution: str, aspect: str) -> tuple[int, int]:
    """The video's (width, height): the short side is the resolution, both sides even.

    >>> output_size((3000, 2000), "720p", "source")
    (1080, 720)
    >>> output_size((3000, 2000), "720p", "9:16")
    (720, 1280)
    """
    if resolution not in RESOLUTIONS:
        raise InvalidSettings(
            "resolution",
            f"resolution must be one of {', '.join(RESOLUTIONS)}, got {resolution!r}",
        )
    short = RESOLUTIONS[resolution]
    ratio = output_aspect(image_size, aspect)
    if ratio >= 1:
        return (_even(short * ratio), short)
    return (short, _even(short / ratio))
