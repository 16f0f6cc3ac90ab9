"""The AKOOL simulator keeps the documented contract (seed 002, providers.md §5): driven here with
plain httpx. Time runs 100x faster (time_scale=0.01): a 5 s queue is 0.05 s, a 30 s run 0.3 s.

The webhook checks are written from the documented recipe, independently of the simulator's own
`sign` / `decrypt`, so a mistake in one shows up against the other.
"""

import base64
import hashlib
import io
import json
import time

import av
import httpx
import pytest
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from PIL import Image

from tests.simulators.akool import AkoolPlan, AkoolSimulator, decrypt, encrypt, sign

FAST = 0.01
CLIENT_ID = "akool-client-001"  # 16 bytes: the AES IV
CLIENT_SECRET = "0123456789abcdef0123456789abcdef"  # 32 bytes: an AES-256 key
API_KEY = "sim-akool-api-key"
CREATE = "/image2Video/createBySourcePrompt"
RESULTS = "/image2Video/resultsByIds"


# --- Helpers --------------------------------------------------------------------------------
def image_bytes(size=(640, 360), *, gps=False) -> bytes:
    picture = Image.linear_gradient("L").resize(size).convert("RGB")
    buffer = io.BytesIO()
    if gps:
        exif = Image.Exif()
        exif[0x010F] = "PhoneMaker"
        exif[0x8825] = {1: "N", 2: (48.0, 51.0, 24.0)}
        picture.save(buffer, "JPEG", exif=exif)
    else:
        picture.save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
def site(site):
    """The shared stand-in site, holding the image and audio AKOOL fetches."""
    site.serve("/in.png", image_bytes())
    site.serve("/voice.mp3", b"ID3\x03\x00\x00\x00\x00\x00\x00fake mp3 frames")
    return site


@pytest.fixture
def akool():
    with AkoolSimulator(CLIENT_ID, CLIENT_SECRET, api_key=API_KEY, time_scale=FAST) as sim:
        yield sim


def wait_for(predicate, timeout=3.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.005)


def token_for(sim) -> str:
    answer = httpx.post(sim.token_url, json={"clientId": CLIENT_ID, "clientSecret": CLIENT_SECRET})
    assert answer.status_code == 200 and answer.json()["code"] == 1000
    return answer.json()["token"]


def client(sim, *, token=None, api_key=None) -> httpx.Client:
    headers = {}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    if api_key is not None:
        headers["x-api-key"] = api_key
    return httpx.Client(base_url=sim.base_url, headers=headers, timeout=5.0)


def fields(site, **overrides) -> dict:
    body = {
        "image_url": site.url("/in.png"),
        "prompt": "the cat turns its head",
        "negative_prompt": "blurry",
        "resolution": "720p",
        "audio_type": 3,
        "video_length": 5,
    }
    body.update(overrides)
    return {k: v for k, v in body.items() if v is not None}


def create(http, site, **overrides) -> dict:
    answer = http.post(CREATE, json=fields(site, **overrides))
    assert answer.status_code == 200
    return answer.json()


def results(http, *ids) -> dict[str, dict]:
    answer = http.post(RESULTS, json={"_ids": ",".join(ids)}).json()
    assert answer["code"] == 1000
    return {task["_id"]: task for task in answer["data"]["result"]}


def verify_and_decrypt(body: dict) -> dict:
    """The documented recipe, written independently: check the SHA-1 signature over the four
    values as strings, sorted and joined; then AES-CBC-decrypt (key = clientSecret, IV =
    clientId) and strip the PKCS#7 padding. Raises on any mismatch."""
    parts = [CLIENT_ID, str(body["timestamp"]), str(body["nonce"]), body["dataEncrypt"]]
    expected = hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()
    if expected != body["signature"]:
        raise ValueError("signature mismatch")
    cipher = Cipher(algorithms.AES(CLIENT_SECRET.encode()), modes.CBC(CLIENT_ID.encode()))
    decryptor = cipher.decryptor()
    padded = decryptor.update(base64.b64decode(body["dataEncrypt"])) + decryptor.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    return json.loads(unpadder.update(padded) + unpadder.finalize())


# --- Construction ---------------------------------------------------------------------------
def test_refuses_credentials_aes_cannot_take():
    with pytest.raises(ValueError, match="client_secret"):
        AkoolSimulator(CLIENT_ID, "too-short")
    with pytest.raises(ValueError, match="client_id"):
        AkoolSimulator("not-sixteen", CLIENT_SECRET)
    AkoolSimulator(CLIENT_ID, "0123456789abcdef01234567")  # 24 bytes: AES-192 is fine
    with pytest.raises(ValueError, match="submit"):
        AkoolPlan(submit=1234)


