from django.conf import settings
from django.http import JsonResponse
from django.shortcuts import render
from django.utils.http import url_has_allowed_host_and_scheme

from studio.uploads import UploadRefused, check_request_size

DRAIN_CHUNK = 64 * 1024


def same_site_referer(request) -> str:
    """Where "Go back" may lead: the page the request came from if it is one of ours, else home
    (a Referer is whatever the client sent)."""
    referer = request.headers.get("Referer", "")
    ours = url_has_allowed_host_and_scheme(
        referer, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return referer if referer and ours else "/"


class UploadSizeLimitMiddleware:
    """Refuse an oversized request from its Content-Length before anything parses it.

    It must sit before the CSRF middleware, which reads request.POST and would otherwise spool the
    whole upload to disk first. A moderately oversized body is read and thrown away (never stored)
    so the browser sees our page instead of a reset connection; a huge one is not read at all.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            check_request_size(request.META.get("CONTENT_LENGTH"))
        except UploadRefused as refusal:
            self._drain(request)
            if request.path.startswith("/api/"):  # the API's one error shape, not a page
                from studio.api.errors import error_body

                body = error_body("too_large", str(refusal), "image")
                return JsonResponse(body, status=413)
            context = {"message": str(refusal), "back": same_site_referer(request)}
            return render(request, "studio/upload_too_large.html", context, status=413)
        return self.get_response(request)

    @staticmethod
    def _drain(request) -> None:
        remaining = int(request.META["CONTENT_LENGTH"])
        if remaining > 4 * settings.MAX_UPLOAD_BYTES:
            return
        stream = request.META.get("wsgi.input")
        while stream is not None and remaining > 0:
            chunk = stream.read(min(DRAIN_CHUNK, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
