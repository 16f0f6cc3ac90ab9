from django.core.files.base import ContentFile
from django.db import transaction

from studio.billing import ledger
from studio.jobs.states import transition
from studio.models import Job, JobState
from tests.conftest import FAST_PARAMS, make_image_bytes

S = JobState
# The legal walk from queued to each state, so a factory job is settled as a real one would be.
PATHS = {
    S.QUEUED: [],
    S.SUBMITTING: [S.SUBMITTING],
    S.RUNNING: [S.SUBMITTING, S.RUNNING],
    S.SUCCEEDED: [S.SUBMITTING, S.RUNNING, S.SUCCEEDED],
    S.FAILED: [S.SUBMITTING, S.RUNNING, S.FAILED],
    S.EXPIRED: [S.SUBMITTING, S.RUNNING, S.EXPIRED],
    S.CANCELED: [S.CANCELED],
}


def make_job(team, creator, *, state="queued", price=None, **fields) -> Job:
    """A job created the way submit_job creates one (with its reservation), then walked to `state`;
    `fields` are written afterwards, as a provider would have."""
    params = fields.pop("params", dict(FAST_PARAMS))
    job = Job(
        team=team,
        creator=creator,
        provider="local",
        model="camera-motion-v1",
        params=params,
        input_width=640,
        input_height=400,
        price_quoted=params.get("duration", 1) if price is None else price,
    )
    job.input_image.save("input.png", ContentFile(make_image_bytes()), save=False)
    with transaction.atomic():
        job.save()
        ledger.reserve(job)
    source = S.QUEUED
    for target in PATHS[S(state)]:
        assert transition(job, source, target)
        source = target
    if fields:
        Job.objects.filter(pk=job.pk).update(**fields)
        job.refresh_from_db()
    return job