# --- Auth -----------------------------------------------------------------------------------
def test_token_flow_and_expiry(akool):
    wrong = httpx.post(akool.token_url, json={"clientId": CLIENT_ID, "clientSecret": "x" * 32})
    assert wrong.json()["code"] == 1101
    assert akool.violations == []  # wrong credentials are a legitimate case

    token = token_for(akool)
    http = client(akool, token=token)
    assert http.get("/image2Video/effects").json()["code"] == 1000

    akool.expire_tokens()
    assert http.get("/image2Video/effects").json()["code"] == 1109
    assert client(akool, token="never-issued").get("/image2Video/effects").json()["code"] == 1101
    renewed = client(akool, token=token_for(akool))
    assert renewed.get("/image2Video/effects").json()["code"] == 1000
    assert akool.violations == []

    anonymous = httpx.get(f"{akool.base_url}/image2Video/effects").json()
    assert anonymous == {"code": 1102, "msg": anonymous["msg"], "data": None}
    assert len(akool.violations) == 1 and "without authorization" in akool.violations[0]


def test_tokens_expire_after_a_set_time():
    with AkoolSimulator(CLIENT_ID, CLIENT_SECRET, token_expires_after=10, time_scale=FAST) as sim:
        http = client(sim, token=token_for(sim))
        assert http.get("/image2Video/effects").json()["code"] == 1000
        time.sleep(0.12)
        assert http.get("/image2Video/effects").json()["code"] == 1109
        assert sim.violations == []


def test_api_key_and_authorization_wins(akool):
    assert client(akool, api_key=API_KEY).get("/image2Video/effects").json()["code"] == 1000
    assert client(akool, api_key="wrong").get("/image2Video/effects").json()["code"] == 1101
    both = client(akool, token="stale-token", api_key=API_KEY)
    assert both.get("/image2Video/effects").json()["code"] == 1101  # Authorization wins
    akool.banned = True
    assert client(akool, api_key=API_KEY).get("/image2Video/effects").json()["code"] == 1200
    assert akool.violations == []
    malformed = httpx.get(f"{akool.base_url}/image2Video/effects", headers={"authorization": "x"})
    assert malformed.json()["code"] == 1101 and len(akool.violations) == 1


# --- Create ---------------------------------------------------------------------------------
def test_full_life_with_a_real_video(akool, site):
    http = client(akool, api_key=API_KEY)
    answer = create(http, site, resolution="1080p", webhookurl=site.url("/hook"))
    assert answer["code"] == 1000
    task = answer["data"]
    assert len(task["_id"]) == 24 and int(task["_id"], 16) >= 0
    assert task["status"] == 1 and task["deduction_credit"] == 25
    assert task["webhookUrl"] == site.url("/hook") and isinstance(task["create_time"], int)

    seen = [task["status"]]  # queued, as created: a busy machine may poll only once it runs
    for _ in range(200):
        state = results(http, task["_id"])[task["_id"]]
        if not seen or seen[-1] != state["status"]:
            seen.append(state["status"])
        if state["status"] == 3:
            break
        time.sleep(0.011)
    assert seen == [1, 2, 3]
    video = httpx.get(state["video_url"])
    assert video.status_code == 200 and video.headers["content-type"] == "video/mp4"
    with av.open(io.BytesIO(video.content)) as container:
        assert sum(1 for _ in container.decode(container.streams.video[0])) > 0
    assert akool.violations == []


def test_price_table_and_failure(akool, site):
    http = client(akool, api_key=API_KEY)
    assert create(http, site, resolution="4k", video_length=10)["data"]["deduction_credit"] == 60
    assert create(http, site, resolution="720p")["data"]["deduction_credit"] == 20
    akool.plan_next(deduction_credit=7)
    assert create(http, site)["data"]["deduction_credit"] == 7
    akool.plan_next(outcome="error", queue_seconds=0, run_seconds=1, error_msg="GPU on fire")
    failed = create(http, site)["data"]
    time.sleep(0.03)
    state = results(http, failed["_id"])[failed["_id"]]
    assert state["status"] == 4 and state["error_msg"] == "GPU on fire"
    assert "video_url" not in state
    assert akool.violations == []


