"""Every API error in one shape, `{"error": {"code", "message", "field"?}}`, mapped from domain
errors in this one place."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import Http404
from ninja import NinjaAPI, Schema
from ninja.errors import AuthenticationError, HttpError, ValidationError

from studio.api.idempotency import KeyRefused
from studio.api.job_requests import BadRequest
from studio.api.pages import BadCursor
from studio.api.throttle import RateLimited
from studio.jobs.deletion import DeleteRefused
from studio.jobs.submit import JobRefused, StorageUnavailable
from studio.outbound.endpoints import EndpointRefused
from studio.public_urls import UrlRefused

# Refusals for money are 402 (the request was fine; the team cannot pay for it now).
CREDIT_FIELDS = {"credits"}


class ErrorDetail(Schema):
    code: str
    message: str
    field: str | None = None


class ErrorOut(Schema):
    error: ErrorDetail


def error_body(code: str, message: str, field: str | None = None) -> dict:
    error = {"code": code, "message": message}
    if field:
        error["field"] = field
    return {"error": error}


def install(api: NinjaAPI) -> None:
    def answer(request, status: int, code: str, message: str, field: str | None = None):
        return api.create_response(request, error_body(code, message, field), status=status)

    @api.exception_handler(AuthenticationError)
    def unauthenticated(request, exc):
        response = answer(request, 401, "unauthenticated", "Send a valid API token as Bearer.")
        response["WWW-Authenticate"] = "Bearer"
        return response

    @api.exception_handler(RateLimited)
    def rate_limited(request, exc):
        response = answer(request, 429, "rate_limited", f"{exc} Retry after {exc.retry_after} s.")
        response["Retry-After"] = str(exc.retry_after)
        return response

    @api.exception_handler(PermissionDenied)
    def forbidden(request, exc):
        return answer(request, 403, "forbidden", str(exc) or "Not allowed with this token.")

    @api.exception_handler(Http404)
    def not_found(request, exc):
        return answer(request, 404, "not_found", "No such object.")

    @api.exception_handler(ValidationError)
    def invalid(request, exc):
        first = exc.errors[0] if exc.errors else {}
        location = [
            str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path")
        ]
        return answer(
            request,
            422,
            "invalid",
            first.get("msg", "Invalid request."),
            ".".join(location) or None,
        )

    def refusal(request, exc, status: int = 422, code: str = "invalid"):
        """A refusal that maps fields to messages: the first field named, every message said."""
        field = next(iter(exc.errors), None)
        message = " ".join(m for messages in exc.errors.values() for m in messages)
        return answer(request, status, code, message, field)

    @api.exception_handler(JobRefused)
    def refused(request, exc):
        if isinstance(exc, StorageUnavailable):  # ours and passing: the client may retry
            return refusal(request, exc, 503, "storage_unavailable")
        if CREDIT_FIELDS & set(exc.errors):
            return refusal(request, exc, 402, "insufficient_credits")
        return refusal(request, exc)

    @api.exception_handler(EndpointRefused)
    def endpoint_refused(request, exc):
        return refusal(request, exc)

    @api.exception_handler(UrlRefused)
    def url_refused(request, exc):
        return answer(request, 422, "image_url_refused", str(exc), "image_url")

    @api.exception_handler(BadRequest)
    def bad_request(request, exc):
        return answer(request, exc.status, exc.code, exc.message, exc.field)

    @api.exception_handler(KeyRefused)
    def key_refused(request, exc):
        return answer(request, exc.status, exc.code, exc.message, "Idempotency-Key")

    @api.exception_handler(BadCursor)
    def bad_cursor(request, exc):
        return answer(request, 422, "invalid", str(exc), "cursor")

    @api.exception_handler(DeleteRefused)
    def conflict(request, exc):
        return answer(request, 409, "conflict", str(exc))

    @api.exception_handler(HttpError)
    def http_error(request, exc):
        codes = {403: "forbidden", 409: "conflict"}
        return answer(request, exc.status_code, codes.get(exc.status_code, "error"), str(exc))


# What any operation may answer besides its success, all in the error shape.
ERROR_STATUSES = frozenset({400, 401, 402, 403, 404, 409, 413, 415, 422, 429, 503})


def answers(status: int, schema) -> dict:
    """An operation's documented answers: its success, and the error shape for the rest."""
    return {status: schema, ERROR_STATUSES: ErrorOut}
