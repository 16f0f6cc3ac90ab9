"""ModelsLab image-to-video (seed 001) and image-to-video ultra (seed 004): two models of one
provider. JSON with the key in the body; every answer is HTTP 200 with a `status` of success,
processing or error (the message spelt `message` or `messege`); results come by `fetch` and by
an unsigned webhook, which only wakes the job. At most 5 / 10 / 15 jobs may be queued per
account by plan: the engine holds further jobs back instead of sending them into a 429."""

from __future__ import annotations

import base64
import json
import logging
from datetime import timedelta

from django.conf import settings

from studio.inputs import signed_input_url
from studio.models import JobState
from studio.providers import http
from studio.providers.base import (
    OutcomeUnknown,
    Provider,
    ProviderError,
    Status,
    Submitted,
    WebhookHint,
    WebhookRejected,
)
from studio.providers.images import fit_within
from studio.providers.params import Bool, Choice, Float, Int, ModelSpec, Text

log = logging.getLogger(__name__)
LABEL = "ModelsLab"
IN_FLIGHT_BY_PLAN = {"basic": 5, "standard": 10, "premium": 15}
IMG2VIDEO_SIDE = 512  # the seed's maximum height and width
ULTRA_SIDE = 1024  # sent as base64: big enough for 480p output, small enough for one request


def _guidance_in_order(params: dict) -> dict:
    if params["min_guidance_scale"] > params["max_guidance_scale"]:
        return {"max_guidance_scale": "Guidance at the end must be at least guidance at the start."}
    return {}


def _fps_below_frames(params: dict) -> dict:
    if params["fps"] >= params["num_frames"]:
        return {"fps": "Frames per second must be less than the number of frames."}
    return {}


PROMPTS = (
    Text("prompt", "Prompt", 1000, help="What should happen in the video."),
    Text("negative_prompt", "Negative prompt", 1000, help="What the video should avoid."),
)

IMG2VIDEO = ModelSpec(
    key="img2video",
    label="Image to video",
    help="Short clips up to 25 frames at up to 512×512.",
    params=(
        Choice(
            "model_id",
            "Model",
            [("svd", "Stable Video Diffusion"), ("wan2.2", "Wan 2.2"), ("ltx-2.3", "LTX 2.3")],
            "svd",
        ),
        *PROMPTS,
        Bool("enhance_prompt", "Enhance the prompt"),
        Int("width", "Width", 64, 512, None, unit="px", help="Empty: from the image."),
        Int("height", "Height", 64, 512, None, unit="px", help="Empty: from the image."),
        Int("num_frames", "Frames", 1, 25, 16),
        Int("fps", "Frames per second", 1, 16, 7),
        Int("num_inference_steps", "Denoising steps", 1, 50, 20),
        Float("min_guidance_scale", "Guidance at the start", 1, 8, 1),
        Float("max_guidance_scale", "Guidance at the end", 1, 8, 3),
        Int("motion_bucket_id", "Motion", 1, 255, 127, help="Higher values make more motion."),
        Float("noise_aug_strength", "Noise added to the image", 0, 1, 0.02),
        Choice(
            "latent_interpolation_method",
            "Interpolation",
            [("lerp", "Linear"), ("slerp", "Spherical")],
            "lerp",
        ),
        Int("clip_skip", "CLIP skip", 1, 2, None, help="Empty: the model's default."),
        Choice("output_type", "File type", [("mp4", "MP4"), ("gif", "GIF")], "mp4"),
    ),
    checks=(_guidance_in_order,),
)

ULTRA = ModelSpec(
    key="img2video_ultra",
    label="Image to video ultra (HD)",
    help="Higher quality video, up to 81 frames at 480p.",
    params=(
        Text("prompt", "Prompt", 1000, required=True, help="What should happen in the video."),
        PROMPTS[1],
        Choice(
            "portrait",
            "Shape",
            [("auto", "From the image"), ("no", "Landscape"), ("yes", "Portrait 9:16")],
            "auto",
        ),
        Int("resolution", "Resolution", 128, 480, 480, unit="px"),
        Int("num_frames", "Frames", 2, 81, 81),
        Int("fps", "Frames per second", 1, 16, 16),
        Int("num_inference_steps", "Denoising steps", 1, 25, 20),
        Float("guidance_scale", "Guidance", 0, 8, 5),
        Int("sample_shift", "Sample shift", 0, 10, 5),
        Int("seed", "Seed", 0, 4294967295, None, help="Empty: a random seed."),
    ),
    checks=(_fps_below_frames,),
)


