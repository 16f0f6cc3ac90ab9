"""The provider simulators keep the documented contracts: driven here with plain httpx.

Time runs 100x faster (time_scale=0.01) unless a test says otherwise, so the documented 10 s
poll interval is 0.1 s and a 30 s job 0.3 s.
"""

import base64
import io
import json
import socket
import time

import httpx
import pytest
from PIL import Image

from tests.simulators import ModelsLabSimulator, Plan, StabilitySimulator
from tests.simulators.local_site import decode_video

FAST = 0.01
SUBMIT = "/v2beta/image-to-video"
RESULT = "/v2beta/image-to-video/result/"


# --- Helpers --------------------------------------------------------------------------------
def image_bytes(size=(1024, 576), fmt="PNG", *, gps=False) -> bytes:
    picture = Image.linear_gradient("L").resize(size).convert("RGB")
    buffer = io.BytesIO()
    if gps:
        exif = Image.Exif()
        exif[0x010F] = "PhoneMaker"  # Make
        exif[0x8825] = {1: "N", 2: (48.0, 51.0, 24.0)}  # a GPS latitude
        picture.save(buffer, fmt, exif=exif)
    else:
        picture.save(buffer, fmt)
    return buffer.getvalue()


def wait_for(predicate, timeout=3.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.005)


# --- Stability ------------------------------------------------------------------------------
@pytest.fixture
def stability():
    with StabilitySimulator(("key-a", "key-b"), time_scale=FAST) as sim:
        yield sim


def stability_client(sim, key="key-a", timeout=5.0, **headers) -> httpx.Client:
    return httpx.Client(
        base_url=sim.base_url,
        headers={"authorization": f"Bearer {key}", **headers},
        timeout=timeout,
    )


def start_generation(client, image=None, **fields) -> httpx.Response:
    image = image if image is not None else image_bytes()
    return client.post(SUBMIT, files={"image": ("in.png", image, "image/png")}, data=fields)


def test_stability_takes_the_key_as_a_bearer_header(stability):
    anonymous = httpx.post(f"{stability.base_url}{SUBMIT}", files={"image": image_bytes()})
    assert anonymous.status_code == 401
    assert set(anonymous.json()) == {"id", "name", "errors"}
    assert stability.violations == ["POST /v2beta/image-to-video without an authorization header"]
    stability.violations.clear()

    wrong = start_generation(stability_client(stability, key="not-a-key"))
    assert wrong.status_code == 401
    assert stability.violations == []  # a wrong key is a legitimate case, not a client bug

    started = start_generation(stability_client(stability))
    assert started.status_code == 200
    assert len(started.json()["id"]) == 64
    assert stability.requests[-1].key == "key-a"
    assert stability.requests[-1].form_fields == ["image"]


def test_stability_generation_goes_from_in_progress_to_a_video(stability):
    client = stability_client(
        stability,
        **{"stability-client-id": "studio", "stability-client-user-id": "9f2c1e", "accept": "*/*"},
    )
    started = start_generation(client, seed="42", cfg_scale="2.5", motion_bucket_id="127")
    generation_id = started.json()["id"]

    running = client.get(f"{RESULT}{generation_id}")
    assert running.status_code == 202
    assert running.json() == {"id": generation_id, "status": "in-progress"}

    time.sleep(0.31)  # the 30 s job, scaled
    done = client.get(f"{RESULT}{generation_id}", headers={"accept": "video/*"})
    assert done.status_code == 200
    assert done.headers["content-type"] == "video/mp4"
    assert done.headers["finish-reason"] == "SUCCESS"
    assert done.headers["seed"] == "42"
    codec, frames = decode_video(done.content)
    assert codec == "h264" and frames > 0

    time.sleep(0.1)
    as_json = client.get(f"{RESULT}{generation_id}", headers={"accept": "application/json"})
    assert as_json.json()["finish_reason"] == "SUCCESS"
    assert as_json.json()["seed"] == 42
    assert base64.b64decode(as_json.json()["video"]) == done.content

    assert stability.violations == []
    generation = stability.generations[generation_id]
    assert generation.image_size == (1024, 576)
    assert generation.client_headers["stability-client-user-id"] == "9f2c1e"
    assert stability.polls_per_generation() == {generation_id: 3}
    assert all(gap >= 10 for gap in stability.poll_gaps()[generation_id])


