"""Every API error in one shape, `{"error": {"code", "message", "field"?}}`, mapped from domain
errors in this one place."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.http import Http404
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError


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

    @api.exception_handler(PermissionDenied)
    def forbidden(request, exc):
        return answer(request, 403, "forbidden", str(exc) or "Not allowed with this token.")

    @api.exception_handler(Http404)
    def not_found(request, exc):
        return answer(request, 404, "not_found", "No such object.")

    @api.exception_handler(ValidationError)
    def invalid(request, exc):
        first = exc.errors[0] if exc.errors else {}
        location = [str(part) for part in first.get("loc", ()) if part not in ("body", "query")]
        return answer(
            request,
            422,
            "invalid",
            first.get("msg", "Invalid request."),
            ".".join(location) or None,
        )

    @api.exception_handler(HttpError)
    def http_error(request, exc):
        return answer(request, exc.status_code, "error", str(exc))
