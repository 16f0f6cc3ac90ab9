"""The AI/ML API (Kling v1 standard image-to-video) simulator keeps the documented contract:
driven here with plain httpx.

Time runs 100x faster (time_scale=0.01) unless a test says otherwise, so the documented 10 s
poll pace is 0.1 s and a 30 s job 0.3 s.
"""

import base64
import io
import json
import time

import httpx
import pytest
from PIL import Image

from tests.simulators.aimlapi import LEGACY_WORDS, MODEL, AimlApiSimulator, AimlPlan
from tests.simulators.local_site import decode_video

FAST = 0.01
SEED_PATH = "/v2/generate/video/kling/generation"
UNIVERSAL_PATH = "/v2/video/generations"
ERROR_KEYS = {"message", "path", "requestId", "statusCode", "timestamp"}


# --- Helpers --------------------------------------------------------------------------------
def image_bytes(size=(640, 360), fmt="PNG", *, exif=False) -> bytes:
    picture = Image.linear_gradient("L").resize(size).convert("RGB")
    buffer = io.BytesIO()
    if exif:
        tags = Image.Exif()
        tags[0x010F] = "PhoneMaker"
        picture.save(buffer, fmt, exif=tags)
    else:
        picture.save(buffer, fmt)
    return buffer.getvalue()


def mask_bytes(size=(640, 360)) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", size, 255).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
def aiml():
    with AimlApiSimulator(("key-a", "key-b"), time_scale=FAST) as sim:
        yield sim


def client_for(sim, key="key-a", timeout=5.0) -> httpx.Client:
    return httpx.Client(
        base_url=sim.base_url, headers={"authorization": f"Bearer {key}"}, timeout=timeout
    )


def body_for(site, **changes) -> dict:
    body = {
        "model": MODEL,
        "image_url": site.serve("/in.png", image_bytes()),
        "prompt": "Mona Lisa puts on glasses with her hands.",
        "duration": "5",
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not ...}


def poll(client, generation_id, path=SEED_PATH) -> httpx.Response:
    return client.get(path, params={"generation_id": generation_id})


def refused(client, body, path=SEED_PATH) -> str:
    answer = client.post(path, json=body)
    assert answer.status_code == 400, answer.text
    assert set(answer.json()) == ERROR_KEYS
    assert answer.json()["statusCode"] == 400
    return answer.json()["message"]


# --- Tests ----------------------------------------------------------------------------------
def test_takes_the_key_as_a_bearer_header(aiml, site):
    anonymous = httpx.post(f"{aiml.base_url}{SEED_PATH}", json=body_for(site))
    assert anonymous.status_code == 401
    assert set(anonymous.json()) == ERROR_KEYS
    assert anonymous.json()["statusCode"] == 401
    assert anonymous.json()["path"] == SEED_PATH
    assert aiml.violations == [f"POST {SEED_PATH} without an authorization header"]
    aiml.violations.clear()

    wrong = client_for(aiml, key="nope").post(SEED_PATH, json=body_for(site))
    assert wrong.status_code == 401
    assert aiml.violations == []  # a wrong key is a legitimate case

    created = client_for(aiml).post(SEED_PATH, json=body_for(site))
    assert created.status_code == 200
    assert created.json()["status"] == "queued"
    assert aiml.requests[-1].key == "key-a"
    assert list(aiml.generations) == [created.json()["id"]]


def test_both_create_paths_answer_200_or_201_with_id_or_generation_id(aiml, site):
    client = client_for(aiml)
    aiml.plan_next(run_seconds=30)
    aiml.plan_next(run_seconds=30, create_status=201, id_field="generation_id")
    first = client.post(SEED_PATH, json=body_for(site))
    second = client.post(UNIVERSAL_PATH, json=body_for(site))
    assert first.status_code == 200 and set(first.json()) == {"id", "status"}
    assert second.status_code == 201 and set(second.json()) == {"generation_id", "status"}
    first_id, second_id = first.json()["id"], second.json()["generation_id"]
    for generation_id in (first_id, second_id):
        assert 60 <= len(generation_id) <= 100
        assert ":" in generation_id and "/" in generation_id
    assert aiml.generations[first_id].path == SEED_PATH
    assert aiml.generations[second_id].path == UNIVERSAL_PATH

    # Either path polls either job (the id travels URL-encoded in the query).
    assert poll(client, first_id, UNIVERSAL_PATH).json()["id"] == first_id
    assert poll(client, second_id, SEED_PATH).json()["id"] == second_id
    assert aiml.generations[first_id].poll_paths == [UNIVERSAL_PATH]
    assert aiml.violations == []