def test_stability_records_and_refuses_contract_breaches(stability):
    client = stability_client(stability)

    square = start_generation(client, image_bytes((1000, 1000)))
    assert square.status_code == 400
    assert square.json()["name"] == "bad_request"
    assert "1000x1000" in square.json()["errors"][0]
    assert "1000x1000" in stability.violations[-1]

    for field, value in [("seed", "4294967295"), ("cfg_scale", "10.5"), ("motion_bucket_id", "0")]:
        answer = start_generation(client, **{field: value})
        assert answer.status_code == 400
        assert answer.json()["errors"] == [
            f"{field}: must be between {answer_range(field)}, not {value}"
        ]
    assert client.post(SUBMIT, json={"image": "x"}).status_code == 400
    long_header = client.post(
        SUBMIT, files={"image": image_bytes()}, headers={"stability-client-version": "v" * 257}
    )
    assert long_header.status_code == 400
    assert len(stability.violations) == 6
    assert stability.generations == {}

    # Accepted upstream, but our client must never send them: recorded only.
    stability.violations.clear()
    assert start_generation(client, image_bytes(gps=True)).status_code == 200
    email = stability_client(stability, **{"stability-client-user-id": "ann@example.com"})
    assert start_generation(email).status_code == 200
    assert stability.violations == [
        "image carries personal metadata: EXIF (2 tags), GPS position",
        "stability-client-user-id looks like an e-mail address; send a hash",
    ]


def answer_range(field):
    return {"seed": "0 and 4294967294", "cfg_scale": "0 and 10", "motion_bucket_id": "1 and 255"}[
        field
    ]


def test_stability_polls_closer_than_10_seconds_are_refused(stability):
    client = stability_client(stability)
    generation_id = start_generation(client).json()["id"]
    assert client.get(f"{RESULT}{generation_id}").status_code == 202
    too_soon = client.get(f"{RESULT}{generation_id}")
    assert too_soon.status_code == 429
    assert 0 < float(too_soon.headers["retry-after"]) <= 0.1
    assert len(stability.violations) == 1
    assert stability.violations[0].startswith(f"poll of {generation_id} ")
    assert stability.violations[0].endswith("after the previous one (minimum 10 s)")
    assert stability.poll_gaps()[generation_id][0] < 10


def test_stability_151st_request_in_10_seconds_locks_the_key_out():
    # time_scale 0.1: a 1 s window holds 151 quick requests even on a busy machine.
    with StabilitySimulator("key-a", time_scale=0.1) as sim:
        client = stability_client(sim)
        answers = [client.get(f"{RESULT}{'0' * 64}").status_code for _ in range(150)]
        assert set(answers) == {404} and sim.violations == []

        over = client.get(f"{RESULT}{'0' * 64}")
        assert over.status_code == 429
        assert over.json()["name"] == "rate_limit_exceeded"
        assert float(over.headers["retry-after"]) == pytest.approx(6.0)
        assert sim.violations == [
            "more than 150 requests in 10 s from key …ey-a: locked out for 60 s"
        ]
        assert sim.max_requests_in_window() == 151

        during = start_generation(client)
        assert during.status_code == 429
        assert "during the 60 s lockout" in sim.violations[-1]
        assert 0 < float(during.headers["retry-after"]) < 6.0


