"""What every provider adapter offers the rest of the product: its models and their parameters,
how a job's parameters map onto the price book, submit / poll / webhook, and the operating
figures (poll spacing, rate limits, batch size, retention, deadline) the job engine honours."""

from __future__ import annotations

import hashlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings

from studio.providers.params import ModelSpec

if TYPE_CHECKING:
    from studio.models import Job


def scaled(duration: timedelta) -> timedelta:
    """A documented provider duration, compressed by PROVIDER_TIME_SCALE for simulator runs."""
    return duration * settings.PROVIDER_TIME_SCALE


class ProviderError(Exception):
    """A provider failed. `permanent` says whether trying again could help; `retry_after` is the
    provider's own hint in seconds; the message is written for a member to act on."""

    def __init__(self, message: str, *, permanent: bool, retry_after: float | None = None):
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after

    @property
    def rate_limited(self) -> bool:
        return self.retry_after is not None


class OutcomeUnknown(ProviderError):
    """The request was sent but no usable answer came back: the provider may have taken (and
    charged for) the job. Such a submission is never sent again automatically."""

    def __init__(self, message: str):
        super().__init__(message, permanent=False)


@dataclass
class Status:
    """What a provider says of one job. `state` is running, succeeded or failed."""

    state: str
    word: str = ""  # the provider's own status word, for support
    progress: int | None = None
    eta_seconds: float | None = None
    output_url: str = ""  # where to fetch the finished video from
    output_path: str = ""  # or a local file the adapter already streamed it into
    output_format: str = "mp4"
    cost: float | None = None  # what the provider says it charged
    message: str = ""  # for a failure: what a member reads
    probably_charged: bool = False  # failed, but the provider likely billed it (staff are told)
    answer: dict[str, Any] = field(default_factory=dict)  # scrubbed, kept on the job for support

    @property
    def done(self) -> bool:
        return self.state in ("succeeded", "failed")


@dataclass
class Submitted:
    provider_job_id: str
    status: Status | None = None  # some providers answer a create with a finished result


@dataclass(frozen=True)
class RateLimit:
    requests: int  # the provider's documented limit ...
    window: timedelta  # ... per this window, per account
    pause: timedelta  # how long the provider locks an account out after a 429
    target: float = 0.9  # the share of the limit we allow ourselves


@dataclass(frozen=True)
class WebhookHint:
    """What an inbound callback claims; it only wakes the job (see studio.webhooks)."""

    provider_job_id: str = ""
    note: str = ""
    # A callback that only reports progress (AKOOL's "processing") sets it and wakes nothing.
    progress: int | None = None
    wake: bool = True


class WebhookRejected(ValueError):
    pass


@dataclass
class AssetDraft:
    """A file a job will send beside its image (studio.models.JobAsset), checked but not yet
    stored: submit_job stores it with the job, or not at all."""

    role: str
    data: bytes
    extension: str  # of the stored name: png, jpg, mp3 ...
    content_type: str
    position: int = 0
    trajectory: list = field(default_factory=list)


class AssetsRefused(ValueError):
    """Files sent beside the image are wrong; `errors` maps each form field to its messages."""

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))
        self.errors = errors


