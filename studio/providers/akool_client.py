"""Talking to AKOOL (providers.md §5): its credentials and its envelope.

Credentials: `x-api-key` when AKOOL_API_KEY is set; otherwise a Bearer token from getToken with
the client id and secret, kept for the process and renewed once when AKOOL calls it invalid or
expired. Every answer is HTTP 200 `{code, msg, data}` and the business code says what happened:
`call` returns a successful envelope or raises the code as a ProviderError a member can read."""

from __future__ import annotations

import logging
import threading
from urllib.parse import urlsplit

from django.conf import settings

from studio.providers import http
from studio.providers.base import OutcomeUnknown, ProviderError

log = logging.getLogger(__name__)
LABEL = "AKOOL"

OK = 1000
BAD_PARAMETER = 1003
NOT_FOUND = 1008
NO_PERMISSION = 1009
CREATE_FAILED = 1015
INVALID_TOKEN = 1101
AUTH_MISSING = 1102
TOKEN_EXPIRED = 1109
BANNED = 1200
RENEWABLE = (INVALID_TOKEN, TOKEN_EXPIRED)
STAFF_TOLD = "staff have been told. Your credits were returned."


def said(value, limit: int = 200) -> str:
    """Something AKOOL wrote, safe to show: printable and short."""
    text = "".join(ch for ch in str(value or "") if ch.isprintable()).strip()
    return text[:limit] or "no reason given"


def refusal(code: int, msg) -> ProviderError:
    """What a business code means for the job (providers.md §5)."""
    reason = said(msg)
    if code == BAD_PARAMETER:
        return ProviderError(f"{LABEL} refused the request: {reason}", permanent=True)
    if code == NOT_FOUND:
        return ProviderError(
            f"{LABEL} could not find the video this job refers to: {reason}", permanent=True
        )
    if code == NO_PERMISSION:
        return ProviderError(
            f"{LABEL}'s plan does not allow this (10 s videos and the premium model need a pro "
            f"plan or above): {reason}",
            permanent=True,
        )
    if code == CREATE_FAILED:  # documented as "try again later"
        return ProviderError(
            f"{LABEL} could not start the video just now: {reason}", permanent=False
        )
    staff = {
        INVALID_TOKEN: "refused our credentials",
        TOKEN_EXPIRED: "refused our credentials",
        AUTH_MISSING: "received a request without credentials",
        BANNED: "has banned our account",
    }
    if code in staff:
        log.error("%s answered %s (%s): staff must check the account", LABEL, code, reason)
        return ProviderError(f"{LABEL} {staff[code]} (code {code}); {STAFF_TOLD}", permanent=True)
    log.error("%s answered an undocumented code %s (%s)", LABEL, code, reason)
    return ProviderError(f"{LABEL} answered code {code}: {reason}", permanent=True)


def credentials_problem() -> str:
    """Which settings are missing before any call can be made ("" when none are)."""
    if settings.AKOOL_API_KEY:
        return ""
    names = ("AKOOL_CLIENT_ID", "AKOOL_CLIENT_SECRET")
    missing = [name for name in names if not getattr(settings, name)]
    if len(missing) == 2:
        return (
            "No AKOOL credentials are configured (AKOOL_API_KEY, or AKOOL_CLIENT_ID and "
            "AKOOL_CLIENT_SECRET)."
        )
    if missing:
        return f"AKOOL is half configured: {missing[0]} is missing (or set AKOOL_API_KEY)."
    return ""


class _Tokens:
    """The getToken token of the configured client, shared by every engine thread. The lock is
    held while fetching, so threads that find it missing wait for one getToken, not one each."""

    def __init__(self):
        self._lock = threading.Lock()
        self._whose: tuple = ()
        self._token = ""

    def get(self) -> str:
        whose = (settings.AKOOL_TOKEN_URL, settings.AKOOL_CLIENT_ID, settings.AKOOL_CLIENT_SECRET)
        with self._lock:
            if not self._token or self._whose != whose:
                self._token, self._whose = _fetch_token(), whose
            return self._token

    def drop(self, stale: str) -> None:
        """Forget a token AKOOL refused, unless another thread has already replaced it."""
        with self._lock:
            if self._token == stale:
                self._token = ""


