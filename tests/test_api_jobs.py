"""The jobs API: create (multipart, JSON with an uploaded image), list with filters and cursors,
get, cancel, retry, delete; refusals in the one error shape, with nothing reserved."""

import pytest

from studio.api.tokens import create_token
from studio.models import ImageUpload, Job, JobState, LedgerEntry
from tests.conftest import FAST_PARAMS, make_image_bytes
from tests.factories import make_job

pytestmark = pytest.mark.django_db
JOBS = "/api/v1/jobs"


@pytest.fixture
def api(client, personas):
    """api(user, scope) → a function sending requests with that member's new token."""

    def for_user(user=None, scope="rw"):
        raw = create_token(personas.membership(user or personas.member), "t", scope)[1]

        def send(method, path, **kwargs):
            call = getattr(client, method)
            return call(path, HTTP_AUTHORIZATION=f"Bearer {raw}", **kwargs)

        return send

    return for_user


def local_form(**more):
    from django.core.files.uploadedfile import SimpleUploadedFile

    image = SimpleUploadedFile("p.png", make_image_bytes(), content_type="image/png")
    return {"provider": "local", "model": "camera-motion-v1", "image": image, **FAST_PARAMS, **more}


def test_a_member_creates_a_job_with_a_multipart_upload_and_reads_it_back(api, personas):
    send = api()
    answer = send("post", JOBS, data=local_form(strength=7))
    assert answer.status_code == 201, answer.content
    body = answer.json()
    job = Job.objects.get(pk=body["id"])
    assert (job.team, job.creator, job.state) == (personas.team, personas.member, "queued")
    assert body["params"]["strength"] == 7 and body["price_quoted"] == job.price_quoted > 0
    assert body["input_url"] and body["video"] is None and body["refunded"] is False
    assert LedgerEntry.objects.filter(job=job, kind="reserve").count() == 1
    again = send("get", f"{JOBS}/{job.pk}").json()
    from django.urls import reverse

    assert again["page_url"] == "http://localhost:8000" + reverse(
        "job_detail", args=[personas.team.slug, job.pk]
    )
    assert again["id"] == body["id"] and again["state"] == "queued"
    picture = send("get", again["input_url"].removeprefix("http://localhost:8000"))
    assert picture.status_code == 200 and b"".join(picture.streaming_content)[:4] == b"\x89PNG"


def test_json_with_an_uploaded_image_id(api, personas):
    send = api()
    from django.core.files.uploadedfile import SimpleUploadedFile

    image = SimpleUploadedFile("p.png", make_image_bytes(size=(800, 600)))
    uploaded = send("post", "/api/v1/images", data={"image": image})
    assert uploaded.status_code == 201, uploaded.content
    image_id = uploaded.json()["id"]
    assert uploaded.json()["width"] == 800
    body = {
        "provider": "local",
        "model": "camera-motion-v1",
        "params": FAST_PARAMS,
        "image_id": image_id,
    }
    first = send("post", JOBS, data=body, content_type="application/json")
    second = send("post", JOBS, data=body, content_type="application/json")
    assert first.status_code == second.status_code == 201
    jobs = Job.objects.filter(pk__in=[first.json()["id"], second.json()["id"]])
    assert {j.input_image.name for j in jobs} == {ImageUpload.objects.get().file.name}
    assert all(j.input_width == 800 for j in jobs)


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"provider": "local", "model": "camera-motion-v1"}, 422, "image"),
        ({"provider": "nope", "model": "x", "image_id": "x"}, 422, "provider"),
        (
            {
                "provider": "local",
                "model": "camera-motion-v1",
                "params": {"fps": 10**5000 if False else "9" * 5000},
                "image_id": "x",
            },
            422,
            "fps",
        ),
        (
            {
                "provider": "local",
                "model": "camera-motion-v1",
                "params": {"motion": "zoom\x00"},
                "image_id": "x",
            },
            422,
            "motion",
        ),
        ({"provider": "local", "model": "camera-motion-v1", "params": []}, 422, "params"),
    ],
)
def test_bad_input_names_the_field_and_reserves_nothing(api, personas, body, status, field):
    send = api()
    upload = send("post", "/api/v1/images", data={"image": local_form()["image"]}).json()
    if body.get("image_id") == "x":
        body["image_id"] = upload["id"]
    answer = send("post", JOBS, data=body, content_type="application/json")
    assert answer.status_code == status, answer.content
    assert answer.json()["error"]["field"] == field
    assert not Job.objects.exists() and not LedgerEntry.objects.filter(kind="reserve").exists()


def test_a_json_number_of_five_thousand_digits_is_a_clear_400(api):
    answer = api()(
        "post",
        JOBS,
        data='{"provider": "local", "fps": ' + "9" * 5000 + "}",
        content_type="application/json",
    )
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "invalid_json"