def test_stability_outcomes_other_keys_and_retention(stability):
    client = stability_client(stability)
    stability.plan_next(outcome="filtered", run_seconds=10)
    stability.plan_next(outcome="error", run_seconds=10)
    stability.plan_next(run_seconds=10, retention_seconds=20)
    filtered, failed, short_lived = (start_generation(client).json()["id"] for _ in range(3))
    time.sleep(0.11)

    video = client.get(f"{RESULT}{filtered}", headers={"accept": "video/*"})
    assert video.status_code == 200 and video.headers["finish-reason"] == "CONTENT_FILTERED"
    error = client.get(f"{RESULT}{failed}")
    assert error.status_code == 500 and set(error.json()) == {"id", "name", "errors"}
    assert client.get(f"{RESULT}{short_lived}").status_code == 200
    assert stability.violations == []

    other_key = stability_client(stability, key="key-b").get(f"{RESULT}{filtered}")
    assert other_key.status_code == 404
    assert "another key" in stability.violations.pop()

    time.sleep(0.21)  # retention 20 s, scaled
    assert client.get(f"{RESULT}{short_lived}").status_code == 404
    assert stability.violations == []


def test_stability_submit_plans_lose_or_refuse_the_answer(stability):
    client = stability_client(stability)
    stability.plan_next(submit="garbage")
    stability.plan_next(submit="drop")
    stability.plan_next(submit="slow", slow_seconds=0.5)
    stability.plan_next(submit=403)

    garbage = start_generation(client)
    assert garbage.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        garbage.json()
    with pytest.raises(httpx.RemoteProtocolError):
        start_generation(client)
    with pytest.raises(httpx.ReadTimeout):
        start_generation(stability_client(stability, timeout=0.1))
    moderated = start_generation(client)
    assert moderated.status_code == 403
    assert moderated.json()["name"] == "content_moderation"
    assert len(moderated.json()["id"]) == 32  # an error id, not a generation id

    # The provider took the work for the three lost answers: a client must reconcile them.
    assert len(stability.generations) == 3
    assert stability.violations == []


def test_stability_poll_failures_come_before_the_real_answer(stability):
    client = stability_client(stability)
    stability.plan_next(run_seconds=0, poll_failures=[503, "garbage", 429])
    generation_id = start_generation(client).json()["id"]
    url = f"{RESULT}{generation_id}"

    assert client.get(url).status_code == 503
    time.sleep(0.1)
    garbage = client.get(url)
    assert garbage.status_code == 200 and "finish-reason" not in garbage.headers
    time.sleep(0.1)
    limited = client.get(url)
    assert limited.status_code == 429
    assert float(limited.headers["retry-after"]) == pytest.approx(0.6)  # the 60 s lockout
    time.sleep(0.61)
    assert client.get(url).status_code == 200
    assert stability.violations == []


# --- ModelsLab ------------------------------------------------------------------------------
@pytest.fixture
def modelslab():
    with ModelsLabSimulator("ml-key", time_scale=FAST) as sim:
        yield sim


def img2video_body(site, **changes) -> dict:
    body = {
        "key": "ml-key",
        "model_id": "svd",
        "init_image": site.serve("/in.png", image_bytes((512, 288))),
        "height": 288,
        "width": 512,
        "num_frames": 25,
        "num_inference_steps": 20,
        "min_guidance_scale": 1,
        "max_guidance_scale": 3,
        "motion_bucket_id": 127,
        "noise_aug_strength": 0.02,
        "fps": 8,
        "output_type": "gif",
        "instant_response": True,
        "webhook": site.url("/hook"),
        "track_id": 7,
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not ...}


def ultra_body(site, **changes) -> dict:
    body = {
        "key": "ml-key",
        "prompt": "waves rolling in",
        "init_image": base64.b64encode(image_bytes((832, 480))).decode(),
        "base64": True,
        "resolution": 480,
        "num_frames": 81,
        "num_inference_steps": 20,
        "guidance_scale": 5.0,
        "fps": 16,
        "instant_response": True,
        "webhook": site.url("/hook"),
        "track_id": "job-7",
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not ...}


