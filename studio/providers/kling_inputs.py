"""What Kling v1 (through the AI/ML API) takes beside a prompt, checked before anything is
reserved: its image limits, an optional end frame, and the motion brush (one static mask and up to
six dynamic masks, each moving along a trajectory).

The form and the API post the motion brush as files `static_mask` and `dynamic_mask_1` …
`dynamic_mask_6`, and fields `trajectory_1` … `trajectory_6`: JSON lists of [x, y] points in the
upright image's pixels. A mask is a PNG of the image's shape: white (or any bright, opaque colour)
marks the brushed area, black or transparent the rest. Masks are kept binary at their own size;
when the job is sent they are scaled to the image the provider receives (see `masks_at_size`),
because Kling wants masks of exactly its size and trajectories in its pixels."""

from __future__ import annotations

import io
import json
import uuid

from django.core.files.base import ContentFile, File
from PIL import Image, ImageChops, ImageOps

from studio.engine.source import to_rgb
from studio.models import AssetRole, JobAsset, JobState
from studio.providers.base import AssetDraft, AssetsRefused, ProviderError
from studio.providers.images import fit_within
from studio.uploads import UploadRefused, check_image

MIN_SIDE = 300  # Kling's limits, as resellers repeat them (providers.md §4)
MAX_ASPECT = (5, 2)  # 2.5:1 either way, as a fraction for exact integer comparisons
# The longest side we send. Kling's standard output is 720p, so more detail helps nothing; this
# keeps a phone photo's full resolution up to 4K, and a JPEG of it far below the 10 MB limit.
MAX_SIDE = 3840
DYNAMIC_SLOTS = range(1, 7)  # at most six dynamic masks
MIN_POINTS, MAX_POINTS = 2, 100
MAX_TRAJECTORY_CHARS = 4000  # 100 points of 4-digit coordinates fit easily
MASK_ASPECT_TOLERANCE = 0.01
MASK_ROLES = (AssetRole.STATIC_MASK, AssetRole.DYNAMIC_MASK)
BRUSH_PREFIXES = ("dynamic_mask_", "trajectory_")


def limits_problem(width: int, height: int, what: str = "this image") -> str:
    """Why Kling would refuse a picture of this upright size, figures included ("" if it would
    not)."""
    if min(width, height) < MIN_SIDE:
        return f"Kling needs each side at least {MIN_SIDE} px; {what} is {width}×{height}."
    wide, tall = MAX_ASPECT
    if width * tall > height * wide or height * tall > width * wide:
        ratio = max(width, height) / min(width, height)
        shape = f"{ratio:.2f}:1" if width > height else f"1:{ratio:.2f}"
        return (
            f"Kling needs an aspect ratio between 1:2.5 and 2.5:1; {what} is {width}×{height} "
            f"({shape})."
        )
    return ""


