"""A tiny web server standing in for our product in the simulators' self-tests: it serves the
files a provider fetches (input images, masks, audio) and receives the provider's webhooks."""

import io
import json
import mimetypes
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import av


class LocalSite:
    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.gets: list[str] = []
        self.posts: list[tuple[str, bytes, float]] = []  # (path, raw body, monotonic time)
        self.answer_status = 200  # what webhooks are answered with
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def do_GET(self):
                site.gets.append(self.path)
                data = site.files.get(self.path)
                kind = mimetypes.guess_type(self.path)[0] or "application/octet-stream"
                self.send_response(200 if data is not None else 404)
                self.send_header("content-type", kind)
                self.send_header("content-length", str(len(data or b"")))
                self.end_headers()
                self.wfile.write(data or b"")

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                site.posts.append((self.path, body, time.monotonic()))
                self.send_response(site.answer_status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        ).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def serve(self, path: str, data: bytes) -> str:
        self.files[path] = data
        return self.url(path)

    def hooks(self, path: str) -> list[dict]:
        """The JSON bodies posted to `path`, in order."""
        return [json.loads(body) for p, body, _ in self.posts if p == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def decode_video(data: bytes) -> tuple[str, int]:
    """(codec name, frames) of a video, decoded end to end."""
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        return stream.codec_context.name, sum(1 for _ in container.decode(stream))
