"""An uploaded image is decoded while it arrives (studio.arriving_images), and the decode's answer
is still what decides, before anything is reserved."""

import os
import threading
import time
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.files.uploadhandler import StopFutureHandlers

from studio import arriving_images, uploads
from studio.arriving_images import ArrivingBytes, ImageCheckingUploadHandler
from studio.models import ImageUpload, Job, LedgerEntry
from studio.uploads import UploadRefused
from tests.conftest import FAST_PARAMS, make_image_bytes
from tests.test_new_job_form import drain


def photo(size=(1600, 1200)) -> bytes:
    return make_image_bytes("JPEG", size)


def damaged_photo() -> bytes:
    """A JPEG whose header is sound (size, format) but whose picture stops halfway."""
    whole = photo()
    return whole[: len(whole) // 2]


def post_new_job(client, team, image: bytes, **params):
    upload = SimpleUploadedFile("phone.jpg", image, content_type="image/jpeg")
    fields = {"image": upload, "provider": "local", **FAST_PARAMS, **params}
    return client.post(f"/t/{team.slug}/jobs/new/", fields)


# --- Through the form -------------------------------------------------------------------------
def test_the_form_uses_the_decode_done_on_arrival_and_never_decodes_again(
    personas, client_for, monkeypatch
):
    def decode_in_the_request(*args, **kwargs):
        raise AssertionError("the request decoded the image itself")

    monkeypatch.setattr(uploads, "inspect_image", decode_in_the_request)

    response = post_new_job(client_for(personas.member), personas.team, photo())

    assert response.status_code == 302
    job = Job.objects.get()
    assert (job.input_width, job.input_height) == (1600, 1200)


def test_a_photo_damaged_past_its_header_is_refused_with_nothing_reserved_or_kept(
    personas, client_for, media_root
):
    response = post_new_job(client_for(personas.member), personas.team, damaged_photo())

    assert response.status_code == 200
    assert "The image is damaged or incomplete" in response.content.decode()
    assert not Job.objects.exists()
    assert not LedgerEntry.objects.filter(kind="reserve").exists()
    assert not [p for p in media_root.rglob("*") if p.is_file()]


def test_a_damaged_photo_is_named_beside_the_other_refusals(personas, client_for):
    response = post_new_job(client_for(personas.member), personas.team, damaged_photo(), fps=4)

    page = response.content.decode()
    assert "Frames per second must be at least 8." in page
    assert "The image is damaged or incomplete" in page
    assert not Job.objects.exists()


# --- Spooled to disk as it arrives ------------------------------------------------------------
@pytest.fixture
def spooled(monkeypatch):
    """The (path, inode) of every image spooled while it arrived."""
    seen = []
    real_init = arriving_images.SpooledImage.__init__

    def recording_init(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        seen.append((Path(self.file.name), os.stat(self.file.name).st_ino))

    monkeypatch.setattr(arriving_images.SpooledImage, "__init__", recording_init)
    return seen


def test_an_image_is_stored_by_moving_the_file_it_arrived_in(
    personas, client_for, spooled, settings
):
    image = photo()
    response = post_new_job(client_for(personas.member), personas.team, image)

    assert response.status_code == 302
    stored = Path(Job.objects.get().input_image.path)
    assert stored.read_bytes() == image
    [(spool, inode)] = spooled
    assert spool.parent == Path(settings.SCRATCH_DIR) / "uploads"
    assert stored.stat().st_ino == inode  # renamed into the media folder, not written again
    assert not spool.exists()


def test_a_refused_image_leaves_nothing_in_the_scratch_folder(
    personas, client_for, spooled, media_root
):
    response = post_new_job(client_for(personas.member), personas.team, damaged_photo())

    assert response.status_code == 200
    [(spool, _)] = spooled
    assert not spool.exists()
    assert not [p for p in media_root.rglob("*") if p.is_file()]


def test_an_image_refused_for_credits_after_storing_is_kept_all_the_same(
    personas, client_for, spooled
):
    """The job's file is stored (moved) before the reservation finds no credits and deletes it
    again; keeping the image for the next try then reads what is still open."""
    drain(personas.team)
    image = photo()

    response = post_new_job(client_for(personas.member), personas.team, image)

    assert response.status_code == 200
    assert "credits" in response.content.decode()
    assert spooled  # it arrived spooled
    [kept] = ImageUpload.objects.all()
    assert kept.file.read() == image


def test_without_a_scratch_folder_an_image_arrives_in_memory(
    personas, client_for, settings, tmp_path
):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the scratch folder would be")
    settings.SCRATCH_DIR = blocker

    response = post_new_job(client_for(personas.member), personas.team, photo())

    assert response.status_code == 302
    assert Path(Job.objects.get().input_image.path).read_bytes() == photo()


def test_a_request_starts_only_a_few_checks(personas, client_for, monkeypatch):
    started = []
    real_init = arriving_images.ArrivingCheck.__init__

    def counting_init(self):
        started.append(self)
        real_init(self)

    monkeypatch.setattr(arriving_images.ArrivingCheck, "__init__", counting_init)
    images = {
        f"extra{n}": SimpleUploadedFile(f"{n}.jpg", photo((200, 150)), content_type="image/jpeg")
        for n in range(7)
    }
    client = client_for(personas.member)
    client.post(f"/t/{personas.team.slug}/jobs/new/", {**images, "provider": "local"})

    assert len(started) == arriving_images.CHECKS_PER_REQUEST


# --- The pieces -------------------------------------------------------------------------------
def test_a_read_waits_for_the_bytes_it_asks_for():
    arriving = ArrivingBytes()
    arriving.append(b"abc")

    def later():
        time.sleep(0.05)
        arriving.append(b"defg")
        time.sleep(0.05)
        arriving.complete()

    threading.Thread(target=later).start()
    assert arriving.read(2) == b"ab"
    assert arriving.read(4) == b"cdef"  # waited for the second piece
    assert arriving.read() == b"g"  # waited for the end
    assert arriving.seek(0, 2) == 7 and arriving.read(5) == b""
    arriving.seek(1)
    assert arriving.read(3) == b"bcd"


def test_after_the_header_a_jpeg_is_decoded_as_it_arrives_not_block_by_block():
    """A read answers with what has arrived, so the decode keeps pace with the upload instead
    of waiting for a whole block (1 MB) while the bytes trickle in."""
    image = photo((2400, 1800))
    assert len(image) < uploads.DECODE_BLOCK_BYTES
    check = arriving_images.ArrivingCheck()
    half = len(image) // 2
    check.bytes.append(image[:half])
    assert check.header().format == "JPEG"

    deadline = time.monotonic() + 10
    while check.bytes.tell() < half and time.monotonic() < deadline:
        time.sleep(0.01)
    assert check.bytes.tell() == half  # the decoder has taken all that came, and waits

    check.bytes.append(image[half:])
    check.bytes.complete()
    check.confirm_decoded()


def test_a_short_read_answers_with_what_has_arrived():
    arriving = ArrivingBytes()
    arriving.append(b"abc")
    arriving.allow_short_reads()

    def later():
        time.sleep(0.05)
        arriving.append(b"de")
        arriving.complete()

    threading.Thread(target=later).start()
    assert arriving.read(10) == b"abc"
    assert arriving.read(10) == b"de"  # waited for at least one byte
    assert arriving.read(10) == b""  # the end


def test_a_read_gives_up_when_the_upload_stops_arriving(monkeypatch):
    monkeypatch.setattr(arriving_images, "STALL_SECONDS", 0.05)
    arriving = ArrivingBytes()
    arriving.append(b"ab")

    with pytest.raises(OSError, match="stopped arriving"):
        arriving.read(10)


def test_an_interrupted_upload_ends_its_check_as_damaged_and_leaves_no_file(spooled):
    handler = ImageCheckingUploadHandler()
    with pytest.raises(StopFutureHandlers):  # Django's other handlers never see it
        handler.new_file("image", "phone.jpg", "image/jpeg", None)
    check = handler.check
    handler.receive_data_chunk(photo()[:5000], 0)

    handler.upload_interrupted()

    with pytest.raises(UploadRefused, match="damaged or incomplete"):
        check.confirm_decoded()
    [(spool, _)] = spooled
    assert not spool.exists()


def test_a_file_not_declared_an_image_goes_to_djangos_handlers():
    handler = ImageCheckingUploadHandler()
    handler.new_file("audio", "track.mp3", "audio/mpeg", None)

    assert handler.receive_data_chunk(b"ID3", 0) == b"ID3"
    assert handler.file_complete(3) is None
