"""The one HTTP client every adapter uses: pooled connections, timeouts, and transport failures
mapped onto ProviderError so the job engine can tell "try again" from "never sent again"."""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from contextlib import contextmanager

import httpx

from studio.providers.base import OutcomeUnknown, ProviderError

log = logging.getLogger(__name__)
MAX_ANSWER_BYTES = 1024 * 1024  # a JSON answer bigger than this is not one we understand
MAX_RETRY_AFTER = 3600.0
_clients: dict[str, httpx.Client] = {}
_clients_lock = threading.Lock()


def client(base_url: str) -> httpx.Client:
    """One pooled, thread-safe client per base URL (the engine polls from many threads)."""
    with _clients_lock:
        found = _clients.get(base_url)
        if found is None:
            found = _clients[base_url] = httpx.Client(
                base_url=base_url,
                timeout=httpx.Timeout(30.0, connect=5.0),
                limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
                follow_redirects=False,
            )
        return found


def reset_clients() -> None:
    """Forget pooled clients (tests point base URLs at new simulators)."""
    with _clients_lock:
        for found in _clients.values():
            found.close()
        _clients.clear()


def _observe(label: str, started: float, status) -> None:
    """Count one provider request in this process's metrics (studio.metrics): by provider and
    status code or error kind, never by URL or job."""
    from studio.metrics import observe_provider_call

    try:
        observe_provider_call(label, time.perf_counter() - started, status)
    except Exception:  # counting never costs a provider call
        log.exception("could not count a %s request", label)


def _error_status(error: Exception) -> str:
    if isinstance(error, httpx.ConnectError):
        return "connect_error"
    if isinstance(error, httpx.TimeoutException):
        return "timeout"
    return "transport_error"


def send(label: str, base_url: str, method: str, path: str, *, submit=False, **kwargs):
    """Send one request. Transport failures become ProviderError; for a submission, anything
    after the request may have reached the provider is OutcomeUnknown."""
    started = time.perf_counter()
    try:
        response = client(base_url).request(method, path, **kwargs)
    except httpx.TransportError as error:
        _observe(label, started, _error_status(error))
        raise _transport_failure(label, error, submit=submit) from None
    _observe(label, started, response.status_code)
    return response


def _transport_failure(label: str, error: httpx.TransportError, *, submit: bool) -> Exception:
    if isinstance(error, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)):
        # Never reached the provider: safe to try again.
        return ProviderError(f"{label} could not be reached ({_kind(error)}).", permanent=False)
    if submit:
        return OutcomeUnknown(
            f"{label} did not answer the submission ({_kind(error)}); it may have started it."
        )
    return ProviderError(f"{label} did not answer ({_kind(error)}).", permanent=False)


@contextmanager
def send_streaming(label: str, base_url: str, method: str, path: str, **kwargs):
    """Like send(), but the body is read by the caller (a video answer). Its latency is the
    time until the answer's headers."""
    started, answered = time.perf_counter(), False
    try:
        with client(base_url).stream(method, path, **kwargs) as response:
            answered = True
            _observe(label, started, response.status_code)
            yield response
    except httpx.TransportError as error:
        if not answered:
            _observe(label, started, _error_status(error))
        raise _transport_failure(label, error, submit=False) from None


def save_body(response: httpx.Response, target, limit: int) -> int:
    """Stream an answer's body into an open file, refusing more than `limit` bytes."""
    written = 0
    for chunk in response.iter_bytes(256 * 1024):
        written += len(chunk)
        if written > limit:
            raise ProviderError(f"the video is larger than {limit} bytes", permanent=True)
        target.write(chunk)
    return written


@contextmanager
def stream(label: str, url: str, *, headers=None, timeout: float = 120.0):
    """Stream a GET (an output file), mapping transport failures like send()."""
    started, answered = time.perf_counter(), False
    try:
        with (
            httpx.Client(follow_redirects=True, timeout=timeout) as plain,
            plain.stream("GET", url, headers=headers or {}) as response,
        ):
            answered = True
            _observe(label, started, response.status_code)
            yield response
    except httpx.TransportError as error:
        if not answered:
            _observe(label, started, _error_status(error))
        if isinstance(error, (httpx.ConnectError, httpx.ConnectTimeout)):
            raise ProviderError(
                f"{label} could not be reached ({_kind(error)}).", permanent=False
            ) from None
        raise ProviderError(
            f"{label} broke off the download ({_kind(error)}).", permanent=False
        ) from None


def _kind(error: Exception) -> str:
    return {
        "ConnectError": "connection refused",
        "ConnectTimeout": "connection timed out",
        "ReadTimeout": "timed out",
        "WriteTimeout": "timed out while sending",
        "RemoteProtocolError": "connection closed",
        "ReadError": "connection broken",
    }.get(type(error).__name__, type(error).__name__)


def json_answer(response: httpx.Response):
    """The answer's JSON, or None when it is not JSON we can read."""
    if len(response.content) > MAX_ANSWER_BYTES:
        return None
    try:
        return json.loads(response.content)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None


def json_answer_streamed(response: httpx.Response):
    """json_answer() for a streamed response, reading at most MAX_ANSWER_BYTES."""
    body = bytearray()
    for chunk in response.iter_bytes(64 * 1024):
        body += chunk
        if len(body) > MAX_ANSWER_BYTES * 64:  # a base64 video: generous, still bounded
            return None
    try:
        return json.loads(bytes(body))
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None


def retry_after(response: httpx.Response, body=None) -> float | None:
    """The provider's wait hint: a Retry-After header (seconds) or a JSON `retry_after`."""
    candidates = [response.headers.get("retry-after")]
    if isinstance(body, dict):
        candidates.append(body.get("retry_after"))
    for value in candidates:
        try:
            seconds = float(value)
        except (TypeError, ValueError, OverflowError):
            continue
        if math.isfinite(seconds) and seconds >= 0:
            return min(seconds, MAX_RETRY_AFTER)
    return None


def busy_or_broken(label: str, response: httpx.Response, body=None) -> ProviderError | None:
    """The answers every provider means the same by: 429 (wait, with its hint) and 5xx."""
    code = response.status_code
    if code == 429:
        return ProviderError(
            f"{label} is rate limiting us.",
            permanent=False,
            retry_after=retry_after(response, body) or 0.0,
        )
    if code >= 500:
        return ProviderError(f"{label} had an internal error ({code}).", permanent=False)
    return None


def scrub(value, secrets: tuple[str, ...] = (), *, depth: int = 0):
    """A provider answer safe to keep: no key fields, no secret anywhere, long strings cut, no
    NUL character (PostgreSQL's JSON type refuses it in any string)."""
    if depth > 8:
        return "…"
    if isinstance(value, dict):
        return {
            str(k)[:80].replace("\x00", ""): scrub(v, secrets, depth=depth + 1)
            for k, v in list(value.items())[:50]
            # Keys, and our own callback URL (its token): nothing a stored answer needs.
            if str(k).lower()
            not in ("key", "api_key", "apikey", "authorization", "token", "webhook", "webhookurl")
        }
    if isinstance(value, list):
        return [scrub(v, secrets, depth=depth + 1) for v in value[:20]]
    if isinstance(value, str):
        value = value.replace("\x00", "")
        for secret in secrets:
            if secret:
                value = value.replace(secret, "[key]")
        return value if len(value) <= 500 else value[:500] + "…"
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
