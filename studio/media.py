"""Serving stored files to members (the callers have checked membership): a redirect to a
presigned URL on object storage, an nginx X-Accel-Redirect on local disk behind nginx, otherwise
streamed by Django with HTTP Range support so the video player can seek (studio.storage decides)."""

import mimetypes
import re

from django.http import FileResponse, HttpResponse, HttpResponseRedirect, StreamingHttpResponse

from studio import storage

RANGE = re.compile(r"^bytes=([0-9]*)-([0-9]*)$")
CHUNK = 256 * 1024
# More digits than any stored file's size can have. A longer figure is read as "beyond the end"
# rather than converted: int() refuses strings over 4,300 digits, and a first byte past the end is
# what RFC 9110 answers 416 for; a huge last byte or suffix just means "to the end", as for any
# end past the file.
MOST_DIGITS = 18
BEYOND = 10**MOST_DIGITS


def _position(digits: str) -> int:
    return int(digits) if len(digits) <= MOST_DIGITS else BEYOND


def _chunks(handle, start: int, length: int):
    handle.seek(start)
    remaining = length
    try:
        while remaining > 0:
            data = handle.read(min(CHUNK, remaining))
            if not data:
                break
            remaining -= len(data)
            yield data
    finally:
        handle.close()


def file_response(request, field_file, *, download_name: str | None = None):
    """A member's file: where it is sent from depends on the storage (studio.storage)."""
    content_type = mimetypes.guess_type(field_file.name)[0] or "application/octet-stream"
    disposition = f'attachment; filename="{download_name}"' if download_name else ""
    how = storage.delivery(field_file.storage)
    if how == storage.PRESIGNED:
        url = storage.presigned_url(
            field_file.storage, field_file.name, content_type=content_type, disposition=disposition
        )
        response = HttpResponseRedirect(url)
        response["Cache-Control"] = "private, no-store"  # no cache may keep (or share) the URL
        return response
    if how == storage.ACCEL_REDIRECT:  # nginx sends the bytes, and answers Range itself
        response = HttpResponse(content_type=content_type)
        response["X-Accel-Redirect"] = storage.accel_redirect_path(field_file.name)
    else:
        response = _streamed(request, field_file, content_type)
        if response.status_code == 416:
            return response
        response["Accept-Ranges"] = "bytes"
    response["Cache-Control"] = "private, max-age=3600"
    if disposition:
        response["Content-Disposition"] = disposition
    return response


def _streamed(request, field_file, content_type: str):
    """The file through Django; a single `Range: bytes=a-b` gets 206 with just those bytes."""
    size = field_file.size
    match = RANGE.match(request.headers.get("Range", "").strip())
    if not (match and (match[1] or match[2])):
        return FileResponse(field_file.open("rb"), content_type=content_type)
    if match[1]:
        start = _position(match[1])
        end = min(_position(match[2]), size - 1) if match[2] else size - 1
    else:  # "bytes=-N": the last N bytes
        start, end = max(size - _position(match[2]), 0), size - 1
    if start > end or start >= size:
        response = HttpResponse(status=416)
        response["Content-Range"] = f"bytes */{size}"
        return response
    length = end - start + 1
    response = StreamingHttpResponse(
        _chunks(field_file.open("rb"), start, length), status=206, content_type=content_type
    )
    response["Content-Range"] = f"bytes {start}-{end}/{size}"
    response["Content-Length"] = str(length)
    return response
