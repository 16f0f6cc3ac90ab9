"""AKOOL image-to-video (seed 002, providers.md §5), and an audio track added to a finished
AKOOL video. Credentials and the `{code, msg, data}` envelope live in akool_client; the models by
plan, the audio file and the effects list in akool_models.

Tasks are polled many at a time (`resultsByIds` takes a comma-separated list of ids, and answers
in any order); AKOOL's callbacks are signed and encrypted, so a genuine one is known to come from
AKOOL, but it still only wakes the job: the next poll confirms what changed. 10 s videos and the
premium model are for pro plans and above, so the form offers them per AKOOL_PLAN."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from datetime import timedelta

from django.conf import settings

from studio.inputs import signed_asset_url, signed_input_url
from studio.models import AssetRole, JobState
from studio.providers import akool_client as client
from studio.providers import akool_models as offer
from studio.providers.akool_crypto import CallbackRefused, open_callback
from studio.providers.base import (
    AssetDraft,
    OutcomeUnknown,
    Provider,
    ProviderError,
    Status,
    Submitted,
    WebhookHint,
    WebhookRejected,
)
from studio.providers.http import scrub
from studio.providers.images import fit_within
from studio.providers.params import ModelSpec

log = logging.getLogger(__name__)
LABEL = client.LABEL
CREATE_PATH = "/image2Video/createBySourcePrompt"
RESULTS_PATH = "/image2Video/resultsByIds"
AUDIO_PATH = "/image2Video/updateVideoAudio"
DELETE_PATH = "/image2Video/delbyids"
ADD_AUDIO = offer.ADD_AUDIO

# 4k output is 3840 px on its long side: a larger input only costs upload time.
INPUT_SIDE = 3840
TASK_ID = re.compile(r"[0-9a-f]{24}")  # a MongoDB ObjectId
# A "processing" callback says only that AKOOL has begun generating (the queue is behind the job)
# and AKOOL reports no percentage; generating is the longer half of the wait, so half way is the
# honest figure. wake() only ever raises a job's progress, so a late or replayed one lowers nothing.
PROCESSING_PROGRESS = 50


class Akool(Provider):
    key = "akool"
    label = LABEL
    # AKOOL documents no poll spacing. Its callbacks wake a job when it finishes, and one request
    # polls a whole batch, so the regular pace can be unhurried; a poll after a callback keeps
    # the simulator's courtesy second from the previous one.
    min_poll_interval = timedelta(seconds=1)
    poll_interval = timedelta(seconds=10)
    output_retention = timedelta(days=7)
    deadline = timedelta(minutes=30)
    long_deadline = timedelta(minutes=60)  # 10 s or 4k videos
    queue_deadline = timedelta(hours=1)
    submit_timeout = 60.0  # AKOOL fetches our image (and audio) before it answers
    deletes_remote = True
    reports_cost = True  # each task carries deduction_credit

    def __init__(self):
        self._specs: dict[str, tuple[ModelSpec, ...]] = {}

    # --- declarations -------------------------------------------------------------------------
    @property
    def models(self) -> tuple[ModelSpec, ...]:
        """The models as the configured plan allows them (tests change the plan)."""
        plan = settings.AKOOL_PLAN
        specs = self._specs.get(plan)
        if specs is None:
            specs = self._specs[plan] = (offer.image2video(plan), ADD_AUDIO)
        return specs

    def model_choices(self) -> list[tuple[str, str]]:
        # Audio is added to a finished video, from that video's page, never as a new job.
        return [(m.key, m.label) for m in self.models if m.key != ADD_AUDIO.key]

    def api_key(self) -> str:
        return settings.AKOOL_API_KEY

    def key_fingerprint(self) -> str:
        """The key, or the client id: never the token, which is renewed while jobs run."""
        credential = f"key:{self.api_key()}" if self.api_key() else f"client:{_client()[0]}"
        return hashlib.sha256(credential.encode()).hexdigest()[:16]

    def unavailable_reason(self) -> str:
        return client.credentials_problem()

    @property
    def batch_size(self) -> int:
        return settings.AKOOL_BATCH_SIZE

    def priced_as(self, model: str) -> str:
        return "image2video"  # the audio-only rows are image2video rows with audio set

    def price_keys(self, model: str, params: dict) -> dict:
        duration = int(params.get("video_length") or 5)
        if model == ADD_AUDIO.key:
            return {"duration": duration, "audio": True}
        return {"resolution": params["resolution"], "duration": duration, "audio": False}

    def reconcilable(self, job) -> bool:
        # Only an image-to-video task calls back, naming its id, and only if we can read it.
        return job.model != ADD_AUDIO.key and callbacks_readable()

    def deadline_for(self, job) -> timedelta:
        params = job.params or {}
        long = params.get("video_length") == "10" or params.get("resolution") == "4k"
        return self.long_deadline if long else self.deadline

    def estimated_run(self, job) -> timedelta:
        return timedelta(minutes=4 if self.deadline_for(job) == self.long_deadline else 2)

    # --- files beside the image, effects ------------------------------------------------------
    def take_assets(self, model, params, files, data, image) -> list[AssetDraft]:
        return offer.take_audio(params, files)

    def form_context(self, model: str) -> dict:
        return offer.effects_context() if model == "image2video" else {}

    # --- calls --------------------------------------------------------------------------------
    def prepare_input(self, job) -> None:
        if job.model != ADD_AUDIO.key:  # adding audio sends AKOOL's own video, not our image
            self.keep_fitted_input(job, lambda source: fit_within(source, INPUT_SIDE))

    def submit(self, job) -> Submitted:
        if job.model == ADD_AUDIO.key:
            return self._submitted(client.call("POST", AUDIO_PATH, submit=True, json=_audio(job)))
        answer = client.call("POST", CREATE_PATH, submit=True, json=self._create_body(job))
        return self._submitted(answer)

    def _create_body(self, job) -> dict:
        from studio.webhooks import callback_url

        params = job.params
        body = {
            "image_url": signed_input_url(job),
            # Both required even when an effect makes the prompt irrelevant.
            "prompt": params.get("prompt", ""),
            "negative_prompt": params.get("negative_prompt", ""),
            "resolution": params["resolution"],
            "audio_type": offer.AUDIO_CODES[params["audio_type"]],
            "video_length": int(params["video_length"]),
            "extend_prompt": bool(params.get("extend_prompt")),
        }
        if "is_premium_model" in params:
            body["is_premium_model"] = bool(params["is_premium_model"])
        if params.get("effect_code"):
            body["effect_code"] = params["effect_code"]
        if params["audio_type"] == "upload":
            body["audio_url"] = signed_asset_url(_audio_asset(job))
        if callbacks_readable():  # a callback we could not verify would only be refused
            body["webhookurl"] = callback_url(job)
        return body

    def _submitted(self, answer: dict) -> Submitted:
        task = answer.get("data")
        task_id = task.get("_id") if isinstance(task, dict) else None
        if not (isinstance(task_id, str) and TASK_ID.fullmatch(task_id)):
            raise OutcomeUnknown(f"{LABEL} accepted the job but its answer named no task id.")
        status = self._status(task)
        return Submitted(task_id, status=status if isinstance(status, Status) else None)

    def poll(self, jobs) -> dict:
        """One resultsByIds request for the whole batch; its answers come in any order."""
        ids = ",".join(dict.fromkeys(job.provider_job_id for job in jobs))
        try:
            answer = client.call("POST", RESULTS_PATH, json={"_ids": ids})
        except ProviderError as error:
            # The tasks exist and may still finish: nothing said here ends them (the deadline
            # does, with a refund, if staff cannot put the account right before it).
            return {job.pk: _transient(error) for job in jobs}
        data = answer.get("data")
        found = data.get("result") if isinstance(data, dict) else None
        if not isinstance(found, list):
            error = ProviderError(f"{LABEL} answered without a result list.", permanent=False)
            return {job.pk: error for job in jobs}
        by_id = {
            t["_id"]: t for t in found if isinstance(t, dict) and isinstance(t.get("_id"), str)
        }
        results = {}
        for job in jobs:
            task = by_id.get(job.provider_job_id)
            results[job.pk] = (
                self._status(task)
                if task is not None
                else ProviderError(f"{LABEL} said nothing of this video.", permanent=False)
            )
        return results

    def _status(self, task: dict) -> Status | ProviderError:
        answer = scrub(task, _secrets())
        word = {1: "queueing", 2: "processing", 3: "completed", 4: "failed"}.get(task.get("status"))
        cost = _credits(task.get("deduction_credit"))
        if word in ("queueing", "processing"):
            # No percentage here (a processing callback may have set one; this keeps it).
            return Status("running", word=word, cost=cost, answer=answer)
        if word == "completed":
            url = task.get("video_url")
            if not (isinstance(url, str) and url.startswith(("http://", "https://"))):
                return ProviderError(f"{LABEL} finished without a video link.", permanent=False)
            return Status("succeeded", word=word, output_url=url, cost=cost, answer=answer)
        if word == "failed":
            message = f"{LABEL} could not make it: {client.said(task.get('error_msg'))}"
            return Status("failed", word=word, message=message, cost=cost, answer=answer)
        status = client.said(task.get("status"), 40)
        log.warning("%s answered an unknown status %r for task %s", LABEL, status, task["_id"])
        return Status("running", word=status, answer=answer)

    def delete_remote(self, jobs) -> dict:
        """delbyids, a batch per request: deleted, "busy" while AKOOL still makes it, or "gone"
        (AKOOL has no such video, or it is not ours to delete)."""
        results = {job.pk: "gone" for job in jobs if not job.provider_job_id}
        asked = [job for job in jobs if job.provider_job_id]
        for start in range(0, len(asked), self.batch_size):
            results |= _delete(asked[start : start + self.batch_size])
        return results

    # --- callbacks ----------------------------------------------------------------------------
    def parse_webhook(self, job, body: bytes, headers) -> WebhookHint:
        client_id, secret = _client()
        if not (client_id and secret):
            raise WebhookRejected(
                "Without AKOOL_CLIENT_ID and AKOOL_CLIENT_SECRET a callback cannot be verified."
            )
        try:
            payload = json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise WebhookRejected("The body is not JSON.") from None
        try:
            task = open_callback(client_id, secret, payload)
        except CallbackRefused as refused:
            raise WebhookRejected(str(refused)) from None
        task_id, status = task.get("_id"), task.get("status")
        if not (isinstance(task_id, str) and TASK_ID.fullmatch(task_id)):
            raise WebhookRejected("The callback names no task id.")
        note = f"status {client.said(status, 8)}"
        if job.state == JobState.SUBMITTING:  # our answer is late or lost: AKOOL names the task
            return WebhookHint(provider_job_id=task_id, note=note)
        if task_id != job.provider_job_id:
            raise WebhookRejected("The task is not this job's.")
        if status == 1:  # still queueing: nothing to look at
            return WebhookHint(task_id, note, wake=False)
        if status == 2:
            progress = max(job.progress, PROCESSING_PROGRESS)
            return WebhookHint(task_id, note, progress=progress, wake=False)
        return WebhookHint(task_id, note)  # finished (or news we do not know): the poll decides


def callbacks_readable() -> bool:
    return all(_client())


def _client() -> tuple[str, str]:
    return settings.AKOOL_CLIENT_ID, settings.AKOOL_CLIENT_SECRET


def _secrets() -> tuple[str, ...]:
    return (settings.AKOOL_API_KEY, settings.AKOOL_CLIENT_SECRET)


def _transient(error: ProviderError) -> ProviderError:
    if not error.permanent:
        return error
    return ProviderError(f"{error} Trying again until the job's deadline.", permanent=False)


def _credits(value) -> float | None:
    valid = isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value < 1e6
    return float(value) if valid else None


def _audio_asset(job):
    asset = job.assets.filter(role=AssetRole.AUDIO).order_by("position").first()
    if asset is None:
        raise ProviderError("This job's audio file is missing.", permanent=True)
    return asset


def _audio(job) -> dict:
    """updateVideoAudio: the finished video (AKOOL's id of it) and the audio to add. It takes
    no webhook URL, so these tasks are polled."""
    source = job.source_job
    if source is None or source.provider != Akool.key or not source.provider_job_id:
        raise ProviderError("Audio can only be added to a finished AKOOL video.", permanent=True)
    upload = job.params.get("audio_type") == "upload"
    return {
        "pre_video_id": source.provider_job_id,
        "audio_type": offer.AUDIO_CODES[job.params.get("audio_type", "ai")],
        "audio_url": signed_asset_url(_audio_asset(job)) if upload else "",
    }


def _delete(jobs) -> dict:
    ids = ",".join(dict.fromkeys(job.provider_job_id for job in jobs))
    try:
        answer = client.call("POST", DELETE_PATH, json={"_ids": ids})
    except ProviderError as error:
        return {job.pk: error for job in jobs}
    data = answer.get("data")
    data = data if isinstance(data, dict) else {}
    deleted = {i for i in data.get("successIds") or [] if isinstance(i, str)}
    refused = {
        item["_id"]: str(item.get("msg", ""))
        for item in data.get("noPermissionItems") or []
        if isinstance(item, dict) and isinstance(item.get("_id"), str)
    }
    results = {}
    for job in jobs:
        task_id = job.provider_job_id
        if task_id in deleted:
            results[job.pk] = "deleted"
        elif task_id in refused:
            # "processing and cannot be deleted" (queueing too): ask again once it is done.
            busy = re.search(r"process|queue", refused[task_id], re.IGNORECASE)
            results[job.pk] = "busy" if busy else "gone"
        else:
            results[job.pk] = ProviderError(f"{LABEL} said nothing of this video.", permanent=False)
    return results
