from django.contrib import admin
from django.urls import include, path

from project.api import api
from studio.api.files import api_file

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("api/v1/files/<str:token>/<str:kind>/", api_file, name="api_file"),
    path("api/v1/", api.urls),
    path("", include("studio.urls")),
]
