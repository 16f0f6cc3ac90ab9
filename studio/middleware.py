from django.conf import settings
from django.shortcuts import render

from studio.uploads import UploadRefused, check_request_size

DRAIN_CHUNK = 64 * 1024


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
            context = {"message": str(refusal), "back": request.headers.get("Referer", "/")}
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
