"""Render a still image into a short MP4 with the local engine, outside any job.

    python manage.py render_local photo.jpg out.mp4 --duration 5 --resolution 720p

Writes out.mp4 and its poster out.jpg.
"""

import time
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from studio.engine import (
    ASPECTS,
    MOTIONS,
    RESOLUTIONS,
    InvalidSettings,
    RenderSettings,
    render_video,
)

_DEFAULTS = RenderSettings()


def _megabytes(size: int) -> str:
    return f"{size / 1_000_000:.1f} MB" if size >= 100_000 else f"{size / 1000:.0f} kB"


class Command(BaseCommand):
    help = "Render IMAGE into OUT.mp4 (H.264) with camera motion, plus a poster OUT.jpg."

    def add_arguments(self, parser):
        parser.add_argument("image", help="the still image (JPEG, PNG, WebP, ...)")
        parser.add_argument("out", help="the MP4 to write; the poster goes next to it as .jpg")
        parser.add_argument(
            "--duration", type=float, default=_DEFAULTS.duration, help="seconds, 1-10 (default 5)"
        )
        parser.add_argument(
            "--resolution",
            default=_DEFAULTS.resolution,
            help=f"short side: {', '.join(RESOLUTIONS)} (default {_DEFAULTS.resolution})",
        )
        parser.add_argument(
            "--aspect",
            default=_DEFAULTS.aspect,
            help=f"{', '.join(ASPECTS)} (default {_DEFAULTS.aspect})",
        )
        parser.add_argument(
            "--fps", type=int, default=_DEFAULTS.fps, help="frames per second, 8-30 (default 24)"
        )
        parser.add_argument(
            "--motion",
            default=_DEFAULTS.motion,
            help=f"{', '.join(MOTIONS)} (default {_DEFAULTS.motion})",
        )
        parser.add_argument(
            "--strength",
            type=int,
            default=_DEFAULTS.strength,
            help="how far the camera moves, 1-10 (default 5)",
        )

    def handle(self, *args, **options):
        image = Path(options["image"])
        out = Path(options["out"])
        if not image.is_file():
            raise CommandError(f"IMAGE {image} does not exist or is not a file")
        if out.suffix.lower() != ".mp4":
            raise CommandError(f"OUT must end in .mp4, got {out.name}")
        settings = RenderSettings.from_mapping(options)
        try:
            settings.validate()
        except InvalidSettings as error:
            raise CommandError(f"--{error.field}: {error}") from error

        poster = out.with_suffix(".jpg")
        tty = self.stdout.isatty()

        def progress(done: int, total: int) -> None:
            self.stdout.write(
                f"rendering: {done}/{total} frames ({done * 100 // total}%)",
                ending="\r" if tty and done < total else "\n",
            )
            self.stdout.flush()

        started = time.perf_counter()
        try:
            result = render_video(image, out, settings, poster_path=poster, progress=progress)
        except (ValueError, OSError) as error:
            raise CommandError(f"could not render {image}: {error}") from error
        took = time.perf_counter() - started
        self.stdout.write(
            self.style.SUCCESS(
                f"wrote {out} ({result.width}x{result.height}, {_megabytes(result.size_bytes)}, "
                f"{result.frames} frames = {result.duration:g} s at {result.fps} fps) "
                f"and {poster.name} in {took:.2f} s ({result.duration / took:.1f}x real time)"
            )
        )
