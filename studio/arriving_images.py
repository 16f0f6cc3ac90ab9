"""Checking an uploaded image while it is still arriving.

The one check that reads every byte of an image is decoding it (studio.uploads.inspect_image):
a 12-megapixel phone photo takes over 20 ms even at 1/8 scale. Django parses an upload a chunk
at a time, so this handler keeps each image file's bytes in memory and hands them, as they come,
to a thread that runs that same check; Pillow lets go of the GIL while it decodes. Over a real
network the decode is finished when the last byte arrives; on a fast one it overlaps with storing
the file and writing the job. check_image() takes the thread's answers instead of decoding again,
and submit_job() waits for the decode only just before it reserves credits: a damaged file is
still refused with nothing reserved, and nothing of it kept.

Memory: an image file is held in memory, not spooled to disk; UploadSizeLimitMiddleware has
already refused any request larger than MAX_UPLOAD_BYTES and the form's fields.
"""

from __future__ import annotations

import io
import logging
import threading
import time
from concurrent.futures import Future

from django.core.files.uploadedfile import InMemoryUploadedFile
from django.core.files.uploadhandler import FileUploadHandler, StopFutureHandlers

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


class ArrivingBytes:
    """A read-only, seekable file over bytes still arriving: a read waits until they are there,
    or the file is complete."""

    def __init__(self):
        self._data = bytearray()
        self._complete = False
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
        with self._changed:
            self._wait_for(None if size is None or size < 0 else self._position + size)
            end = len(self._data) if size is None or size < 0 else self._position + size
            chunk = bytes(self._data[self._position : end])
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
            self._decoded.set_result(inspect_image(self.bytes, on_header=self._header.set_result))
        except BaseException as error:  # handed to the request, which raises it
            if not self._header.done():
                self._header.set_exception(error)
            self._decoded.set_exception(error)

    def header(self) -> CheckedImage:
        return self._header.result(timeout=ANSWER_SECONDS)

    def confirm_decoded(self) -> None:
        self._decoded.result(timeout=ANSWER_SECONDS)


class ImageCheckingUploadHandler(FileUploadHandler):
    """Listed first in FILE_UPLOAD_HANDLERS: takes every file declared as an image and checks it
    as it arrives; anything else goes on to Django's own handlers. (One instance per request.)"""

    check: ArrivingCheck | None = None
    started = 0

    def new_file(self, field_name, file_name, content_type, *args, **kwargs):
        super().new_file(field_name, file_name, content_type, *args, **kwargs)
        self.check = None
        if (content_type or "").lower().startswith("image/") and self.started < CHECKS_PER_REQUEST:
            self.started += 1
            self.check = ArrivingCheck()
            raise StopFutureHandlers()

    def receive_data_chunk(self, raw_data, start):
        if self.check is None:
            return raw_data
        self.check.bytes.append(raw_data)
        return None

    def file_complete(self, file_size):
        if self.check is None:
            return None
        self.check.bytes.complete()
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
