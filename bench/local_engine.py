"""Benchmark the local engine on a synthetic photo-like image.

    .venv/bin/python bench/local_engine.py [--runs 5] [--skip-1080p]

Renders 5 s of 720p at 24 fps (zoom_in, and ken_burns for comparison) a few
times from a 3000x2000 JPEG, decode included, and prints the median. The last
line is the headline figure:

    local engine 720p24 5s: <fps> frames/s, <x.x>x real time (median of N runs)

where real time factor = video seconds / wall-clock seconds.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repo root

from PIL import Image, ImageDraw, ImageFilter  # noqa: E402

from studio.engine import RenderSettings, render_video  # noqa: E402


def synthetic_photo(size=(3000, 2000), seed=1) -> Image.Image:
    """Gradients, soft shapes, hard edges and sensor-like noise: roughly a photo's workload."""
    rng = random.Random(seed)
    width, height = size
    red = Image.linear_gradient("L").resize(size)
    green = Image.linear_gradient("L").rotate(90).resize(size)
    blue = Image.radial_gradient("L").resize(size)
    img = Image.merge("RGB", (red, green, blue))
    draw = ImageDraw.Draw(img)
    for _ in range(80):
        x, y = rng.randrange(width), rng.randrange(height)
        r = rng.randrange(20, 300)
        colour = tuple(rng.randrange(256) for _ in range(3))
        if rng.random() < 0.5:
            draw.ellipse((x - r, y - r, x + r, y + r), fill=colour)
        else:
            draw.rectangle((x - r, y - r // 2, x + r, y + r // 2), fill=colour)
    img = img.filter(ImageFilter.GaussianBlur(1.5))
    for _ in range(40):  # thin hard lines, like text or branches
        x, y = rng.randrange(width), rng.randrange(height)
        draw.line((x, y, x + rng.randrange(-400, 400), y + rng.randrange(-400, 400)), width=3)
    noise = Image.effect_noise(size, 40).convert("RGB")
    return Image.blend(img, noise, 0.08)


def bench(source: Path, out: Path, settings: RenderSettings, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        render_video(source, out, settings, poster_path=out.with_suffix(".jpg"))
        times.append(time.perf_counter() - started)
    return times


def describe(label: str, settings: RenderSettings, times: list[float]) -> tuple[float, float]:
    median = statistics.median(times)
    fps = settings.frame_count / median
    factor = settings.frame_count / settings.fps / median
    runs = ", ".join(f"{t:.2f}" for t in times)
    print(
        f"{label}: median {median:.2f} s, best {min(times):.2f} s "
        f"({fps:.1f} frames/s, {factor:.1f}x real time) runs: {runs}",
        flush=True,
    )
    return fps, factor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--skip-1080p", action="store_true", help="skip the 1080p30 10 s case")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        tmp = Path(tmp)
        source = tmp / "photo.jpg"
        synthetic_photo().save(source, quality=90)
        out = tmp / "out.mp4"
        print(f"source: 3000x2000 JPEG, {source.stat().st_size / 1e6:.1f} MB", flush=True)

        bench(source, out, RenderSettings(duration=1, resolution="480p"), 1)  # warm-up

        zoom = RenderSettings(duration=5, resolution="720p", fps=24, motion="zoom_in")
        headline = describe("720p24 5s zoom_in", zoom, bench(source, out, zoom, args.runs))
        print(f"  output {out.stat().st_size / 1e6:.2f} MB", flush=True)

        ken = RenderSettings(duration=5, resolution="720p", fps=24, motion="ken_burns")
        describe("720p24 5s ken_burns", ken, bench(source, out, ken, args.runs))

        wide = RenderSettings(duration=5, resolution="720p", fps=24, aspect="16:9")
        describe("720p24 5s zoom_in 16:9 (1280x720)", wide, bench(source, out, wide, args.runs))

        if not args.skip_1080p:
            worst = RenderSettings(duration=10, resolution="1080p", fps=30, strength=10)
            describe("1080p30 10s zoom_in strength 10", worst, bench(source, out, worst, 1))

    fps, factor = headline
    print(
        f"local engine 720p24 5s: {fps:.1f} frames/s, {factor:.1f}x real time "
        f"(median of {args.runs} runs)"
    )


if __name__ == "__main__":
    main()
