"""Issue 9: nothing of a failed job stays on disk — neither what a failed store already wrote,
nor the scratch folder of a worker killed mid-render."""

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from django.core.files.storage import FileSystemStorage

from studio import tasks
from studio.engine import render_video
from studio.jobs import outputs, scratch
from studio.jobs.states import transition
from studio.models import JobState
from studio.providers import PROVIDERS
from tests.factories import make_job

S = JobState
ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def scratch_dir(settings, tmp_path):
    settings.SCRATCH_DIR = tmp_path / "scratch"
    return settings.SCRATCH_DIR


def files_under(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file()) if folder.exists() else []


@pytest.fixture
def disk_fails_on(monkeypatch):
    """Storage writes the first bytes of a file whose name starts with `prefix`, then fails, as
    a full disk would: a real partial file is left where the save was going."""
    real_save = FileSystemStorage._save

    def arm(prefix: str):
        def failing_save(self, name, content):
            if name.startswith(prefix):
                path = Path(self.path(name))
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(content.read(100))
                raise OSError(28, "No space left on device")
            return real_save(self, name, content)

        monkeypatch.setattr(FileSystemStorage, "_save", failing_save)

    return arm


# --- A failure while storing deletes whatever was written -----------------------------------
@pytest.mark.parametrize("failing", ["videos/", "posters/"])
def test_a_render_that_fails_while_storing_leaves_no_file(
    personas, media_root, scratch_dir, disk_fails_on, failing
):
    job = make_job(personas.team, personas.member, state=S.SUBMITTING)
    disk_fails_on(failing)

    PROVIDERS["local"].render(job)

    job.refresh_from_db()
    assert job.state == S.FAILED and not job.video and not job.poster
    assert files_under(media_root / "videos") == []  # the stored video, or the partial one
    assert files_under(media_root / "posters") == []
    assert list(scratch_dir.iterdir()) == []  # its scratch folder went too


def test_copying_an_output_that_fails_while_storing_leaves_no_file(
    finished_remote_job, media_root, scratch_dir, disk_fails_on
):
    job = finished_remote_job
    disk_fails_on("posters/")  # the video is stored already when the poster fails

    with pytest.raises(OSError):
        outputs.collect_output(job.pk)

    job.refresh_from_db()
    assert job.state == S.RUNNING and job.output_ref  # copied again later, from the kept raw file
    assert files_under(media_root / "videos") == []
    assert files_under(media_root / "posters") == []
    assert len(files_under(media_root / "provider-outputs")) == 1
    assert list(scratch_dir.iterdir()) == []


# --- Scratch folders of killed workers --------------------------------------------------------
KILLED_RENDER = """
import sys
from pathlib import Path
import django
django.setup()
from PIL import Image
from studio.engine import RenderSettings, render_video
from studio.jobs import scratch

settings = RenderSettings.from_mapping(
    {"duration": 10, "resolution": "1080p", "aspect": "source", "fps": 30,
     "motion": "ken_burns", "strength": 5}
)
with scratch.folder("render", sys.argv[1]) as tmp:
    render_video(
        Image.new("RGB", (1920, 1080), "teal"),
        Path(tmp) / "video.mp4",
        settings,
        poster_path=Path(tmp) / "poster.jpg",
        progress=lambda done, total: print("rendering", done, flush=True),
    )
"""


def kill_a_worker_mid_render(job, scratch_dir: Path) -> Path:
    """Start a real render in another process, as a worker would, and SIGKILL it halfway."""
    process = subprocess.Popen(
        [sys.executable, "-c", KILLED_RENDER, str(job.pk)],
        cwd=ROOT,
        env=os.environ | {"SCRATCH_DIR": str(scratch_dir)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()
        assert line.startswith("rendering"), process.stderr.read()
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    [left] = list(scratch_dir.iterdir())
    assert left.name.startswith(f"render-{job.pk.hex}-")
    assert any(p.name.endswith(".part") for p in left.iterdir())  # the half-written video
    return left


def made_like_a_worker(kind: str, job) -> Path:
    """The folder scratch.folder() makes, without the object that would remove it."""
    return Path(tempfile.mkdtemp(prefix=f"{kind}-{job.pk.hex}-", dir=scratch.root()))


def age(folder: Path, seconds: float) -> None:
    then = time.time() - seconds
    os.utime(folder, (then, then))


def test_the_sweep_removes_a_killed_workers_folder_once_its_job_has_failed(
    personas, scratch_dir, settings
):
    job = make_job(personas.team, personas.member, state=S.RUNNING)
    left = kill_a_worker_mid_render(job, scratch_dir)

    tasks.sweep()
    assert left.exists()  # young: its render may be alive

    age(left, settings.TASK_TIME_LIMIT + 30)
    tasks.sweep()
    assert left.exists()  # the job still counts as rendering until its stall is noticed

    assert transition(job, S.RUNNING, S.FAILED, error="The worker stopped while rendering.")
    tasks.sweep()
    assert not left.exists()


def test_the_sweep_keeps_live_folders_and_removes_any_past_the_kill_time(
    personas, scratch_dir, settings
):
    rendering = make_job(personas.team, personas.member, state=S.RUNNING)
    finished = make_job(personas.team, personas.member, state=S.FAILED)
    live = made_like_a_worker("render", rendering)
    just_failed = made_like_a_worker("render", finished)  # its render is still cleaning up
    copying = made_like_a_worker("output", rendering)
    age(copying, settings.TASK_TIME_LIMIT + 30)
    forgotten = made_like_a_worker("output", rendering)
    age(forgotten, settings.Q_TIMEOUT + 30)  # django-q2 killed whatever task made it
    someone_elses = scratch_dir / "notes"
    someone_elses.mkdir()
    age(someone_elses, 10 * settings.Q_TIMEOUT)

    assert scratch.sweep() == 1

    assert live.exists() and just_failed.exists() and copying.exists() and someone_elses.exists()
    assert not forgotten.exists()


def test_the_sweep_removes_uploads_left_by_a_killed_web_process(scratch_dir):
    folder = scratch.uploads()
    left = folder / f"tmpkilled{scratch.UPLOAD_SUFFIX}"
    left.write_bytes(b"half a photo")
    age(left, scratch.UPLOAD_MAX_AGE + 30)
    arriving = folder / f"tmpnow{scratch.UPLOAD_SUFFIX}"
    arriving.write_bytes(b"a photo on its way")
    someone_elses = folder / "notes.txt"
    someone_elses.write_text("not an upload")
    age(someone_elses, 10 * scratch.UPLOAD_MAX_AGE)

    assert scratch.sweep() == 1

    assert not left.exists()
    assert arriving.exists() and someone_elses.exists()


def test_renders_and_copies_work_in_named_folders_under_the_scratch_dir(
    personas, scratch_dir, monkeypatch
):
    job = make_job(personas.team, personas.member, state=S.SUBMITTING)
    seen = []
    real_render = render_video

    def watching_render(image, out_path, *args, **kwargs):
        seen.append(Path(out_path).parent)
        return real_render(image, out_path, *args, **kwargs)

    monkeypatch.setattr("studio.providers.local.render_video", watching_render)
    PROVIDERS["local"].render(job)
    job.refresh_from_db()
    assert job.state == S.SUCCEEDED
    [folder] = seen
    assert folder.parent == scratch_dir and folder.name.startswith(f"render-{job.pk.hex}-")
    assert not folder.exists()
