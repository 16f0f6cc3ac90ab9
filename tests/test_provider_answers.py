"""The providers' documented answers (captured from the seeds' examples, in tests/captures/),
replayed through each adapter's parser: what a member and the engine get from each."""

import json
from pathlib import Path

import httpx
import pytest

from studio.models import Job
from studio.providers.base import ProviderError
from studio.providers.modelslab import ModelsLab
from studio.providers.stability import Stability

CAPTURES = Path(__file__).parent / "captures"
JOB = Job(model="img2video")


def answer(provider: str, name: str, status: int = 200, **headers) -> tuple[httpx.Response, dict]:
    body = (CAPTURES / provider / f"{name}.json").read_bytes()
    response = httpx.Response(status, content=body, headers=headers)
    return response, json.loads(body)


@pytest.mark.parametrize(
    ("name", "fmt", "url_end"),
    [("img2video_success", "gif", "f4fa45664404.gif"), ("ultra_success", "mp4", "a0efa.mp4")],
)
def test_a_modelslab_success_gives_the_first_output_and_its_format(name, fmt, url_end):
    response, body = answer("modelslab", name)
    status = ModelsLab()._status(response, body, job=JOB)
    assert status.state == "succeeded" and status.output_format == fmt
    assert status.output_url.endswith(url_end.replace("a0efa", "cc27b8f2efa0"))
    assert "future_links" not in status.output_url  # the video is output[0], never future_links


def test_a_modelslab_processing_answer_carries_its_eta():
    status = ModelsLab()._status(*answer("modelslab", "processing"), job=JOB)
    assert status.state == "running" and status.eta_seconds == 146


@pytest.mark.parametrize(
    ("name", "words"),
    [("error_messege", "could not download"), ("error_message", "out of memory")],
)
def test_a_modelslab_error_is_read_in_both_spellings(name, words):
    status = ModelsLab()._status(*answer("modelslab", name), job=JOB)
    assert status.state == "failed" and words in status.message


def test_a_modelslab_429_is_transient_with_its_retry_hint():
    error = ModelsLab()._status(*answer("modelslab", "rate_limited", 429), job=JOB)
    assert isinstance(error, ProviderError) and not error.permanent and error.retry_after == 30


def test_stored_answers_never_keep_the_key(settings):
    settings.MODELSLAB_API_KEY = "secret-key-123"
    body = {
        "status": "processing",
        "id": 1,
        "key": "secret-key-123",
        "meta": {"x": "secret-key-123"},
    }
    status = ModelsLab()._status(httpx.Response(200, json=body), body, job=JOB)
    assert "secret-key-123" not in json.dumps(status.answer)


@pytest.mark.parametrize(
    ("name", "status", "permanent", "words"),
    [
        ("moderation_403", 403, True, "content moderation"),
        ("invalid_400", 400, True, "image dimensions must be one of"),
    ],
)
def test_stability_errors_say_what_a_member_can_act_on(name, status, permanent, words):
    response, body = answer("stability", name, status)
    error = Stability()._error(response, body)
    assert error.permanent is permanent and words in str(error)


def test_a_stability_429_pauses_with_its_retry_after():
    error = Stability()._error(httpx.Response(429, headers={"retry-after": "12"}), None)
    assert not error.permanent and error.retry_after == 12


def test_the_documented_stability_generation_id_is_accepted():
    from studio.providers.stability import GENERATION_ID

    assert GENERATION_ID.match(answer("stability", "submit")[1]["id"])
