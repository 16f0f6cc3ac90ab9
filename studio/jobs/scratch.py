"""Nothing of a failed job stays on disk.

Scratch folders: a render (studio/providers/local.py) and an output copy (studio/jobs/outputs.py)
work in a folder under settings.SCRATCH_DIR named `<kind>-<job id>-<random>`. A worker killed
mid-task cannot remove its folder, so the periodic sweep (studio.tasks.sweep) removes those
older than TASK_TIME_LIMIT whose job is no longer running, and any older than Q_TIMEOUT (django-q2
has killed whatever task made it by then).

Uploads: an image arriving in a request is written to `uploads/` here as it comes
(studio.arriving_images), so that storing it on local disk is a rename. The request removes its
file when it ends; the sweep removes any older than UPLOAD_MAX_AGE (a web process killed
mid-request), which no request lasts.

Storing: `StoredFiles` saves files to storage and deletes every one of them again if anything
fails before the job takes them, so a failure halfway leaves no orphaned video or poster.

Scratch folders are always on this machine's disk, whatever keeps the media (local disk or S3):
the sweep lists SCRATCH_DIR only, never the media storage, and stored files are removed by name
through the storage API, which S3 supports as well.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
import time
import uuid
from pathlib import Path

from django.conf import settings
from django.core.files import File
from django.core.files.storage import default_storage

log = logging.getLogger(__name__)
FOLDER_NAME = re.compile(r"^(render|output)-([0-9a-f]{32})-")
UPLOAD_SUFFIX = ".upload"
UPLOAD_MAX_AGE = 3600.0  # seconds; the web server ends a request long before (gunicorn: 30-60 s)


def root() -> Path:
    folder = Path(settings.SCRATCH_DIR)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def folder(kind: str, job_id) -> tempfile.TemporaryDirectory:
    """A scratch folder for one job's task, removed when the `with` block ends."""
    return tempfile.TemporaryDirectory(prefix=f"{kind}-{uuid.UUID(str(job_id)).hex}-", dir=root())


def uploads() -> Path:
    """Where arriving uploads are spooled: beside the media folder by default, so that storing
    one is a rename."""
    folder = Path(settings.SCRATCH_DIR) / "uploads"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def sweep(now: float | None = None) -> int:
    """Remove scratch folders left behind by killed workers, and uploads left by killed web
    processes; returns how many."""
    base = Path(settings.SCRATCH_DIR)
    if not base.is_dir():
        return 0
    now = time.time() if now is None else now
    return _sweep_folders(base, now) + _sweep_uploads(base / "uploads", now)


def _sweep_uploads(folder: Path, now: float) -> int:
    removed = 0
    for entry in folder.glob(f"*{UPLOAD_SUFFIX}"):
        try:
            if now - entry.stat().st_mtime > UPLOAD_MAX_AGE:
                entry.unlink()
                removed += 1
        except FileNotFoundError:  # its request ended meanwhile
            continue
    if removed:
        log.info("removed %d uploads left by stopped web processes", removed)
    return removed


def _sweep_folders(base: Path, now: float) -> int:
    from studio.models import Job, JobState

    stale: dict[str, list[tuple[Path, float]]] = {}
    for entry in base.iterdir():
        match = FOLDER_NAME.match(entry.name)
        if not match or not entry.is_dir():
            continue
        try:
            age = now - entry.stat().st_mtime
        except FileNotFoundError:  # its task finished meanwhile
            continue
        if age > settings.TASK_TIME_LIMIT:
            stale.setdefault(match.group(2), []).append((entry, age))
    if not stale:
        return 0
    running = {
        job_id.hex
        for job_id in Job.objects.filter(
            pk__in=[uuid.UUID(hex_id) for hex_id in stale], state=JobState.RUNNING
        ).values_list("pk", flat=True)
    }
    removed = 0
    for hex_id, entries in stale.items():
        for entry, age in entries:
            if hex_id in running and age <= settings.Q_TIMEOUT:
                continue  # its task may still be at work
            shutil.rmtree(entry, ignore_errors=True)
            removed += 1
    if removed:
        log.info("removed %d scratch folders left by stopped workers", removed)
    return removed


def save_file(path: Path, name: str, storage=None) -> str:
    """Save a local file to storage; a save that fails halfway leaves nothing behind. The file is
    streamed, never read whole: the local disk copies it in chunks, S3 uploads it in parts."""
    storage = storage or default_storage
    # The name save() will pick, so a write that fails halfway can be found and removed.
    planned = storage.get_available_name(name)
    try:
        with Path(path).open("rb") as handle:
            return storage.save(planned, File(handle))
    except BaseException:
        _delete(storage, planned)
        raise


def _delete(storage, name: str) -> None:
    try:
        storage.delete(name)
    except Exception:  # a failed clean-up must not hide the failure that caused it
        log.exception("could not delete %s from storage", name)


class StoredFiles:
    """Names saved to storage for one job, all deleted again when the `with` block ends unless
    `keep()` was called (the job took them):

        with StoredFiles() as stored:
            video = stored.add(save_file(path, "videos/..."))
            ...
            if transition(job, ..., video=video):
                stored.keep()
    """

    def __init__(self, storage=None):
        self.storage = storage or default_storage
        self.names: list[str] = []
        self.kept = False

    def add(self, name: str) -> str:
        self.names.append(name)
        return name

    def keep(self) -> None:
        self.kept = True

    def discard(self) -> None:
        for name in self.names:
            _delete(self.storage, name)
        self.names = []

    def __enter__(self) -> StoredFiles:
        return self

    def __exit__(self, *exc) -> None:
        if not self.kept:
            self.discard()