def test_modelslab_takes_the_key_in_the_json_body(modelslab, site):
    api = httpx.Client(base_url=modelslab.base_url, timeout=5)
    header_only = api.post(
        "/video/img2video",
        json=img2video_body(site, key=...),
        headers={"authorization": "Bearer ml-key"},
    )
    assert header_only.status_code == 401
    assert header_only.json() == {"status": "error", "message": "Invalid API key"}
    assert modelslab.violations == [
        "/api/v6/video/img2video without a key in the JSON body (it was sent as a header)"
    ]
    modelslab.violations.clear()

    wrong = api.post("/video/img2video_ultra", json=ultra_body(site, key="nope"))
    assert wrong.status_code == 401
    assert wrong.json() == {"status": "error", "messege": "Invalid API key"}  # ultra's spelling
    assert modelslab.violations == []

    form = api.post("/video/img2video", data={"key": "ml-key"})
    assert form.json()["status"] == "error"
    assert "content-type must be application/json" in modelslab.violations[0]


def test_modelslab_img2video_runs_from_processing_to_a_gif(modelslab, site):
    api = httpx.Client(base_url=modelslab.base_url, timeout=5)
    created = api.post("/video/img2video", json=img2video_body(site)).json()
    assert created["status"] == "processing"
    assert created["id"] >= 1000 and created["eta"] == 20 and created["output"] == []
    assert created["fetch_result"] == f"{modelslab.base_url}/video/fetch/{created['id']}"
    assert created["meta"]["track_id"] == 7

    running = api.post(f"/video/fetch/{created['id']}", json={"key": "ml-key"}).json()
    assert running["status"] == "processing" and 1 <= running["eta"] <= 30

    time.sleep(0.31)
    done = api.post(f"/video/fetch/{created['id']}", json={"key": "ml-key"}).json()
    assert done["status"] == "success"
    assert done["meta"]["track_id"] == 7
    gif = httpx.get(done["output"][0])
    assert gif.headers["content-type"] == "image/gif"
    assert Image.open(io.BytesIO(gif.content)).n_frames == 8
    # future_links named another file: the video is only ever at output[0].
    assert httpx.get(created["future_links"][0]).status_code == 404

    job = modelslab.jobs[created["id"]]
    assert job.endpoint == "img2video" and job.polls == 2 and "key" not in job.request
    assert modelslab.violations == []


def test_modelslab_ultra_takes_base64_and_answers_an_mp4(modelslab, site):
    api = httpx.Client(base_url=modelslab.base_url, timeout=5)
    modelslab.plan_next(instant_success=True, webhook="none")
    created = api.post("/video/img2video_ultra", json=ultra_body(site)).json()
    assert created["status"] == "success"
    assert created["proxy_links"] == created["output"]
    video = httpx.get(created["output"][0])
    assert video.headers["content-type"] == "video/mp4"
    assert decode_video(video.content)[0] == "h264"
    assert modelslab.jobs[created["id"]].track_id == "job-7"
    assert modelslab.violations == []


def test_modelslab_records_contract_breaches(modelslab, site):
    api = httpx.Client(base_url=modelslab.base_url, timeout=5)

    def error_for(path, body):
        answer = api.post(path, json=body)
        assert answer.status_code == 200 and answer.json()["status"] == "error"
        return answer.json()

    error_for("/video/img2video", img2video_body(site, instant_response=...))
    assert modelslab.violations[-1].startswith("img2video refused: instant_response: must be true")
    error_for("/video/img2video", img2video_body(site, num_frames=30, fps=20, height=600))
    assert modelslab.violations[-3:] == [
        "img2video refused: height: the maximum is 512, not 600",
        "img2video refused: num_frames: the maximum is 25, not 30",
        "img2video refused: fps: the maximum is 16, not 20",
    ]
    error_for("/video/img2video", img2video_body(site, webhook=..., track_id="7"))
    assert "webhook: an http(s) URL is required" in modelslab.violations[-2]
    assert "track_id: must be an integer" in modelslab.violations[-1]
    big = site.serve("/big.png", image_bytes((1024, 576)))
    assert (
        "1024x576" in error_for("/video/img2video", img2video_body(site, init_image=big))["message"]
    )
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        nowhere = f"http://127.0.0.1:{unused.getsockname()[1]}/in.png"
    error_for("/video/img2video", img2video_body(site, init_image=nowhere))
    assert modelslab.violations[-1].startswith("img2video refused: could not fetch init_image")

    ultra = error_for(
        "/video/img2video_ultra", ultra_body(site, resolution=720, fps=16, num_frames=16)
    )
    assert "messege" in ultra and "resolution" in ultra["messege"]
    assert modelslab.violations[-1] == (
        "img2video_ultra refused: fps: should be less than num_frames (16), not 16"
    )
    assert modelslab.jobs == {}

    # Accepted, but our client must strip the picture's metadata first: recorded only.
    modelslab.violations.clear()
    gps = site.serve("/gps.jpg", image_bytes((512, 288), "JPEG", gps=True))
    assert (
        api.post("/video/img2video", json=img2video_body(site, init_image=gps)).json()["status"]
        == "processing"
    )
    assert modelslab.violations == [
        "init_image carries personal metadata: EXIF (2 tags), GPS position"
    ]


