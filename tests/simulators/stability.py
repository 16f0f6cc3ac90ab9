"""A stand-in for Stability AI's image-to-video API (Stable Video Diffusion) as EZLink serves it.

Imitates seed 000 and providers.md §1, on the same paths (the base URL has no path prefix):

- `POST /v2beta/image-to-video`: multipart/form-data with `image` (JPEG or PNG of exactly
  1024x576, 576x1024 or 768x768) and optional `seed` (0 … 4294967294), `cfg_scale` (0 … 10),
  `motion_bucket_id` (1 … 255); body ≤ 10 MiB; optional `stability-client-*` headers ≤ 256 chars.
  Answers `200 {"id": <64 hex>}`.
- `GET /v2beta/image-to-video/result/{id}`: `202 {"id", "status": "in-progress"}` while running;
  then `200` with the raw MP4 (`accept: video/*`, the finish reason in the `finish-reason` header
  and the seed in `seed`) or JSON `{"video": <base64>, "finish_reason", "seed"}`
  (`accept: application/json`). Only the key that started a generation may fetch it (404
  otherwise); results vanish after 24 h (404).
- Errors are `{"id": <32 hex error id>, "name", "errors": [...]}` with 400, 401, 403 (content
  moderation), 404, 413, 422, 429, 500.
- Limits: poll one generation at most every 10 s; at most 150 requests per 10 s per key, and
  exceeding it locks the key out for 60 s, every request meanwhile answered 429.

A 429 injected by a plan (Plan.submit=429, or 429 in Plan.poll_failures) behaves like the
documented rate limit: it locks the key out for 60 s, so a client that keeps calling before the
Retry-After has passed is caught. A poll sooner than 10 s is answered 429 without a lockout.

Which contract breaches are also refused (rather than only recorded) follows what the real API
would refuse: invalid parameters are 400s, personal data (EXIF, an e-mail as user id) is accepted.
"""

from __future__ import annotations

import base64
import itertools
import re
import secrets
import time
from collections import defaultdict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from .common import (
    Plan,
    Request,
    Response,
    Simulator,
    garbage_response,
    inspect_image,
    json_response,
    parse_multipart,
    retry_after_header,
    sample_mp4,
    text_response,
)

SUBMIT_PATH = "/v2beta/image-to-video"
RESULT_PREFIX = "/v2beta/image-to-video/result/"
ALLOWED_SIZES = ((1024, 576), (576, 1024), (768, 768))
MAX_BODY_BYTES = 10 * 1024 * 1024
MAX_CLIENT_HEADER = 256
CLIENT_HEADERS = ("stability-client-id", "stability-client-user-id", "stability-client-version")
SEED_MAX = 4294967294
# Documented durations, in seconds (multiplied by time_scale).
POLL_INTERVAL = 10.0
RATE_WINDOW = 10.0
RATE_LIMIT = 150
LOCKOUT = 60.0

# The `name` of each error answer. Stability documents the shape and the statuses; these names
# follow its stable-image answers where known ("content_moderation", "rate_limit_exceeded") and
# are plausible elsewhere. Clients should go by the HTTP status, not the name.
ERROR_NAMES = {
    400: "bad_request",
    401: "unauthorized",
    402: "payment_required",
    403: "content_moderation",
    404: "not_found",
    413: "payload_too_large",
    422: "invalid_request",
    429: "rate_limit_exceeded",
    500: "internal_error",
    503: "service_unavailable",
}
ERROR_TEXTS = {
    400: "Invalid parameter(s), see the errors field for details.",
    401: "authorization: missing or invalid API key",
    402: "You lack sufficient credits to make this request.",
    403: "Your request was flagged by our content moderation system, as a result your request "
    "was denied and you were not charged.",
    404: "generation not found (results expire after 24 hours)",
    413: "Your request was larger than 10MiB.",
    422: "Your request was well-formed, but rejected.",
    429: "You have made more than 150 requests in 10 seconds.",
    500: "An internal error occurred. If the problem persists contact support.",
    503: "The service is temporarily unavailable.",
}


