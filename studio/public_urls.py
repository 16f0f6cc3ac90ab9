"""Fetching from and posting to URLs a customer gives us, without letting them reach our network.

A URL's spelling is checked before any packet is sent; then its host is resolved once, inside the
connection (`_PinnedBackend`), every address is checked, and the socket goes to a checked address:
a second lookup could answer differently (DNS rebinding). Redirects are followed by hand, so each
hop is checked like the first."""

from __future__ import annotations

import functools
import ipaddress
import re
import socket
import ssl
import time
import unicodedata
from dataclasses import dataclass

import httpcore
import httpx
from django.conf import settings

MAX_URL_LENGTH = 2000
MAX_REDIRECTS = 5
MAX_POST_ANSWER_BYTES = 64 * 1024  # a webhook receiver's answer is only recorded, never parsed
NOT_PUBLIC = "not a public internet address (it is private, local or reserved)"
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
# A host whose last label is a number is an IPv4 address to some resolvers (inet_aton reads
# 2130706433, 0x7f.0.0.1 and 127.1 as 127.0.0.1): only the plain dotted form is accepted.
_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$", re.IGNORECASE)


class UrlRefused(ValueError):
    """A URL we will not fetch from or post to; the message says why, for the customer."""


@dataclass
class Fetched:
    data: bytes
    content_type: str
    url: str  # the final URL after redirects


def _is_refused(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if ip.version == 6 and ip.ipv4_mapped:  # ::ffff:a.b.c.d is a.b.c.d on a dual-stack socket
        ip = ip.ipv4_mapped
    elif ip in _NAT64:  # a NAT64 gateway would forward it to the IPv4 address in its last 32 bits
        ip = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if any(ip in ipaddress.ip_network(net) for net in settings.OUTBOUND_ALLOW_NETWORKS):
        return False
    # is_global alone lets multicast through, and ::/8 (IPv4-compatible ::7f00:1) is only reserved.
    if not ip.is_global or ip.is_multicast or ip.is_reserved:
        return True
    # 6to4 relays deliver to the IPv4 address embedded in the IPv6 one.
    return ip.version == 6 and ip.sixtofour is not None and _is_refused(ip.sixtofour)


def _parse(url: str) -> httpx.URL:
    """Every check that needs no DNS; returns the URL as httpx will send it."""
    url = url.strip(" \t\r\n") if isinstance(url, str) else ""  # not str.strip(): \x85 is space
    if not url:
        raise UrlRefused("The URL is empty.")
    if len(url) > MAX_URL_LENGTH:
        raise UrlRefused(f"The URL is longer than {MAX_URL_LENGTH} characters.")
    if any(unicodedata.category(c).startswith("C") for c in url):
        raise UrlRefused("The URL contains control or invisible characters.")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError) as error:
        raise UrlRefused(f"The URL is not valid ({error}).") from None
    if parsed.scheme not in ("http", "https"):
        raise UrlRefused("Only http:// and https:// URLs are accepted.")
    if parsed.userinfo:
        raise UrlRefused("The URL must not contain a user name or password (user:pass@).")
    host = parsed.host.rstrip(".")
    if not host:
        raise UrlRefused("The URL has no host name.")
    if parsed.port == 0:
        raise UrlRefused("The URL's port must be from 1 to 65535.")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        if _NUMERIC_LABEL.match(host.rsplit(".", 1)[-1]):
            raise UrlRefused(
                f"The URL's host {host} is an IP address in an unusual spelling; "
                "write it as four decimal numbers, e.g. 203.0.113.7."
            ) from None
    else:
        if _is_refused(ip):
            raise UrlRefused(f"The URL's host {ip} is {NOT_PUBLIC}.")
    return parsed


