"""Kling v1 standard image-to-video through the AI/ML API (seed 003, providers.md §4).

JSON with `Authorization: Bearer <key>`; the image, the end frame and the masks travel as our
signed URLs (studio.inputs). A create answers 200 or 201 naming the generation `id` (or
`generation_id`); it is polled one at a time, `GET <path>?generation_id=<id>`, every 10 s as the
seed's example does. Status words run queued → generating → completed | error (older answers say
waiting / active); a non-null `error` ends the job whatever the word. Errors come as `{"message",
"path", "requestId", "statusCode", "timestamp"}`. There is no webhook, so a create whose answer
was lost can never be matched to a generation: that job fails with its credits returned."""

from __future__ import annotations

import logging
import math
import threading
from datetime import timedelta

from django.conf import settings

from studio.inputs import signed_asset_url, signed_input_url
from studio.models import AssetRole
from studio.providers import http, kling_inputs
from studio.providers.base import OutcomeUnknown, Provider, ProviderError, Status, Submitted
from studio.providers.images import fit_within
from studio.providers.params import Choice, Float, ModelSpec, Text

log = logging.getLogger(__name__)
LABEL = "Kling (AI/ML API)"
MODEL = "kling-video/v1/standard/image-to-video"
PATHS = {"seed": "/v2/generate/video/kling/generation", "universal": "/v2/video/generations"}
RUNNING_WORDS = frozenset({"queued", "generating", "waiting", "active"})
# Words that end a generation even without an `error` object.
FAILED_WORDS = {"error": "no reason given.", "expired": "the generation expired."}
# A 5 s video takes about 4–5 minutes, a 10 s one 6–8 (seed 003); the seed's own example gives
# up after 10 minutes, too soon for a 10 s video under load.
DEADLINES = {"5": timedelta(minutes=12), "10": timedelta(minutes=20)}
TYPICAL_RUNS = {"5": timedelta(seconds=270), "10": timedelta(seconds=420)}
MAX_ID_LENGTH = 255  # Job.provider_job_id: a longer id could not be polled back
MAX_LOGGED_WORDS = 100

KLING = ModelSpec(
    key=MODEL,
    label="Kling v1 standard",
    help="5 or 10 seconds of video in your image's own shape; optionally an end frame or a "
    "motion brush.",
    params=(
        # Kling's own API takes prompts up to 2,500 characters; the seed names no limit.
        Text("prompt", "Prompt", 2500, help="What should happen in the video."),
        Text("negative_prompt", "Negative prompt", 2500, help="What the video should avoid."),
        Choice("duration", "Length", [("5", "5 seconds"), ("10", "10 seconds")], "5"),
        Float(
            "cfg_scale",
            "Faithfulness to the prompt",
            0,
            1,
            0.5,
            help="Higher values stick more closely to the prompt.",
        ),
    ),
)

_logged_words: set[str] = set()
_logged_lock = threading.Lock()


