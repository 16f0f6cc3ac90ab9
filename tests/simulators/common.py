"""What every provider simulator shares: a real HTTP server on localhost, job plans, the request
log, contract violations, scaled time, a scheduler for timed events, and real sample media.

A simulator is a test double that imitates a provider's *documented* behaviour over real HTTP, so
the product's adapters are exercised exactly as they would be against the real service: real
sockets, real timeouts, real multipart bodies. Every request is checked against the documented
contract; a breach is recorded in `violations` (tests assert it stays empty) and, where the real
service would refuse the request, refused the way the real service documents.

Time: every documented duration (poll spacing, rate windows, lockouts, job run times, retention)
is multiplied by `time_scale`, so a test at 0.01 sees a 10 s poll interval as 0.1 s. Durations a
simulator reports back (poll gaps, `eta`, violation messages) are converted back to documented
seconds, so messages read like the documentation.
"""

from __future__ import annotations

import functools
import heapq
import io
import itertools
import json
import math
import socket
import socketserver
import sys
import threading
import time
import traceback
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field, replace
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import urlsplit

import httpx
from PIL import Image, ImageDraw

OUTBOUND_TIMEOUT = 10.0  # real seconds for a fetch of our files or a webhook post
SUBMIT_MODES = ("ok", "garbage", "slow", "drop")
SUBMIT_STATUSES = (400, 401, 402, 403, 404, 413, 422, 429, 500, 503)
OUTCOMES = ("success", "filtered", "error")
POLL_FAILURES = (429, 500, 503, "garbage")
WEBHOOK_MODES = ("once", "twice", "none", "late", "out_of_order", "before_done")
OUTPUT_TYPES = (None, "mp4", "gif")


# --- How one job behaves --------------------------------------------------------------------
@dataclass
class Plan:
    """How one submitted job behaves. The defaults are a normal, successful generation.

    Durations are documented seconds (multiplied by the simulator's `time_scale`), except
    `slow_seconds`, which is real seconds: it exists to make a client's own timeout fire.
    Fields that do not apply to a provider are ignored by it.
    """

    # "ok" | "garbage" (200, non-JSON body) | "slow" (answer after slow_seconds) | "drop" (close
    # the connection unanswered) | an HTTP status from SUBMIT_STATUSES, answered in the provider's
    # documented error shape. "garbage", "slow" and "drop" still create the job: the provider took
    # the work and only its answer was lost, the expensive case a client must reconcile.
    submit: str | int = "ok"
    slow_seconds: float = 5.0
    run_seconds: float = 30.0
    # "success" | "filtered" (Stability: finish-reason CONTENT_FILTERED) | "error"
    outcome: str = "success"
    # Answers given to the first polls instead of the real one: 429, 500, 503 or "garbage".
    poll_failures: list[int | str] = field(default_factory=list)
    # After the job is done, the output stays fetchable this long (documented 24 h).
    retention_seconds: float = 86400.0
    # ModelsLab only below.
    eta: int = 20
    output_type: str | None = None  # None: as requested
    instant_success: bool = False  # the create answer is already "success" with output
    webhook: str = "once"  # see WEBHOOK_MODES
    webhook_delay_seconds: float = 30.0  # for webhook="late": after the job is done

    def __post_init__(self):
        if self.submit not in SUBMIT_MODES and self.submit not in SUBMIT_STATUSES:
            raise ValueError(f"Plan.submit must be one of {SUBMIT_MODES + SUBMIT_STATUSES}")
        if self.outcome not in OUTCOMES:
            raise ValueError(f"Plan.outcome must be one of {OUTCOMES}")
        for failure in self.poll_failures:
            if failure not in POLL_FAILURES:
                raise ValueError(f"Plan.poll_failures entries must be among {POLL_FAILURES}")
        if self.webhook not in WEBHOOK_MODES:
            raise ValueError(f"Plan.webhook must be one of {WEBHOOK_MODES}")
        if self.output_type not in OUTPUT_TYPES:
            raise ValueError(f"Plan.output_type must be one of {OUTPUT_TYPES}")


# --- Requests and answers -------------------------------------------------------------------
@dataclass
class RequestRecord:
    """One request as the simulator received it (kept in `Simulator.requests`)."""

    method: str
    path: str
    headers: dict[str, str]  # names lower-cased
    at: float  # time.monotonic() on arrival
    query: str = ""
    json: Any = None  # the parsed JSON body, if it had one
    form_fields: list[str] | None = None  # multipart field names, for multipart bodies
    key: str | None = None  # the API key it presented, once recognised as valid
    status: int | None = None  # the answer's HTTP status; None if the connection was dropped


