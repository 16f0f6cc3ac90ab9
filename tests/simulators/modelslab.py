"""A stand-in for ModelsLab's image-to-video APIs (v6): img2video (seed 001, providers.md §2) and
img2video_ultra (seed 004, providers.md §3).

Imitated behaviour (the base URL is `http://127.0.0.1:PORT/api/v6`):

- `POST /api/v6/video/img2video` and `/video/img2video_ultra`: JSON bodies carrying the API `key`;
  every field is checked against the seeds' tables. `init_image` is a URL the simulator really
  fetches (ultra: or base64 data with `"base64": true`), as ModelsLab would.
- Answers are HTTP 200 and the JSON `status` decides: `processing` (with `eta`, `fetch_result`,
  `future_links`), `success` (with `output`), or `error`. The ultra endpoint spells its error
  field `messege`, img2video `message`, so clients are exercised on both documented spellings.
  A bad key is HTTP 401; more queued jobs than the plan allows (5 / 10 / 15) is HTTP 429 with
  `retry_after: 30`.
- `POST /api/v6/video/fetch/{id}` with `{"key"}`: the same three shapes.
- Webhooks (unsigned, best effort, possibly repeated, late or out of order): POSTed JSON to the
  job's `webhook` URL when it is done; see Plan.webhook for the misbehaviours on offer.
- Output files are served from `/files/<name>` on the same server, and vanish after retention.
  The `future_links` of an answer name a different file that is never served: seed 004's example
  shows `future_links` differing from `output`, so a client must take the video from `output[0]`.

Rules our own client must keep, beyond the documented ones, are marked "courtesy" below.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx

from .common import (
    Plan,
    Request,
    Response,
    Simulator,
    ceil_seconds,
    garbage_response,
    inspect_image,
    json_response,
    retry_after_header,
    sample_gif,
    sample_mp4,
    seconds_value,
    text_response,
)
from .modelslab_fields import flag, validate

API_PREFIX = "/api/v6"
CREATE_PATHS = {
    f"{API_PREFIX}/video/img2video": "img2video",
    f"{API_PREFIX}/video/img2video_ultra": "img2video_ultra",
}
FETCH_PREFIX = f"{API_PREFIX}/video/fetch/"
FILES_PREFIX = "/files/"
QUEUE_LIMITS = {"basic": 5, "standard": 10, "premium": 15}
RETRY_AFTER = 30.0  # documented seconds in a 429's retry_after
# Courtesy: ModelsLab documents no poll spacing; we hold ourselves to one fetch per job per second.
FETCH_COURTESY_INTERVAL = 1.0
MAX_INIT_IMAGE_SIDE = 512  # img2video: height/width ≤ 512, so we send images no larger
FIRST_ID = 1000
TIP = (
    "Your request is processing in the background; fetch it with the fetch_result URL "
    "after the given estimated time."
)
ERROR_MESSAGES = {
    400: "Bad request: invalid parameters",
    401: "Invalid API key",
    402: "Your account has insufficient credits",
    403: "Forbidden",
    404: "Not found",
    413: "Request entity too large",
    422: "Unprocessable request",
    429: "Rate limit exceeded. Please retry after some time.",
    500: "Internal server error",
    503: "Service unavailable, please try again later",
}


@dataclass
class Job:
    """One accepted job, for assertions (`sim.jobs[id]`)."""

    id: int
    endpoint: str  # "img2video" | "img2video_ultra"
    key: str
    plan: Plan
    request: dict[str, Any]  # the body as sent, minus `key` (and minus base64 image data)
    created: float  # time.monotonic()
    done_at: float
    expires_at: float
    track_id: Any
    webhook: str | None
    output_type: str  # "mp4" | "gif"
    output_name: str  # served at /files/<output_name> once done
    future_name: str  # named in future_links, never served
    seed: int
    poll_times: list[float] = field(default_factory=list)
    poll_failures_left: list[int | str] = field(default_factory=list)

    @property
    def polls(self) -> int:
        return len(self.poll_times)


@dataclass
class WebhookDelivery:
    """One webhook POST the simulator made (`sim.webhooks_sent`)."""

    job_id: int
    url: str
    body: dict[str, Any]
    status: int | None  # the receiver's HTTP status; None if it could not be delivered
    error: str | None
    at: float


class ModelsLabSimulator(Simulator):
    """`ModelsLabSimulator(api_key, plan="basic")`: the v6 video API for one account."""

    name = "modelslab"

    def __init__(
        self,
        api_key: str | Iterable[str] = "sim-modelslab-key",
        *,
        plan: str = "basic",
        time_scale: float = 1.0,
        host: str = "127.0.0.1",
        port: int = 0,
        slack_seconds: float = 0.01,
    ):
        super().__init__(time_scale=time_scale, host=host, port=port, slack_seconds=slack_seconds)
        if plan not in QUEUE_LIMITS:
            raise ValueError(f"plan must be one of {tuple(QUEUE_LIMITS)}")
        self.api_keys: tuple[str, ...] = (api_key,) if isinstance(api_key, str) else tuple(api_key)
        self.account_plan = plan
        self.queue_limit = QUEUE_LIMITS[plan]
        self.jobs: dict[int, Job] = {}
        self.webhooks_sent: list[WebhookDelivery] = []
        self._next_id = FIRST_ID
        self._files: dict[str, Job] = {}
        # Courtesy: after a 429 with retry_after, the same call must wait that long.
        self._submit_blocked: dict[str, float] = {}
        self._fetch_blocked: dict[tuple[str, int], float] = {}

    @property
    def base_url(self) -> str:
        return f"{self.root_url}{API_PREFIX}"

    # --- Routing ----------------------------------------------------------------------------
    def handle(self, request: Request) -> Response:
        path = request.path
        if path in CREATE_PATHS or path.startswith(FETCH_PREFIX):
            if request.method != "POST":
                self.violation(f"{request.method} {path}: only POST is allowed")
                return json_response(405, {"status": "error", "message": "Method not allowed"})
            if path in CREATE_PATHS:
                return self._create(request, CREATE_PATHS[path])
            return self._fetch(request, path.removeprefix(FETCH_PREFIX))
        if path.startswith(FILES_PREFIX) and request.method in ("GET", "HEAD"):
            return self._file(request, path.removeprefix(FILES_PREFIX))
        if path == "/" and request.method == "GET":
            return text_response(200, self.summary())
        if path.startswith(f"{API_PREFIX}/"):
            self.violation(f"{request.method} {path}: no such endpoint")
        return json_response(404, {"status": "error", "message": "Not found"})

    @staticmethod
    def _message_field(endpoint: str) -> str:
        """The ultra endpoint answers errors with the misspelt `messege`, as older ones do."""
        return "messege" if endpoint == "img2video_ultra" else "message"

    def _error(self, endpoint: str, message: str, status: int = 200, **extra) -> Response:
        body = {"status": "error", self._message_field(endpoint): message, **extra}
        headers = retry_after_header(extra["retry_after"]) if "retry_after" in extra else None
        return json_response(status, body, headers)

    def _read_json(self, request: Request, endpoint: str) -> tuple[dict | None, Response | None]:
        if request.content_type != "application/json":
            self.violation(
                f"{request.path}: content-type must be application/json, "
                f"not {request.content_type or 'none'!r}"
            )
        try:
            body = request.json()
        except ValueError:
            self.violation(f"{request.path}: the body is not JSON")
            return None, self._error(endpoint, "Invalid JSON body")
        if not isinstance(body, dict):
            self.violation(f"{request.path}: the body must be a JSON object")
            return None, self._error(endpoint, "Invalid JSON body")
        request.record.json = body
        return body, None

    def _authenticate(self, request, body, endpoint) -> tuple[str | None, Response | None]:
        key = body.get("key")
        if key is None or key == "":
            where = " (it was sent as a header)" if "authorization" in request.headers else ""
            self.violation(f"{request.path} without a key in the JSON body{where}")
            return None, self._error(endpoint, "Invalid API key", 401)
        if key not in self.api_keys:
            return None, self._error(endpoint, "Invalid API key", 401)  # legitimate test case
        request.record.key = key
        return key, None

    # --- Create a job -----------------------------------------------------------------------
    def _create(self, request: Request, endpoint: str) -> Response:
        body, refusal = self._read_json(request, endpoint)
        if refusal is not None:
            return refusal
        key, refusal = self._authenticate(request, body, endpoint)
        if refusal is not None:
            return refusal
        now = request.at

        errors = validate(body, endpoint) + self._check_init_image(body, endpoint)
        if errors:
            for message in errors:
                self.violation(f"{endpoint} refused: {message}")
            return self._error(endpoint, "; ".join(errors))

        # Count, decide and create under one lock: concurrent submits must not slip past the limit.
        with self.lock:
            blocked_until = self._submit_blocked.get(key, 0.0)
            if now < blocked_until:
                self.violation(
                    f"submit {self.documented(blocked_until - now):.1f} s before the retry_after "
                    f"of an earlier 429 ran out (courtesy: honour retry_after)"
                )
            queued = sum(1 for j in self.jobs.values() if j.key == key and now < j.done_at)
            if queued >= self.queue_limit:
                self.violation(
                    f"more than {self.queue_limit} queued requests on the {self.account_plan} "
                    f"plan: our client must hold jobs back itself"
                )
                return self._too_many(key, now)
            plan = self.take_plan()
            if isinstance(plan.submit, int):
                if plan.submit == 429:
                    return self._too_many(key, now)
                return self._error(endpoint, ERROR_MESSAGES[plan.submit], plan.submit)
            job = self._new_job(request, endpoint, key, plan, body)
        if plan.submit == "garbage":
            return garbage_response()
        answer = json_response(200, self._state_answer(job, now, created=True))
        answer.delay = plan.slow_seconds if plan.submit == "slow" else 0.0
        answer.drop = plan.submit == "drop"
        return answer

    def _too_many(self, key: str, now: float) -> Response:
        """The documented 429, spelt `message` on every endpoint as providers.md quotes it."""
        with self.lock:
            self._submit_blocked[key] = now + self.scaled(RETRY_AFTER)
        return self._error("any", ERROR_MESSAGES[429], 429, retry_after=self._retry_after())

    def _retry_after(self) -> int | float:
        return seconds_value(self.scaled(RETRY_AFTER))

    def _check_init_image(self, body: dict, endpoint: str) -> list[str]:
        """Fetch or decode `init_image` as ModelsLab would, and look at the picture."""
        value = body.get("init_image")
        if not isinstance(value, str) or not value:
            return []  # reported by validate()
        if endpoint == "img2video_ultra" and flag(body.get("base64")):
            encoded = value.split(",", 1)[1] if value.startswith("data:") else value
            try:
                data = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                return ["init_image: not valid base64 data"]
        else:
            if not value.startswith(("http://", "https://")):
                return [f"init_image: must be an http(s) URL, not {value[:60]!r}"]
            try:
                # Outside the lock: the image may be served by a slow or single-threaded server.
                answer = self.outbound().get(value, follow_redirects=True)
                answer.raise_for_status()
            except httpx.HTTPError as problem:
                return [f"could not fetch init_image: {problem!r}"]
            data = answer.content
        try:
            facts = inspect_image(data)
        except ValueError as problem:
            return [f"init_image: {problem}"]
        if facts.metadata:
            self.violation(f"init_image carries personal metadata: {', '.join(facts.metadata)}")
        width, height = facts.size
        if endpoint == "img2video" and max(width, height) > MAX_INIT_IMAGE_SIDE:
            return [
                f"init_image: {width}x{height} is larger than the {MAX_INIT_IMAGE_SIDE} px "
                "per side that height/width allow"
            ]
        return []

    def _new_job(self, request: Request, endpoint: str, key: str, plan: Plan, body: dict) -> Job:
        now = request.at
        requested = body.get("output_type")
        output_type = plan.output_type or (
            requested
            if requested in ("mp4", "gif")
            # Seed 001's example asks for no type and gets a GIF; 004's answers MP4.
            else ("gif" if endpoint == "img2video" else "mp4")
        )
        done_at = now if plan.instant_success else now + self.scaled(plan.run_seconds)
        request_copy = {k: v for k, v in body.items() if k != "key"}
        if flag(body.get("base64")):
            request_copy["init_image"] = f"<{len(str(body.get('init_image')))} base64 chars>"
        with self.lock:
            job_id = self._next_id
            self._next_id += 1
            job = Job(
                id=job_id,
                endpoint=endpoint,
                key=key,
                plan=plan,
                request=request_copy,
                created=now,
                done_at=done_at,
                expires_at=done_at + self.scaled(plan.retention_seconds),
                track_id=body.get("track_id"),
                webhook=body.get("webhook") if isinstance(body.get("webhook"), str) else None,
                output_type=output_type,
                output_name=f"{uuid.uuid4()}.{output_type}",
                future_name=f"{uuid.uuid4()}.{output_type}",
                seed=body["seed"]
                if isinstance(body.get("seed"), int)
                else secrets.randbelow(2**32),
                poll_failures_left=list(plan.poll_failures),
            )
            self.jobs[job_id] = job
            self._files[job.output_name] = job
        self._schedule_webhooks(job)
        self.event(f"job {job_id} ({endpoint}) accepted: {plan.outcome} in {plan.run_seconds:g} s")
        return job

    # --- Answers describing a job -----------------------------------------------------------
    def _meta(self, job: Job) -> dict[str, Any]:
        meta = dict(job.request)
        meta.update(
            file_prefix=job.output_name.rsplit(".", 1)[0],
            seed=job.seed,
            output_type=job.output_type,
            track_id=job.track_id,
            webhook=job.webhook,
        )
        return meta

    def file_url(self, name: str) -> str:
        return f"{self.root_url}{FILES_PREFIX}{name}"

    def _state_answer(self, job: Job, now: float, *, created: bool = False) -> dict[str, Any]:
        """What create or fetch says about a job at `now`: processing, success or error."""
        if now < job.done_at:
            eta = job.plan.eta if created else ceil_seconds(self.documented(job.done_at - now))
            return {
                "status": "processing",
                "tip": TIP,
                "eta": eta,
                "messege": "Try to fetch request after given estimated time",
                "fetch_result": f"{self.base_url}/video/fetch/{job.id}",
                "id": job.id,
                "output": [],
                "future_links": [self.file_url(job.future_name)],
                "meta": self._meta(job),
            }
        if job.plan.outcome == "error":
            return {"status": "error", "message": "Generation failed: the model produced no video"}
        output = self.file_url(job.output_name)
        answer = {
            "status": "success",
            "generationTime": float(0 if job.plan.instant_success else job.plan.run_seconds),
            "id": job.id,
            "output": [output],
            "proxy_links": [output],
            "meta": self._meta(job),
        }
        if job.endpoint == "img2video_ultra":
            answer["future_links"] = [self.file_url(job.future_name)]
        return answer

    # --- Fetch ------------------------------------------------------------------------------
    def _fetch(self, request: Request, raw_id: str) -> Response:
        body, refusal = self._read_json(request, "fetch")
        if refusal is not None:
            return refusal
        key, refusal = self._authenticate(request, body, "fetch")
        if refusal is not None:
            return refusal
        if not raw_id.isdigit():
            self.violation(f"fetch of {raw_id!r}: ModelsLab ids are integers")
            return self._error("fetch", f"Invalid request id {raw_id!r}")
        job_id, now = int(raw_id), request.at
        with self.lock:
            job = self.jobs.get(job_id)
            if job is None or job.key != key:
                return self._error("fetch", f"Request {job_id} not found")
            previous = job.poll_times[-1] if job.poll_times else None
            job.poll_times.append(now)
            if previous is not None and self.too_soon(now - previous, FETCH_COURTESY_INTERVAL):
                self.violation(
                    f"fetch of {job_id} {self.documented(now - previous):.2f} s after the previous "
                    f"one (courtesy minimum {FETCH_COURTESY_INTERVAL:g} s)"
                )
            blocked_until = self._fetch_blocked.get((key, job_id), 0.0)
            if now < blocked_until:
                self.violation(
                    f"fetch of {job_id} {self.documented(blocked_until - now):.1f} s before the "
                    "retry_after of its 429 ran out (courtesy: honour retry_after)"
                )
            failure = job.poll_failures_left.pop(0) if job.poll_failures_left else None
            if failure == 429:
                self._fetch_blocked[(key, job_id)] = now + self.scaled(RETRY_AFTER)
        if failure == "garbage":
            return garbage_response()
        if failure == 429:
            return self._error("fetch", ERROR_MESSAGES[429], 429, retry_after=self._retry_after())
        if failure is not None:
            return self._error("fetch", ERROR_MESSAGES[failure], failure)
        return json_response(200, self._state_answer(job, now))

    # --- Output files -----------------------------------------------------------------------
    def _file(self, request: Request, name: str) -> Response:
        with self.lock:
            job = self._files.get(name)
        now = request.at
        if job is None or not job.done_at <= now < job.expires_at or job.plan.outcome == "error":
            return text_response(404, "Not Found")
        if job.output_type == "gif":
            return Response(200, sample_gif(), {"content-type": "image/gif"})
        return Response(200, sample_mp4(), {"content-type": "video/mp4"})

    # --- Webhooks ---------------------------------------------------------------------------
    def webhook_body(self, job: Job, kind: str) -> dict[str, Any]:
        """The documented callback bodies: kind is "success", "failed" or "processing"."""
        if kind == "success":
            return {
                "status": "success",
                "id": job.id,
                "output": [self.file_url(job.output_name)],
                "track_id": job.track_id,
                "meta": self._meta(job),
            }
        if kind == "failed":
            return {
                "status": "failed",
                "id": job.id,
                "message": "Generation failed: the model produced no video",
                "track_id": job.track_id,
            }
        return {
            "status": "processing",
            "id": job.id,
            "eta": job.plan.eta,
            "output": [],
            "track_id": job.track_id,
            "meta": self._meta(job),
        }

    def _schedule_webhooks(self, job: Job) -> None:
        mode = job.plan.webhook
        if job.webhook is None or mode == "none":
            return
        final = "failed" if job.plan.outcome == "error" else "success"
        if mode == "before_done":
            # A success callback halfway through the run: a fetch at that time says processing.
            when, kinds = job.created + (job.done_at - job.created) / 2, ["success"]
        elif mode == "late":
            when, kinds = job.done_at + self.scaled(job.plan.webhook_delay_seconds), [final]
        elif mode == "twice":
            when, kinds = job.done_at, [final, final]
        elif mode == "out_of_order":
            when, kinds = job.done_at, [final, "processing"]  # a stale "processing" arrives last
        else:
            when, kinds = job.done_at, [final]
        self.scheduler.call_at(when, lambda: self._deliver_in_background(job, kinds))

    def _deliver_in_background(self, job: Job, kinds: list[str]) -> None:
        def deliver():
            for kind in kinds:  # one after another, so their order is the order intended
                self._post(job.id, job.webhook, self.webhook_body(job, kind))

        threading.Thread(target=deliver, name=f"webhook-{job.id}", daemon=True).start()

    def _post(self, job_id: int, url: str, body: dict[str, Any]) -> WebhookDelivery:
        status = error = None
        try:
            status = self.outbound().post(url, json=body).status_code
        # Best effort, as documented: recorded, not raised. (RuntimeError: stopped meanwhile.)
        except (httpx.HTTPError, RuntimeError) as problem:
            error = repr(problem)
        delivery = WebhookDelivery(job_id, url, body, status, error, time.monotonic())
        with self.lock:
            self.webhooks_sent.append(delivery)
        self.event(f"webhook {body.get('status')} for job {job_id} -> {status or error}")
        return delivery

    def send_webhook(
        self, job_id: int, body: dict[str, Any] | None = None, *, url: str | None = None
    ) -> WebhookDelivery:
        """Post a callback for a job now (a forged, extra or repeated one): `body` defaults to
        what the job's state says (success / failed once done, else processing); `url` to the
        job's webhook URL. Returns the delivery, which is also recorded in `webhooks_sent`."""
        with self.lock:
            job = self.jobs[job_id]
        if body is None:
            if time.monotonic() < job.done_at:
                body = self.webhook_body(job, "processing")
            else:
                body = self.webhook_body(
                    job, "failed" if job.plan.outcome == "error" else "success"
                )
        target = url or job.webhook
        if target is None:
            raise ValueError(f"job {job_id} has no webhook URL: pass url=")
        return self._post(job_id, target, body)

    def summary(self) -> str:
        """A plain-text page for a person looking at the simulator in a browser."""
        now = time.monotonic()
        with self.lock:
            lines = [
                f"ModelsLab simulator at {self.base_url} ({self.account_plan} plan, "
                f"time scale {self.time_scale:g})"
            ]
            for job in self.jobs.values():
                state = "processing" if now < job.done_at else job.plan.outcome
                lines.append(
                    f"  {job.id}  {job.endpoint:<16} {state:<10} polls {job.polls}  "
                    f"track_id {job.track_id!r}"
                )
            lines.append(f"{len(self.webhooks_sent)} webhook(s) sent")
            lines.append(f"{len(self.violations)} violation(s)")
            lines += [f"  - {v}" for v in self.violations]
        return "\n".join(lines) + "\n"