def _resolve(host: str, port: int) -> list[tuple]:
    """The one lookup for a connection; every address must be public, or none is used."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as error:
        raise httpcore.ConnectError(f"could not find the host {host} ({error})") from None
    for *_, sockaddr in infos:
        if _is_refused(ip := ipaddress.ip_address(sockaddr[0])):
            raise UrlRefused(f"The host {host} resolves to {ip}, which is {NOT_PUBLIC}.")
    return infos


class _DeadlineStream(httpcore.NetworkStream):
    """Clamps every read and write to what is left of the overall deadline, so a server that
    trickles a byte at a time cannot keep us past it (httpx's timeouts are per operation)."""

    def __init__(self, stream: httpcore.NetworkStream, deadline: float):
        self._stream, self._deadline = stream, deadline
        self.close, self.get_extra_info = stream.close, stream.get_extra_info

    def read(self, max_bytes, timeout=None):
        return self._stream.read(max_bytes, _left(self._deadline, timeout))

    def write(self, buffer, timeout=None):
        self._stream.write(buffer, _left(self._deadline, timeout))

    def start_tls(self, ssl_context, server_hostname=None, timeout=None):
        left = _left(self._deadline, timeout)
        return _DeadlineStream(
            self._stream.start_tls(ssl_context, server_hostname, left), self._deadline
        )


def _left(deadline: float, timeout: float | None) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise httpcore.ReadTimeout("the overall time limit passed")
    return left if timeout is None else min(timeout, left)


class _PinnedBackend(httpcore.SyncBackend):
    """Resolves once, checks every address, connects to a checked IP. TLS still verifies the
    URL's host name: httpcore passes the origin's host to start_tls, not the IP."""

    def __init__(self, deadline: float):
        self.deadline = deadline

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        error: Exception = httpcore.ConnectError(f"could not connect to {host}")
        for *_, sockaddr in _resolve(host, port):
            left = _left(self.deadline, timeout)
            try:  # an IP literal: create_connection does no DNS lookup for it
                stream = super().connect_tcp(sockaddr[0], port, left, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as failed:
                error = failed
                continue
            return _DeadlineStream(stream, self.deadline)
        raise error


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    # Built once: loading the certificate store costs ~0.1 s of CPU, on every call otherwise.
    return httpx.create_ssl_context(trust_env=False)


def _client(timeout: float) -> httpx.Client:
    transport = httpx.HTTPTransport(verify=_ssl_context(), trust_env=False)
    # httpx has no public way to hand a network backend to its pool; this is the documented
    # httpcore pool with the same SSL defaults (verification on, no environment certificates).
    transport._pool = httpcore.ConnectionPool(
        ssl_context=_ssl_context(),
        network_backend=_PinnedBackend(time.monotonic() + timeout),
    )
    # trust_env=False: no proxy variable or .netrc may route the request around the checks.
    return httpx.Client(
        transport=transport,
        follow_redirects=False,
        trust_env=False,
        timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
    )


def _size(limit: int) -> str:
    return f"{limit / 2**20:.3g} MB" if limit >= 2**20 else f"{limit} bytes"


def check_url(url: str) -> str:
    """Spelling, scheme and every resolved address; returns the normalised URL."""
    parsed = _parse(url)
    try:
        _resolve(parsed.raw_host.decode("ascii"), parsed.port or 80)  # the port changes nothing
    except httpcore.ConnectError as error:
        raise UrlRefused(f"The URL's host cannot be found: {error}.") from None
    return str(parsed)


def fetch(url: str, *, max_bytes: int, timeout: float = 20.0) -> Fetched:
    """GET, following at most MAX_REDIRECTS redirects, each hop checked like the first."""
    current = _parse(url)
    with _client(timeout) as client:
        for _ in range(MAX_REDIRECTS + 1):
            try:
                with client.stream("GET", current, headers={"Accept-Encoding": "identity"}) as r:
                    if r.is_redirect:
                        current = _redirect_target(current, r.headers["Location"])
                        continue
                    return _read(r, str(current), max_bytes)
            except httpx.TimeoutException:
                raise UrlRefused(f"{current.host} took longer than {timeout:g} s.") from None
            except httpx.HTTPError as error:
                raise UrlRefused(f"Could not fetch from {current.host} ({error}).") from None
    raise UrlRefused(f"The URL redirects more than {MAX_REDIRECTS} times.")


def _redirect_target(current: httpx.URL, location: str) -> httpx.URL:
    try:
        return _parse(str(current.join(location)))
    except (UrlRefused, httpx.InvalidURL) as refused:
        shown = location if len(location) <= 200 else location[:200] + "…"
        raise UrlRefused(f"The URL redirects to {shown}, which is refused: {refused}") from None


def _read(response: httpx.Response, url: str, max_bytes: int) -> Fetched:
    if not response.is_success:
        raise UrlRefused(f"The URL answered {response.status_code}.")
    announced = response.headers.get("Content-Length", "")
    if announced.isdigit() and int(announced) > max_bytes:
        raise UrlRefused(f"The file is larger than {_size(max_bytes)}.")
    # We ask for no compression: a compressed body's size says nothing of what it unpacks to.
    if response.headers.get("Content-Encoding", "identity").lower() != "identity":
        raise UrlRefused("The URL answered with a compressed body; serve the file uncompressed.")
    chunks, size = [], 0
    for chunk in response.iter_raw():
        size += len(chunk)
        if size > max_bytes:
            raise UrlRefused(f"The file is larger than {_size(max_bytes)}.")
        chunks.append(chunk)
    content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
    return Fetched(data=b"".join(chunks), content_type=content_type, url=url)


def post(
    url: str, *, content: bytes, headers: dict[str, str], timeout: float = 15.0
) -> httpx.Response:
    """POST once, following no redirect. Network failures are left as httpx.HTTPError."""
    parsed = _parse(url)
    with _client(timeout) as client:
        # Asked uncompressed: the answer is kept raw, and may be cut short.
        headers = {"Accept-Encoding": "identity", **headers}
        with client.stream("POST", parsed, content=content, headers=headers) as response:
            body = b""
            for chunk in response.iter_raw():  # keep the start of a large answer, not all of it
                body += chunk
                if len(body) >= MAX_POST_ANSWER_BYTES:
                    break
    # The copy holds the raw body, perhaps cut short: the length and encoding would misdescribe it.
    drop = {"content-encoding", "content-length", "transfer-encoding"}
    kept = {k: v for k, v in response.headers.items() if k.lower() not in drop}
    kept_body, request = body[:MAX_POST_ANSWER_BYTES], response.request
    return httpx.Response(response.status_code, headers=kept, content=kept_body, request=request)
