"""GET /api/v1/providers: every provider with its models' parameters as JSON schema (the same
declarations as the form), availability with the reason, and the price rows that apply."""

import pytest

from studio.api.tokens import create_token

pytestmark = pytest.mark.django_db


@pytest.fixture
def token(personas):
    return create_token(personas.membership(personas.viewer), "catalogue", "read")[1]


def fetch(client, token):
    answer = client.get("/api/v1/providers", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert answer.status_code == 200, answer.content
    return {p["key"]: p for p in answer.json()}


def test_parameters_come_from_the_form_declarations(client, token):
    providers = fetch(client, token)
    (svd,) = providers["stability"]["models"]
    motion = svd["parameters"]["properties"]["motion_bucket_id"]
    assert (motion["type"], motion["minimum"], motion["maximum"], motion["default"]) == (
        "integer",
        1,
        255,
        127,
    )
    kling = providers["aimlapi"]["models"][0]["parameters"]["properties"]
    assert kling["duration"]["enum"] == ["5", "10"]
    ultra = next(m for m in providers["modelslab"]["models"] if m["key"] == "img2video_ultra")
    assert "prompt" in ultra["parameters"]["required"]


def test_availability_names_the_missing_setting(client, token, settings):
    settings.STABILITY_API_KEY = ""
    settings.AIML_API_KEY = "aiml-key"
    providers = fetch(client, token)
    assert providers["stability"]["available"] is False
    assert "STABILITY_API_KEY" in providers["stability"]["unavailable_reason"]
    assert providers["aimlapi"]["available"] is True and providers["local"]["available"]


def test_the_price_rows_that_apply_are_listed(client, token):
    providers = fetch(client, token)
    akool = {m["key"]: m for m in providers["akool"]["models"]}
    assert "add-audio" not in akool  # made from a finished video's page, not offered here
    rows = akool["image2video"]["prices"]
    assert {
        "resolution": "720p",
        "duration": 5,
        "audio": None,
        "per_video": 20,
        "per_second": 0,
    } in rows
    assert {
        "resolution": None,
        "duration": 10,
        "audio": True,
        "per_video": 10,
        "per_second": 0,
    } in rows
    (kling,) = providers["aimlapi"]["models"][0]["prices"]
    assert kling["per_second"] == 6


def test_the_catalogue_costs_a_fixed_number_of_queries(
    client, token, django_assert_max_num_queries
):
    with django_assert_max_num_queries(6):
        fetch(client, token)