@dataclass
class Request:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    at: float
    record: RequestRecord

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    def json(self) -> Any:
        """The body parsed as JSON; ValueError if it is not JSON."""
        return json.loads(self.body.decode("utf-8"))


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # real seconds to wait before answering (Plan.submit == "slow")
    drop: bool = False  # close the connection without answering (Plan.submit == "drop")


def json_response(status: int, data: Any, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(data).encode()
    return Response(status, body, {"content-type": "application/json", **(headers or {})})


def text_response(status: int, text: str, content_type: str = "text/plain") -> Response:
    return Response(status, text.encode(), {"content-type": f"{content_type}; charset=utf-8"})


def garbage_response() -> Response:
    """HTTP 200 whose body is not JSON: what a misbehaving proxy in front of an API sends."""
    return text_response(
        200, "<html><body><h1>502 Bad Gateway</h1><p>upstream hiccup</p></body></html>", "text/html"
    )


def seconds_value(seconds: float) -> int | float:
    """A duration for a JSON field: whole seconds as an int (as documented), else a float.

    Scaled durations are fractional in tests; clients should read them as numbers, not ints.
    """
    return int(round(seconds)) if abs(seconds - round(seconds)) < 1e-9 else round(seconds, 3)


def retry_after_header(seconds: float) -> dict[str, str]:
    return {"retry-after": str(seconds_value(max(seconds, 0.0)))}


def parse_multipart(content_type: str, body: bytes) -> dict[str, MultipartField]:
    """The fields of a multipart/form-data body, byte-exact (the email parser mangles binaries)."""
    header = Message()
    header["content-type"] = content_type
    boundary = header.get_param("boundary")
    if not boundary or not isinstance(boundary, str):
        raise ValueError("multipart content-type without a boundary")
    delimiter = b"--" + boundary.encode("latin-1")
    sections = body.split(delimiter)
    if len(sections) < 3 or not sections[-1].startswith(b"--"):
        raise ValueError("multipart body without its closing boundary")
    fields: dict[str, MultipartField] = {}
    for section in sections[1:-1]:
        head, sep, data = section.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        if not sep:
            raise ValueError("multipart part without a blank line after its headers")
        part = Message()
        for line in head.decode("utf-8", "replace").split("\r\n"):
            name, colon, value = line.partition(":")
            if colon:
                part[name.strip()] = value.strip()
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            raise ValueError("multipart part without a name")
        filename = part.get_param("filename", header="content-disposition")
        fields[name] = MultipartField(
            name=name,
            filename=filename if isinstance(filename, str) else None,
            content_type=part.get_content_type() if part.get("content-type") else None,
            data=data.removesuffix(b"\r\n"),
        )
    return fields


@dataclass
class MultipartField:
    name: str
    filename: str | None
    content_type: str | None
    data: bytes

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", "replace")


# --- Images sent to us, media we send back --------------------------------------------------
@dataclass
class ImageFacts:
    format: str  # Pillow's name: "PNG", "JPEG", ...
    size: tuple[int, int]
    metadata: list[str]  # personal metadata found, e.g. ["EXIF (3 tags)", "GPS position"]


def inspect_image(data: bytes) -> ImageFacts:
    """Decode an uploaded image fully; ValueError if it is not one. Lists EXIF/GPS found in it:
    our product must strip them (they can carry a member's location) before sending it anywhere.
    """
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()  # PNG keeps eXIf after the pixels: read everything first
            exif = image.getexif()
            info = dict(image.info)
            facts = ImageFacts(image.format or "?", image.size, [])
    except Exception as error:  # Pillow raises many types for bad data
        raise ValueError(f"not a decodable image ({error})") from None
    if len(exif):
        facts.metadata.append(f"EXIF ({len(exif)} tags)")
    if 0x8825 in exif or (len(exif) and exif.get_ifd(0x8825)):
        facts.metadata.append("GPS position")
    xmp = info.get("xmp") or info.get("XML:com.adobe.xmp")
    if xmp and "GPS" in (xmp.decode("utf-8", "replace") if isinstance(xmp, bytes) else str(xmp)):
        facts.metadata.append("XMP with GPS")
    return facts


def _moving_picture(size: tuple[int, int], index: int, frames: int) -> Image.Image:
    """Frame `index` of a short animation: a scrolling colour gradient and a sliding box."""
    width, height = size
    ramp = Image.linear_gradient("L").transpose(Image.Transpose.ROTATE_90)  # left-right ramp
    ramp = ramp.resize((width * 2, height))
    shift = index * width // frames
    base = ramp.crop((shift, 0, shift + width, height))
    picture = Image.merge("RGB", (base, Image.new("L", size, 90), base.point(lambda v: 255 - v)))
    box = width // 4
    left = index * (width - box) // max(frames - 1, 1)
    ImageDraw.Draw(picture).rectangle(
        (left, height // 3, left + box, height // 3 + box // 2), fill=(250, 200, 40)
    )
    return picture


@functools.cache
def sample_mp4() -> bytes:
    """A real H.264 MP4 (256x144, 24 fps, 1 s, moving picture), made once per process."""
    import av  # slow to import; only when a simulator needs it

    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = 256, 144, "yuv420p"
        stream.options = {"preset": "veryfast"}
        for index in range(24):
            picture = _moving_picture((256, 144), index, 24)
            frame = av.VideoFrame.from_image(picture).reformat(format="yuv420p")
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return buffer.getvalue()


@functools.cache
def sample_gif() -> bytes:
    """A real animated GIF (128x72, 8 frames, looping), made once per process."""
    frames = [
        _moving_picture((128, 72), i, 8).convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
        for i in range(8)
    ]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=125, loop=0)
    return buffer.getvalue()


# --- Timed events ---------------------------------------------------------------------------
class Scheduler:
    """Runs callbacks at given monotonic times on one daemon thread (job completion, webhooks).

    Callbacks must be quick: anything that talks to the network starts its own thread.
    """

    def __init__(self, on_error: Callable[[str], None]):
        self._heap: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self._wake = threading.Condition()
        self._stopped = False
        self._thread: threading.Thread | None = None
        self._on_error = on_error

    def start(self) -> None:
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="simulator-scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._wake:
            self._stopped = True
            self._heap.clear()
            self._wake.notify_all()

    def call_at(self, when: float, callback: Callable[[], None]) -> None:
        with self._wake:
            heapq.heappush(self._heap, (when, next(self._order), callback))
            self._wake.notify_all()

    def _run(self) -> None:
        with self._wake:
            while not self._stopped:
                if not self._heap:
                    self._wake.wait()
                    continue
                delay = self._heap[0][0] - time.monotonic()
                if delay > 0:
                    self._wake.wait(delay)
                    continue
                _, _, callback = heapq.heappop(self._heap)
                self._wake.release()
                try:
                    callback()
                except Exception:
                    self._on_error(traceback.format_exc())
                finally:
                    self._wake.acquire()


# --- The HTTP server ------------------------------------------------------------------------
class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real APIs do
    timeout = 60  # idle keep-alive connections end on their own
    # Headers and body go out in two writes; with Nagle's algorithm and the client's delayed ACK
    # each answer would then wait ~40 ms, far slower than the real services.
    disable_nagle_algorithm = True
    server: _Server

    def _serve(self) -> None:
        at = time.monotonic()
        try:
            body = self._read_body()
        except (ValueError, OSError):
            self.close_connection = True
            return
        split = urlsplit(self.path)
        headers = {name.lower(): value for name, value in self.headers.items()}
        record = RequestRecord(self.command, split.path, headers, at, query=split.query)
        request = Request(self.command, split.path, split.query, headers, body, at, record)
        response = self.server.simulator._dispatch(request)
        if response.delay:
            time.sleep(response.delay)
        if response.drop:
            self.close_connection = True
            with suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        try:
            self.send_response(response.status)
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.send_header("content-length", str(len(response.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(response.body)
        except OSError:  # the client gave up (e.g. timed out during a "slow" answer)
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline(65537).split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def log_message(self, *args):
        pass  # the simulator keeps its own log


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, simulator: Simulator):
        self.simulator = simulator
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self):
        # HTTPServer.server_bind asks DNS for our name (getfqdn), which can stall; we need no name.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def process_request(self, request, client_address):
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request):
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """End kept-alive connections, so clients see a stopped server as stopped."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request, client_address):
        pass  # a client hanging up is not our concern; simulator errors are caught in _dispatch


# --- The base simulator ---------------------------------------------------------------------
class Simulator:
    """A provider API served on `host:port` (port 0: any free port) from a daemon thread.

    Subclasses implement `handle(request) -> Response`. Everything shared is guarded by `lock`.
    """

    name = "simulator"

    def __init__(
        self,
        *,
        time_scale: float = 1.0,
        host: str = "127.0.0.1",
        port: int = 0,
        slack_seconds: float = 0.01,
    ):
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        self.time_scale = float(time_scale)
        self.host = host
        self.port = port
        # Real seconds forgiven on every spacing check: two requests sent exactly one interval
        # apart can arrive a few milliseconds closer on a busy machine (threads, GC).
        self.slack_seconds = slack_seconds
        self.lock = threading.RLock()
        self.violations: list[str] = []
        self.requests: list[RequestRecord] = []
        self.plans: list[Plan] = []
        self.default_plan = Plan()
        self.webhooks_sent: list = []  # deliveries, for simulators that send webhooks
        # Hooks for a person watching (see __main__): called with each violation / log line.
        self.on_violation: Callable[[str], None] | None = None
        self.on_event: Callable[[str], None] | None = None
        self.scheduler = Scheduler(on_error=lambda text: self.violation(f"simulator error: {text}"))
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._outbound: httpx.Client | None = None

    # Life cycle
    def start(self) -> Self:
        # Make the sample media now, so the first result answer is not slowed by encoding.
        sample_mp4()
        sample_gif()
        self.outbound()  # and the client (its CA bundle takes ~0.05 s to load), not at first use
        self._server = _Server((self.host, self.port), self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{self.name}-http",
            daemon=True,
        )
        self._thread.start()
        self.scheduler.start()
        return self

    def outbound(self) -> httpx.Client:
        """One pooled client for what a provider fetches (input images, masks, audio) and the
        webhooks it posts: a new httpx client per call costs tens of milliseconds (it loads the CA
        bundle), enough to distort scaled time in tests."""
        with self.lock:
            if self._outbound is None or self._outbound.is_closed:
                self._outbound = httpx.Client(timeout=OUTBOUND_TIMEOUT)
            return self._outbound

    def stop(self) -> None:
        self.scheduler.stop()
        with self.lock:
            if self._outbound is not None:
                self._outbound.close()
        if self._server is not None:
            self._server.shutdown()
            self._server.close_connections()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def root_url(self) -> str:
        """http://host:port, with no path."""
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        return f"http://{host}:{self.port}"

    @property
    def base_url(self) -> str:
        """What the product's base-URL setting for this provider should be."""
        return self.root_url

    # Plans
    def plan_next(self, **fields) -> Plan:
        """Append a Plan for the next submission that has none yet; returns it."""
        plan = Plan(**fields)
        with self.lock:
            self.plans.append(plan)
        return plan

    def take_plan(self) -> Plan:
        """The plan for a new job: the first queued one, else a copy of `default_plan`."""
        with self.lock:
            plan = self.plans.pop(0) if self.plans else self.default_plan
            return replace(plan, poll_failures=list(plan.poll_failures))

    # Time
    def scaled(self, documented_seconds: float) -> float:
        """Real seconds standing for a documented duration."""
        return documented_seconds * self.time_scale

    def documented(self, real_seconds: float) -> float:
        """Documented seconds standing for a real duration."""
        return real_seconds / self.time_scale

    def too_soon(self, gap_real: float, minimum_documented: float) -> bool:
        """Whether two requests `gap_real` seconds apart break a documented minimum spacing.

        Forgives `slack_seconds` of jitter, but never more than a fifth of the interval, so that
        tiny scaled intervals still catch back-to-back requests."""
        minimum = self.scaled(minimum_documented)
        return gap_real < minimum - min(self.slack_seconds, minimum / 5)

    # Recording
    def violation(self, message: str) -> None:
        with self.lock:
            self.violations.append(message)
        if self.on_violation is not None:
            self.on_violation(message)

    def event(self, message: str) -> None:
        if self.on_event is not None:
            self.on_event(message)

    def wait_until(self, predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
        """Poll `predicate` until it is true or `timeout` real seconds pass; returns its value."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.005)
        return True

    def wait_for_webhooks(self, count: int, timeout: float = 5.0) -> bool:
        """Wait (real seconds) until at least `count` webhooks have been sent."""
        return self.wait_until(lambda: len(self.webhooks_sent) >= count, timeout)

    # Serving

    def _dispatch(self, request: Request) -> Response:
        with self.lock:
            self.requests.append(request.record)
        try:
            response = self.handle(request)
        except Exception:
            # A simulator bug must not pass for a client bug, nor go unnoticed: tests assert on it.
            self.violation(f"simulator error: {traceback.format_exc()}")
            response = text_response(500, "simulator error")
        request.record.status = None if response.drop else response.status
        self.event(
            f"{request.method} {request.path} -> {'dropped' if response.drop else response.status}"
        )
        return response

    def handle(self, request: Request) -> Response:
        raise NotImplementedError


def ceil_seconds(seconds: float) -> int:
    return max(1, math.ceil(seconds - 1e-9))


def print_line(prefix: str) -> Callable[[str], None]:
    """A hook that prints a line at once (for a person watching the simulators)."""

    def emit(message: str) -> None:
        print(f"{prefix} {message}", file=sys.stdout, flush=True)

    return emit