def test_retention_makes_the_video_vanish(akool, site):
    http = client(akool, api_key=API_KEY)
    # Kept 1 s (real time), so a busy machine still fetches it in time; then gone.
    akool.plan_next(queue_seconds=0, run_seconds=1, retention_seconds=50)
    task = create(http, site)["data"]
    time.sleep(0.02)
    url = results(http, task["_id"])[task["_id"]]["video_url"]
    assert httpx.get(url).status_code == 200
    time.sleep(1.1)
    assert httpx.get(url).status_code == 404


@pytest.mark.parametrize(
    "field", ["image_url", "prompt", "negative_prompt", "resolution", "audio_type", "video_length"]
)
def test_the_six_fields_are_required_even_with_an_effect(akool, site, field):
    http = client(akool, api_key=API_KEY)
    body = fields(site, effect_code="squish")
    del body[field]
    assert http.post(CREATE, json=body).json()["code"] == 1003
    assert len(akool.violations) == 1 and field in akool.violations[0]


@pytest.mark.parametrize(
    "overrides",
    [
        {"resolution": "480p"},
        {"video_length": 7},
        {"audio_type": "1"},
        {"audio_type": 2},  # without audio_url
        {"effect_code": "no-such-effect"},
        {"extend_prompt": "yes"},
        {"image_url": "file:///etc/passwd"},
        {"webhookUrl": "http://example.invalid/hook"},
    ],
)
def test_bad_parameters_are_1003(akool, site, overrides):
    answer = create(client(akool, api_key=API_KEY), site, **overrides)
    assert answer["code"] == 1003 and answer["data"] is None
    assert akool.violations


def test_image_must_decode_and_carry_no_exif(akool, site):
    http = client(akool, api_key=API_KEY)
    site.serve("/junk.png", b"not an image")
    assert create(http, site, image_url=site.url("/junk.png"))["code"] == 1003
    assert "image_url" in akool.violations[0]
    akool.violations.clear()
    site.serve("/gps.jpg", image_bytes(gps=True))
    assert create(http, site, image_url=site.url("/gps.jpg"))["code"] == 1000
    assert akool.violations and "GPS" in akool.violations[0]


def test_custom_audio_is_fetched(akool, site):
    http = client(akool, api_key=API_KEY)
    answer = create(http, site, audio_type=2, audio_url=site.url("/voice.mp3"))
    assert answer["code"] == 1000
    assert site.gets.count("/voice.mp3") == 1  # really fetched
    assert create(http, site, audio_type=2, audio_url=site.url("/missing.mp3"))["code"] == 1003


@pytest.mark.parametrize(
    "overrides", [{"video_length": 10}, {"is_premium_model": True}], ids=["10s", "premium"]
)
def test_pro_features_are_gated_by_plan(site, overrides):
    with AkoolSimulator(CLIENT_ID, CLIENT_SECRET, api_key=API_KEY, plan="free") as sim:
        answer = create(client(sim, api_key=API_KEY), site, **overrides)
        assert answer["code"] == 1009
        assert len(sim.violations) == 1 and "pro plan" in sim.violations[0]
    with AkoolSimulator(CLIENT_ID, CLIENT_SECRET, api_key=API_KEY, plan="pro") as sim:
        assert create(client(sim, api_key=API_KEY), site, **overrides)["code"] == 1000
        assert sim.violations == []


@pytest.mark.parametrize("code", [1003, 1008, 1009, 1015, 1101, 1102, 1109, 1200])
def test_plans_force_any_code(akool, site, code):
    akool.plan_next(submit=code)
    answer = create(client(akool, api_key=API_KEY), site)
    assert answer["code"] == code and answer["data"] is None and answer["msg"]
    assert akool.tasks == {} and akool.violations == []


def test_garbage_and_drop_still_create_the_task(akool, site):
    http = client(akool, api_key=API_KEY)
    akool.plan_next(submit="garbage")
    with pytest.raises(json.JSONDecodeError):
        http.post(CREATE, json=fields(site)).json()
    akool.plan_next(submit="drop")
    with pytest.raises(httpx.HTTPError):
        http.post(CREATE, json=fields(site))
    assert len(akool.tasks) == 2