def take(files, data, image) -> list[AssetDraft]:
    """The end frame or the motion brush posted with a job, checked and converted; AssetsRefused
    names every field that is wrong."""
    tail = files.get("tail_image")
    static = files.get("static_mask")
    masks = {n: files.get(f"dynamic_mask_{n}") for n in DYNAMIC_SLOTS}
    masks = {n: upload for n, upload in masks.items() if upload is not None}
    paths = {n: data.get(f"trajectory_{n}") for n in DYNAMIC_SLOTS}
    paths = {n: path for n, path in paths.items() if path not in (None, "")}
    errors: dict[str, list[str]] = {}
    if stray := _stray_brush_fields(files, data):
        errors["dynamic_masks"] = [
            f"Kling takes at most {len(DYNAMIC_SLOTS)} dynamic masks (dynamic_mask_1 … "
            f"dynamic_mask_{DYNAMIC_SLOTS[-1]} with trajectory_1 … "
            f"trajectory_{DYNAMIC_SLOTS[-1]}); {stray} is not one of them."
        ]
    if tail is not None and (static is not None or masks or paths):
        errors["tail_image"] = [
            "Kling cannot combine an end frame with the motion brush: send one or the other."
        ]
    if errors:
        raise AssetsRefused(errors)

    drafts: list[AssetDraft] = []
    if tail is not None:
        drafts.append(_keep(errors, "tail_image", _end_frame, tail))
    if static is not None:
        label, role = "The static mask", AssetRole.STATIC_MASK
        drafts.append(_keep(errors, "static_mask", _mask, static, label, image, role))
    for n in sorted(masks.keys() - paths.keys()):
        errors[f"dynamic_mask_{n}"] = [
            f"Dynamic mask {n} has no trajectory_{n}: draw the path (at least {MIN_POINTS} "
            "points) its area moves along."
        ]
    for n in sorted(paths.keys() - masks.keys()):
        errors[f"trajectory_{n}"] = [
            f"Trajectory {n} has no dynamic_mask_{n}: paint the area that moves along it."
        ]
    for n in sorted(masks.keys() & paths.keys()):
        label, role = f"Dynamic mask {n}", AssetRole.DYNAMIC_MASK
        draft = _keep(errors, f"dynamic_mask_{n}", _mask, masks[n], label, image, role, n)
        points = _keep(errors, f"trajectory_{n}", _trajectory, paths[n], n, image)
        if draft is not None and points is not None:
            draft.trajectory = points
            drafts.append(draft)
    if errors:
        raise AssetsRefused(errors)
    return [draft for draft in drafts if draft is not None]


class _Refused(ValueError):
    """One field's problem, in words for the member."""


def _keep(errors: dict, field: str, make, *args):
    """make(*args), or None with its refusal recorded under `field`."""
    try:
        return make(*args)
    except _Refused as refusal:
        errors[field] = [str(refusal)]
        return None


def _stray_brush_fields(files, data) -> str:
    """The first posted motion-brush name outside the six slots ("" if none)."""
    allowed = {f"{prefix}{n}" for prefix in BRUSH_PREFIXES for n in DYNAMIC_SLOTS}
    for source in (files, data):
        for key in source:
            name = str(key)
            if name.startswith(BRUSH_PREFIXES) and name not in allowed and source.get(key):
                return "".join(ch for ch in name if ch.isprintable())[:40]
    return ""


def _checked(upload, label: str):
    """The upload's checked format and upright size (studio.uploads: bounded, header first)."""
    if not isinstance(upload, File):
        raise _Refused(f"{label} must be an uploaded file.")
    try:
        return check_image(upload)
    except UploadRefused as refusal:
        raise _Refused(f"{label}: {refusal}") from None


def _converted(upload, label: str, convert):
    """convert(upload), refused in the member's words when it fails: a file check_image
    accepted can still fail to convert, and Pillow raises many kinds of error for broken data."""
    try:
        upload.seek(0)
        return convert(upload)
    except Exception as error:  # whatever Pillow raises, the file is at fault
        raise _Refused(f"{label} could not be read ({type(error).__name__}).") from None
    finally:
        upload.seek(0)


def _end_frame(upload) -> AssetDraft:
    checked = _checked(upload, "The end frame")
    if problem := limits_problem(checked.width, checked.height, "the end frame"):
        raise _Refused(problem)
    # The image's own conversion: upright JPEG without metadata, within Kling's 10 MB (a WebP
    # or an oversized PNG is converted, not refused).
    fitted = _converted(upload, "The end frame", lambda source: fit_within(source, MAX_SIDE))
    return AssetDraft(AssetRole.TAIL_IMAGE, fitted.data, fitted.extension, fitted.content_type)


def _mask(upload, label: str, image, role: str, position: int = 0) -> AssetDraft:
    checked = _checked(upload, label)
    if checked.format != "PNG":
        raise _Refused(f"{label} must be a PNG; this file is a {checked.format}.")
    image_ratio = image.width / image.height
    if abs(checked.width / checked.height - image_ratio) > MASK_ASPECT_TOLERANCE * image_ratio:
        raise _Refused(
            f"{label} is {checked.width}×{checked.height}, not the shape of the "
            f"{image.width}×{image.height} image: a mask must have the image's aspect ratio "
            f"(within {MASK_ASPECT_TOLERANCE:.0%})."
        )
    binary = _converted(upload, label, _binary)
    if binary.getbbox() is None:
        raise _Refused(f"{label} is empty: paint the area it marks, or leave it out.")
    return AssetDraft(role, png(binary), "png", "image/png", position=position)


