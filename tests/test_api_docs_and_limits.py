"""The API's docs and schema are served by us to signed-in people, with no asset from a CDN;
each token is held to its requests per minute with 429 and Retry-After."""

import re

import pytest

from studio.api import throttle
from studio.api.tokens import create_token

pytestmark = pytest.mark.django_db


def test_docs_need_a_sign_in_and_load_only_our_own_assets(client, personas, client_for):
    assert client.get("/api/v1/docs").status_code == 302
    assert client.get("/api/v1/openapi.json").status_code == 302
    page = client_for(personas.viewer).get("/api/v1/docs").content.decode()
    sources = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert sources and all(s.startswith("/static/") for s in sources), sources
    schema = client.get("/api/v1/openapi.json").json()
    assert "/api/v1/jobs" in schema["paths"]


def test_a_token_over_its_rate_gets_429_with_retry_after(client, personas, settings):
    settings.API_RATE_LIMIT_PER_MINUTE = 3
    raw = create_token(personas.membership(personas.member), "t", "read")[1]
    other = create_token(personas.membership(personas.owner), "t", "read")[1]
    codes = [
        client.get("/api/v1/team", HTTP_AUTHORIZATION=f"Bearer {raw}").status_code for _ in range(4)
    ]
    assert codes == [200, 200, 200, 429]
    limited = client.get("/api/v1/team", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert limited.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(limited["Retry-After"]) <= 61
    # Another token has its own count.
    assert client.get("/api/v1/team", HTTP_AUTHORIZATION=f"Bearer {other}").status_code == 200


def test_the_count_starts_again_with_the_next_minute(settings):
    settings.API_RATE_LIMIT_PER_MINUTE = 1
    throttle.count_request(7, now=120.0)
    with pytest.raises(throttle.RateLimited) as limited:
        throttle.count_request(7, now=150.0)
    assert limited.value.retry_after == 31
    throttle.count_request(7, now=180.0)
