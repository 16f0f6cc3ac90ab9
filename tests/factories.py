from django.core.files.base import ContentFile

from studio.models import Job
from tests.conftest import FAST_PARAMS, make_image_bytes


def make_job(team, creator, *, state="queued", **fields) -> Job:
    fields = {"params": dict(FAST_PARAMS), "input_width": 640, "input_height": 400} | fields
    job = Job(
        team=team,
        creator=creator,
        provider="local",
        model="camera-motion-v1",
        state=state,
        **fields,
    )
    job.input_image.save("input.png", ContentFile(make_image_bytes()), save=False)
    job.save()
    return job
