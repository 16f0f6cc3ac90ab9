"""bench/api.py's URLconf: the product's URLs plus /bench/trivial/, the yardstick the API's
figures are divided by (the same middleware; no database, no template). Run directly (as bin/bench
does for every bench/*.py) it only says what it is."""

from django.http import HttpResponse
from django.urls import include, path


def trivial(request):
    return HttpResponse("ok", content_type="text/plain")


if __name__ == "__main__":
    print("bench/api_urls.py: the URLconf of bench/api.py; nothing to measure here")
else:
    urlpatterns = [path("bench/trivial/", trivial), path("", include("project.urls"))]