class Provider:
    key: str = ""
    label: str = ""
    models: tuple[ModelSpec, ...] = ()
    remote: bool = True

    # Operating figures, as documented by the provider (scaled() compresses them for simulators).
    min_poll_interval: timedelta = timedelta(seconds=10)  # never closer than this per job
    poll_interval: timedelta | None = None  # the usual pace (None: the minimum)
    rate_limit: RateLimit | None = None
    batch_size: int = 1  # jobs one poll request can answer for
    output_retention: timedelta = timedelta(hours=24)
    deadline: timedelta = timedelta(minutes=15)  # from submission
    queue_deadline: timedelta = timedelta(hours=1)  # longest wait for a slot before submission
    submit_timeout: float = 60.0  # seconds an upload may take before its outcome is unknown
    # After an unknown outcome, can the provider still tell us the job's id (a callback)?
    can_reconcile: bool = False
    # Our own engine: a lost submission can simply be made again, nothing is spent.
    resend_safe: bool = False
    # Its answers say what it charged (Status.cost): staff reconcile our charges against it.
    reports_cost: bool = False

    @property
    def pace(self) -> timedelta:
        """How long after a poll the next one is due, unless a callback brings it forward."""
        return self.figure(self.poll_interval or self.min_poll_interval)

    def figure(self, duration: timedelta) -> timedelta:
        """One of this provider's documented durations as the engine uses it (time-scaled for
        simulator runs; our own engine's figures are ours and never scaled)."""
        return scaled(duration) if self.remote else duration

    # --- declarations ---------------------------------------------------------------------
    def model(self, key: str | None) -> ModelSpec | None:
        if not key:
            return self.models[0]
        return next((m for m in self.models if m.key == key), None)

    def model_choices(self) -> list[tuple[str, str]]:
        return [(m.key, m.label) for m in self.models]

    # The settings that hold the provider's key and base URL (empty: it needs none).
    api_key_setting: str = ""
    base_url_setting: str = ""
    account_name: str = ""  # whose key it is, for messages (default: the label)

    def api_key(self) -> str:
        return getattr(settings, self.api_key_setting) if self.api_key_setting else ""

    @property
    def base_url(self) -> str:
        return getattr(settings, self.base_url_setting)

    def unavailable_reason(self) -> str:
        """Empty when jobs can be sent; otherwise why not, for the form."""
        if self.api_key_setting and not self.api_key():
            account = self.account_name or self.label
            return f"No {account} API key is configured ({self.api_key_setting})."
        return ""

    def max_in_flight(self) -> int | None:
        """How many jobs one account may have at the provider at once (None: no limit)."""
        return None

    def key_fingerprint(self) -> str:
        """Which key submitted a job, without the key: polls must use the same one."""
        key = self.api_key()
        return hashlib.sha256(key.encode()).hexdigest()[:16] if key else "none"

    def price_keys(self, model: str, params: dict) -> dict:
        """The job's parameters as the price book's match fields (resolution, duration, audio)."""
        return {}

    def priced_as(self, model: str) -> str:
        """The price book model a job of `model` is priced under (usually itself)."""
        return model

    def check_input(self, model: str, width: int, height: int) -> str:
        """Why the provider would refuse an image of this (upright) size, figures included; ""
        when it would take it. Checked before anything is reserved."""
        return ""

    def take_assets(self, model: str, params: dict, files, data, image) -> list[AssetDraft]:
        """The files a job of `model` sends beside its image, from the form's or the API's
        `files` and raw `data`, checked against the provider's limits (AssetsRefused if not).
        `image` is the checked input image (its upright width and height)."""
        return []

    def form_context(self, model: str) -> dict:
        """Extra things the new-job form shows for this model (an effects gallery)."""
        return {}

    def reconcilable(self, job: Job) -> bool:
        """After an unknown outcome, can the provider still tell us this job's id?"""
        return self.can_reconcile

    # Providers that keep a copy we can delete (AKOOL's delbyids).
    deletes_remote: bool = False

    def delete_remote(self, jobs: list[Job]) -> dict[Any, str | ProviderError]:
        """Ask the provider to delete its copies: per job "deleted", "busy" (still processing:
        ask again later) or "gone" (it had none), or an error."""
        raise NotImplementedError

    def deadline_for(self, job: Job) -> timedelta:
        return self.deadline

    def estimated_run(self, job: Job) -> timedelta | None:
        """A typical run time, for the ETA when the provider gives no hint."""
        return None

    # --- talking to the provider ----------------------------------------------------------
    def prepare_input(self, job: Job) -> None:
        """Fit the input image to the provider (stored on the job) before it is sent."""

    def keep_fitted_input(self, job: Job, fit) -> None:
        """Fit the job's image once with `fit(source) -> PreparedImage` and keep the result as
        what the provider receives."""
        from django.core.files.base import ContentFile

        from studio.models import JobState

        if job.provider_input:
            return
        try:
            with job.input_image.open("rb") as source:
                fitted = fit(source)
        except (OSError, ValueError) as error:
            raise ProviderError(
                f"The image could not be prepared: {error}", permanent=True
            ) from None
        name = f"{job.pk.hex}.{fitted.extension}"
        job.provider_input.save(name, ContentFile(fitted.data), save=False)
        # Only this column, and only while the job is still being submitted: saving the whole
        # row would write back a state the engine may have moved on from (expired meanwhile).
        kept = type(job).objects.filter(pk=job.pk, state=JobState.SUBMITTING)
        if not kept.update(provider_input=job.provider_input.name):
            job.provider_input.delete(save=False)
            raise ProviderError("The job ended before it was sent.", permanent=True)

    def submit(self, job: Job) -> Submitted:
        raise NotImplementedError

    def poll(self, jobs: list[Job]) -> dict[Any, Status | ProviderError]:
        """A status (or an error) per job id; one request for up to `batch_size` jobs. A
        provider that answers one job per request implements `poll_one` instead."""
        return {job.pk: self.poll_one(job) for job in jobs}

    def poll_one(self, job: Job) -> Status | ProviderError:
        raise NotImplementedError

    def parse_webhook(self, job: Job, body: bytes, headers) -> WebhookHint:
        raise WebhookRejected("this provider sends no callbacks")

    @contextmanager
    def open_output(self, job: Job, url: str):
        """The finished output's bytes, streamed (studio.jobs.outputs writes them to disk)."""
        from studio.providers.http import stream

        with stream(self.label, url) as response:
            if response.status_code in (403, 404, 410):
                raise ProviderError(f"it answered {response.status_code}", permanent=True)
            if response.status_code != 200:
                raise ProviderError(
                    f"{self.label} answered {response.status_code} for the video.", permanent=False
                )
            yield response.iter_bytes(256 * 1024)
