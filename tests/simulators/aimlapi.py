"""A stand-in for the AI/ML API's Kling v1 standard image-to-video endpoints (seed 003,
providers.md §4). The base URL has no path prefix: paths below are absolute.

- Create: `POST /v2/generate/video/kling/generation` (the seed's path) or `POST
  /v2/video/generations` (the universal path; same body). JSON: `model` =
  `kling-video/v1/standard/image-to-video`, `image_url` (required; an http(s) URL the simulator
  really fetches, or base64 data, `data:image/...;base64,` or raw), `prompt`, `negative_prompt`,
  `duration` (5 or 10, the number or the string), `cfg_scale` (0 … 1), and either an end frame
  `tail_image_url` or the motion brush: `static_mask_url` and `dynamic_masks` (≤ 6 of
  `{mask_url, trajectories: [{x, y}, ...]}`), never both (Kling refuses the combination).
  Images follow Kling's limits: JPEG or PNG, ≤ 10 MB, each side ≥ 300 px, aspect ratio between
  1:2.5 and 2.5:1. Masks are PNGs of the image's size; trajectories have ≥ 2 whole-number points
  inside the image. `ratio` / `aspect_ratio` are deprecated (recorded, accepted).
  Answers `200` (or `201`, a plan choice) `{"id" | "generation_id": <opaque id>, "status":
  "queued"}`.
- Poll: `GET <either path>?generation_id=<id>` → `{"id", "status", "video": {"url"} | null,
  "error": {"name", "message"} | null, "meta": {"usage": {"credits_used"}} | null}`. Status words
  are `queued` → `generating` → `completed` | `error`; plans can use the older `waiting` /
  `active`, an unknown word, or end a job with `unknown` / `expired` / even `completed` carrying a
  non-null `error` (a non-null error ends the job, whatever the word).
- The video is served from `GET /files/<name>` (a real MP4) until retention runs out (404 after).
- Errors: `{"message", "path", "requestId", "statusCode", "timestamp"}` for 400, 401, 403 (out of
  credits), 404, 429 and 5xx.
- Poll spacing: the seed's example polls every 10 s; a closer poll of one generation is a
  violation (answered normally: the real API has no such limit, our client keeps the pace).
- Run times: a 5 s video about 4–5 minutes, a 10 s one 6–8 (defaults 270 s and 420 s).

No webhook is documented. Credits per video are not published: the defaults below are invented
(10 s costs double 5 s); plans can set them.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import itertools
import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import httpx

from .common import (
    Plan,
    Request,
    Response,
    Simulator,
    garbage_response,
    inspect_image,
    json_response,
    sample_mp4,
    text_response,
)

SEED_PATH = "/v2/generate/video/kling/generation"
UNIVERSAL_PATH = "/v2/video/generations"
API_PATHS = (SEED_PATH, UNIVERSAL_PATH)
FILES_PREFIX = "/files/"
MODEL = "kling-video/v1/standard/image-to-video"
KNOWN_FIELDS = frozenset(
    {
        "model",
        "image_url",
        "prompt",
        "negative_prompt",
        "duration",
        "cfg_scale",
        "tail_image_url",
        "static_mask_url",
        "dynamic_masks",
    }
)
DEPRECATED_FIELDS = ("ratio", "aspect_ratio")
MAX_IMAGE_BYTES = 10 * 1024 * 1024
MIN_SIDE = 300
MAX_ASPECT = 2.5
MAX_DYNAMIC_MASKS = 6
MIN_TRAJECTORY_POINTS = 2
# Documented durations, in seconds (multiplied by time_scale).
POLL_INTERVAL = 10.0
RUN_SECONDS = {5: 270.0, 10: 420.0}  # "about 4–5 minutes", "6–8"
QUEUED_SECONDS = 30.0  # at most; never more than a third of the run
CREDITS = {5: 210, 10: 420}  # invented: the price is not published

CURRENT_WORDS = ("queued", "generating", "completed")
LEGACY_WORDS = ("waiting", "active", "completed")

ERROR_TEXTS = {
    400: "Bad Request",
    401: "Unauthorized: missing or invalid API key",
    402: "Payment Required",
    403: "Forbidden: not enough credits",
    404: "Not Found",
    413: "Payload Too Large",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


@dataclass
class AimlPlan(Plan):
    """Plan with the AI/ML API's own choices. `run_seconds=None`: from the duration (270/420 s).

    `outcome="error"` (or "filtered") ends the job with a non-null `error`, whose status word is
    `error_status` ("error", "unknown", "expired", even "completed").
    """

    run_seconds: float | None = None  # type: ignore[assignment]
    queued_seconds: float | None = None  # None: min(30 s, a third of the run)
    create_status: int = 200  # 200 | 201
    id_field: str = "id"  # "id" | "generation_id"
    status_words: tuple[str, str, str] = CURRENT_WORDS  # queued, running, done words
    error_status: str = "error"
    error_name: str = "GenerationError"
    error_message: str = "Video generation failed"
    credits_used: int | None = None  # None: 210 for 5 s, 420 for 10 s

    def __post_init__(self):
        super().__post_init__()
        if self.create_status not in (200, 201):
            raise ValueError("AimlPlan.create_status must be 200 or 201")
        if self.id_field not in ("id", "generation_id"):
            raise ValueError("AimlPlan.id_field must be 'id' or 'generation_id'")
        self.status_words = tuple(self.status_words)
        if len(self.status_words) != 3:
            raise ValueError("AimlPlan.status_words must be three words")


@dataclass
class DynamicMask:
    mask_url: str
    size: tuple[int, int]  # the fetched mask's size
    trajectories: list[tuple[int, int]]


@dataclass
class Generation:
    """One accepted generation, for assertions (`sim.generations[id]`)."""

    id: str
    key: str
    path: str  # the create path it came in on
    plan: AimlPlan
    body: dict[str, Any]  # the JSON as sent (base64 image data shortened)
    created: float
    queued_until: float
    done_at: float
    expires_at: float
    duration: int
    credits_used: int
    image_size: tuple[int, int]
    image_format: str
    output_name: str
    tail_image_size: tuple[int, int] | None = None
    static_mask_size: tuple[int, int] | None = None
    dynamic_masks: list[DynamicMask] = field(default_factory=list)
    poll_times: list[float] = field(default_factory=list)
    poll_paths: list[str] = field(default_factory=list)
    poll_failures_left: list[int | str] = field(default_factory=list)

    @property
    def polls(self) -> int:
        return len(self.poll_times)


class AimlApiSimulator(Simulator):
    """`AimlApiSimulator(api_key)`: the AI/ML API for one or more valid keys."""

    name = "aimlapi"

    def __init__(
        self,
        api_key: str | Iterable[str] = "sim-aimlapi-key",
        *,
        time_scale: float = 1.0,
        host: str = "127.0.0.1",
        port: int = 0,
        slack_seconds: float = 0.01,
    ):
        super().__init__(time_scale=time_scale, host=host, port=port, slack_seconds=slack_seconds)
        self.api_keys: tuple[str, ...] = (api_key,) if isinstance(api_key, str) else tuple(api_key)
        self.default_plan = AimlPlan()
        self.generations: dict[str, Generation] = {}
        self._files: dict[str, Generation] = {}

    def plan_next(self, **fields) -> AimlPlan:
        plan = AimlPlan(**fields)
        with self.lock:
            self.plans.append(plan)
        return plan

    def file_url(self, name: str) -> str:
        return f"{self.root_url}{FILES_PREFIX}{name}"

    # --- Routing ----------------------------------------------------------------------------
    def handle(self, request: Request) -> Response:
        path = request.path
        if path in API_PATHS:
            if request.method == "POST":
                return self._create(request)
            if request.method == "GET":
                return self._poll(request)
            return self._refuse(request, 404, f"{request.method} {path}: only POST and GET exist")
        if path.startswith(FILES_PREFIX) and request.method in ("GET", "HEAD"):
            return self._file(request, path.removeprefix(FILES_PREFIX))
        if path == "/" and request.method == "GET":
            return text_response(200, self.summary())
        if path.startswith("/v2/") or path.startswith("/v1/"):
            return self._refuse(request, 404, f"{request.method} {path}: no such endpoint")
        return self.error(request, 404)

    def error(self, request: Request, status: int, message: str | None = None) -> Response:
        """The documented error shape."""
        now = datetime.datetime.now(datetime.UTC)
        body = {
            "message": message or ERROR_TEXTS.get(status, "Error"),
            "path": request.path,
            "requestId": str(uuid.uuid4()),
            "statusCode": status,
            "timestamp": now.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        }
        return json_response(status, body)

    def _refuse(self, request: Request, status: int, message: str) -> Response:
        self.violation(message)
        return self.error(request, status, message)

    def _authenticate(self, request: Request) -> tuple[str | None, Response | None]:
        authorization = request.headers.get("authorization", "").strip()
        if not authorization:
            return None, self._refuse(
                request, 401, f"{request.method} {request.path} without an authorization header"
            )
        scheme, _, key = authorization.partition(" ")
        key = key.strip()
        if key not in self.api_keys:
            return None, self.error(request, 401)  # a wrong key is a legitimate test case
        if scheme.lower() != "bearer":
            return None, self._refuse(
                request, 401, f"authorization header must be 'Bearer <key>', not '{scheme} <key>'"
            )
        request.record.key = key
        return key, None

    # --- Create -----------------------------------------------------------------------------
    def _create(self, request: Request) -> Response:
        key, refusal = self._authenticate(request)
        if refusal is not None:
            return refusal
        if request.content_type != "application/json":
            return self._refuse(
                request, 400, f"create must be application/json, not {request.content_type!r}"
            )
        try:
            body = request.json()
        except ValueError:
            return self._refuse(request, 400, "create body is not valid JSON")
        request.record.json = body
        if not isinstance(body, dict):
            return self._refuse(request, 400, "create body must be a JSON object")

        for name in DEPRECATED_FIELDS:
            if name in body:
                self.violation(f"{name}: deprecated (the aspect ratio comes from the image)")
        for name in sorted(set(body) - KNOWN_FIELDS - set(DEPRECATED_FIELDS)):
            self.violation(f"{name}: not a documented field of {MODEL}")

        errors: list[str] = []
        facts: dict[str, Any] = {}
        self._validate(body, errors, facts)
        if errors:
            message = "; ".join(errors)
            for problem in errors:
                self.violation(f"create refused: {problem}")
            return self.error(request, 400, message)

        plan = self.take_plan()
        if isinstance(plan.submit, int):
            return self.error(request, plan.submit)
        generation = self._new_generation(request, key, plan, body, facts)
        if plan.submit == "garbage":
            return garbage_response()
        answer = json_response(
            plan.create_status, {plan.id_field: generation.id, "status": "queued"}
        )
        if plan.submit == "slow":
            answer.delay = plan.slow_seconds
        if plan.submit == "drop":
            answer.drop = True
        return answer

    def _validate(self, body: dict, errors: list[str], facts: dict[str, Any]) -> None:
        """Check every field; append refusals to `errors`, what was learnt to `facts`."""
        model = body.get("model")
        if model != MODEL:
            errors.append(f"model: must be {MODEL!r}, not {model!r}")

        duration = body.get("duration", 5)
        if isinstance(duration, str) and duration.strip() in ("5", "10"):
            facts["duration"] = int(duration.strip())
        elif (
            isinstance(duration, int | float)
            and not isinstance(duration, bool)
            and duration in (5, 10)
        ):
            facts["duration"] = int(duration)
        else:
            errors.append(f"duration: must be 5 or 10, not {duration!r}")

        cfg_scale = body.get("cfg_scale")
        if cfg_scale is not None:
            if isinstance(cfg_scale, bool) or not isinstance(cfg_scale, int | float):
                errors.append(f"cfg_scale: must be a number, not {cfg_scale!r}")
            elif not 0 <= cfg_scale <= 1:
                errors.append(f"cfg_scale: must be between 0 and 1, not {cfg_scale!r}")
        for name in ("prompt", "negative_prompt"):
            if body.get(name) is not None and not isinstance(body[name], str):
                errors.append(f"{name}: must be a string, not {body[name]!r}")

        tail = body.get("tail_image_url")
        static = body.get("static_mask_url")
        dynamic = body.get("dynamic_masks")
        if tail is not None and (static is not None or dynamic):
            errors.append(
                "tail_image_url cannot be combined with static_mask_url / dynamic_masks "
                "(Kling refuses an end frame together with the motion brush)"
            )
        if dynamic is not None:
            if not isinstance(dynamic, list):
                errors.append("dynamic_masks: must be a list")
                dynamic = None
            elif len(dynamic) > MAX_DYNAMIC_MASKS:
                errors.append(
                    f"dynamic_masks: at most {MAX_DYNAMIC_MASKS} items, not {len(dynamic)}"
                )

        image = body.get("image_url")
        if image is None:
            errors.append("image_url: required")
            return
        facts["image"] = self._image(image, "image_url", errors)
        if facts["image"] is None:
            return
        size = facts["image"].size
        width, height = size
        if tail is not None:
            facts["tail"] = self._image(tail, "tail_image_url", errors)
        if static is not None:
            mask = self._image(static, "static_mask_url", errors, mask_for=size)
            facts["static"] = mask.size if mask else None
        facts["dynamic"] = []
        for index, item in enumerate(dynamic or []):
            name = f"dynamic_masks[{index}]"
            if not isinstance(item, dict) or set(item) - {"mask_url", "trajectories"}:
                errors.append(f"{name}: must be {{mask_url, trajectories}}, not {item!r}")
                continue
            mask_url = item.get("mask_url")
            if mask_url is None:
                errors.append(f"{name}.mask_url: required")
                continue
            mask = self._image(mask_url, f"{name}.mask_url", errors, mask_for=size)
            points: list[tuple[int, int]] = []
            trajectories = item.get("trajectories")
            if not isinstance(trajectories, list) or len(trajectories) < MIN_TRAJECTORY_POINTS:
                errors.append(
                    f"{name}.trajectories: at least {MIN_TRAJECTORY_POINTS} points, "
                    f"not {trajectories!r}"
                )
                continue
            for number, point in enumerate(trajectories):
                where = f"{name}.trajectories[{number}]"
                if not isinstance(point, dict) or set(point) != {"x", "y"}:
                    errors.append(f"{where}: must be {{x, y}}, not {point!r}")
                    continue
                x, y = point["x"], point["y"]
                if any(isinstance(v, bool) or not isinstance(v, int) for v in (x, y)):
                    errors.append(f"{where}: x and y must be whole numbers, not {point!r}")
                elif not (0 <= x < width and 0 <= y < height):
                    errors.append(f"{where}: ({x}, {y}) lies outside the {width}x{height} image")
                else:
                    points.append((x, y))
            if mask is not None:
                facts["dynamic"].append(DynamicMask(mask_url, mask.size, points))

    def _image(self, value: Any, name: str, errors: list[str], *, mask_for=None):
        """Fetch or decode an image field and check Kling's limits; None if refused."""
        if not isinstance(value, str) or not value:
            errors.append(f"{name}: must be an http(s) URL or base64 data, not {value!r}")
            return None
        if value.startswith(("http://", "https://")):
            try:
                # Outside the lock: the image may be served by a slow or single-threaded server.
                answer = self.outbound().get(value, follow_redirects=True)
                answer.raise_for_status()
            except httpx.HTTPError as problem:
                errors.append(f"{name}: could not fetch {value}: {problem!r}")
                return None
            data = answer.content
        elif mask_for is not None:
            errors.append(f"{name}: must be an http(s) URL, not {value[:60]!r}")
            return None
        else:
            encoded = value
            if value.startswith("data:"):
                header, comma, encoded = value.partition(",")
                if not comma or not header.startswith("data:image/") or ";base64" not in header:
                    errors.append(f"{name}: a data URL must be data:image/...;base64,")
                    return None
            try:
                data = base64.b64decode("".join(encoded.split()), validate=True)
            except (binascii.Error, ValueError):
                errors.append(f"{name}: neither an http(s) URL nor valid base64 data")
                return None
        if len(data) > MAX_IMAGE_BYTES:
            errors.append(f"{name}: {len(data)} bytes is larger than the 10 MB limit")
            return None
        try:
            facts = inspect_image(data)
        except ValueError as problem:
            errors.append(f"{name}: {problem}")
            return None
        width, height = facts.size
        if mask_for is not None:
            if facts.format != "PNG":
                errors.append(f"{name}: a mask must be a PNG, not {facts.format}")
                return None
            if facts.size != mask_for:
                errors.append(
                    f"{name}: the mask is {width}x{height}, the image "
                    f"{mask_for[0]}x{mask_for[1]}: they must be the same size"
                )
                return None
            return facts
        if facts.format not in ("JPEG", "PNG"):
            errors.append(f"{name}: must be a JPEG or PNG, not {facts.format}")
            return None
        if min(width, height) < MIN_SIDE:
            errors.append(
                f"{name}: {width}x{height} is too small (each side must be at least {MIN_SIDE} px)"
            )
            return None
        if not 1 / MAX_ASPECT <= width / height <= MAX_ASPECT:
            errors.append(f"{name}: {width}x{height} has an aspect ratio outside 1:2.5 to 2.5:1")
            return None
        if facts.metadata:
            self.violation(f"{name} carries personal metadata: {', '.join(facts.metadata)}")
        return facts

    def _new_generation(self, request, key, plan: AimlPlan, body, facts) -> Generation:
        duration = facts["duration"]
        run = plan.run_seconds if plan.run_seconds is not None else RUN_SECONDS[duration]
        queued = plan.queued_seconds
        if queued is None:
            queued = min(QUEUED_SECONDS, run / 3)
        now = request.at
        done_at = now + self.scaled(run)
        copy = dict(body)
        for name in ("image_url", "tail_image_url"):
            value = copy.get(name)
            if isinstance(value, str) and not value.startswith(("http://", "https://")):
                copy[name] = f"<{len(value)} base64 chars>"
        tail = facts.get("tail")
        generation = Generation(
            id=f"{uuid.uuid4()}-{secrets.token_hex(4)}:{MODEL}",
            key=key,
            path=request.path,
            plan=plan,
            body=copy,
            created=now,
            queued_until=now + self.scaled(min(queued, run)),
            done_at=done_at,
            expires_at=done_at + self.scaled(plan.retention_seconds),
            duration=duration,
            credits_used=plan.credits_used if plan.credits_used is not None else CREDITS[duration],
            image_size=facts["image"].size,
            image_format=facts["image"].format,
            output_name=f"{uuid.uuid4().hex}.mp4",
            tail_image_size=tail.size if tail else None,
            static_mask_size=facts.get("static"),
            dynamic_masks=facts.get("dynamic", []),
            poll_failures_left=list(plan.poll_failures),
        )
        with self.lock:
            self.generations[generation.id] = generation
            self._files[generation.output_name] = generation
        self.event(
            f"generation {generation.id[:12]}… started on {request.path} "
            f"({plan.outcome} in {run:g} s)"
        )
        return generation

    # --- Poll -------------------------------------------------------------------------------
    def _poll(self, request: Request) -> Response:
        key, refusal = self._authenticate(request)
        if refusal is not None:
            return refusal
        ids = parse_qs(request.query).get("generation_id")
        if not ids or not ids[0]:
            return self._refuse(request, 400, f"GET {request.path} without ?generation_id=")
        generation_id, now = ids[0], request.at
        with self.lock:
            generation = self.generations.get(generation_id)
            if generation is None:
                return self.error(request, 404, f"generation {generation_id} not found")
            if generation.key != key:
                return self._refuse(
                    request,
                    404,
                    f"poll of {generation_id} with another key than the one that started it",
                )
            previous = generation.poll_times[-1] if generation.poll_times else None
            generation.poll_times.append(now)
            generation.poll_paths.append(request.path)
            if previous is not None and self.too_soon(now - previous, POLL_INTERVAL):
                self.violation(
                    f"poll of {generation_id} {self.documented(now - previous):.1f} s after the "
                    f"previous one (the documented pace is every {POLL_INTERVAL:.0f} s)"
                )
            failure = (
                generation.poll_failures_left.pop(0) if generation.poll_failures_left else None
            )
        if failure == "garbage":
            return garbage_response()
        if failure is not None:
            return self.error(request, failure)
        return json_response(200, self.state(generation, now))

    def state(self, generation: Generation, now: float) -> dict[str, Any]:
        """The poll answer for `generation` at monotonic time `now`."""
        plan = generation.plan
        queued_word, running_word, done_word = plan.status_words
        answer: dict[str, Any] = {
            "id": generation.id,
            "status": queued_word,
            "video": None,
            "error": None,
            "meta": None,
        }
        if now < generation.queued_until:
            return answer
        if now < generation.done_at:
            answer["status"] = running_word
            return answer
        if plan.outcome != "success":
            answer["status"] = plan.error_status
            answer["error"] = {"name": plan.error_name, "message": plan.error_message}
            return answer
        answer["status"] = done_word
        answer["video"] = {"url": self.file_url(generation.output_name)}
        answer["meta"] = {"usage": {"credits_used": generation.credits_used}}
        return answer

    # --- Output files -----------------------------------------------------------------------
    def _file(self, request: Request, name: str) -> Response:
        with self.lock:
            generation = self._files.get(name)
        now = request.at
        if (
            generation is None
            or generation.plan.outcome != "success"
            or not generation.done_at <= now < generation.expires_at
        ):
            return self.error(request, 404)
        return Response(200, sample_mp4(), {"content-type": "video/mp4"})

    # --- For assertions ---------------------------------------------------------------------
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
        with self.lock:
            lines = [f"AI/ML API simulator at {self.base_url} (time scale {self.time_scale:g})"]
            for g in self.generations.values():
                lines.append(
                    f"  {g.id}  {g.plan.outcome:<8} {g.duration} s  image "
                    f"{g.image_size[0]}x{g.image_size[1]}  via {g.path}  polls {g.polls}"
                )
            lines.append(f"{len(self.violations)} violation(s)")
            lines += [f"  - {v}" for v in self.violations]
        return "\n".join(lines) + "\n"
