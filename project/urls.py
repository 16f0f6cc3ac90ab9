from allauth.account.decorators import secure_admin_login
from django.contrib import admin
from django.urls import include, path

from project.api import api
from studio.api.files import api_file
from studio.views import health

# The admin signs in through the site's login, which is throttled (allauth's rate limits); its own
# form would let anyone try passwords without limit.
admin.site.login = secure_admin_login(admin.site.login)

urlpatterns = [
    # Answered by HealthEndpointsMiddleware before the rest; named here for reverse() and docs.
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("metrics", health.metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("api/v1/files/<str:token>/<str:kind>/", api_file, name="api_file"),
    path("api/v1/", api.urls),
    path("", include("studio.urls")),
]