@dataclass
class Generation:
    """One accepted generation, for assertions (`sim.generations[id]`)."""

    id: str
    key: str
    plan: Plan
    created: float  # time.monotonic()
    done_at: float
    expires_at: float
    seed: int
    image_size: tuple[int, int]
    image_format: str
    params: dict[str, str]  # the optional form fields as sent: seed, cfg_scale, motion_bucket_id
    client_headers: dict[str, str]  # the stability-client-* headers as sent
    poll_times: list[float] = field(default_factory=list)
    poll_failures_left: list[int | str] = field(default_factory=list)

    @property
    def polls(self) -> int:
        return len(self.poll_times)


class StabilitySimulator(Simulator):
    """`StabilitySimulator(api_key)`: the API for one or more valid keys (each its own account)."""

    name = "stability"

    def __init__(
        self,
        api_key: str | Iterable[str] = "sim-stability-key",
        *,
        time_scale: float = 1.0,
        host: str = "127.0.0.1",
        port: int = 0,
        slack_seconds: float = 0.01,
    ):
        super().__init__(time_scale=time_scale, host=host, port=port, slack_seconds=slack_seconds)
        self.api_keys: tuple[str, ...] = (api_key,) if isinstance(api_key, str) else tuple(api_key)
        self.generations: dict[str, Generation] = {}
        self._recent: dict[str, deque[float]] = defaultdict(deque)  # key → request times
        self._locked_until: dict[str, float] = {}

    # --- Routing ----------------------------------------------------------------------------
    def handle(self, request: Request) -> Response:
        if request.path == SUBMIT_PATH:
            if request.method != "POST":
                return self._refuse(405, f"{request.method} {request.path}: only POST is allowed")
            return self._submit(request)
        if request.path.startswith(RESULT_PREFIX):
            if request.method != "GET":
                return self._refuse(405, f"{request.method} {request.path}: only GET is allowed")
            return self._result(request, request.path.removeprefix(RESULT_PREFIX))
        if request.path == "/" and request.method == "GET":
            return text_response(200, self.summary())
        if request.path.startswith("/v2beta/"):
            return self._refuse(404, f"{request.method} {request.path}: no such endpoint")
        return self.error(404)  # e.g. a browser's /favicon.ico: nothing the client did wrong

    def _refuse(self, status: int, message: str) -> Response:
        self.violation(message)
        return self.error(status if status in ERROR_NAMES else 404, message)

    def error(self, status: int, *errors: str, headers: dict[str, str] | None = None) -> Response:
        """The documented error shape; its `id` identifies the error, not a generation."""
        body = {
            "id": secrets.token_hex(16),
            "name": ERROR_NAMES[status],
            "errors": list(errors) or [ERROR_TEXTS[status]],
        }
        return json_response(status, body, headers)

    # --- Auth and the account-wide rate limit ------------------------------------------------
    def _gate(self, request: Request) -> tuple[str | None, Response | None]:
        """(key, None) if the request may proceed, else (key or None, the refusal)."""
        authorization = request.headers.get("authorization", "").strip()
        if not authorization:
            self.violation(f"{request.method} {request.path} without an authorization header")
            return None, self.error(401)
        scheme, _, key = authorization.partition(" ")
        key = key.strip()
        if key not in self.api_keys:
            return None, self.error(401)  # a wrong key is a legitimate test case: no violation
        if scheme.lower() != "bearer":
            self.violation(f"authorization header must be 'Bearer <key>', not '{scheme} <key>'")
            return None, self.error(401)
        request.record.key = key
        with self.lock:
            # Stamped under the lock, so the window stays in order under concurrent requests and
            # the log (max_requests_in_window) counts exactly what the limiter counted.
            now = request.record.at = request.at = time.monotonic()
            window = self._recent[key]
            window.append(now)
            while window and window[0] <= now - self.scaled(RATE_WINDOW):
                window.popleft()
            locked_until = self._locked_until.get(key, 0.0)
            if now < locked_until:
                left = locked_until - now
                self.violation(
                    f"{request.method} {request.path} during the {LOCKOUT:.0f} s lockout of key "
                    f"{_short(key)} ({self.documented(left):.1f} s left): a client must pause "
                    "after a 429"
                )
                return key, self.error(429, headers=retry_after_header(left))
            if len(window) > RATE_LIMIT:
                self.violation(
                    f"more than {RATE_LIMIT} requests in {RATE_WINDOW:.0f} s from key "
                    f"{_short(key)}: locked out for {LOCKOUT:.0f} s"
                )
                return key, self._lock_out(key, now)
        return key, None

    def _lock_out(self, key: str, now: float) -> Response:
        """Answer 429 and lock the key out, as the documented rate limit does."""
        with self.lock:
            self._locked_until[key] = now + self.scaled(LOCKOUT)
        return self.error(429, headers=retry_after_header(self.scaled(LOCKOUT)))

    # --- Start a generation -----------------------------------------------------------------
    def _submit(self, request: Request) -> Response:
        key, refusal = self._gate(request)
        if refusal is not None:
            return refusal
        if len(request.body) > MAX_BODY_BYTES:
            self.violation(f"upload of {len(request.body)} bytes is larger than 10 MiB")
            return self.error(413)
        if request.content_type != "multipart/form-data":
            self.violation(f"start must be multipart/form-data, not {request.content_type!r}")
            return self.error(400, "content-type: must be multipart/form-data")
        try:
            fields = parse_multipart(request.headers["content-type"], request.body)
        except ValueError as problem:
            self.violation(f"unreadable multipart body: {problem}")
            return self.error(400, f"body: {problem}")
        request.record.form_fields = list(fields)

        errors: list[str] = []
        client_headers = {h: request.headers[h] for h in CLIENT_HEADERS if h in request.headers}
        for header, value in client_headers.items():
            if len(value) > MAX_CLIENT_HEADER:
                errors.append(f"{header}: must be at most {MAX_CLIENT_HEADER} characters")
        if "@" in client_headers.get("stability-client-user-id", ""):
            # Accepted upstream, but it hands a member's e-mail to a third party: send a hash.
            self.violation("stability-client-user-id looks like an e-mail address; send a hash")

        image = fields.get("image")
        facts = None
        if image is None:
            errors.append("image: required")
        else:
            try:
                facts = inspect_image(image.data)
            except ValueError as problem:
                errors.append(f"image: {problem}")
        if facts is not None:
            if facts.format not in ("PNG", "JPEG"):
                errors.append(f"image: must be a JPEG or PNG, not {facts.format}")
            if facts.size not in ALLOWED_SIZES:
                allowed = ", ".join(f"{w}x{h}" for w, h in ALLOWED_SIZES)
                errors.append(
                    f"image: dimensions {facts.size[0]}x{facts.size[1]} are not allowed "
                    f"(must be one of {allowed})"
                )
            if facts.metadata:
                self.violation(f"image carries personal metadata: {', '.join(facts.metadata)}")

        params = {
            name: fields[name].text if name in fields else None
            for name in ("seed", "cfg_scale", "motion_bucket_id")
        }
        errors += _check_number(params, "seed", 0, SEED_MAX, integer=True)
        errors += _check_number(params, "cfg_scale", 0, 10)
        errors += _check_number(params, "motion_bucket_id", 1, 255, integer=True)
        if errors:
            for message in errors:
                self.violation(f"start refused: {message}")
            return self.error(400, *errors)

        plan = self.take_plan()
        if isinstance(plan.submit, int):
            if plan.submit == 429:
                return self._lock_out(key, request.at)
            return self.error(plan.submit)
        generation = self._create(request, key, plan, facts, params, client_headers)
        answer = json_response(200, {"id": generation.id})
        if plan.submit == "garbage":
            return garbage_response()
        if plan.submit == "slow":
            answer.delay = plan.slow_seconds
        if plan.submit == "drop":
            answer.drop = True
        return answer

    def _create(self, request, key, plan, facts, params, client_headers) -> Generation:
        seed = int(float(params.get("seed") or 0)) or secrets.randbelow(SEED_MAX) + 1
        done_at = request.at + self.scaled(plan.run_seconds)
        generation = Generation(
            id=secrets.token_hex(32),
            key=key,
            plan=plan,
            created=request.at,
            done_at=done_at,
            expires_at=done_at + self.scaled(plan.retention_seconds),
            seed=seed,
            image_size=facts.size,
            image_format=facts.format,
            params={name: value for name, value in params.items() if value is not None},
            client_headers=client_headers,
            poll_failures_left=list(plan.poll_failures),
        )
        with self.lock:
            self.generations[generation.id] = generation
        self.event(
            f"generation {generation.id[:12]}… started ({plan.outcome} in {plan.run_seconds:g} s)"
        )
        return generation

    # --- Fetch a result ---------------------------------------------------------------------
    def _result(self, request: Request, generation_id: str) -> Response:
        key, refusal = self._gate(request)
        if refusal is not None:
            return refusal
        with self.lock:
            generation = self.generations.get(generation_id)
            if generation is None:
                return self.error(404, f"generation {generation_id} not found")
            if generation.key != key:
                self.violation(
                    f"poll of {generation_id} with another key than the one that started it "
                    "(the API answers 404: use the same key for all requests)"
                )
                return self.error(404, f"generation {generation_id} not found")
            now = request.at
            previous = generation.poll_times[-1] if generation.poll_times else None
            generation.poll_times.append(now)
            if previous is not None and self.too_soon(now - previous, POLL_INTERVAL):
                self.violation(
                    f"poll of {generation_id} {self.documented(now - previous):.1f} s after the "
                    f"previous one (minimum {POLL_INTERVAL:.0f} s)"
                )
                wait = previous + self.scaled(POLL_INTERVAL) - now
                return self.error(429, headers=retry_after_header(wait))
            failure = (
                generation.poll_failures_left.pop(0) if generation.poll_failures_left else None
            )
        if failure == "garbage":
            return garbage_response()
        if failure == 429:
            return self._lock_out(key, now)
        if failure is not None:
            return self.error(failure)

        if now < generation.done_at:
            return json_response(202, {"id": generation.id, "status": "in-progress"})
        if now >= generation.expires_at:
            return self.error(404, f"generation {generation_id} has expired")
        if generation.plan.outcome == "error":
            return self.error(500)
        finish_reason = "CONTENT_FILTERED" if generation.plan.outcome == "filtered" else "SUCCESS"
        video = sample_mp4()
        if "application/json" in request.headers.get("accept", ""):
            body = {
                "video": base64.b64encode(video).decode("ascii"),
                "finish_reason": finish_reason,
                "seed": generation.seed,
            }
            return json_response(200, body)
        # video/* (the documented default, also for */* or no accept header): the raw bytes.
        headers = {
            "content-type": "video/mp4",
            "finish-reason": finish_reason,
            "seed": str(generation.seed),
        }
        return Response(200, video, headers)

    # --- For assertions ---------------------------------------------------------------------
    def max_requests_in_window(self) -> int:
        """The most requests one key made within any span of 10 s x time_scale (from the log)."""
        times: dict[str, list[float]] = defaultdict(list)
        with self.lock:
            for record in self.requests:
                if record.key is not None:
                    times[record.key].append(record.at)
        window = self.scaled(RATE_WINDOW)
        best = 0
        for stamps in times.values():
            stamps.sort()
            start = 0
            for end, stamp in enumerate(stamps):
                while stamp - stamps[start] >= window:
                    start += 1
                best = max(best, end - start + 1)
        return best

    def poll_gaps(self) -> dict[str, list[float]]:
        """Generation id → the gaps between its polls, in documented seconds."""
        with self.lock:
            return {
                gid: [self.documented(b - a) for a, b in itertools.pairwise(g.poll_times)]
                for gid, g in self.generations.items()
            }

    def polls_per_generation(self) -> dict[str, int]:
        with self.lock:
            return {gid: g.polls for gid, g in self.generations.items()}

    def summary(self) -> str:
        """A plain-text page for a person looking at the simulator in a browser."""
        with self.lock:
            lines = [f"Stability simulator at {self.base_url} (time scale {self.time_scale:g})"]
            for g in self.generations.values():
                lines.append(
                    f"  {g.id}  {g.plan.outcome:<8} image {g.image_size[0]}x{g.image_size[1]}"
                    f"  polls {g.polls}"
                )
            lines.append(f"{len(self.violations)} violation(s)")
            lines += [f"  - {v}" for v in self.violations]
        return "\n".join(lines) + "\n"


_NUMBER = re.compile(r"^-?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$")


def _check_number(
    params: dict[str, str | None], name: str, low: int, high: int, *, integer: bool = False
) -> list[str]:
    value = params.get(name)
    if value is None:
        return []
    text = value.strip()
    if not _NUMBER.match(text):
        return [f"{name}: must be a number, not {value!r}"]
    number = float(text)
    if integer and not number.is_integer():
        return [f"{name}: must be a whole number, not {value!r}"]
    if not low <= number <= high:
        return [f"{name}: must be between {low} and {high}, not {value}"]
    return []


def _short(key: str) -> str:
    """A key as it may appear in a message: its last four characters only."""
    return f"…{key[-4:]}"
