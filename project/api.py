"""The REST API's one NinjaAPI instance; each area adds its own router."""

from ninja import NinjaAPI

api = NinjaAPI(title="Studio API", version="1", urls_namespace="api")


@api.get("/health", auth=None, summary="Liveness check")
def health(request):
    return {"status": "ok"}
