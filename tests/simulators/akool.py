"""A stand-in for AKOOL's image-to-video API (seed 002, providers.md §5).

Imitated behaviour (the base URL is `http://127.0.0.1:PORT/api/open/v4`; `sim.token_url` is
`http://127.0.0.1:PORT/api/open/v3/getToken` on the same server):

- Every answer is HTTP 200 `{"code": n, "msg": "...", "data": ...}`: 1000 success, 1003 bad
  parameter, 1008 not found, 1009 no permission, 1015 create failed (retry later), 1101 invalid
  token, 1109 expired token, 1102 authorization missing, 1200 account banned.
- Auth: `Authorization: Bearer <token>`, the token from `POST /api/open/v3/getToken` with
  `{"clientId", "clientSecret"}` → `{"code": 1000, "token"}` (the token at the top level, not in
  `data`); or `x-api-key` when the simulator was given an `api_key`. Authorization wins if both
  are sent. Tokens can be made to expire (`token_expires_after`, or `sim.expire_tokens()`).
- `POST /image2Video/createBySourcePrompt`: the six required fields are checked (even when an
  effect makes the prompt irrelevant); `image_url` (and `audio_url` for audio_type 2) are really
  fetched. 10 s videos and the premium model need a plan of "pro" or above (1009 otherwise).
- Tasks go 1 queueing → 2 processing → 3 completed (`video_url`, served from `/files/<name>` on
  this server until retention runs out) or 4 failed (`error_msg`).
- `POST /image2Video/resultsByIds` `{"_ids": "a,b"}`: ONE comma-separated string; the results come
  back shuffled (clients must match by `_id`); unknown or deleted ids are simply absent.
- `GET /image2Video/effects`, `POST /image2Video/updateVideoAudio` (a new `only_add_audio` task,
  no webhook), `POST /image2Video/delbyids` (a task still queueing or processing is refused).
- Webhooks: POSTed `{"signature", "dataEncrypt", "timestamp", "nonce"}` as documented (see
  `encrypt`, `sign`), with the misbehaviours of `AkoolPlan.webhook` on offer, and
  `send_webhook(...)` for forged, tampered and replayed ones.

Rules our own client must keep, beyond the documented ones, are marked "courtesy" below.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import itertools
import json
import random
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from PIL import Image

from .common import (
    SUBMIT_MODES,
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

API_PREFIX = "/api/open/v4"
TOKEN_PATH = "/api/open/v3/getToken"
CREATE_PATH = f"{API_PREFIX}/image2Video/createBySourcePrompt"
RESULTS_PATH = f"{API_PREFIX}/image2Video/resultsByIds"
EFFECTS_PATH = f"{API_PREFIX}/image2Video/effects"
AUDIO_PATH = f"{API_PREFIX}/image2Video/updateVideoAudio"
DELETE_PATH = f"{API_PREFIX}/image2Video/delbyids"
FILES_PREFIX = "/files/"

# Business codes (always HTTP 200).
OK = 1000
BAD_PARAMETER = 1003
NOT_FOUND = 1008
NO_PERMISSION = 1009
CREATE_FAILED = 1015
INVALID_TOKEN = 1101
AUTH_MISSING = 1102
TOKEN_EXPIRED = 1109
BANNED = 1200
MESSAGES = {
    OK: "OK",
    BAD_PARAMETER: "Parameter error",
    NOT_FOUND: "Resource not found",
    NO_PERMISSION: "No permission",
    CREATE_FAILED: "Create video failed, please try again later",
    INVALID_TOKEN: "Invalid authorization or the request token has expired",
    AUTH_MISSING: "Authorization cannot be empty",
    TOKEN_EXPIRED: "The authorization token has expired, please get a new one",
    BANNED: "The account has been banned",
}
ERROR_CODES = tuple(code for code in MESSAGES if code != OK)

ACCOUNT_PLANS = ("free", "starter", "pro", "pro_max", "business", "enterprise")
PRO_PLANS = ACCOUNT_PLANS[ACCOUNT_PLANS.index("pro") :]
RESOLUTIONS = ("720p", "1080p", "4k")
VIDEO_LENGTHS = (5, 10)
AUDIO_TYPES = (1, 2, 3)
REQUIRED_CREATE_FIELDS = (
    "image_url",
    "prompt",
    "negative_prompt",
    "resolution",
    "audio_type",
    "video_length",
)
PRICES = {  # credits per video (seed 002's table)
    (5, "720p"): 20,
    (5, "1080p"): 25,
    (5, "4k"): 30,
    (10, "720p"): 40,
    (10, "1080p"): 50,
    (10, "4k"): 60,
}
AUDIO_PRICES = {5: 5, 10: 10}
EFFECTS = (  # (name, effect_code)
    ("Squish It", "squish"),
    ("Inflate", "inflate"),
    ("Hug", "hug"),
    ("Kiss", "kiss"),
)
AKOOL_WEBHOOK_MODES = ("once", "twice", "none", "late", "out_of_order")
# Courtesy: AKOOL documents no poll spacing; we hold ourselves to one poll per task per second.
POLL_COURTESY_INTERVAL = 1.0
UID = 100001
TEAM_ID = "6528c0a36c1d3a0f2c6e1a11"


# --- The documented webhook cryptography ----------------------------------------------------
def _cipher(client_id: str, client_secret: str) -> Cipher:
    return Cipher(algorithms.AES(client_secret.encode()), modes.CBC(client_id.encode()))


def encrypt(client_id: str, client_secret: str, payload: dict) -> str:
    """`dataEncrypt`: base64(AES-CBC(key=clientSecret, iv=clientId, PKCS#7) of the JSON)."""
    padder = padding.PKCS7(128).padder()
    plain = padder.update(json.dumps(payload).encode()) + padder.finalize()
    encryptor = _cipher(client_id, client_secret).encryptor()
    return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode()


def decrypt(client_id: str, client_secret: str, data_encrypt: str) -> dict:
    """The payload of a `dataEncrypt`; ValueError if it is not base64, mis-padded or not JSON."""
    try:
        raw = base64.b64decode(data_encrypt, validate=True)
        decryptor = _cipher(client_id, client_secret).decryptor()
        padded = decryptor.update(raw) + decryptor.finalize()
        unpadder = padding.PKCS7(128).unpadder()
        plain = unpadder.update(padded) + unpadder.finalize()
        payload = json.loads(plain.decode("utf-8"))
    except (binascii.Error, ValueError, UnicodeDecodeError) as problem:
        raise ValueError(f"cannot decrypt dataEncrypt: {problem}") from None
    if not isinstance(payload, dict):
        raise ValueError("dataEncrypt does not hold a JSON object")
    return payload


def sign(client_id: str, timestamp: Any, nonce: Any, data_encrypt: str) -> str:
    """`signature`: SHA-1 hex of the four values as strings, sorted and joined."""
    parts = sorted([str(client_id), str(timestamp), str(nonce), str(data_encrypt)])
    return hashlib.sha1("".join(parts).encode()).hexdigest()


def check_credentials(client_id: str, client_secret: str) -> None:
    """ValueError naming the culprit if AES-CBC cannot take these as key and IV."""
    if len(client_secret.encode()) not in (16, 24, 32):
        raise ValueError(
            f"client_secret must be 16, 24 or 32 bytes (an AES key), "
            f"not {len(client_secret.encode())}"
        )
    if len(client_id.encode()) != 16:
        raise ValueError(
            f"client_id must be 16 bytes (the AES-CBC IV), not {len(client_id.encode())}"
        )


# --- Plans, tasks, deliveries ---------------------------------------------------------------
@dataclass
class AkoolPlan(Plan):
    """A Plan with AKOOL's own knobs. `submit` may also be any AKOOL error code (1003, 1008,
    1009, 1015, 1101, 1102, 1109, 1200): the create (or updateVideoAudio) is answered with it
    and no task is made. `run_seconds` is the time in status 2, after `queue_seconds` in 1.
    `outcome` "error" or "filtered" ends in status 4."""

    queue_seconds: float = 5.0
    deduction_credit: int | None = None  # None: per the price table
    processing_callbacks: bool = False  # also a status-2 webhook when processing starts
    error_msg: str = "Video generation failed, please try again"
    webhook_retries: int = 0  # re-deliveries after a non-2xx answer ("or it is retried")
    webhook_retry_seconds: float = 10.0

    def __post_init__(self):
        submit = self.submit
        if submit in ERROR_CODES:
            self.submit = "ok"  # let the base checks pass, then put it back
        try:
            super().__post_init__()
        finally:
            self.submit = submit
        if self.submit not in SUBMIT_MODES and self.submit not in ERROR_CODES:
            raise ValueError(f"AkoolPlan.submit must be one of {SUBMIT_MODES + ERROR_CODES}")
        if self.webhook not in AKOOL_WEBHOOK_MODES:
            raise ValueError(f"AkoolPlan.webhook must be one of {AKOOL_WEBHOOK_MODES}")


@dataclass
class Task:
    """One task (a video, or an only-add-audio job), for assertions (`sim.tasks[id]`)."""

    id: str
    plan: AkoolPlan
    request: dict[str, Any]
    created: float  # time.monotonic()
    create_time: int  # ms since the epoch
    processing_at: float
    done_at: float
    expires_at: float
    video_length: int
    resolution: str
    deduction_credit: int
    webhook: str | None
    output_name: str
    only_add_audio: bool = False
    pre_video_id: str | None = None
    deleted: bool = False
    poll_times: list[float] = field(default_factory=list)

    def status_at(self, now: float) -> int:
        if now < self.processing_at:
            return 1
        if now < self.done_at:
            return 2
        return 4 if self.plan.outcome in ("error", "filtered") else 3

    @property
    def polls(self) -> int:
        return len(self.poll_times)


@dataclass
class WebhookDelivery:
    """One webhook POST the simulator made (`sim.webhooks_sent`)."""

    task_id: str
    url: str
    body: dict[str, Any]  # what was POSTed: signature, dataEncrypt, timestamp, nonce
    payload: dict[str, Any] | None  # what dataEncrypt was meant to hold (None for replays)
    status: int | None  # the receiver's HTTP status; None if it could not be delivered
    error: str | None
    at: float
    kind: str = "normal"  # "normal" | "forged" | "tampered" | "bad_padding" | "replay"


def _hex_id() -> str:
    return secrets.token_hex(12)  # 24 hex characters, like a MongoDB ObjectId


def _logo_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (240, 90, 40)).save(buffer, "PNG")
    return buffer.getvalue()


# --- The simulator --------------------------------------------------------------------------
class AkoolSimulator(Simulator):
    """`AkoolSimulator(client_id, client_secret, api_key=None, plan="pro")`: one AKOOL account.

    `token_expires_after` (documented seconds, None: never) makes every token expire that long
    after getToken issued it; `sim.expire_tokens()` expires all tokens issued so far. A request
    with an expired token is answered 1109 (an unknown one 1101). `sim.banned = True` answers every
    authenticated call 1200.
    """

    name = "akool"

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        *,
        api_key: str | None = None,
        plan: str = "pro",
        token_expires_after: float | None = None,
        time_scale: float = 1.0,
        host: str = "127.0.0.1",
        port: int = 0,
        slack_seconds: float = 0.01,
    ):
        check_credentials(client_id, client_secret)
        if plan not in ACCOUNT_PLANS:
            raise ValueError(f"plan must be one of {ACCOUNT_PLANS}")
        super().__init__(time_scale=time_scale, host=host, port=port, slack_seconds=slack_seconds)
        self.client_id = client_id
        self.client_secret = client_secret
        self.api_key = api_key
        self.account_plan = plan
        self.token_expires_after = token_expires_after
        self.banned = False
        self.default_plan = AkoolPlan()
        self.tasks: dict[str, Task] = {}
        self.tokens: dict[str, float] = {}  # token -> real time (monotonic) it expires, or inf
        self.batch_sizes: list[int] = []  # ids asked for by each resultsByIds call
        self.webhooks_sent: list[WebhookDelivery] = []
        self.effects = [
            {
                "_id": hashlib.md5(code.encode()).hexdigest()[:24],
                "create_time": 1718000000000 + index,
                "name": name,
                "logo": f"effect-{code}.png",  # made absolute in the answer
                "video_url": f"effect-{code}.mp4",
                "effect_code": code,
            }
            for index, (name, code) in enumerate(EFFECTS)
        ]
        self._files: dict[str, Task] = {}
        self._timestamp_as_text = itertools.cycle((False, True))
        self._random = random.Random()

    @property
    def base_url(self) -> str:
        return f"{self.root_url}{API_PREFIX}"

    @property
    def token_url(self) -> str:
        return f"{self.root_url}{TOKEN_PATH}"

    def file_url(self, name: str) -> str:
        return f"{self.root_url}{FILES_PREFIX}{name}"

    def plan_next(self, **fields) -> AkoolPlan:
        plan = AkoolPlan(**fields)
        with self.lock:
            self.plans.append(plan)
        return plan

    def expire_tokens(self) -> None:
        """Every token issued so far expires now: the next call with one is answered 1109."""
        with self.lock:
            now = time.monotonic()
            for token in self.tokens:
                self.tokens[token] = min(self.tokens[token], now)

    # --- Envelope and routing ---------------------------------------------------------------
    @staticmethod
    def _answer(code: int, data: Any = None, msg: str | None = None, **extra) -> Response:
        return json_response(
            200, {"code": code, "msg": msg or MESSAGES[code], "data": data, **extra}
        )

    def _refuse(self, code: int, message: str, *, breach: bool = True) -> Response:
        if breach:
            self.violation(message)
        return self._answer(code, None, f"{MESSAGES[code]}: {message}")

    def handle(self, request: Request) -> Response:
        path = request.path
        routes = {
            TOKEN_PATH: ("POST", self._get_token),
            CREATE_PATH: ("POST", self._create),
            RESULTS_PATH: ("POST", self._results),
            EFFECTS_PATH: ("GET", self._effects),
            AUDIO_PATH: ("POST", self._update_audio),
            DELETE_PATH: ("POST", self._delete),
        }
        if path in routes:
            method, handler = routes[path]
            if request.method != method:
                self.violation(f"{request.method} {path}: only {method} is allowed")
                return json_response(405, {"code": 405, "msg": "Method Not Allowed", "data": None})
            if path != TOKEN_PATH:
                refusal = self._authenticate(request)
                if refusal is not None:
                    return refusal
            return handler(request)
        if path.startswith(FILES_PREFIX) and request.method in ("GET", "HEAD"):
            return self._file(request, path.removeprefix(FILES_PREFIX))
        if path == "/" and request.method == "GET":
            return text_response(200, self.summary())
        if path.startswith("/api/"):
            self.violation(f"{request.method} {path}: no such endpoint")
        return json_response(404, {"code": 404, "msg": "Not Found", "data": None})

    def _read_json(self, request: Request) -> tuple[dict | None, Response | None]:
        if request.content_type != "application/json":
            self.violation(
                f"{request.path}: content-type must be application/json, "
                f"not {request.content_type or 'none'!r}"
            )
        try:
            body = request.json()
        except ValueError:
            return None, self._refuse(BAD_PARAMETER, f"{request.path}: the body is not JSON")
        if not isinstance(body, dict):
            return None, self._refuse(BAD_PARAMETER, f"{request.path}: body must be a JSON object")
        request.record.json = body
        return body, None

    # --- Auth -------------------------------------------------------------------------------
    def _get_token(self, request: Request) -> Response:
        body, refusal = self._read_json(request)
        if refusal is not None:
            return refusal
        client_id, client_secret = body.get("clientId"), body.get("clientSecret")
        if not isinstance(client_id, str) or not isinstance(client_secret, str):
            return self._refuse(BAD_PARAMETER, "getToken needs clientId and clientSecret strings")
        if client_id != self.client_id or client_secret != self.client_secret:
            return self._refuse(INVALID_TOKEN, "wrong clientId or clientSecret", breach=False)
        if self.banned:
            return self._refuse(BANNED, "the account is banned", breach=False)
        token = secrets.token_urlsafe(48)
        lifetime = self.token_expires_after
        with self.lock:
            self.tokens[token] = (
                float("inf") if lifetime is None else request.at + self.scaled(lifetime)
            )
        self.event("token issued")
        return json_response(200, {"code": OK, "msg": "OK", "token": token})

    def _authenticate(self, request: Request) -> Response | None:
        """None if the request may go on, else the documented refusal."""
        authorization = request.headers.get("authorization")
        api_key = request.headers.get("x-api-key")
        if authorization is not None:  # Authorization wins over x-api-key, as documented
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                return self._refuse(INVALID_TOKEN, "authorization header must be 'Bearer <token>'")
            token = token.strip()
            with self.lock:
                expires = self.tokens.get(token)
            if expires is None:
                return self._refuse(INVALID_TOKEN, "unknown token", breach=False)
            if request.at >= expires:
                return self._refuse(TOKEN_EXPIRED, "the token has expired", breach=False)
            request.record.key = token
        elif api_key is not None:
            if self.api_key is None or api_key != self.api_key:
                return self._refuse(INVALID_TOKEN, "unknown x-api-key", breach=False)
            request.record.key = api_key
        else:
            return self._refuse(
                AUTH_MISSING, f"{request.method} {request.path} without authorization"
            )
        if self.banned:
            return self._refuse(BANNED, "the account is banned", breach=False)
        return None

    # --- Fetching what the client points us at ----------------------------------------------
    def _fetch(self, url: Any, what: str) -> tuple[bytes | None, str | None]:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            return None, f"{what} must be an http(s) URL, not {str(url)[:60]!r}"
        try:
            # Outside the lock: the file may be served by a slow or single-threaded server.
            answer = self.outbound().get(url, follow_redirects=True)
            answer.raise_for_status()
        except (httpx.HTTPError, RuntimeError) as problem:
            return None, f"could not fetch {what}: {problem!r}"
        if not answer.content:
            return None, f"{what} is empty"
        return answer.content, None

    def _check_image(self, url: Any) -> str | None:
        data, problem = self._fetch(url, "image_url")
        if problem is not None:
            return problem
        try:
            facts = inspect_image(data)
        except ValueError as error:
            return f"image_url: {error}"
        if facts.metadata:
            self.violation(f"image_url carries personal metadata: {', '.join(facts.metadata)}")
        return None

    # --- Create -----------------------------------------------------------------------------
    def _validate_create(self, body: dict) -> tuple[list[str], int]:
        """The contract breaches in a create body, and the code to answer them with."""
        errors: list[str] = []
        missing = [name for name in REQUIRED_CREATE_FIELDS if name not in body]
        if missing:
            errors.append(f"required field(s) missing: {', '.join(missing)}")
        for name in ("image_url", "prompt", "negative_prompt"):
            if name in body and not isinstance(body[name], str):
                errors.append(f"{name} must be a string")
        if "resolution" in body and body["resolution"] not in RESOLUTIONS:
            errors.append(f"resolution must be one of {RESOLUTIONS}, not {body['resolution']!r}")
        audio_type = body.get("audio_type")
        if "audio_type" in body and (type(audio_type) is not int or audio_type not in AUDIO_TYPES):
            errors.append(f"audio_type must be the integer 1, 2 or 3, not {audio_type!r}")
        if audio_type == 2 and not body.get("audio_url"):
            errors.append("audio_url is required when audio_type = 2")
        length = body.get("video_length")
        if "video_length" in body and (type(length) is not int or length not in VIDEO_LENGTHS):
            errors.append(f"video_length must be the integer 5 or 10, not {length!r}")
        for name in ("extend_prompt", "is_premium_model"):
            if name in body and not isinstance(body[name], bool):
                errors.append(f"{name} must be a boolean, not {body[name]!r}")
        if "effect_code" in body and body["effect_code"] not in [e[1] for e in EFFECTS]:
            errors.append(f"effect_code {body['effect_code']!r} is not in the effects list")
        if "webhookurl" in body:
            hook = body["webhookurl"]
            if not isinstance(hook, str) or not hook.startswith(("http://", "https://")):
                errors.append(f"webhookurl must be an http(s) URL, not {hook!r}")
        if "webhookUrl" in body:
            errors.append("the create field is spelt webhookurl (answers spell it webhookUrl)")
        unknown = (
            set(body)
            - set(REQUIRED_CREATE_FIELDS)
            - {
                "audio_url",
                "extend_prompt",
                "is_premium_model",
                "effect_code",
                "webhookurl",
            }
        )
        if unknown:
            errors.append(f"unknown field(s): {', '.join(sorted(unknown))}")
        if errors:
            return errors, BAD_PARAMETER
        # Pro-only features: the client should not offer them on a lower plan.
        if self.account_plan not in PRO_PLANS:
            if length == 10:
                errors.append(f"10 s videos need a pro plan or above, not {self.account_plan}")
            if body.get("is_premium_model") is True:
                errors.append(
                    f"the premium model needs a pro plan or above, not {self.account_plan}"
                )
            if errors:
                return errors, NO_PERMISSION
        return [], OK

    def _create(self, request: Request) -> Response:
        body, refusal = self._read_json(request)
        if refusal is not None:
            return refusal
        errors, code = self._validate_create(body)
        if not errors:
            problem = self._check_image(body["image_url"])
            if problem is None and body["audio_type"] == 2:
                problem = self._fetch(body["audio_url"], "audio_url")[1]
            if problem is not None:
                errors, code = [problem], BAD_PARAMETER
        if errors:
            for message in errors:
                self.violation(f"createBySourcePrompt refused: {message}")
            return self._answer(code, None, f"{MESSAGES[code]}: {'; '.join(errors)}")
        plan = self.take_plan()
        if isinstance(plan.submit, int):
            return self._answer(plan.submit)
        price = PRICES[(body["video_length"], body["resolution"])]
        task = self._new_task(
            request,
            plan,
            body,
            video_length=body["video_length"],
            resolution=body["resolution"],
            credit=price if plan.deduction_credit is None else plan.deduction_credit,
            webhook=body.get("webhookurl"),
        )
        return self._created(task, plan, request.at)

    def _created(self, task: Task, plan: AkoolPlan, now: float) -> Response:
        if plan.submit == "garbage":
            return garbage_response()
        answer = self._answer(OK, self.task_view(task, now))
        answer.delay = plan.slow_seconds if plan.submit == "slow" else 0.0
        answer.drop = plan.submit == "drop"
        return answer

    def _new_task(self, request, plan, body, *, video_length, resolution, credit, webhook, **extra):
        now = request.at
        processing_at = now + self.scaled(plan.queue_seconds)
        done_at = processing_at + self.scaled(plan.run_seconds)
        task = Task(
            id=_hex_id(),
            plan=plan,
            request=dict(body),
            created=now,
            create_time=int(time.time() * 1000),
            processing_at=processing_at,
            done_at=done_at,
            expires_at=done_at + self.scaled(plan.retention_seconds),
            video_length=video_length,
            resolution=resolution,
            deduction_credit=credit,
            webhook=webhook,
            output_name=f"{uuid.uuid4().hex}.mp4",
            **extra,
        )
        with self.lock:
            self.tasks[task.id] = task
            self._files[task.output_name] = task
        self._schedule_webhooks(task)
        self.event(f"task {task.id} accepted: {plan.outcome} after {plan.run_seconds:g} s")
        return task

    # --- Describing a task ------------------------------------------------------------------
    def task_view(self, task: Task, now: float) -> dict[str, Any]:
        """A task as createBySourcePrompt / resultsByIds / updateVideoAudio describe it at `now`."""
        status = task.status_at(now)
        changed = {1: task.created, 2: task.processing_at}.get(status, task.done_at)
        body = task.request
        effect = {code: name for name, code in EFFECTS}.get(body.get("effect_code"))
        view = {
            "_id": task.id,
            "create_time": task.create_time,
            "update_time": task.create_time + int((changed - task.created) * 1000),
            "uid": UID,
            "team_id": TEAM_ID,
            "status": status,
            "webhookUrl": task.webhook or "",
            "resolution": task.resolution,
            "video_length": task.video_length,
            "file_name": task.output_name,
            "effect_name": effect or "",
            "effect_code": body.get("effect_code", ""),
            "image_url": body.get("image_url", ""),
            "prompt": body.get("prompt", ""),
            "negative_prompt": body.get("negative_prompt", ""),
            "extend_prompt": bool(body.get("extend_prompt", False)),
            "audio_type": body.get("audio_type"),
            "audio_url": body.get("audio_url", ""),
            "deduction_credit": task.deduction_credit,
            "only_add_audio": task.only_add_audio,
        }
        if task.pre_video_id is not None:
            view["pre_video_id"] = task.pre_video_id
        if status == 3:
            view["video_url"] = self.file_url(task.output_name)
            view["video_duration"] = task.video_length
        if status == 4:
            view["error_msg"] = task.plan.error_msg
        return view

    # --- resultsByIds and delbyids ----------------------------------------------------------
    def _ids(self, request: Request, body: dict) -> tuple[list[str] | None, Response | None]:
        value = body.get("_ids")
        if not isinstance(value, str):
            return None, self._refuse(
                BAD_PARAMETER,
                f"{request.path}: _ids must be ONE comma-separated string, not {value!r}",
            )
        if not value or any(character.isspace() for character in value):
            return None, self._refuse(
                BAD_PARAMETER,
                f"{request.path}: _ids must be ids separated by bare commas, not {value!r}",
            )
        ids = value.split(",")
        if "" in ids:
            return None, self._refuse(BAD_PARAMETER, f"{request.path}: empty id in {value!r}")
        return ids, None

    def _results(self, request: Request) -> Response:
        body, refusal = self._read_json(request)
        if refusal is not None:
            return refusal
        ids, refusal = self._ids(request, body)
        if refusal is not None:
            return refusal
        now = request.at
        found = []
        with self.lock:
            self.batch_sizes.append(len(ids))
            for task_id in dict.fromkeys(ids):
                task = self.tasks.get(task_id)
                if task is None or task.deleted:
                    continue  # unknown ids are simply absent
                previous = task.poll_times[-1] if task.poll_times else None
                task.poll_times.append(now)
                if previous is not None and self.too_soon(now - previous, POLL_COURTESY_INTERVAL):
                    self.violation(
                        f"task {task_id} polled {self.documented(now - previous):.2f} s after the "
                        f"previous poll (courtesy minimum {POLL_COURTESY_INTERVAL:g} s)"
                    )
                found.append(self.task_view(task, now))
        self._random.shuffle(found)  # clients must match results by _id, not by position
        return self._answer(OK, {"result": found})

    def _delete(self, request: Request) -> Response:
        body, refusal = self._read_json(request)
        if refusal is not None:
            return refusal
        ids, refusal = self._ids(request, body)
        if refusal is not None:
            return refusal
        now = request.at
        deleted, refused = [], []
        with self.lock:
            for task_id in dict.fromkeys(ids):
                task = self.tasks.get(task_id)
                if task is None or task.deleted:
                    refused.append({"_id": task_id, "msg": "Video not found or no permission"})
                elif task.status_at(now) in (1, 2):
                    refused.append(
                        {"_id": task_id, "msg": "The video is processing and cannot be deleted"}
                    )
                else:
                    task.deleted = True
                    deleted.append(task_id)
        return self._answer(OK, {"successIds": deleted, "noPermissionItems": refused})

    # --- Effects and audio ------------------------------------------------------------------
    def _effects(self, request: Request) -> Response:
        result = [
            {**e, "logo": self.file_url(e["logo"]), "video_url": self.file_url(e["video_url"])}
            for e in self.effects
        ]
        return self._answer(OK, {"result": result, "count": len(result)})

    def _update_audio(self, request: Request) -> Response:
        body, refusal = self._read_json(request)
        if refusal is not None:
            return refusal
        errors = []
        pre_id, audio_type = body.get("pre_video_id"), body.get("audio_type")
        if not isinstance(pre_id, str) or not pre_id:
            errors.append("pre_video_id (a string) is required")
        if type(audio_type) is not int or audio_type not in (1, 2):
            errors.append(f"audio_type must be the integer 1 or 2, not {audio_type!r}")
        if "audio_url" not in body:
            errors.append("audio_url is required (marked required in the docs)")
        if audio_type == 2 and not body.get("audio_url"):
            errors.append("audio_url must be set when audio_type = 2")
        if "webhookurl" in body or "webhookUrl" in body:
            errors.append("updateVideoAudio takes no webhook URL: poll these tasks")
        if errors:
            for message in errors:
                self.violation(f"updateVideoAudio refused: {message}")
            return self._answer(BAD_PARAMETER, None, f"{MESSAGES[BAD_PARAMETER]}: {errors[0]}")
        with self.lock:
            pre = self.tasks.get(pre_id)
        if pre is None or pre.deleted:
            return self._refuse(NOT_FOUND, f"updateVideoAudio: no video {pre_id}", breach=False)
        if pre.only_add_audio or pre.status_at(request.at) != 3:
            return self._refuse(
                BAD_PARAMETER, f"updateVideoAudio: {pre_id} is not a completed video"
            )
        if audio_type == 2:
            problem = self._fetch(body["audio_url"], "audio_url")[1]
            if problem is not None:
                return self._refuse(BAD_PARAMETER, f"updateVideoAudio refused: {problem}")
        plan = self.take_plan()
        if isinstance(plan.submit, int):
            return self._answer(plan.submit)
        request_copy = {**pre.request, "audio_type": audio_type, "audio_url": body["audio_url"]}
        price = AUDIO_PRICES[pre.video_length]
        task = self._new_task(
            request,
            plan,
            request_copy,
            video_length=pre.video_length,
            resolution=pre.resolution,
            credit=price if plan.deduction_credit is None else plan.deduction_credit,
            webhook=None,
            only_add_audio=True,
            pre_video_id=pre_id,
        )
        return self._created(task, plan, request.at)

    # --- Files ------------------------------------------------------------------------------
    def _file(self, request: Request, name: str) -> Response:
        if name.startswith("effect-") and name.endswith(".mp4"):
            return Response(200, sample_mp4(), {"content-type": "video/mp4"})
        if name.startswith("effect-") and name.endswith(".png"):
            return Response(200, _logo_png(), {"content-type": "image/png"})
        with self.lock:
            task = self._files.get(name)
        now = request.at
        if task is None or task.deleted or task.status_at(now) != 3 or not now < task.expires_at:
            return text_response(404, "Not Found")
        return Response(200, sample_mp4(), {"content-type": "video/mp4"})

    # --- Webhooks ---------------------------------------------------------------------------
    def webhook_payload(self, task: Task, status: int) -> dict[str, Any]:
        """What `dataEncrypt` holds for a task in `status`."""
        url = self.file_url(task.output_name) if status == 3 else ""
        return {"_id": task.id, "status": status, "type": "image2video", "url": url}

    def webhook_body(self, payload: dict[str, Any]) -> dict[str, Any]:
        """A correctly signed and encrypted callback body for `payload`. The timestamp (ms) is
        sent as a number and as a string in turn, and the nonce the other way round."""
        data_encrypt = encrypt(self.client_id, self.client_secret, payload)
        timestamp = int(time.time() * 1000)
        nonce = secrets.choice((1000, 10000, 100000)) + secrets.randbelow(9000)
        with self.lock:
            as_text = next(self._timestamp_as_text)
        return {
            "signature": sign(self.client_id, timestamp, nonce, data_encrypt),
            "dataEncrypt": data_encrypt,
            "timestamp": str(timestamp) if as_text else timestamp,
            "nonce": nonce if as_text else str(nonce),
        }

    def _schedule_webhooks(self, task: Task) -> None:
        plan = task.plan
        if task.webhook is None or plan.webhook == "none":
            return
        final = task.status_at(task.done_at)
        if plan.processing_callbacks:
            self._deliver_at(task, task.processing_at, [2])
        if plan.webhook == "late":
            self._deliver_at(task, task.done_at + self.scaled(plan.webhook_delay_seconds), [final])
        elif plan.webhook == "twice":
            self._deliver_at(task, task.done_at, [final, final])
        elif plan.webhook == "out_of_order":
            self._deliver_at(task, task.done_at, [final, 2])  # a stale "processing" arrives last
        else:
            self._deliver_at(task, task.done_at, [final])

    def _deliver_at(self, task: Task, when: float, statuses: list[int]) -> None:
        def deliver():
            for status in statuses:  # one after another, so their order is the order intended
                payload = self.webhook_payload(task, status)
                body = self.webhook_body(payload)
                for attempt in range(task.plan.webhook_retries + 1):
                    delivery = self._post(task.id, task.webhook, body, payload, "normal")
                    if delivery.status is not None and 200 <= delivery.status < 300:
                        break
                    if attempt < task.plan.webhook_retries:
                        time.sleep(self.scaled(task.plan.webhook_retry_seconds))

        self.scheduler.call_at(
            when,
            lambda: threading.Thread(
                target=deliver, name=f"webhook-{task.id}", daemon=True
            ).start(),
        )

    def _post(self, task_id, url, body, payload, kind) -> WebhookDelivery:
        status = error = None
        try:
            status = self.outbound().post(url, json=body).status_code
        # Best effort: recorded, not raised. (RuntimeError: stopped meanwhile.)
        except (httpx.HTTPError, RuntimeError) as problem:
            error = repr(problem)
        delivery = WebhookDelivery(
            task_id, url, body, payload, status, error, time.monotonic(), kind
        )
        with self.lock:
            self.webhooks_sent.append(delivery)
        what = payload.get("status") if payload else "replay"
        self.event(f"webhook ({kind}) status {what} for task {task_id} -> {status or error}")
        return delivery

    def send_webhook(
        self,
        task_id: str,
        *,
        tamper: bool | str = False,
        forge: bool = False,
        replay_of: WebhookDelivery | None = None,
        payload: dict[str, Any] | None = None,
        url: str | None = None,
    ) -> WebhookDelivery:
        """Post a callback for a task now, and record it in `webhooks_sent`.

        - default: a genuine callback; `payload` defaults to the task's current state.
        - `forge=True`: a wrong signature (what a sender not knowing the contract would make).
        - `tamper=True`: the ciphertext is changed after signing (the signature no longer fits).
        - `tamper="padding"`: correctly signed (the signature needs no secret!), but the
          ciphertext decrypts to bad PKCS#7 padding: only decryption exposes it.
        - `replay_of=<a delivery>`: that delivery's body again, byte for byte.
        `url` defaults to the task's webhook URL.
        """
        with self.lock:
            task = self.tasks[task_id]
        target = url or task.webhook
        if target is None:
            raise ValueError(f"task {task_id} has no webhook URL: pass url=")
        if replay_of is not None:
            return self._post(task_id, target, dict(replay_of.body), replay_of.payload, "replay")
        if payload is None:
            payload = self.webhook_payload(task, task.status_at(time.monotonic()))
        body = self.webhook_body(payload)
        kind = "normal"
        if forge:
            kind = "forged"
            body["signature"] = hashlib.sha1(secrets.token_bytes(16)).hexdigest()
        if tamper:
            raw = bytearray(base64.b64decode(body["dataEncrypt"]))
            if tamper == "padding":
                kind = "bad_padding"
                # In CBC, flipping a byte of the last-but-one block flips the same byte of the
                # last plaintext block: turn the final padding byte (1..16) into 0, never valid.
                pad = 16 - len(json.dumps(payload).encode()) % 16
                raw[-17] ^= pad
                body["dataEncrypt"] = base64.b64encode(bytes(raw)).decode()
                body["signature"] = sign(
                    self.client_id, body["timestamp"], body["nonce"], body["dataEncrypt"]
                )
            else:
                kind = "tampered"
                raw[0] ^= 0x01  # after signing: the signature no longer matches
                body["dataEncrypt"] = base64.b64encode(bytes(raw)).decode()
        return self._post(task_id, target, body, payload, kind)

    def summary(self) -> str:
        """A plain-text page for a person looking at the simulator in a browser."""
        now = time.monotonic()
        with self.lock:
            lines = [
                f"AKOOL simulator at {self.base_url} ({self.account_plan} plan, "
                f"time scale {self.time_scale:g})"
            ]
            for task in self.tasks.values():
                lines.append(
                    f"  {task.id}  status {task.status_at(now)}  polls {task.polls}"
                    f"{'  audio' if task.only_add_audio else ''}"
                    f"{'  deleted' if task.deleted else ''}"
                )
            lines.append(f"{len(self.webhooks_sent)} webhook(s) sent")
            lines.append(f"{len(self.violations)} violation(s)")
            lines += [f"  - {v}" for v in self.violations]
        return "\n".join(lines) + "\n"
