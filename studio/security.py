"""The Content-Security-Policy on every response: django-csp's middleware with the policy in
settings.CONTENT_SECURITY_POLICY, plus the one place a page shows media from elsewhere.

AKOOL's effects gallery on the new-video form plays each effect's preview from AKOOL's own
servers (studio/providers/akool_models.py). Those origins are allowed for images and media on
the page with the form (htmx swaps the gallery into it when AKOOL is chosen, so the form page's
policy is the one that counts) and on a response carrying the gallery itself, and only the
origins of the effects AKOOL listed: every other page keeps img-src and media-src to ourselves.
Scripts are never widened. The form page asks for the list as the gallery would (cached for an
hour, a failure remembered; no request at all while AKOOL has no credentials), so the origins
are known before the member switches to AKOOL.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from csp.constants import HEADER
from csp.middleware import CheckableLazyObject, PolicyParts
from csp.middleware import CSPMiddleware as BaseCSPMiddleware
from csp.utils import build_policy
from django.conf import settings

# templates/studio/job_new.html's form, templates/studio/_effects_gallery.html's fieldset.
GALLERY_PAGES = (b'id="new-job"', b'id="effects"')


def _origin(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.scheme in ("http", "https") and parts.netloc:
        return f"{parts.scheme}://{parts.netloc}"
    return None


def effect_preview_origins() -> list[str]:
    """The origins of AKOOL's listed effect previews."""
    from studio.providers import akool_models

    listed = akool_models.effects() or []
    origins = {
        _origin(effect.get(field) or "") for effect in listed for field in ("logo", "video_url")
    }
    return sorted(origin for origin in origins if origin)


def _shows_effects(response) -> bool:
    if getattr(response, "streaming", False):
        return False
    if not response.get("Content-Type", "").startswith("text/html"):
        return False
    return any(mark in response.content for mark in GALLERY_PAGES)


# What a view or decorator can set on a response to change its policy (django-csp).
PER_RESPONSE = tuple(
    f"_csp_{what}{suffix}"
    for what in ("config", "update", "replace", "exempt")
    for suffix in ("", "_ro")
)
_built: dict[str, str] = {}


def settings_policy() -> str:
    """The policy of the settings, built once per configuration rather than on every response."""
    key = repr(settings.CONTENT_SECURITY_POLICY)
    if key not in _built:
        _built[key] = build_policy()
    return _built[key]


class CSPMiddleware(BaseCSPMiddleware):
    def process_response(self, request, response):
        """Nearly every response carries the settings' policy as it is: give it the header built
        once (django-csp rebuilds it on every response, a tenth of a polled partial's cost).
        Anything else — a nonce used, a per-response change, the effects gallery, a report-only
        policy, excluded paths, DEBUG's error pages — goes through django-csp itself."""
        plain = (
            getattr(request, "_csp_nonce", None) is None
            and not any(hasattr(response, name) for name in PER_RESPONSE)
            and HEADER not in response
            and not getattr(settings, "CONTENT_SECURITY_POLICY_REPORT_ONLY", None)
            and not settings.CONTENT_SECURITY_POLICY.get("EXCLUDE_URL_PREFIXES")
            and not (settings.DEBUG and response.status_code in (404, 500))
            and not _shows_effects(response)
        )
        if not plain:
            return super().process_response(request, response)
        response[HEADER] = settings_policy()
        request.csp_nonce = CheckableLazyObject(self._csp_nonce_post_response)
        return response

    def get_policy_parts(self, request, response, report_only: bool = False) -> PolicyParts:
        parts = super().get_policy_parts(request, response, report_only)
        if _shows_effects(response):
            origins = effect_preview_origins()
            if origins:
                update = dict(parts.update or {})
                for directive in ("img-src", "media-src"):
                    update[directive] = [*update.get(directive, []), *origins]
                parts.update = update
        return parts
