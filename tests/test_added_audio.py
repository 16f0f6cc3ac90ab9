"""Which finished videos can take an added audio track (studio.jobs.derived), and that a model
made only from a finished video cannot be asked for on the new-job form."""

import pytest

from studio.jobs import derived
from studio.jobs.submit import JobRefused, submit_job
from studio.models import JobState
from tests.factories import make_job
from tests.providers import AKOOL_CLIENT_ID, AKOOL_CLIENT_SECRET

pytestmark = pytest.mark.django_db
VIDEO = {"resolution": "720p", "video_length": "5", "audio_type": "none", "prompt": "a cat"}


@pytest.fixture(autouse=True)
def akool_configured(settings):
    settings.AKOOL_CLIENT_ID, settings.AKOOL_CLIENT_SECRET = AKOOL_CLIENT_ID, AKOOL_CLIENT_SECRET


def akool_video(personas, state="succeeded", **fields):
    return make_job(
        personas.team,
        personas.member,
        state=state,
        provider="akool",
        model="image2video",
        params=dict(VIDEO),
        provider_job_id="a" * 24,
        **fields,
    )


def refusal(personas, source, data=None):
    with pytest.raises(JobRefused) as refused:
        derived.add_audio(
            personas.membership(personas.member), source, data or {"audio_type": "ai"}
        )
    return " ".join(refused.value.errors["source"])


def test_a_finished_akool_video_is_priced_from_the_audio_rows(personas):
    assert derived.audio_price(akool_video(personas)).amount == 5


def test_only_finished_kept_akool_videos_take_audio(personas):
    local = make_job(personas.team, personas.member, state="succeeded")
    assert "only to videos AKOOL made" in refusal(personas, local)
    assert derived.audio_price(local) is None
    assert "once the video is finished" in refusal(personas, akool_video(personas, "running"))
    deleted = akool_video(personas)
    deleted.deleted_at = deleted.finished_at
    assert "was deleted" in refusal(personas, deleted)


def test_audio_is_not_added_twice_at_once(personas):
    source = akool_video(personas)
    first = derived.add_audio(personas.membership(personas.member), source, {"audio_type": "ai"})
    assert first.source_job == source and first.state == JobState.QUEUED
    assert "already being added" in refusal(personas, source)


def test_the_new_job_form_cannot_ask_for_added_audio(personas, image_upload):
    with pytest.raises(JobRefused) as refused:
        submit_job(
            personas.membership(personas.member),
            image_upload(),
            "akool",
            {"model": "add-audio", "audio_type": "ai", "video_length": "5"},
        )
    assert "made from a finished video's page" in " ".join(refused.value.errors["model"])