def test_each_input_limit_is_refused_with_the_limit_named(aiml, site):
    client = client_for(aiml)
    small = site.serve("/small.png", image_bytes((299, 400)))
    assert "at least 300 px" in refused(client, body_for(site, image_url=small))
    tall = site.serve("/tall.png", image_bytes((300, 900)))
    assert "1:2.5 to 2.5:1" in refused(client, body_for(site, image_url=tall))
    big = site.serve("/big.png", image_bytes() + b"\0" * (10 * 1024 * 1024))
    assert "10 MB" in refused(client, body_for(site, image_url=big))
    gif = site.serve("/in.gif", image_bytes(fmt="GIF"))
    assert "JPEG or PNG, not GIF" in refused(client, body_for(site, image_url=gif))
    assert "image_url: required" in refused(client, body_for(site, image_url=...))
    missing = site.url("/nowhere.png")
    assert "could not fetch" in refused(client, body_for(site, image_url=missing))
    assert "model" in refused(client, body_for(site, model="kling-video/v1/pro/image-to-video"))
    for duration in ("7", 7, None, True, "five"):
        message = refused(client, body_for(site, duration=duration))
        assert "duration: must be 5 or 10" in message
    assert "cfg_scale" in refused(client, body_for(site, cfg_scale=1.5))
    assert len(aiml.violations) == 13
    assert aiml.generations == {}


def test_duration_as_string_or_number_and_base64_images(aiml, site):
    client = client_for(aiml)
    png = image_bytes()
    jpeg = image_bytes(fmt="JPEG")
    ids = [
        client.post(SEED_PATH, json=body_for(site, duration="5")).json()["id"],
        client.post(SEED_PATH, json=body_for(site, duration=10)).json()["id"],
        client.post(SEED_PATH, json=body_for(site, duration="10")).json()["id"],
        client.post(SEED_PATH, json=body_for(site, duration=...)).json()["id"],
        client.post(
            SEED_PATH,
            json=body_for(
                site, image_url="data:image/jpeg;base64," + base64.b64encode(jpeg).decode()
            ),
        ).json()["id"],
        client.post(
            SEED_PATH, json=body_for(site, image_url=base64.b64encode(png).decode())
        ).json()["id"],
    ]
    durations = [aiml.generations[i].duration for i in ids]
    assert durations == [5, 10, 10, 5, 5, 5]
    assert aiml.generations[ids[4]].image_format == "JPEG"
    assert aiml.generations[ids[4]].body["image_url"].endswith("base64 chars>")
    # The documented run times by default: 5 s about 4–5 minutes, 10 s about 6–8.
    five, ten = aiml.generations[ids[0]], aiml.generations[ids[1]]
    assert 240 <= aiml.documented(five.done_at - five.created) <= 300
    assert 360 <= aiml.documented(ten.done_at - ten.created) <= 480
    assert ten.credits_used == 2 * five.credits_used
    assert aiml.violations == []


def test_deprecated_ratio_and_exif_are_recorded_not_refused(aiml, site):
    client = client_for(aiml)
    exif = site.serve("/exif.jpg", image_bytes(fmt="JPEG", exif=True))
    answer = client.post(SEED_PATH, json=body_for(site, image_url=exif, aspect_ratio="16:9"))
    assert answer.status_code == 200
    assert aiml.violations == [
        "aspect_ratio: deprecated (the aspect ratio comes from the image)",
        "image_url carries personal metadata: EXIF (1 tags)",
    ]