def test_modelslab_webhooks_once_twice_and_late(modelslab, site):
    api = httpx.Client(base_url=modelslab.base_url, timeout=5)
    modelslab.plan_next(run_seconds=10, webhook="once")
    modelslab.plan_next(run_seconds=10, webhook="twice", outcome="error")
    modelslab.plan_next(run_seconds=10, webhook="late", webhook_delay_seconds=30)
    once, twice, late = (
        api.post(
            "/video/img2video", json=img2video_body(site, webhook=site.url(f"/hook/{n}"))
        ).json()["id"]
        for n in ("once", "twice", "late")
    )
    wait_for(lambda: len(site.posts) == 4)
    assert site.hooks("/hook/once") == [
        {
            "status": "success",
            "id": once,
            "output": [modelslab.file_url(modelslab.jobs[once].output_name)],
            "track_id": 7,
            "meta": site.hooks("/hook/once")[0]["meta"],
        }
    ]
    duplicate = site.hooks("/hook/twice")
    assert len(duplicate) == 2 and duplicate[0] == duplicate[1]
    assert duplicate[0]["status"] == "failed" and duplicate[0]["id"] == twice
    late_at = next(at for path, _, at in site.posts if path == "/hook/late")
    assert late_at - modelslab.jobs[late].done_at >= 0.3  # 30 s after done, scaled
    # The site saw each post before answering it; the simulator records it once answered.
    assert modelslab.wait_for_webhooks(4)
    assert [d.status for d in modelslab.webhooks_sent] == [200] * 4
    assert modelslab.violations == []


def test_modelslab_webhooks_out_of_order_before_done_and_forged(modelslab, site):
    api = httpx.Client(base_url=modelslab.base_url, timeout=5)
    modelslab.plan_next(run_seconds=10, webhook="out_of_order")
    stale = api.post("/video/img2video", json=img2video_body(site)).json()["id"]
    wait_for(lambda: len(site.posts) == 2)
    assert [body["status"] for body in site.hooks("/hook")] == ["success", "processing"]

    modelslab.plan_next(run_seconds=100, webhook="before_done")  # the callback comes at 50 s
    early = api.post("/video/img2video", json=img2video_body(site)).json()["id"]
    wait_for(lambda: len(site.posts) == 3)
    assert site.hooks("/hook")[-1]["status"] == "success"
    confirm = api.post(f"/video/fetch/{early}", json={"key": "ml-key"}).json()
    assert confirm["status"] == "processing"  # the client must not believe the callback

    forged = modelslab.send_webhook(stale, {"status": "success", "id": stale, "output": ["x"]})
    assert forged.status == 200 and site.hooks("/hook")[-1]["output"] == ["x"]
    assert modelslab.violations == []