# --- resultsByIds ---------------------------------------------------------------------------
def test_results_by_ids_batches_and_shuffles(akool, site):
    http = client(akool, api_key=API_KEY)
    ids = [create(http, site)["data"]["_id"] for _ in range(6)]
    orders = set()
    for attempt in range(6):
        if attempt:
            time.sleep(0.011)  # the 1 s courtesy spacing, scaled
        answer = http.post(RESULTS, json={"_ids": ",".join(ids + ["0" * 24])}).json()
        returned = [task["_id"] for task in answer["data"]["result"]]
        assert sorted(returned) == sorted(ids)  # the unknown id is simply absent
        orders.add(tuple(returned))
    assert len(orders) > 1  # shuffled: clients must match by _id
    assert akool.batch_sizes == [7] * 6
    assert akool.violations == []

    # Real seconds from here: the poll below is too soon however busy the machine (at 0.01 a
    # gap over 10 ms, a slow moment on a loaded machine, used to pass as polite).
    akool.time_scale = 1.0
    http.post(RESULTS, json={"_ids": ids[0]})
    assert len(akool.violations) == 1 and "courtesy" in akool.violations[0]


@pytest.mark.parametrize("ids", [["a", "b"], "a, b", "a b", ""])
def test_results_by_ids_wants_one_comma_separated_string(akool, ids):
    answer = client(akool, api_key=API_KEY).post(RESULTS, json={"_ids": ids}).json()
    assert answer["code"] == 1003
    assert len(akool.violations) == 1 and "_ids" in akool.violations[0]


# --- Effects, audio, delete -----------------------------------------------------------------
def test_effects_with_served_previews(akool):
    answer = client(akool, api_key=API_KEY).get("/image2Video/effects").json()
    effects = answer["data"]["result"]
    assert answer["code"] == 1000 and 3 <= len(effects) <= 4 == answer["data"]["count"]
    for effect in effects:
        assert set(effect) >= {"_id", "name", "logo", "video_url", "effect_code"}
    preview = httpx.get(effects[0]["video_url"])
    assert preview.status_code == 200 and preview.content[4:8] == b"ftyp"
    assert httpx.get(effects[0]["logo"]).status_code == 200


def test_update_video_audio(akool, site):
    http = client(akool, api_key=API_KEY)
    # A 0.5 s run (real): long enough that the early request lands in it on a busy machine.
    akool.plan_next(queue_seconds=0, run_seconds=50)
    video = create(http, site, video_length=10, webhookurl=site.url("/hook"))["data"]
    body = {"pre_video_id": video["_id"], "audio_type": 2, "audio_url": site.url("/voice.mp3")}

    early = http.post("/image2Video/updateVideoAudio", json=body).json()
    assert early["code"] == 1003 and len(akool.violations) == 1  # not completed yet
    akool.violations.clear()
    akool.wait_until(lambda: akool.tasks[video["_id"]].status_at(time.monotonic()) == 3)

    missing = {**body, "pre_video_id": "f" * 24}
    assert http.post("/image2Video/updateVideoAudio", json=missing).json()["code"] == 1008
    answer = http.post("/image2Video/updateVideoAudio", json=body).json()
    assert answer["code"] == 1000
    task = answer["data"]
    assert task["only_add_audio"] is True and task["deduction_credit"] == 10
    assert task["pre_video_id"] == video["_id"] and task["webhookUrl"] == ""
    assert akool.violations == []
    assert akool.tasks[task["_id"]].webhook is None

    with_hook = {**body, "webhookurl": site.url("/hook")}
    assert http.post("/image2Video/updateVideoAudio", json=with_hook).json()["code"] == 1003


def test_delete_refuses_processing_tasks(akool, site):
    http = client(akool, api_key=API_KEY)
    akool.plan_next(queue_seconds=0, run_seconds=1)
    done = create(http, site)["data"]["_id"]
    running = create(http, site)["data"]["_id"]  # default plan: 35 s, i.e. 0.35 s
    time.sleep(0.03)
    answer = http.post("/image2Video/delbyids", json={"_ids": f"{done},{running}"}).json()
    assert answer["code"] == 1000
    assert answer["data"]["successIds"] == [done]
    [refused] = answer["data"]["noPermissionItems"]
    assert refused["_id"] == running and "processing" in refused["msg"]
    assert set(results(http, done, running)) == {running}
    assert akool.violations == []