class AimlApi(Provider):
    key = "aimlapi"
    label = LABEL
    models = (KLING,)
    min_poll_interval = timedelta(seconds=10)  # no rate limit is documented: the seed's pace
    poll_interval = timedelta(seconds=10)
    # Undocumented (providers.md guesses about 30 days): we copy the video within seconds, so
    # we claim no more than the shortest any provider of ours keeps one.
    output_retention = timedelta(hours=24)
    # Before a job is sent its duration is not consulted: allow for the longer one.
    deadline = max(DEADLINES.values())
    can_reconcile = False  # no webhook: nothing ever names a generation whose answer was lost
    reports_cost = True  # meta.usage.credits_used
    api_key_setting, base_url_setting = "AIML_API_KEY", "AIML_BASE_URL"
    account_name = "AI/ML"  # "No AI/ML API key is configured"

    @property
    def path(self) -> str:
        return PATHS[settings.AIML_API_PATH]

    def price_keys(self, model: str, params: dict) -> dict:
        return {"duration": int(params["duration"])}

    def deadline_for(self, job) -> timedelta:
        return DEADLINES.get(str(job.params.get("duration")), self.deadline)

    def estimated_run(self, job) -> timedelta:
        return TYPICAL_RUNS.get(str(job.params.get("duration")), TYPICAL_RUNS["5"])

    # --- input --------------------------------------------------------------------------------
    def check_input(self, model: str, width: int, height: int) -> str:
        return kling_inputs.limits_problem(width, height)

    def take_assets(self, model: str, params: dict, files, data, image) -> list:
        return kling_inputs.take(files, data, image)

    def form_context(self, model: str) -> dict:
        """The end frame and motion brush inputs beside the model's own fields."""
        return {"template": "studio/_motion_brush.html", "replaces": []}

    def prepare_input(self, job) -> None:
        """Kling takes JPEG or PNG up to 10 MB: every upload (a WebP, a 15 MB PNG) is sent as an
        upright JPEG without metadata, at most MAX_SIDE a side, rather than refused. The masks
        follow it to the same size."""
        self.keep_fitted_input(job, lambda source: fit_within(source, kling_inputs.MAX_SIDE))
        kling_inputs.masks_at_size(job)

    def _request_body(self, job) -> dict:
        params = job.params
        body = {
            "model": MODEL,
            "image_url": signed_input_url(job),
            "duration": str(params.get("duration", "5")),  # a string, as the seed's example
            "cfg_scale": params.get("cfg_scale", 0.5),
        }
        body |= {name: params[name] for name in ("prompt", "negative_prompt") if params.get(name)}
        assets = list(job.assets.order_by("position"))
        for asset in assets:
            if asset.role == AssetRole.TAIL_IMAGE:
                body["tail_image_url"] = signed_asset_url(asset)
            elif asset.role == AssetRole.STATIC_MASK:
                body["static_mask_url"] = signed_asset_url(asset)
        dynamic = [asset for asset in assets if asset.role == AssetRole.DYNAMIC_MASK]
        if dynamic:
            # Trajectories were drawn on the member's image; Kling sees the prepared one.
            drawn, sent = (job.input_width, job.input_height), kling_inputs.prepared_size(job)
            body["dynamic_masks"] = [
                {
                    "mask_url": signed_asset_url(asset),
                    "trajectories": [
                        kling_inputs.scaled_point(point, drawn, sent) for point in asset.trajectory
                    ],
                }
                for asset in dynamic
            ]
        return body

    def _headers(self) -> dict:
        return {"authorization": f"Bearer {self.api_key()}"}

    # --- calls --------------------------------------------------------------------------------
    def submit(self, job) -> Submitted:
        response = http.send(
            LABEL,
            self.base_url,
            "POST",
            self.path,
            submit=True,
            headers=self._headers(),
            json=self._request_body(job),
            timeout=self.submit_timeout,
        )
        body = http.json_answer(response)
        if 200 <= response.status_code < 300:  # documented: 200, or 201 as seen
            generation = _generation_id(body)
            if not generation:
                raise OutcomeUnknown(f"{LABEL} accepted the job but its answer named no id.")
            return Submitted(generation)
        raise self._error(response, body)

    def poll_one(self, job) -> Status | ProviderError:
        try:
            response = http.send(
                LABEL,
                self.base_url,
                "GET",
                self.path,
                headers=self._headers(),
                params={"generation_id": job.provider_job_id},
            )
        except ProviderError as error:
            return error
        body = http.json_answer(response)
        if not 200 <= response.status_code < 300:
            return self._error(response, body, polling=True)
        return self._status(body, job)

    def _status(self, body, job) -> Status | ProviderError:
        if not isinstance(body, dict) or not isinstance(body.get("status"), str):
            return ProviderError(f"{LABEL} answered something we could not read.", permanent=False)
        answer = http.scrub(body, (self.api_key(),))
        word = _printable(body["status"], 40).lower()
        cost = _credits_used(body)
        if body.get("error") is not None:  # ends the job, whatever the word says
            said = _error_text(body["error"])
            return Status(
                "failed",
                word=word,
                cost=cost,
                message=f"{LABEL} could not make it: {said}",
                answer=answer,
            )
        if word == "completed":
            video = body.get("video")
            url = video.get("url") if isinstance(video, dict) else None
            if not isinstance(url, str) or not url.startswith(("http://", "https://")):
                return ProviderError(f"{LABEL} finished without a video link.", permanent=False)
            return Status("succeeded", word=word, output_url=url, cost=cost, answer=answer)
        if word in FAILED_WORDS:
            message = f"{LABEL} could not make it: {FAILED_WORDS[word]}"
            return Status("failed", word=word, cost=cost, message=message, answer=answer)
        if word not in RUNNING_WORDS:
            _log_unknown_word(word, job)
        return Status("running", word=word, cost=cost, answer=answer)

    def _error(self, response, body, *, polling=False) -> ProviderError:
        if error := http.busy_or_broken(LABEL, response, body):
            return error
        code, said = response.status_code, _said(body)
        messages = {
            400: f"{LABEL} refused the request: {said}",
            401: "The AI/ML API refused our API key; staff have been told. Your credits were "
            "returned.",
            403: "Our AI/ML API account is out of credits; staff have been told. Your credits "
            "were returned.",
        }
        if polling:
            messages[404] = f"{LABEL} no longer knows this generation: {said}"
        message = messages.get(code, f"{LABEL} answered {code}: {said}")
        return ProviderError(message, permanent=400 <= code < 500)


