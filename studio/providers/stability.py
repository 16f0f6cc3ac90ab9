"""Stability AI's Stable Video Diffusion image-to-video, through the EZLink gateway (seed 000).

Multipart upload of an image of exactly 1024×576, 576×1024 or 768×768; the answer is a 64-hex
generation id; the result is polled (at most once every 10 s per generation, 150 requests per
10 s per account, a 429 locks the account out for 60 s) and arrives as the raw video, its finish
reason in the `finish-reason` header. Only the key that started a generation may fetch it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import tempfile
from datetime import timedelta

import httpx
from django.conf import settings

from studio.providers import http
from studio.providers.base import (
    OutcomeUnknown,
    Provider,
    ProviderError,
    RateLimit,
    Status,
    Submitted,
)
from studio.providers.images import STABILITY_SIZES, fit_exact, nearest_orientation
from studio.providers.params import Choice, Float, Int, ModelSpec

log = logging.getLogger(__name__)
LABEL = "Stability"
GENERATION_ID = re.compile(r"^[0-9a-f]{64}$")
MAX_UPLOAD_BYTES = 10 * 1024 * 1024  # the provider's own limit: 413 above it

SVD = ModelSpec(
    key="stable-video-diffusion",
    label="Stable Video Diffusion",
    help="About 2 s of 1024×576, 576×1024 or 768×768 video from your image.",
    params=(
        Choice(
            "orientation",
            "Shape",
            [
                ("auto", "Nearest to the image"),
                ("landscape", "Landscape 1024×576"),
                ("portrait", "Portrait 576×1024"),
                ("square", "Square 768×768"),
            ],
            "auto",
            help="Stability takes only these sizes: your image is cropped to the shape.",
        ),
        Int("focus_x", "Crop focus, across", 0, 100, 50, unit="%"),
        Int("focus_y", "Crop focus, down", 0, 100, 50, unit="%"),
        Int(
            "motion_bucket_id",
            "Motion",
            1,
            255,
            127,
            help="Higher values make more motion in the video.",
        ),
        Float(
            "cfg_scale",
            "Faithfulness to the image",
            0,
            10,
            1.8,
            help="How strongly the video sticks to the original image.",
        ),
        Int("seed", "Seed", 0, 4294967294, 0, help="0 picks a random seed."),
    ),
)


def client_user_id(user_id) -> str:
    """The member, as Stability sees them: a keyed hash, never an e-mail (the doc allows it)."""
    digest = hmac.new(settings.SECRET_KEY.encode(), f"member:{user_id}".encode(), hashlib.sha256)
    return digest.hexdigest()[:32]


class Stability(Provider):
    key = "stability"
    label = LABEL
    models = (SVD,)
    min_poll_interval = timedelta(seconds=10)
    rate_limit = RateLimit(requests=150, window=timedelta(seconds=10), pause=timedelta(seconds=60))
    output_retention = timedelta(hours=24)
    deadline = timedelta(minutes=20)
    can_reconcile = False  # nothing ever names a generation whose create answer was lost
    api_key_setting, base_url_setting = "STABILITY_API_KEY", "STABILITY_BASE_URL"

    def estimated_run(self, job) -> timedelta:
        return timedelta(seconds=90)

    def _headers(self, job=None, **more) -> dict:
        headers = {"authorization": f"Bearer {self.api_key()}"} | more
        if job is not None:
            headers |= {
                "stability-client-id": f"studio-team-{job.team_id}",
                "stability-client-user-id": client_user_id(job.creator_id),
                "stability-client-version": "studio/0.1",
            }
        return headers

    def prepare_input(self, job) -> None:
        orientation = job.params.get("orientation", "auto")
        if orientation not in STABILITY_SIZES:
            orientation = nearest_orientation(job.input_width, job.input_height)
        focus = (job.params.get("focus_x", 50) / 100, job.params.get("focus_y", 50) / 100)
        size = STABILITY_SIZES[orientation]
        self.keep_fitted_input(
            job, lambda source: fit_exact(source, size, focus=focus, max_bytes=MAX_UPLOAD_BYTES)
        )

    def submit(self, job) -> Submitted:
        with job.provider_input.open("rb") as image:
            data = image.read()
        content_type = "image/png" if job.provider_input.name.endswith(".png") else "image/jpeg"
        response = http.send(
            LABEL,
            self.base_url,
            "POST",
            "/v2beta/image-to-video",
            submit=True,
            headers=self._headers(job, accept="application/json"),
            files={"image": (job.provider_input.name.rsplit("/", 1)[-1], data, content_type)},
            data={
                "seed": str(job.params.get("seed", 0)),
                "cfg_scale": f"{job.params.get('cfg_scale', 1.8):g}",
                "motion_bucket_id": str(job.params.get("motion_bucket_id", 127)),
            },
            timeout=self.submit_timeout,
        )
        body = http.json_answer(response)
        if response.status_code == 200:
            generation = body.get("id") if isinstance(body, dict) else None
            if not isinstance(generation, str) or not GENERATION_ID.match(generation):
                raise OutcomeUnknown(f"{LABEL} accepted the job but its answer named no id.")
            return Submitted(generation)
        raise self._error(response, body)

    def poll_one(self, job) -> Status | ProviderError:
        path = f"/v2beta/image-to-video/result/{job.provider_job_id}"
        try:
            with http.send_streaming(
                LABEL, self.base_url, "GET", path, headers=self._headers(accept="video/*")
            ) as response:
                if response.status_code == 202:
                    response.read()
                    return Status("running", word="in-progress")
                kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
                if response.status_code == 200 and kind.startswith("video/"):
                    return self._finished(response)
                if response.status_code == 200 and kind == "application/json":
                    return self._finished_as_json(http.json_answer_streamed(response))
                if response.status_code == 200:  # a proxy's error page, not a video
                    response.close()
                    return ProviderError(
                        f"{LABEL} answered something we could not read.", permanent=False
                    )
                response.read()
                return self._error(response, http.json_answer(response), polling=True)
        except ProviderError as error:
            return error

    def _finished(self, response: httpx.Response) -> Status:
        reason = response.headers.get("finish-reason", "SUCCESS").upper()
        answer = {"finish_reason": reason, "seed": response.headers.get("seed", "")}
        if reason != "SUCCESS":
            response.close()
            return self._finished_reason(reason, answer)
        with tempfile.NamedTemporaryFile(prefix="stability-", suffix=".mp4", delete=False) as out:
            http.save_body(response, out, settings.MAX_OUTPUT_BYTES)
        return Status("succeeded", word=reason, output_path=out.name, answer=answer)

    def _finished_reason(self, reason: str, answer=None) -> Status:
        if reason == "CONTENT_FILTERED":
            return Status(
                "failed",
                word=reason,
                message=f"{LABEL}'s content filter blocked this video. You were not charged.",
                probably_charged=True,  # a filtered generation is a normal 200 at the provider
                answer=answer or {},
            )
        return Status("failed", word=reason[:40], message=f"{LABEL} stopped: {reason[:40]}.")

    def _finished_as_json(self, body) -> Status | ProviderError:
        """The JSON shape of a finished result (a gateway may ignore `accept: video/*`)."""
        if not isinstance(body, dict) or not isinstance(body.get("video"), str):
            return ProviderError(f"{LABEL} answered something we could not read.", permanent=False)
        reason = str(body.get("finish_reason", "SUCCESS")).upper()
        if reason != "SUCCESS":
            return self._finished_reason(reason)
        try:
            data = base64.b64decode(body["video"], validate=True)
        except ValueError:
            return ProviderError(f"{LABEL} sent a video we could not read.", permanent=False)
        with tempfile.NamedTemporaryFile(prefix="stability-", suffix=".mp4", delete=False) as out:
            out.write(data)
        return Status("succeeded", word=reason, output_path=out.name)

    def _error(self, response: httpx.Response, body, *, polling=False) -> ProviderError:
        code = response.status_code
        said = _said(body)
        if error := http.busy_or_broken(LABEL, response, body):
            return error
        messages = {
            400: f"{LABEL} refused the parameters: {said}",
            401: f"{LABEL} refused our API key; staff have been told.",
            403: f"{LABEL}'s content moderation flagged this image. You were not charged.",
            404: f"{LABEL} no longer has this video (it keeps results 24 hours, for the key "
            "that made them).",
            413: f"The image was larger than {LABEL}'s 10 MiB limit.",
            422: f"{LABEL} rejected the request: {said}",
        }
        if polling and code == 404:
            return ProviderError(messages[404], permanent=True)
        return ProviderError(
            messages.get(code, f"{LABEL} answered {code}: {said}"), permanent=code < 500
        )


def _said(body) -> str:
    """The provider's own words for an error, short and printable."""
    if not isinstance(body, dict):
        return "no details given."
    errors = body.get("errors")
    if isinstance(errors, list) and errors:
        text = "; ".join(str(e) for e in errors[:3])
    else:
        text = str(body.get("message") or body.get("name") or "no details given.")
    text = "".join(ch for ch in text if ch.isprintable())[:200]
    return text if text.endswith(".") else text + "."