TOKENS = _Tokens()


def _fetch_token() -> str:
    parts = urlsplit(settings.AKOOL_TOKEN_URL)
    # The token URL is a full endpoint: the pooled client's base URL would add a slash to it.
    origin, path = f"{parts.scheme}://{parts.netloc}", parts.path
    credentials = {
        "clientId": settings.AKOOL_CLIENT_ID,
        "clientSecret": settings.AKOOL_CLIENT_SECRET,
    }
    response = http.send(LABEL, origin, "POST", path, json=credentials)
    body = http.json_answer(response)
    if error := http.busy_or_broken(LABEL, response, body):
        raise error
    if response.status_code == 200 and not isinstance(body, dict):
        raise ProviderError(
            f"{LABEL} answered getToken with something unreadable.", permanent=False
        )
    code = body.get("code") if isinstance(body, dict) else None
    token = body.get("token") if isinstance(body, dict) else None
    if response.status_code == 200 and code == OK and _header_safe(token):
        return token
    what = f"code {code}" if code is not None else f"HTTP {response.status_code}"
    detail = said(body.get("msg")) if isinstance(body, dict) else what
    log.error("%s getToken refused our client id and secret: %s (%s)", LABEL, what, detail)
    raise ProviderError(
        f"{LABEL} refused our client id and secret ({what}); {STAFF_TOLD}", permanent=True
    )


def _header_safe(token) -> bool:
    return (
        isinstance(token, str)
        and 0 < len(token) <= 4096
        and token.isascii()
        and token.isprintable()
    )


def _credentials() -> tuple[dict, str]:
    """The headers of a request, and the token among them ("" for x-api-key)."""
    if settings.AKOOL_API_KEY:
        return {"x-api-key": settings.AKOOL_API_KEY}, ""
    token = TOKENS.get()
    return {"authorization": f"Bearer {token}"}, token


def call(method: str, path: str, *, submit: bool = False, json=None) -> dict:
    """One request to AKOOL's API; its envelope when the code is 1000. A token AKOOL calls
    invalid or expired is renewed once and the request sent again (an auth refusal started
    nothing, so even a create may be repeated). For a submission, an answer we cannot read is
    OutcomeUnknown: AKOOL may have started (and charged for) it."""
    body, token = _send(method, path, submit=submit, json=json)
    if body["code"] in RENEWABLE and token:
        log.info("%s refused its token (%s): renewing it once", LABEL, body["code"])
        TOKENS.drop(token)
        body, _ = _send(method, path, submit=submit, json=json)
    if body["code"] != OK:
        raise refusal(body["code"], body.get("msg"))
    return body


def _send(method: str, path: str, *, submit: bool, json) -> tuple[dict, str]:
    """An envelope with an integer code, and the token the request carried."""
    headers, token = _credentials()
    response = http.send(
        LABEL, settings.AKOOL_BASE_URL, method, path, submit=submit, headers=headers, json=json
    )
    body = http.json_answer(response)
    if error := http.busy_or_broken(LABEL, response, body):
        raise error
    if response.status_code != 200:  # AKOOL answers everything with 200: this is not its API
        log.error("%s answered HTTP %s for %s", LABEL, response.status_code, path)
        raise ProviderError(
            f"{LABEL} answered HTTP {response.status_code}; {STAFF_TOLD}", permanent=True
        )
    if not isinstance(body, dict) or type(body.get("code")) is not int:
        if submit:
            raise OutcomeUnknown(
                f"{LABEL} answered the submission with something we could not read; it may "
                "have started it."
            )
        raise ProviderError(f"{LABEL} answered something we could not read.", permanent=False)
    return body, token
