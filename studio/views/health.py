"""/healthz, /readyz and /metrics: for load balancers and Prometheus, not for people.

They are answered by HealthEndpointsMiddleware, first in MIDDLEWARE, before the HTTPS redirect,
the Host check (a load balancer may ask by IP address), sessions and CSRF: nothing here reads a
session, a user or the Host header, and no answer holds a URL. Anonymous callers learn only
"ok" or "not ready"; a caller with the metrics token also gets each readiness check's result.
"""

from django.http import HttpResponse, JsonResponse

from studio import health, metrics

PLAIN = "text/plain; charset=utf-8"


def _plain(text: str, status: int = 200) -> HttpResponse:
    response = HttpResponse(text, content_type=PLAIN, status=status)
    response["Cache-Control"] = "no-store"
    response["X-Content-Type-Options"] = "nosniff"
    return response


def healthz(request):
    """The process answers: no database, no cache, nothing else."""
    return _plain("ok")


def readyz(request):
    report = health.run_checks()
    status = 200 if report.ok else 503
    if metrics.token_matches(request):
        response = JsonResponse(report.as_dict(), status=status)
        response["Cache-Control"] = "no-store"
    else:
        response = _plain("ok" if report.ok else "not ready", status)
    # studio.health logs why (once, then every minute); Django would log an ERROR for every
    # probe, which error reporting would turn into one event every few seconds.
    response._has_been_logged = True
    return response


def metrics_view(request):
    if not metrics.may_scrape(request):  # off, or not allowed: nothing is here
        return _plain("Not Found", 404)
    from prometheus_client import CONTENT_TYPE_LATEST

    body, _seconds = metrics.render()
    response = HttpResponse(body, content_type=CONTENT_TYPE_LATEST)
    response["Cache-Control"] = "no-store"
    return response


ENDPOINTS = {"/healthz": healthz, "/readyz": readyz, "/metrics": metrics_view}


class HealthEndpointsMiddleware:
    """Answer the three endpoints before any other middleware (see the module's docstring)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        view = ENDPOINTS.get(request.path_info)
        if view is not None and request.method in ("GET", "HEAD"):
            return view(request)
        return self.get_response(request)
