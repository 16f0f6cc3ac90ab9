"""The job flow through the pages: submit, render on the (inline) worker, watch, play, download."""

import av
import pytest

from studio.jobs.states import transition
from studio.models import Job, JobState
from tests.conftest import FAST_PARAMS
from tests.factories import make_job


@pytest.fixture
def submit(personas, client_for, image_upload, django_capture_on_commit_callbacks):
    def go(user=None, **params):
        client = client_for(user or personas.member)
        with django_capture_on_commit_callbacks(execute=True):
            response = client.post(
                f"/t/{personas.team.slug}/jobs/new/",
                {"image": image_upload("JPEG"), "provider": "local", **FAST_PARAMS, **params},
            )
        return client, response

    return go


def test_a_member_submits_an_image_and_gets_a_playable_video(personas, submit, tmp_path):
    client, response = submit(duration=2, fps=12, resolution="480p", aspect="16:9")
    job = Job.objects.get()
    assert response.url == f"/t/{personas.team.slug}/jobs/{job.pk}/"
    assert job.state == JobState.SUCCEEDED, job.error
    assert (job.team, job.creator) == (personas.team, personas.member)
    assert (job.video_width, job.video_height, job.video_duration) == (854, 480, 2.0)
    assert job.input_image.name.endswith(".jpg") and "photo" not in job.input_image.name

    page = client.get(response.url).content.decode()
    assert "<video" in page and "Make another like this" in page

    video = client.get(f"{response.url}files/video/")
    assert video["Content-Type"] == "video/mp4"
    path = tmp_path / "got.mp4"
    path.write_bytes(b"".join(video.streaming_content))
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.codec_context.pix_fmt == "yuv420p"
        assert sum(1 for _ in container.decode(stream)) == 24


def test_the_video_supports_range_requests_for_seeking(personas, submit):
    client, response = submit()
    url = f"{response.url}files/video/"
    whole = b"".join(client.get(url).streaming_content)
    part = client.get(url, headers={"Range": "bytes=100-199"})
    assert part.status_code == 206
    assert part["Content-Range"] == f"bytes 100-199/{len(whole)}"
    assert b"".join(part.streaming_content) == whole[100:200]
    assert client.get(url, headers={"Range": f"bytes={len(whole)}-"}).status_code == 416
    download = client.get(url + "?download=1")
    assert download["Content-Disposition"].startswith("attachment;")


def test_the_status_partial_polls_while_active_and_stops_when_done(personas, client_for):
    client = client_for(personas.viewer)
    job = make_job(
        personas.team,
        personas.member,
        state=JobState.RUNNING,
        progress=40,
        last_response={"frames_done": 48, "frames_total": 120},
    )
    url = f"/t/{personas.team.slug}/jobs/{job.pk}/status/"
    active = client.get(url, headers={"HX-Request": "true"})
    body = active.content.decode()
    assert active.status_code == 200 and 'hx-trigger="every 2s"' in body
    assert 'value="40"' in body and "48 / 120 frames" in body
    transition(job, JobState.RUNNING, JobState.FAILED, error="The image was refused.")
    done = client.get(url, headers={"HX-Request": "true"})
    assert done.status_code == 286
    assert (
        "hx-trigger" not in done.content.decode()
        and "The image was refused." in done.content.decode()
    )


def test_make_another_like_this_prefills_the_form(personas, client_for):
    job = make_job(
        personas.team,
        personas.member,
        state=JobState.SUCCEEDED,
        params={**FAST_PARAMS, "motion": "pan_left", "fps": 17},
    )
    page = (
        client_for(personas.member)
        .get(f"/t/{personas.team.slug}/jobs/new/?from={job.pk}")
        .content.decode()
    )
    assert '<option value="pan_left" selected>' in page
    assert 'value="17"' in page


def test_the_creator_can_cancel_a_queued_job_but_not_a_running_remote_one(personas, client_for):
    queued = make_job(personas.team, personas.member)
    # A provider already making (and charging for) it; a running local render can be canceled.
    running = make_job(personas.team, personas.member, state=JobState.RUNNING, provider="stability")
    client = client_for(personas.member)
    client.post(f"/t/{personas.team.slug}/jobs/{queued.pk}/cancel/")
    response = client.post(f"/t/{personas.team.slug}/jobs/{running.pk}/cancel/", follow=True)
    assert "can no longer be canceled" in response.content.decode()
    queued.refresh_from_db(), running.refresh_from_db()
    assert queued.state == JobState.CANCELED and running.state == JobState.RUNNING


def test_another_member_cannot_cancel_someone_elses_job_but_an_admin_can(personas, client_for):
    job = make_job(personas.team, personas.owner)
    client_for(personas.member).post(f"/t/{personas.team.slug}/jobs/{job.pk}/cancel/")
    assert Job.objects.get(pk=job.pk).state == JobState.QUEUED
    client_for(personas.owner).post(f"/t/{personas.team.slug}/jobs/{job.pk}/cancel/")
    assert Job.objects.get(pk=job.pk).state == JobState.CANCELED


def test_the_gallery_filters_by_member_and_state_and_pages(personas, client_for):
    for _ in range(14):
        make_job(personas.team, personas.member, state=JobState.SUCCEEDED, video="videos/x.mp4")
    make_job(personas.team, personas.owner, state=JobState.SUCCEEDED, video="videos/y.mp4")
    make_job(personas.team, personas.owner, state=JobState.FAILED)
    client = client_for(personas.viewer)
    url = f"/t/{personas.team.slug}/gallery/"
    first = client.get(url).content.decode()
    assert first.count('class="card"') == 12 and "Page 1 of 2" in first
    assert client.get(url + "?page=2").content.decode().count('class="card"') == 3
    mine = client.get(url, {"member": personas.owner.pk}).content.decode()
    assert mine.count('class="card"') == 1
    failed = client.get(url, {"state": "failed"}, headers={"HX-Request": "true"}).content.decode()
    assert failed.count('class="card"') == 1 and "<html" not in failed


def test_the_dashboard_polls_only_while_a_job_is_active(personas, client_for):
    client = client_for(personas.viewer)
    url = f"/t/{personas.team.slug}/"
    make_job(personas.team, personas.member, state=JobState.SUCCEEDED)
    assert "every 3s" not in client.get(url).content.decode()
    make_job(personas.team, personas.member, state=JobState.RUNNING)
    assert "every 3s" in client.get(url).content.decode()


def test_a_history_restore_gets_the_whole_page_not_a_fragment(personas, client_for):
    client = client_for(personas.viewer)
    url = f"/t/{personas.team.slug}/gallery/"
    restore = client.get(url, headers={"HX-Request": "true", "HX-History-Restore-Request": "true"})
    assert "<html" in restore.content.decode()
    assert "HX-Request" in restore["Vary"]