def _generation_id(body) -> str:
    """The new generation's id, `id` or `generation_id`, opaque ("" when there is no usable one:
    an id we could not store whole could never be polled)."""
    if not isinstance(body, dict):
        return ""
    for name in ("id", "generation_id"):
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            value = str(value)
        if isinstance(value, str) and 0 < len(value) <= MAX_ID_LENGTH and value.isprintable():
            return value
    return ""


def _credits_used(body: dict) -> float | None:
    """What the AI/ML API says it charged (`meta.usage.credits_used`), when it is a number."""
    meta = body.get("meta")
    usage = meta.get("usage") if isinstance(meta, dict) else None
    used = usage.get("credits_used") if isinstance(usage, dict) else None
    if isinstance(used, bool) or not isinstance(used, int | float):
        return None
    try:
        used = float(used)
    except OverflowError:  # an integer beyond any float
        return None
    return used if math.isfinite(used) and used >= 0 else None


def _printable(text: str, limit: int) -> str:
    return "".join(ch for ch in text if ch.isprintable())[:limit]


def _error_text(error) -> str:
    """The provider's words from a poll's `error` (`{"name", "message"}`, or anything else)."""
    if isinstance(error, dict):
        error = error.get("message") or error.get("name")
    said = _printable(str(error), 200) if error not in (None, "", [], {}) else ""
    return said or "no reason given."


def _said(body) -> str:
    """The provider's own words for an error answer: `message` (a string, or a list of them)."""
    said = body.get("message") if isinstance(body, dict) else None
    if isinstance(said, list):
        said = "; ".join(str(part) for part in said[:3])
    said = _printable(str(said), 200) if said else ""
    if not said:
        return "no details given."
    return said if said.endswith(".") else said + "."


def _log_unknown_word(word: str, job) -> None:
    """Once per word per process (and for at most MAX_LOGGED_WORDS words): every poll of a job
    would otherwise repeat it every 10 s."""
    with _logged_lock:
        if word in _logged_words or len(_logged_words) >= MAX_LOGGED_WORDS:
            return
        _logged_words.add(word)
    log.warning(
        "%s answered an unknown status %r (job %s): treated as running", LABEL, word, job.pk
    )