def test_credits_refusal_is_402_and_keeps_nothing(api, personas):
    from studio.billing import ledger

    ledger.adjust(personas.team, -1000, actor=None, reason="empty")
    answer = api()("post", JOBS, data=local_form())
    assert answer.status_code == 402, answer.content
    assert answer.json()["error"]["code"] == "insufficient_credits"
    assert not Job.objects.exists()


def test_read_tokens_and_viewers_cannot_create(api, personas):
    read = api(scope="read")("post", JOBS, data=local_form())
    assert read.status_code == 403 and "read-only" in read.json()["error"]["message"]
    viewer = api(personas.viewer, scope="read")("post", JOBS, data=local_form())
    assert viewer.status_code == 403
    assert not Job.objects.exists()


def test_the_list_filters_and_pages_with_cursors(api, personas):
    for i in range(7):
        make_job(
            personas.team,
            personas.member if i % 2 else personas.owner,
            state="succeeded" if i < 3 else "queued",
        )
    make_job(personas.outsider_team, personas.outsider, price=0)
    send = api()
    seen, cursor = [], None
    while True:
        query = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        answer = send("get", JOBS, data=query)
        assert answer.status_code == 200, answer.content
        seen += [item["id"] for item in answer.json()["items"]]
        cursor = answer.json()["page"]["next_cursor"]
        if cursor is None:
            break
    team_jobs = Job.objects.filter(team=personas.team).order_by("-created_at", "-pk")
    assert seen == [str(pk) for pk in team_jobs.values_list("pk", flat=True)]
    done = send("get", JOBS, data={"state": "succeeded"}).json()["items"]
    assert len(done) == 3 and {j["state"] for j in done} == {"succeeded"}
    mine = send("get", JOBS, data={"member": "member@a.test"}).json()["items"]
    assert {j["creator"] for j in mine} == {"member@a.test"}
    bad = send("get", JOBS, data={"cursor": "forged"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "cursor"


@pytest.mark.parametrize("field", ["provider", "member"])
def test_a_list_filter_with_a_nul_byte_is_refused_by_name(api, field):
    answer = api()("get", JOBS, data={field: "stab\x00ility"})

    assert answer.status_code == 422
    assert answer.json()["error"]["field"] == field


def test_the_list_costs_the_same_queries_for_3_or_30_jobs(
    api, personas, django_assert_max_num_queries
):
    send = api()
    for _ in range(3):
        make_job(personas.team, personas.member)
    with django_assert_max_num_queries(8) as small:
        send("get", JOBS)
    for _ in range(27):
        make_job(personas.team, personas.member)
    with django_assert_max_num_queries(len(small.captured_queries)):
        send("get", JOBS, data={"limit": 30})


def test_cancel_retry_and_delete(api, personas):
    send = api()
    created = send("post", JOBS, data=local_form()).json()
    canceled = send("post", f"{JOBS}/{created['id']}/cancel")
    assert canceled.status_code == 200 and canceled.json()["state"] == "canceled"
    assert canceled.json()["refunded"] is True
    again = send("post", f"{JOBS}/{created['id']}/cancel")
    assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"
    retried = send("post", f"{JOBS}/{created['id']}/retry")
    assert retried.status_code == 201, retried.content
    new = Job.objects.get(pk=retried.json()["id"])
    old = Job.objects.get(pk=created["id"])
    assert new.pk != old.pk and new.params == old.params
    assert new.input_image.name == old.input_image.name and new.state == JobState.QUEUED
    active_retry = send("post", f"{JOBS}/{new.pk}/retry")
    assert active_retry.status_code == 422
    deleted = send("delete", f"{JOBS}/{old.pk}")
    assert deleted.status_code == 200 and deleted.json()["deleted_at"]
    still = send("delete", f"{JOBS}/{new.pk}")
    assert still.status_code == 409


def test_another_teams_job_and_image_are_404(api, personas):
    theirs = make_job(personas.outsider_team, personas.outsider, price=0)
    send = api()
    for method, path in [
        ("get", f"{JOBS}/{theirs.pk}"),
        ("post", f"{JOBS}/{theirs.pk}/cancel"),
        ("post", f"{JOBS}/{theirs.pk}/retry"),
        ("delete", f"{JOBS}/{theirs.pk}"),
    ]:
        answer = send(method, path)
        assert answer.status_code == 404 and answer.json()["error"]["code"] == "not_found"
    assert Job.objects.get(pk=theirs.pk).state == "queued"


def test_quote_credits_and_ledger(api, personas):
    send = api()
    quote = send(
        "post",
        "/api/v1/quote",
        data={"provider": "local", "model": "camera-motion-v1", "params": FAST_PARAMS},
        content_type="application/json",
    )
    assert quote.status_code == 200, quote.content
    q = quote.json()
    assert q["available"] == 1000 and q["remaining_after"] == 1000 - q["price"]
    bad = send(
        "post",
        "/api/v1/quote",
        data={"provider": "local", "model": "camera-motion-v1", "params": {"fps": 1000}},
        content_type="application/json",
    )
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "fps"
    send("post", JOBS, data=local_form())
    credits = send("get", "/api/v1/credits").json()
    assert credits["held"] == q["price"] and credits["available"] == 1000 - q["price"]
    ledger = send("get", "/api/v1/credits/ledger", data={"limit": 1}).json()
    assert ledger["items"][0]["kind"] == "reserve" and ledger["page"]["next_cursor"]
    rest = send("get", "/api/v1/credits/ledger", data={"cursor": ledger["page"]["next_cursor"]})
    assert [e["kind"] for e in rest.json()["items"]] == ["grant"]


def test_add_audio_to_a_finished_akool_video(api, personas, settings):
    from tests.providers import AKOOL_CLIENT_ID, AKOOL_CLIENT_SECRET

    settings.AKOOL_CLIENT_ID, settings.AKOOL_CLIENT_SECRET = AKOOL_CLIENT_ID, AKOOL_CLIENT_SECRET
    video = {"resolution": "720p", "video_length": "5", "audio_type": "none", "prompt": "a cat"}
    source = make_job(
        personas.team,
        personas.member,
        state="succeeded",
        provider="akool",
        model="image2video",
        params=video,
        provider_job_id="a" * 24,
    )
    send = api()
    path = f"{JOBS}/{source.pk}/add-audio"
    added = send("post", path, data={"audio_type": "ai"}, content_type="application/json")
    assert added.status_code == 201, added.content
    body = added.json()
    assert body["source_job"] == str(source.pk) and body["model"] == "add-audio"
    assert body["price_quoted"] == 5
    twice = send("post", path, data={"audio_type": "ai"}, content_type="application/json")
    assert twice.status_code == 422 and "already being added" in twice.json()["error"]["message"]
    local = make_job(personas.team, personas.member, state="succeeded")
    other = send("post", f"{JOBS}/{local.pk}/add-audio", data={}, content_type="application/json")
    assert other.status_code == 422 and other.json()["error"]["field"] == "source"


@pytest.fixture
def picture_server():
    """A server on this machine answering every GET with a PNG, counting what it was asked."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    asked = []
    png = make_image_bytes()

    class Picture(BaseHTTPRequestHandler):
        def do_GET(self):
            asked.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(png)))
            self.end_headers()
            self.wfile.write(png)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Picture)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/photo.png", asked
    server.shutdown()


def test_an_image_url_is_fetched_only_from_an_allowed_address(api, picture_server, settings):
    url, asked = picture_server
    send = api()
    body = {"provider": "local", "model": "camera-motion-v1", "params": FAST_PARAMS}
    for refused in [url, url.replace("127.0.0.1", "2130706433"), "http://169.254.169.254/"]:
        answer = send(
            "post", JOBS, data=body | {"image_url": refused}, content_type="application/json"
        )
        assert answer.status_code == 422, answer.content
        assert answer.json()["error"]["field"] == "image_url"
    assert (
        asked == []
        and not Job.objects.exists()
        and not LedgerEntry.objects.filter(kind="reserve").exists()
    )
    settings.OUTBOUND_ALLOW_NETWORKS = ["127.0.0.1/32"]
    answer = send("post", JOBS, data=body | {"image_url": url}, content_type="application/json")
    assert answer.status_code == 201, answer.content
    assert asked == ["/photo.png"] and answer.json()["input_width"] == 640


@pytest.mark.parametrize(
    ("path", "field"),
    [
        (f"{JOBS}?created_after=2020-01-01T00:00:00%2B20:00", None),
        (f"{JOBS}?created_after=0001-01-01T00:00:00%2B05:00", "created_after"),
        (f"{JOBS}?created_before=9999-12-31T23:59:59-05:00", "created_before"),
        ("/api/v1/credits/ledger?date_to=9999-12-31", "date_to"),
        ("/api/v1/credits/ledger?date_from=0001-01-01", "date_from"),
    ],
)
def test_dates_at_the_edges_are_a_clear_answer_not_a_500(api, path, field):
    answer = api()("get", path)
    if field is None:
        assert answer.status_code == 200
    else:
        assert answer.status_code == 422 and answer.json()["error"]["field"] == field


def test_a_polled_job_get_costs_two_queries_and_writes_nothing(
    api, personas, django_assert_num_queries
):
    job = make_job(personas.team, personas.member, state="succeeded")
    send = api()
    send("get", f"{JOBS}/{job.pk}")  # the token's last-use stamp: written at most once a minute
    with django_assert_num_queries(2) as seen:  # the token's membership, then the job's row
        answer = send("get", f"{JOBS}/{job.pk}")
    assert answer.status_code == 200
    writes = ("INSERT", "UPDATE", "DELETE")
    assert not [q["sql"] for q in seen.captured_queries if q["sql"].lstrip().startswith(writes)]
