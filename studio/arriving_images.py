"""Checking an uploaded image while it is still arriving.

The one check that reads every byte of an image is decoding it (studio.uploads.inspect_image):
a 12-megapixel phone photo takes over 20 ms even at 1/8 scale. Django parses an upload a chunk
at a time, so this handler hands each image file's bytes, as they come, to a thread that runs
that same check (Pillow lets go of the GIL while it decodes), and writes them to a file in the
scratch folder, so that storing the image on local disk is a rename. Over a real network the
decode is finished when the last byte arrives; on a fast one it overlaps with storing the file
and writing the job. check_image() takes the thread's answers instead of decoding again, and
submit_job() waits for the decode only just before it reserves credits: a damaged file is still
refused with nothing reserved, and nothing of it kept.

Memory: the decode reads the image from memory; UploadSizeLimitMiddleware has already refused
any request larger than MAX_UPLOAD_BYTES and the form's fields.
"""

from __future__ import annotations

import io
import logging
import os
import tempfile
import threading
import time
from concurrent.futures import Future

from django.core.files.uploadedfile import (
    InMemoryUploadedFile,
    TemporaryUploadedFile,
    UploadedFile,
)
from django.core.files.uploadhandler import FileUploadHandler, StopFutureHandlers

from studio.jobs import scratch
from studio.uploads import CheckedImage, inspect_image

logger = logging.getLogger(__name__)

# How long a read waits for the next chunk: a client that stops sending mid-file leaves the
# request to fail on its own; the checking thread gives up after this and ends.
STALL_SECONDS = 60.0
# How long check_image() waits for the thread once every byte is there (a decode takes ms).
ANSWER_SECONDS = 30.0
# A form holds a few images at most (Kling: the image, an end frame, two masks); any beyond
# these go to Django's handlers and are checked when read, so a request cannot start a thread
# per part.
CHECKS_PER_REQUEST = 4
# After the header, only the decoder reads. Pillow's JPEG loader takes a short read as a socket's
# (only an empty one ends the file) and libjpeg takes data in any amount, so the decode starts on
# the first chunk that arrives instead of waiting for a whole block (a 1 MB block takes 8 ms at
# 1 Gbit/s), and keeps pace with the upload. PNG's loader needs every read whole.
SHORT_READ_FORMATS = frozenset({"JPEG", "MPO"})


class ArrivingBytes:
    """A read-only, seekable file over bytes still arriving: a read waits until they are there,
    or the file is complete."""

    def __init__(self):
        self._data = bytearray()
        self._complete = False
        self._short_reads = False
        self._position = 0
        self._changed = threading.Condition()

    def append(self, chunk: bytes) -> None:
        with self._changed:
            self._data += chunk
            self._changed.notify_all()

    def complete(self) -> None:
        with self._changed:
            self._complete = True
            self._changed.notify_all()

    def allow_short_reads(self) -> None:
        """From now on a read answers with what has arrived (one byte at least) instead of
        waiting for all it asked for, as a socket's read does."""
        self._short_reads = True

    def getvalue(self) -> bytes:
        with self._changed:
            return bytes(self._data)

    def _wait_for(self, end: int | None) -> None:
        """Until the data reaches `end` (None: the whole file) or is complete."""
        deadline = time.monotonic() + STALL_SECONDS
        while not self._complete and (end is None or len(self._data) < end):
            if not self._changed.wait(timeout=max(0.0, deadline - time.monotonic())):
                raise OSError("the upload stopped arriving")
            deadline = time.monotonic() + STALL_SECONDS

    def read(self, size: int = -1) -> bytes:
        whole = size is None or size < 0
        with self._changed:
            if whole:
                self._wait_for(None)
            else:
                self._wait_for(self._position + (1 if self._short_reads else size))
            end = len(self._data) if whole else self._position + size
            with memoryview(self._data) as data:  # one copy, not two
                chunk = bytes(data[self._position : end])
            self._position += len(chunk)
            return chunk

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        with self._changed:
            if whence == io.SEEK_END:
                self._wait_for(None)
                offset += len(self._data)
            elif whence == io.SEEK_CUR:
                offset += self._position
            self._position = max(0, offset)
            return self._position

    def tell(self) -> int:
        return self._position

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True


