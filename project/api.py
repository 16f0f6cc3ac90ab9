"""The REST API's one NinjaAPI instance, at /api/v1/; each area adds its own router."""

from ninja import NinjaAPI

from studio.api import errors, providers, team
from studio.api.auth import TeamToken

api = NinjaAPI(title="Studio API", version="1", urls_namespace="api", auth=TeamToken())
errors.install(api)
api.add_router("/team", team.router)
api.add_router("/providers", providers.router)


@api.get("/health", auth=None, summary="Liveness check")
def health(request):
    return {"status": "ok"}
