"""The REST API's one NinjaAPI instance, at /api/v1/; each area adds its own router. Its docs
and schema are for signed-in people (the assets are vendored by django-ninja, no CDN)."""

from django.contrib.auth.decorators import login_required
from ninja import NinjaAPI

from studio.api import credits, errors, images, jobs, providers, team, webhooks
from studio.api.auth import TeamToken

api = NinjaAPI(
    title="Studio API",
    version="1",
    description="Turn still images into short videos. Authenticate with "
    "`Authorization: Bearer <token>` (make a token on your team's settings page).",
    urls_namespace="api",
    auth=TeamToken(),
    docs_decorator=login_required,
)
errors.install(api)
api.add_router("/team", team.router)
api.add_router("/providers", providers.router)
api.add_router("/quote", credits.quotes)
api.add_router("/credits", credits.router)
api.add_router("/images", images.router)
api.add_router("/jobs", jobs.router)
api.add_router("/webhooks", webhooks.router)


@api.get("/health", auth=None, summary="Liveness check")
def health(request):
    return {"status": "ok"}