def test_end_frame_and_motion_brush_together_are_refused(aiml, site):
    client = client_for(aiml)
    body = body_for(
        site,
        tail_image_url=site.serve("/tail.png", image_bytes()),
        static_mask_url=site.serve("/static.png", mask_bytes()),
    )
    assert "Kling refuses" in refused(client, body)
    assert aiml.generations == {}


def test_motion_brush_masks_and_trajectories_are_recorded(aiml, site):
    client = client_for(aiml)
    body = body_for(
        site,
        static_mask_url=site.serve("/static.png", mask_bytes()),
        dynamic_masks=[
            {
                "mask_url": site.serve("/d1.png", mask_bytes()),
                "trajectories": [{"x": 10, "y": 20}, {"x": 100, "y": 120}, {"x": 200, "y": 50}],
            },
            {
                "mask_url": site.serve("/d2.png", mask_bytes()),
                "trajectories": [{"x": 600, "y": 300}, {"x": 500, "y": 200}],
            },
        ],
        negative_prompt="blur",
        cfg_scale=0.5,
    )
    generation_id = client.post(UNIVERSAL_PATH, json=body).json()["id"]
    generation = aiml.generations[generation_id]
    assert generation.image_size == (640, 360)
    assert generation.static_mask_size == (640, 360)
    assert [m.trajectories for m in generation.dynamic_masks] == [
        [(10, 20), (100, 120), (200, 50)],
        [(600, 300), (500, 200)],
    ]
    assert [m.mask_url for m in generation.dynamic_masks] == [
        site.url("/d1.png"),
        site.url("/d2.png"),
    ]
    assert generation.body["cfg_scale"] == 0.5
    assert aiml.violations == []

    # Masks must match the image, trajectories need two points inside it, at most 6 masks.
    wrong_size = site.serve("/wrong.png", mask_bytes((320, 180)))
    assert "same size" in refused(client, body_for(site, static_mask_url=wrong_size))
    one_point = [
        {"mask_url": wrong_size.replace("wrong", "d1"), "trajectories": [{"x": 1, "y": 1}]}
    ]
    assert "at least 2 points" in refused(client, body_for(site, dynamic_masks=one_point))
    outside = [
        {
            "mask_url": site.url("/d1.png"),
            "trajectories": [{"x": 1, "y": 1}, {"x": 640, "y": 1}],
        }
    ]
    assert "outside the 640x360 image" in refused(client, body_for(site, dynamic_masks=outside))
    seven = [body["dynamic_masks"][0]] * 7
    assert "at most 6" in refused(client, body_for(site, dynamic_masks=seven))
    jpeg_mask = site.serve("/mask.jpg", image_bytes(fmt="JPEG"))
    assert "must be a PNG" in refused(client, body_for(site, static_mask_url=jpeg_mask))


def test_a_generation_goes_queued_generating_completed_with_a_video(aiml, site):
    client = client_for(aiml)
    aiml.plan_next(run_seconds=30, queued_seconds=10, credits_used=77)
    generation_id = client.post(SEED_PATH, json=body_for(site)).json()["id"]

    queued = poll(client, generation_id).json()
    assert queued == {
        "id": generation_id,
        "status": "queued",
        "video": None,
        "error": None,
        "meta": None,
    }
    time.sleep(0.11)
    assert poll(client, generation_id).json()["status"] == "generating"
    time.sleep(0.21)
    done = poll(client, generation_id).json()
    assert done["status"] == "completed" and done["error"] is None
    assert done["meta"] == {"usage": {"credits_used": 77}}
    video = httpx.get(done["video"]["url"])
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    codec, frames = decode_video(video.content)
    assert codec == "h264" and frames > 0
    assert aiml.violations == []
    assert aiml.polls_per_generation() == {generation_id: 3}
    assert all(gap >= 10 for gap in aiml.poll_gaps()[generation_id])