# --- Webhooks -------------------------------------------------------------------------------
def test_webhooks_verify_and_decrypt_by_the_recipe(akool, site):
    http = client(akool, api_key=API_KEY)
    akool.plan_next(queue_seconds=1, run_seconds=2, processing_callbacks=True)
    task = create(http, site, webhookurl=site.url("/hook"))["data"]
    wait_for(lambda: len(site.hooks("/hook")) == 2)
    bodies = site.hooks("/hook")
    payloads = [verify_and_decrypt(body) for body in bodies]
    assert [p["status"] for p in payloads] == [2, 3]
    assert payloads[1] == {
        "_id": task["_id"],
        "status": 3,
        "type": "image2video",
        "url": payloads[1]["url"],
    }
    assert httpx.get(payloads[1]["url"]).status_code == 200
    assert payloads[0]["url"] == ""
    # The timestamp (ms) comes as a number and as a string in turn.
    assert {type(body["timestamp"]) for body in bodies} == {int, str}
    for body in bodies:
        assert 1000 <= int(body["nonce"]) <= 999999
        assert abs(int(body["timestamp"]) - time.time() * 1000) < 60_000
        # The module helpers agree with the recipe.
        assert (
            sign(CLIENT_ID, body["timestamp"], body["nonce"], body["dataEncrypt"])
            == (body["signature"])
        )
    assert decrypt(CLIENT_ID, CLIENT_SECRET, bodies[1]["dataEncrypt"]) == payloads[1]
    assert akool.wait_for_webhooks(2)
    assert [d.payload["status"] for d in akool.webhooks_sent] == [2, 3]
    assert akool.violations == []


@pytest.mark.parametrize(
    ("mode", "statuses"),
    [("once", [3]), ("twice", [3, 3]), ("none", []), ("late", [3]), ("out_of_order", [3, 2])],
)
def test_webhook_modes(akool, site, mode, statuses):
    akool.plan_next(queue_seconds=0, run_seconds=1, webhook=mode, webhook_delay_seconds=5)
    created = time.monotonic()
    create(client(akool, api_key=API_KEY), site, webhookurl=site.url("/hook"))
    if statuses:
        wait_for(lambda: len(site.hooks("/hook")) == len(statuses))
        assert akool.wait_for_webhooks(len(statuses))  # recorded just after the answer
    else:
        time.sleep(0.1)
    assert [verify_and_decrypt(b)["status"] for b in site.hooks("/hook")] == statuses
    if mode == "late":
        assert akool.webhooks_sent[0].at - created >= 0.06


def test_failed_task_webhook_and_retry(akool, site):
    site.answer_status = 500
    akool.plan_next(
        queue_seconds=0, run_seconds=1, outcome="error", webhook_retries=2, webhook_retry_seconds=1
    )
    create(client(akool, api_key=API_KEY), site, webhookurl=site.url("/hook"))
    wait_for(lambda: len(site.hooks("/hook")) == 3)
    assert akool.wait_for_webhooks(3)
    payload = verify_and_decrypt(site.hooks("/hook")[0])
    assert payload["status"] == 4 and payload["url"] == ""
    assert [d.status for d in akool.webhooks_sent] == [500, 500, 500]


def test_forged_tampered_and_replayed_webhooks(akool, site):
    akool.plan_next(webhook="none")
    task = create(client(akool, api_key=API_KEY), site, webhookurl=site.url("/hook"))["data"]
    genuine = akool.send_webhook(task["_id"])
    akool.send_webhook(task["_id"], forge=True)
    akool.send_webhook(task["_id"], tamper=True)
    akool.send_webhook(task["_id"], tamper="padding")
    replay = akool.send_webhook(task["_id"], replay_of=genuine)
    custom = akool.send_webhook(task["_id"], payload={"_id": task["_id"], "status": 9})
    hooks = site.hooks("/hook")
    assert len(hooks) == 6 and [d.kind for d in akool.webhooks_sent] == [
        "normal",
        "forged",
        "tampered",
        "bad_padding",
        "replay",
        "normal",
    ]
    assert verify_and_decrypt(hooks[0])["status"] == 1
    for body in hooks[1:3]:
        with pytest.raises(ValueError, match="signature"):
            verify_and_decrypt(body)
    with pytest.raises(ValueError):  # signed correctly: only decryption exposes it
        verify_and_decrypt(hooks[3])
    with pytest.raises(ValueError, match="decrypt"):
        decrypt(CLIENT_ID, CLIENT_SECRET, hooks[3]["dataEncrypt"])
    assert hooks[4] == hooks[0] and replay.body == genuine.body
    assert verify_and_decrypt(hooks[5]) == custom.payload


def test_module_helpers_round_trip():
    payload = {"_id": "a" * 24, "status": 3, "type": "image2video", "url": "http://x/y.mp4"}
    data = encrypt(CLIENT_ID, CLIENT_SECRET, payload)
    assert decrypt(CLIENT_ID, CLIENT_SECRET, data) == payload
    assert sign(CLIENT_ID, 1, "2", data) == sign(CLIENT_ID, "1", 2, data)
    with pytest.raises(ValueError):
        decrypt(CLIENT_ID, "f" * 32, data)