class ModelsLab(Provider):
    key = "modelslab"
    label = LABEL
    models = (ULTRA, IMG2VIDEO)
    # Its callbacks bring a poll forward (studio.webhooks), so the regular pace can be slow; a
    # fetch after a callback still keeps a courteous distance from the previous one.
    min_poll_interval = timedelta(seconds=1)
    poll_interval = timedelta(seconds=15)
    output_retention = timedelta(hours=24)
    deadline = timedelta(minutes=30)
    queue_deadline = timedelta(hours=2)
    submit_timeout = 60.0
    can_reconcile = True  # the webhook carries our track_id and ModelsLab's id
    api_key_setting, base_url_setting = "MODELSLAB_API_KEY", "MODELSLAB_BASE_URL"

    def max_in_flight(self) -> int:
        return IN_FLIGHT_BY_PLAN[settings.MODELSLAB_PLAN]

    def estimated_run(self, job) -> timedelta:
        return timedelta(seconds=60 if job.model == IMG2VIDEO.key else 180)

    # --- input --------------------------------------------------------------------------------
    def prepare_input(self, job) -> None:
        side = IMG2VIDEO_SIDE if job.model == IMG2VIDEO.key else ULTRA_SIDE
        self.keep_fitted_input(job, lambda source: fit_within(source, side))

    def _request_body(self, job) -> dict:
        from studio.webhooks import callback_url

        params = {k: v for k, v in job.params.items() if v not in (None, "")}
        common = {"instant_response": True, "webhook": callback_url(job), "temp": False}
        if job.model == IMG2VIDEO.key:
            width, height = _output_size(job)
            body = (
                params
                | common
                | {
                    "init_image": signed_input_url(job),
                    "width": params.get("width", width),
                    "height": params.get("height", height),
                    "enhance_prompt": "yes" if params.get("enhance_prompt") else "no",
                    "track_id": job.pk.int % 2**53,  # an integer in seed 001, safe in JSON
                }
            )
        else:
            with job.provider_input.open("rb") as image:
                encoded = base64.b64encode(image.read()).decode()
            portrait = params.get("portrait", "auto")
            if portrait == "auto":
                portrait = "yes" if job.input_height > job.input_width else "no"
            body = (
                params
                | common
                | {
                    "init_image": encoded,
                    "base64": True,
                    "portrait": portrait == "yes",
                    "seed": params.get("seed"),
                    "track_id": job.pk.hex,  # a string in seed 004
                }
            )
        return body | {"key": self.api_key()}

    # --- calls --------------------------------------------------------------------------------
    def submit(self, job) -> Submitted:
        path = f"/video/{'img2video' if job.model == IMG2VIDEO.key else 'img2video_ultra'}"
        response = http.send(
            LABEL, self.base_url, "POST", path, submit=True, json=self._request_body(job)
        )
        body = http.json_answer(response)
        status = self._status(response, body, job=job)
        if isinstance(status, ProviderError):
            raise status
        if status.state == "failed":  # refused at once: nothing was started
            raise ProviderError(status.message, permanent=True)
        provider_id = body.get("id") if isinstance(body, dict) else None
        if provider_id in (None, "") or isinstance(provider_id, bool | dict | list):
            raise OutcomeUnknown(f"{LABEL} accepted the job but its answer named no id.")
        return Submitted(str(provider_id)[:255], status=status)

    def poll_one(self, job) -> Status | ProviderError:
        try:
            response = http.send(
                LABEL,
                self.base_url,
                "POST",
                f"/video/fetch/{job.provider_job_id}",
                json={"key": self.api_key()},
            )
        except ProviderError as error:
            return error
        body = http.json_answer(response)
        if job.state == JobState.SUBMITTING and _names_another_track(job, body):
            # Confirming an id a callback claimed, and the answer is another job's: the claim
            # was false (studio.jobs.steps clears it and the job keeps waiting).
            return ProviderError(f"{LABEL}: that id is another job's.", permanent=True)
        return self._status(response, body, job=job)

    def _status(self, response, body, *, job) -> Status | ProviderError:
        code = response.status_code
        if error := http.busy_or_broken(LABEL, response, body):
            return error
        if not isinstance(body, dict) or not isinstance(body.get("status"), str):
            if code == 200:
                return OutcomeUnknown(f"{LABEL} answered something we could not read.")
            return ProviderError(f"{LABEL} answered {code}.", permanent=code >= 400)
        if code in (401, 402, 403):
            reasons = {
                401: "refused our API key",
                402: "account is out of credits",
                403: "refused the request",
            }
            return ProviderError(
                f"{LABEL} {reasons[code]}; staff have been told. Your credits were returned.",
                permanent=True,
            )
        answer = http.scrub(body, (self.api_key(),))
        word = body["status"].lower()
        if word == "success":
            output = body.get("output")
            url = output[0] if isinstance(output, list) and output else ""
            if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                return ProviderError(f"{LABEL} finished without a video link.", permanent=False)
            fmt = "gif" if url.lower().split("?")[0].endswith(".gif") else "mp4"
            return Status("succeeded", word=word, output_url=url, output_format=fmt, answer=answer)
        if word == "processing":
            eta = body.get("eta")
            valid = isinstance(eta, int | float) and not isinstance(eta, bool) and 0 <= eta < 86400
            eta = float(eta) if valid else None
            return Status("running", word=word, eta_seconds=eta, answer=answer)
        if word in ("error", "failed"):
            said = body.get("message") or body.get("messege") or "no reason given"
            said = "".join(ch for ch in str(said) if ch.isprintable())[:200]
            return Status(
                "failed", word=word, message=f"{LABEL} could not make it: {said}", answer=answer
            )
        # An unknown word: keep the job running and look again later.
        log.warning("%s answered an unknown status %r for job %s", LABEL, word[:40], job.pk)
        return Status("running", word=word[:40], answer=answer)

    # --- callbacks ----------------------------------------------------------------------------
    def parse_webhook(self, job, body: bytes, headers) -> WebhookHint:
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise WebhookRejected("The body is not JSON.") from None
        if not isinstance(payload, dict):
            raise WebhookRejected("The body is not a JSON object.")
        track = payload.get("track_id")
        if track is not None and str(track) != str(_track_id(job)):
            raise WebhookRejected("The track_id is not this job's.")
        provider_id = str(payload.get("id", "")) if _is_id(payload.get("id")) else ""
        note = str(payload.get("status", ""))[:20]
        return WebhookHint(provider_job_id=provider_id, note=note)


def _track_id(job) -> int | str:
    """What we send as `track_id`: an integer for img2video (seed 001), a string for ultra."""
    return job.pk.int % 2**53 if job.model == IMG2VIDEO.key else job.pk.hex


def _names_another_track(job, body) -> bool:
    meta = body.get("meta") if isinstance(body, dict) else None
    echoed = meta.get("track_id") if isinstance(meta, dict) else None
    return echoed is not None and str(echoed) != str(_track_id(job))


def _is_id(value) -> bool:
    """ModelsLab's ids are integers (sent as numbers or digit strings); anything else is no id."""
    if isinstance(value, int) and not isinstance(value, bool):
        return 0 <= value < 10**20
    return isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 20


def _output_size(job) -> tuple[int, int]:
    """The image's shape within 512 px a side, in multiples of 8 (what the model works in)."""
    width, height = job.input_width or 512, job.input_height or 512
    scale = min(1.0, IMG2VIDEO_SIDE / max(width, height))
    return max(64, int(width * scale) // 8 * 8), max(64, int(height * scale) // 8 * 8)