def test_legacy_and_unknown_status_words(aiml, site):
    client = client_for(aiml)
    aiml.plan_next(run_seconds=30, queued_seconds=10, status_words=LEGACY_WORDS)
    aiml.plan_next(
        run_seconds=30, queued_seconds=10, status_words=("queued", "rendering", "completed")
    )
    legacy = client.post(SEED_PATH, json=body_for(site)).json()["id"]
    odd = client.post(SEED_PATH, json=body_for(site)).json()["id"]
    assert poll(client, legacy).json()["status"] == "waiting"
    time.sleep(0.11)
    assert poll(client, legacy).json()["status"] == "active"
    assert poll(client, odd).json()["status"] == "rendering"
    time.sleep(0.21)
    assert poll(client, legacy).json()["status"] == "completed"
    assert poll(client, odd).json()["video"] is not None
    assert aiml.violations == []


@pytest.mark.parametrize("word", ["error", "unknown", "expired", "completed"])
def test_a_non_null_error_ends_the_job_whatever_the_word(aiml, site, word):
    client = client_for(aiml)
    aiml.plan_next(run_seconds=10, outcome="error", error_status=word)
    generation_id = client.post(SEED_PATH, json=body_for(site)).json()["id"]
    time.sleep(0.11)
    answer = poll(client, generation_id).json()
    assert answer["status"] == word
    assert answer["error"] == {"name": "GenerationError", "message": "Video generation failed"}
    assert answer["video"] is None
    assert aiml.violations == []


def test_polling_faster_than_every_10_seconds_is_a_violation(aiml, site):
    client = client_for(aiml)
    generation_id = client.post(SEED_PATH, json=body_for(site)).json()["id"]
    # Real seconds from here, as in the AKOOL simulator's test: at FAST scale the documented 10 s
    # is 0.1 s, which a loaded machine can take between two requests (CI failed once that way).
    aiml.time_scale = 1.0
    assert poll(client, generation_id).status_code == 200
    assert poll(client, generation_id).status_code == 200  # answered, but recorded
    assert len(aiml.violations) == 1
    assert aiml.violations[0].startswith(f"poll of {generation_id} ")
    assert aiml.violations[0].endswith("(the documented pace is every 10 s)")
    assert aiml.poll_gaps()[generation_id][0] < 10


def test_poll_failures_submit_plans_and_unknown_ids(aiml, site):
    client = client_for(aiml)
    aiml.plan_next(run_seconds=0, poll_failures=[429, 503, "garbage"])
    aiml.plan_next(submit=403)
    aiml.plan_next(submit="drop")
    generation_id = client.post(SEED_PATH, json=body_for(site)).json()["id"]
    for status in (429, 503):
        answer = poll(client, generation_id)
        assert answer.status_code == status and set(answer.json()) == ERROR_KEYS
        time.sleep(0.1)
    with pytest.raises(json.JSONDecodeError):
        poll(client, generation_id).json()
    time.sleep(0.1)
    assert poll(client, generation_id).json()["status"] == "completed"

    out_of_credits = client.post(SEED_PATH, json=body_for(site))
    assert out_of_credits.status_code == 403 and out_of_credits.json()["statusCode"] == 403
    with pytest.raises(httpx.RemoteProtocolError):
        client.post(SEED_PATH, json=body_for(site))
    assert len(aiml.generations) == 2  # the dropped answer's job exists: reconcile it

    assert poll(client, "nope").status_code == 404
    assert poll(client_for(aiml, key="key-b"), generation_id).status_code == 404
    assert "another key" in aiml.violations.pop()
    assert aiml.violations == []


def test_the_video_vanishes_after_retention(aiml, site):
    client = client_for(aiml)
    aiml.plan_next(run_seconds=10, retention_seconds=20)
    generation_id = client.post(SEED_PATH, json=body_for(site)).json()["id"]
    time.sleep(0.11)
    url = poll(client, generation_id).json()["video"]["url"]
    assert httpx.get(url).status_code == 200
    time.sleep(0.21)
    gone = httpx.get(url)
    assert gone.status_code == 404 and set(gone.json()) == ERROR_KEYS
    assert aiml.violations == []


def test_plan_checks_its_choices():
    with pytest.raises(ValueError):
        AimlPlan(create_status=202)
    with pytest.raises(ValueError):
        AimlPlan(id_field="uuid")