def _binary(upload) -> Image.Image:
    """The mask upright, its brushed (bright and opaque) pixels white and the rest black."""
    with Image.open(upload) as picture:
        upright = ImageOps.exif_transpose(picture)
        red, green, blue = to_rgb(upright, background=(0, 0, 0)).split()
    brightest = ImageChops.lighter(ImageChops.lighter(red, green), blue)
    return brightest.point(lambda value: 255 if value >= 128 else 0)


def png(picture: Image.Image) -> bytes:
    buffer = io.BytesIO()
    picture.save(buffer, "PNG", optimize=True)
    return buffer.getvalue()


def _trajectory(raw, n: int, image) -> list[list[int]]:
    label = f"Trajectory {n}"
    if isinstance(raw, str):
        if len(raw) > MAX_TRAJECTORY_CHARS:
            raise _Refused(f"{label} is too long: at most {MAX_POINTS} points.")
        try:
            raw = json.loads(raw)
        except (ValueError, RecursionError):
            raw = None
    if not isinstance(raw, list):
        raise _Refused(f"{label} must be a JSON list of [x, y] points.")
    if not MIN_POINTS <= len(raw) <= MAX_POINTS:
        raise _Refused(f"{label} needs {MIN_POINTS} to {MAX_POINTS} points; it has {len(raw)}.")
    points = []
    for number, point in enumerate(raw, 1):
        whole = isinstance(point, list) and len(point) == 2
        if not whole or any(isinstance(v, bool) or not isinstance(v, int) for v in point):
            raise _Refused(f"{label}: point {number} must be [x, y] in whole pixels.")
        x, y = point
        if not (0 <= x < image.width and 0 <= y < image.height):
            raise _Refused(
                f"{label}: point {number} lies outside the {image.width}×{image.height} image "
                f"(x from 0 to {image.width - 1}, y from 0 to {image.height - 1})."
            )
        points.append([x, y])
    return points


# --- When the job is sent -------------------------------------------------------------------
def prepared_size(job) -> tuple[int, int]:
    """The size of the image the provider receives (fitted, upright, without metadata)."""
    with job.provider_input.open("rb") as fitted, Image.open(fitted) as picture:
        return picture.size


def masks_at_size(job) -> None:
    """Rewrite the job's masks at the size of the image sent (nearest neighbour: they stay
    binary), where the signed asset URL serves them. Only while the job is being sent; a second
    attempt finds them done."""
    masks = list(job.assets.filter(role__in=MASK_ROLES))
    size = prepared_size(job) if masks else None
    for asset in masks:
        with asset.file.open("rb") as stored, Image.open(stored) as mask:
            if mask.size == size:
                continue
            scaled = mask.convert("L").resize(size, Image.Resampling.NEAREST)
        old = asset.file.name
        asset.file.save(f"{uuid.uuid4().hex}.png", ContentFile(png(scaled)), save=False)
        kept = JobAsset.objects.filter(pk=asset.pk, job__state=JobState.SUBMITTING)
        if not kept.update(file=asset.file.name):
            asset.file.delete(save=False)
            raise ProviderError("The job ended before it was sent.", permanent=True)
        asset.file.storage.delete(old)


def scaled_point(point, source: tuple[int, int], target: tuple[int, int]) -> dict[str, int]:
    """A trajectory point of the member's image in the pixels of the image sent, rounded half
    up and kept inside it."""
    (x, y), (width, height), (to_width, to_height) = point, source, target
    return {
        "x": min(to_width - 1, (2 * x * to_width + width) // (2 * width)),
        "y": min(to_height - 1, (2 * y * to_height + height) // (2 * height)),
    }