def test_modelslab_queue_limit_answers_429_with_retry_after(modelslab, site):
    api = httpx.Client(base_url=modelslab.base_url, timeout=5)
    modelslab.default_plan = Plan(run_seconds=40, webhook="none")
    for _ in range(5):
        assert api.post("/video/img2video", json=img2video_body(site)).status_code == 200
    sixth = api.post("/video/img2video", json=img2video_body(site))
    assert sixth.status_code == 429
    assert sixth.json() == {
        "status": "error",
        "message": "Rate limit exceeded. Please retry after some time.",
        "retry_after": 0.3,
    }
    assert modelslab.violations == [
        "more than 5 queued requests on the basic plan: our client must hold jobs back itself"
    ]
    time.sleep(0.41)  # the five are done and retry_after has passed: room again
    assert api.post("/video/img2video", json=img2video_body(site)).json()["status"] == "processing"
    assert len(modelslab.violations) == 1


def test_modelslab_poll_failures_and_fetch_spacing(modelslab, site):
    api = httpx.Client(base_url=modelslab.base_url, timeout=5)
    modelslab.plan_next(run_seconds=0, webhook="none", poll_failures=["garbage", 503, 429])
    job_id = api.post("/video/img2video", json=img2video_body(site)).json()["id"]
    fetch = f"/video/fetch/{job_id}"

    garbage = api.post(fetch, json={"key": "ml-key"})
    assert garbage.status_code == 200 and garbage.text.startswith("<html>")
    time.sleep(0.011)
    assert api.post(fetch, json={"key": "ml-key"}).status_code == 503
    time.sleep(0.011)
    limited = api.post(fetch, json={"key": "ml-key"})
    assert limited.status_code == 429 and limited.json()["retry_after"] == 0.3
    assert modelslab.violations == []

    time.sleep(0.31)
    assert api.post(fetch, json={"key": "ml-key"}).json()["status"] == "success"
    assert modelslab.violations == []

    unknown = api.post("/video/fetch/99", json={"key": "ml-key"}).json()
    assert unknown["status"] == "error" and "99" in unknown["message"]


def test_fetching_one_job_more_than_once_a_second_is_a_violation(site):
    # time_scale 0.2: the courtesy second is 0.2 s, far more than two quick requests take.
    with ModelsLabSimulator("ml-key", time_scale=0.2) as sim:
        api = httpx.Client(base_url=sim.base_url, timeout=5)
        sim.plan_next(run_seconds=0, webhook="none")
        job_id = api.post("/video/img2video", json=img2video_body(site)).json()["id"]
        api.post(f"/video/fetch/{job_id}", json={"key": "ml-key"})
        api.post(f"/video/fetch/{job_id}", json={"key": "ml-key"})
        assert sim.violations[0].startswith(f"fetch of {job_id} ")
        assert sim.violations[0].endswith("(courtesy minimum 1 s)")


def test_modelslab_outputs_vanish_after_retention(modelslab, site):
    api = httpx.Client(base_url=modelslab.base_url, timeout=5)
    modelslab.plan_next(run_seconds=10, retention_seconds=20, webhook="none", output_type="mp4")
    job_id = api.post("/video/img2video", json=img2video_body(site)).json()["id"]
    time.sleep(0.11)
    done = api.post(f"/video/fetch/{job_id}", json={"key": "ml-key"}).json()
    assert done["output"][0].endswith(".mp4")
    assert httpx.get(done["output"][0]).status_code == 200
    time.sleep(0.21)
    assert httpx.get(done["output"][0]).status_code == 404
    assert modelslab.violations == []


def test_modelslab_lost_submit_answers_still_call_back_with_the_track_id(modelslab, site):
    api = httpx.Client(base_url=modelslab.base_url, timeout=5)
    modelslab.plan_next(submit="drop", run_seconds=10)
    modelslab.plan_next(submit=402)
    with pytest.raises(httpx.RemoteProtocolError):
        api.post("/video/img2video", json=img2video_body(site, track_id=41))
    out_of_credits = api.post("/video/img2video_ultra", json=ultra_body(site))
    assert out_of_credits.status_code == 402 and out_of_credits.json()["status"] == "error"

    wait_for(lambda: len(site.posts) == 1)  # only the dropped one was taken on
    assert site.hooks("/hook")[0]["track_id"] == 41
    assert [job.track_id for job in modelslab.jobs.values()] == [41]
    assert modelslab.requests[0].json["track_id"] == 41
    assert modelslab.violations == []