class ArrivingCheck:
    """inspect_image() run in a thread over an ArrivingBytes: the header's answer as soon as the
    header has arrived, the decode's when every byte has."""

    def __init__(self):
        self.bytes = ArrivingBytes()
        self._header: Future[CheckedImage] = Future()
        self._decoded: Future[CheckedImage] = Future()
        threading.Thread(target=self._run, name="image-check", daemon=True).start()

    def _run(self) -> None:
        try:
            self._decoded.set_result(inspect_image(self.bytes, on_header=self._on_header))
        except BaseException as error:  # handed to the request, which raises it
            if not self._header.done():
                self._header.set_exception(error)
            self._decoded.set_exception(error)

    def _on_header(self, checked: CheckedImage) -> None:
        if checked.format in SHORT_READ_FORMATS:
            self.bytes.allow_short_reads()
        self._header.set_result(checked)

    def header(self) -> CheckedImage:
        return self._header.result(timeout=ANSWER_SECONDS)

    def confirm_decoded(self) -> None:
        self._decoded.result(timeout=ANSWER_SECONDS)


class SpooledImage(TemporaryUploadedFile):
    """The image written to a file as it arrives, in the scratch folder beside the media: storing
    it on local disk is then a rename, not 3.6 MB written while the request waits. The file goes
    when the request closes it, unless storage moved it away; a web process killed meanwhile
    leaves it to the sweep (studio.jobs.scratch)."""

    def __init__(self, folder, name, content_type, charset, content_type_extra):
        # Closed (and so removed) when the request ends, or by upload_interrupted().
        file = tempfile.NamedTemporaryFile(suffix=scratch.UPLOAD_SUFFIX, dir=folder)  # noqa: SIM115
        UploadedFile.__init__(self, file, name, content_type, 0, charset, content_type_extra)

    @property
    def temporary_file_path(self):
        """Storage moves a file that has one. Once moved (and perhaps deleted again: a job
        refused for credits), the file is still open here, so storing it again (the refusal
        keeps the image) streams it like any upload."""
        if not os.path.exists(self.file.name):
            raise AttributeError("temporary_file_path")
        return super().temporary_file_path

    @classmethod
    def in_scratch(cls, name, content_type, charset, content_type_extra) -> SpooledImage | None:
        """None if the scratch folder cannot take it: the image is then kept in memory and
        written when stored, as any upload (a storage failure is said there)."""
        try:
            return cls(scratch.uploads(), name, content_type, charset, content_type_extra)
        except OSError as error:
            logger.warning("Cannot spool an upload in the scratch folder: %s", error)
            return None


class ImageCheckingUploadHandler(FileUploadHandler):
    """Listed first in FILE_UPLOAD_HANDLERS: takes every file declared as an image and checks it
    as it arrives; anything else goes on to Django's own handlers. (One instance per request.)"""

    check: ArrivingCheck | None = None
    spool: SpooledImage | None = None
    started = 0

    def new_file(self, field_name, file_name, content_type, *args, **kwargs):
        super().new_file(field_name, file_name, content_type, *args, **kwargs)
        self.check = None
        if (content_type or "").lower().startswith("image/") and self.started < CHECKS_PER_REQUEST:
            self.started += 1
            self.check = ArrivingCheck()
            self.spool = SpooledImage.in_scratch(
                file_name, content_type, self.charset, self.content_type_extra
            )
            raise StopFutureHandlers()

    def receive_data_chunk(self, raw_data, start):
        if self.check is None:
            return raw_data
        self.check.bytes.append(raw_data)
        if self.spool is not None:
            self.spool.write(raw_data)
        return None

    def file_complete(self, file_size):
        if self.check is None:
            return None
        self.check.bytes.complete()
        if self.spool is not None:
            upload, self.spool = self.spool, None
            upload.flush()
            upload.seek(0)
            upload.size = file_size
        else:
            upload = InMemoryUploadedFile(
                file=io.BytesIO(self.check.bytes.getvalue()),
                field_name=self.field_name,
                name=self.file_name,
                content_type=self.content_type,
                size=file_size,
                charset=self.charset,
                content_type_extra=self.content_type_extra,
            )
        upload.arriving_check = self.check
        self.check = None
        return upload

    def upload_interrupted(self):
        if self.check is not None:
            self.check.bytes.complete()  # the thread ends on what came
        if self.spool is not None:
            self.spool.close()  # and its file goes
            self.spool = None
