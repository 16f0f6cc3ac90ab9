"""The local engine: a short H.264 MP4 of camera motion over a still image.

Pure Python (Pillow + PyAV), no Django imports.
"""

from .motion import MOTIONS
from .render import RenderStopped, render_video
from .settings import (
    ASPECTS,
    RESOLUTIONS,
    InvalidSettings,
    RenderResult,
    RenderSettings,
    output_size,
)

__all__ = [
    "ASPECTS",
    "MOTIONS",
    "RESOLUTIONS",
    "InvalidSettings",
    "RenderResult",
    "RenderSettings",
    "RenderStopped",
    "output_size",
    "render_video",
]
