"""ModelsLab's documented request fields (seed 001's and seed 004's tables), checked the way the
simulator checks them, plus the fields our own client promises to send on every request."""

from __future__ import annotations

from typing import Any

MODELS = ("svd", "wan2.2", "ltx-2.3")


def flag(value: Any) -> bool:
    """A documented TRUE/FALSE field: JSON booleans, or the words the docs and meta use."""
    if isinstance(value, str):
        return value.strip().lower() in ("true", "yes")
    return value is True


class _Fields:
    def __init__(self, body: dict[str, Any]):
        self.body = body
        self.errors: list[str] = []

    def get(self, name: str) -> Any:
        return self.body.get(name)  # null counts as absent, as in the seeds' examples

    def number(self, name, low=None, high=None, *, integer=False, required=False) -> None:
        value = self.get(name)
        if value is None:
            if required:
                self.errors.append(f"{name}: required")
            return
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.errors.append(f"{name}: must be a number, not {value!r}")
        elif integer and not float(value).is_integer():
            self.errors.append(f"{name}: must be a whole number, not {value!r}")
        elif low is not None and value < low:
            self.errors.append(f"{name}: must be at least {low:g}, not {value!r}")
        elif high is not None and value > high:
            self.errors.append(f"{name}: the maximum is {high:g}, not {value!r}")

    def choice(self, name, choices) -> None:
        value = self.get(name)
        if value is not None and value not in choices:
            self.errors.append(f"{name}: must be one of {', '.join(choices)}, not {value!r}")

    def text(self, name, *, required=False) -> None:
        value = self.get(name)
        if value is None or value == "":
            if required:
                self.errors.append(f"{name}: required")
        elif not isinstance(value, str):
            self.errors.append(f"{name}: must be a string, not {value!r}")

    def boolean(self, name) -> None:
        value = self.get(name)
        words = ("true", "false", "yes", "no")
        if value is not None and not (
            isinstance(value, bool) or (isinstance(value, str) and value.lower() in words)
        ):
            self.errors.append(f"{name}: must be true or false, not {value!r}")

    def our_rules(self, track_id_type: type) -> None:
        """What our own client promises to send on every request (providers.md §2)."""
        if not flag(self.get("instant_response")):
            self.errors.append(
                "instant_response: must be true, or the request is held open and the submit "
                "looks like a timeout"
            )
        webhook = self.get("webhook")
        if not isinstance(webhook, str) or not webhook.startswith(("http://", "https://")):
            self.errors.append(f"webhook: an http(s) URL is required, not {webhook!r}")
        track_id = self.get("track_id")
        if track_id is None:
            self.errors.append(
                "track_id: required, so a job whose submit answer was lost can be recognised "
                "when its webhook arrives"
            )
        elif isinstance(track_id, bool) or not isinstance(track_id, track_id_type):
            self.errors.append(
                f"track_id: must be {'an integer' if track_id_type is int else 'a string'} "
                f"on this endpoint, not {track_id!r}"
            )


def validate(body: dict[str, Any], endpoint: str) -> list[str]:
    fields = _Fields(body)
    fields.text("init_image", required=True)
    fields.text("negative_prompt")
    fields.boolean("temp")
    if endpoint == "img2video":  # seed 001
        fields.choice("model_id", MODELS)
        fields.text("prompt")
        fields.choice("enhance_prompt", ("yes", "no"))
        fields.number("height", 1, 512, integer=True)
        fields.number("width", 1, 512, integer=True)
        fields.number("num_frames", 1, 25, integer=True)
        fields.number("num_inference_steps", 1, 50, integer=True)
        fields.number("min_guidance_scale", 1, 8)
        fields.number("max_guidance_scale", 1, 8)
        fields.number("motion_bucket_id", integer=True)
        fields.number("noise_aug_strength", 0, 1)
        fields.number("fps", 1, 16, integer=True)
        fields.choice("output_type", ("mp4", "gif"))
        fields.choice("latent_interpolation_method", ("lerp", "slerp"))
        fields.number("clip_skip", 1, 2, integer=True)
        fields.our_rules(int)
    else:  # seed 004
        fields.text("prompt", required=True)
        fields.number("seed", 0, integer=True)
        fields.number("resolution", 1, 480, integer=True)
        fields.number("num_frames", 1, integer=True)
        fields.number("num_inference_steps", 1, 25, integer=True)
        fields.number("guidance_scale", 0, 8)
        fields.number("fps", 1, 16, integer=True)
        fields.boolean("portrait")
        fields.number("sample_shift", 0, 10, integer=True)
        fields.boolean("base64")
        fields.our_rules(str)
        fps, frames = body.get("fps"), body.get("num_frames")
        frames = 81 if frames is None else frames  # the documented default
        if isinstance(fps, int | float) and isinstance(frames, int | float) and fps >= frames:
            fields.errors.append(f"fps: should be less than num_frames ({frames}), not {fps}")
    return fields.errors
