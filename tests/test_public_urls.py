"""studio.public_urls: customers' URLs never reach our own network, however they are spelled,
redirected or resolved. Local servers stand in for what an attacker would aim at: each counts its
requests, and a refused URL must leave the count at zero."""

import datetime
import gzip
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from studio import public_urls
from studio.public_urls import UrlRefused, check_url, fetch, post

PUBLIC_IP = "93.184.216.34"  # what fake DNS answers for a public host; never really reached


class LocalServer:
    """A real HTTP server on a loopback address; `routes` maps a path to a handler function."""

    def __init__(self, host="127.0.0.1", tls: ssl.SSLContext | None = None):
        self.host, self.hits, self.bytes_sent, self.routes = host, [], 0, {}
        self.scheme = "https" if tls else "http"
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                server.hits.append((self.command, self.path, body, dict(self.headers)))
                server.routes.get(self.path, not_found)(self)

            do_POST = do_GET

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer((host, 0), Handler)
        if tls:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        threading.Thread(target=self.httpd.serve_forever, args=(0.02,), daemon=True).start()

    def url(self, path):
        return f"{self.scheme}://{self.host}:{self.httpd.server_address[1]}{path}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def answer(status=200, body=b"", **headers):
    def handle(request):
        request.send_response(status)
        headers.setdefault("Content-Length", str(len(body)))
        for name, value in headers.items():
            request.send_header(name.replace("_", "-"), value)
        request.end_headers()
        request.wfile.write(body)

    return handle


def not_found(request):
    answer(404, b"no such page")(request)


def redirect(location, status=302):
    return answer(status, Location=location)


@pytest.fixture
def servers():
    started = []

    def start(host="127.0.0.1", tls=None):
        started.append(LocalServer(host, tls))
        return started[-1]

    yield start
    for server in started:
        server.close()


@pytest.fixture
def server(servers):
    return servers()


@pytest.fixture
def local_allowed(settings):
    settings.OUTBOUND_ALLOW_NETWORKS = ["127.0.0.1/32"]


@pytest.fixture
def network(monkeypatch):
    """Fake DNS for *.example names and a record of every lookup and connection attempt.
    Connections to anything but loopback are refused here, as a firewall would."""
    record = type("Network", (), {"lookups": [], "connects": [], "dns": {}})()
    real_getaddrinfo, guarded_connect = socket.getaddrinfo, socket.socket.connect

    def getaddrinfo(host, port, *args, **kwargs):
        record.lookups.append(host)
        answers = record.dns.get(host)
        if answers is None:
            return real_getaddrinfo(host, port, *args, **kwargs)
        if callable(answers):
            answers = answers()
        return [
            (
                socket.AF_INET6 if ":" in ip else socket.AF_INET,
                socket.SOCK_STREAM,
                6,
                "",
                (ip, port),
            )
            for ip in answers
        ]

    def connect(sock, address):
        record.connects.append(address[0])
        if not address[0].startswith("127."):
            raise ConnectionRefusedError(f"test firewall: {address[0]}")
        return guarded_connect(sock, address)

    monkeypatch.setattr(public_urls.socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)
    return record


def refused(call, *args, **kwargs) -> str:
    with pytest.raises(UrlRefused) as caught:
        call(*args, **kwargs)
    return str(caught.value)


# --- Addresses ------------------------------------------------------------------------------
def test_loopback_is_refused_by_default_and_nothing_reaches_it(server, network):
    server.routes["/image"] = answer(200, b"png")
    assert "127.0.0.1 is not a public internet address" in refused(
        fetch, server.url("/image"), max_bytes=1000
    )
    refused(post, server.url("/image"), content=b"{}", headers={})
    refused(check_url, server.url("/image"))
    assert server.hits == [] and network.connects == []


SPELLINGS_OF_LOOPBACK = [
    "2130706433",  # decimal
    "0177.0.0.1",  # octal
    "0x7f.0.0.1",  # hex
    "0x7f000001",
    "127.1",  # short form
    "127.0.0.1.",  # trailing dot
    "[::1]",
    "[::ffff:127.0.0.1]",
    "[::ffff:7f00:1]",
    "[::7f00:1]",  # IPv4-compatible
    "[64:ff9b::7f00:1]",  # NAT64
    "[2002:7f00:1::]",  # 6to4
]


@pytest.mark.parametrize("host", SPELLINGS_OF_LOOPBACK)
def test_every_spelling_of_loopback_is_refused_before_any_packet(server, network, host):
    url = f"http://{host}:{server.httpd.server_address[1]}/image"
    refused(fetch, url, max_bytes=1000)
    refused(post, url, content=b"{}", headers={})
    refused(check_url, url)
    assert network.lookups == [] and network.connects == [] and server.hits == []


@pytest.mark.parametrize("host", ["2130706433", "0x7f.0.0.1", "127.1", "0177.0.0.1"])
def test_unusual_spellings_are_refused_even_when_loopback_is_allowed(server, local_allowed, host):
    refused(fetch, f"http://{host}:{server.httpd.server_address[1]}/", max_bytes=1000)
    assert server.hits == []


@pytest.mark.parametrize(
    "host",
    [
        "10.0.0.1",
        "10.255.255.255",
        "172.16.0.1",
        "172.31.255.254",
        "192.168.1.1",
        "169.254.169.254",
        "0.0.0.0",
        "100.64.0.1",  # CGNAT
        "224.0.0.1",
        "239.255.255.250",
        "255.255.255.255",
        "192.0.2.1",
        "240.0.0.1",
        "[::]",
        "[fe80::1]",
        "[fc00::1]",
        "[ff02::1]",
        "[::ffff:10.0.0.1]",
        "[::ffff:169.254.169.254]",
        "[64:ff9b::a9fe:a9fe]",
        "[2002:a00:1::]",
        "[2001::1]",  # Teredo
    ],
)
def test_private_and_reserved_addresses_are_refused(network, host):
    for call in (
        check_url,
        lambda u: fetch(u, max_bytes=10),
        lambda u: post(u, content=b"", headers={}),
    ):
        assert "not a public internet address" in refused(call, f"http://{host}/latest/meta-data/")
    assert network.lookups == [] and network.connects == []


def test_a_host_name_resolving_to_a_private_address_is_refused(network):
    network.dns = {"intranet.example": ["10.1.2.3"], "v6.example": ["::1"]}
    assert "intranet.example resolves to 10.1.2.3" in refused(check_url, "http://intranet.example/")
    refused(fetch, "https://intranet.example/a.png", max_bytes=1000)
    refused(post, "https://v6.example/hook", content=b"{}", headers={})
    assert network.connects == []


def test_a_host_with_one_public_and_one_private_address_is_refused(network):
    network.dns = {"mixed.example": [PUBLIC_IP, "10.0.0.5"]}
    assert "10.0.0.5" in refused(check_url, "http://mixed.example/")
    refused(fetch, "http://mixed.example/a.png", max_bytes=1000)
    assert network.connects == []


def test_a_public_url_passes_the_check_normalised_and_any_port_but_zero_is_allowed(network):
    network.dns = {"hooks.example": [PUBLIC_IP, "2606:4700::1"]}
    assert check_url("  HTTPS://Hooks.Example:8443/in?x=1 ") == "https://hooks.example:8443/in?x=1"
    assert check_url("http://[2606:4700::1]/") == "http://[2606:4700::1]/"
    assert "port" in refused(check_url, "http://hooks.example:0/")


def test_an_ipv6_address_embedding_a_public_ipv4_one_is_judged_by_the_ipv4_address(network):
    # 93.184.216.34 mapped (::ffff:0:0/96) and through the NAT64 prefix (64:ff9b::/96).
    assert check_url("http://[::ffff:93.184.216.34]/") == "http://[::ffff:93.184.216.34]/"
    assert check_url("http://[64:ff9b::5db8:d822]/") == "http://[64:ff9b::5db8:d822]/"
    assert check_url("http://[2002:5db8:d822::]/") == "http://[2002:5db8:d822::]/"  # 6to4
    assert network.connects == []


def test_dns_is_asked_once_and_the_connection_goes_to_the_address_that_was_checked(server, network):
    """DNS rebinding: a public answer for the check, then 127.0.0.1 for a second lookup."""
    answers = iter([[PUBLIC_IP], ["127.0.0.1"], ["127.0.0.1"]])
    network.dns = {"rebind.example": lambda: next(answers)}
    server.routes["/image"] = answer(200, b"secret")
    port = server.httpd.server_address[1]
    message = refused(fetch, f"http://rebind.example:{port}/image", max_bytes=1000)
    assert "Could not fetch from rebind.example" in message
    assert network.lookups.count("rebind.example") == 1
    assert network.connects == [PUBLIC_IP] and server.hits == []


# --- Spelling -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "url, reason",
    [
        ("ftp://files.example/a.png", "Only http:// and https://"),
        ("file:///etc/passwd", "Only http:// and https://"),
        ("gopher://files.example:70/", "Only http:// and https://"),
        ("http://user:pass@files.example/", "user name or password"),
        ("http://user@files.example/", "user name or password"),
        ("http:///a.png", "no host"),
        ("http://", "no host"),
        ("", "empty"),
        ("http://files.example/a\x00.png", "control"),
        ("http://files.example/\x85", "control"),
        ("http://files\u202e.example/", "control"),
        ("http://files.example/" + "a" * 2000, "longer than 2000 characters"),
    ],
)
def test_malformed_urls_are_refused_with_the_reason(network, url, reason):
    assert reason in refused(check_url, url)
    assert reason in refused(fetch, url, max_bytes=1000)
    assert network.lookups == [] and network.connects == []


# --- Fetching from an allowed local server --------------------------------------------------
def test_with_loopback_allowed_a_fetch_reads_the_file(server, local_allowed):
    server.routes["/a.png"] = answer(200, b"\x89PNG...", Content_Type="image/png; x=1")
    fetched = fetch(server.url("/a.png"), max_bytes=1000)
    assert (fetched.data, fetched.content_type) == (b"\x89PNG...", "image/png")
    assert fetched.url == server.url("/a.png")
    assert server.hits[0][3]["Accept-Encoding"] == "identity"


def test_an_error_answer_is_refused_with_its_status(server, local_allowed):
    assert "answered 404" in refused(fetch, server.url("/missing"), max_bytes=1000)


def test_redirects_within_the_allowed_network_are_followed(server, local_allowed):
    server.routes["/old"] = redirect("/a.png", 301)
    server.routes["/a.png"] = answer(200, b"png")
    fetched = fetch(server.url("/old"), max_bytes=1000)
    assert fetched.data == b"png" and fetched.url == server.url("/a.png")


@pytest.mark.parametrize(
    "target", ["http://127.0.0.2:{port}/", "http://169.254.169.254/", "http://10.0.0.1/"]
)
def test_a_redirect_out_of_the_allowed_network_is_refused_and_never_followed(
    servers, local_allowed, network, target
):
    first, second = servers(), servers("127.0.0.2")
    location = target.format(port=second.httpd.server_address[1])
    first.routes["/go"] = redirect(location)
    message = refused(fetch, first.url("/go"), max_bytes=1000)
    assert f"redirects to {location}, which is refused" in message
    assert second.hits == [] and set(network.connects) == {"127.0.0.1"}


def test_a_redirect_to_a_host_resolving_privately_is_refused(server, local_allowed, network):
    network.dns = {"intranet.example": ["10.1.2.3"]}
    server.routes["/go"] = redirect("http://intranet.example/admin")
    assert "intranet.example resolves to 10.1.2.3" in refused(fetch, server.url("/go"), max_bytes=9)
    assert set(network.connects) == {"127.0.0.1"}


def test_five_redirects_are_followed_but_not_six_nor_a_loop(server, local_allowed):
    for n in range(1, 7):
        server.routes[f"/hop{n}"] = redirect(f"/hop{n - 1}")
    server.routes["/hop0"] = answer(200, b"done")
    server.routes["/loop"] = redirect("/loop")
    assert fetch(server.url("/hop5"), max_bytes=100).data == b"done"
    server.hits.clear()
    assert "more than 5 times" in refused(fetch, server.url("/hop6"), max_bytes=100)
    assert [hit[1] for hit in server.hits] == ["/hop6", "/hop5", "/hop4", "/hop3", "/hop2", "/hop1"]
    assert "more than 5 times" in refused(fetch, server.url("/loop"), max_bytes=100)


# --- Size and time --------------------------------------------------------------------------
def test_an_announced_content_length_over_the_limit_is_refused(server, local_allowed):
    server.routes["/big"] = answer(200, b"x" * (3 * 2**20))
    assert "larger than 2 MB" in refused(fetch, server.url("/big"), max_bytes=2 * 2**20)


def test_an_announced_length_over_the_limit_is_refused_without_waiting_for_the_body(
    server, local_allowed
):
    def announce_10_gb_then_stall(request):
        request.send_response(200)
        request.send_header("Content-Length", str(10 * 2**30))
        request.end_headers()
        request.wfile.write(b"x" * 10)
        request.wfile.flush()
        time.sleep(3)

    server.routes["/huge"] = announce_10_gb_then_stall
    started = time.monotonic()
    assert "larger than 1000 bytes" in refused(
        fetch, server.url("/huge"), max_bytes=1000, timeout=2.0
    )
    assert time.monotonic() - started < 1


def endless_chunks(server):
    """Chunked, with no Content-Length, for as long as the client keeps reading (up to 1 GB)."""

    def handle(request):
        request.protocol_version = "HTTP/1.1"
        request.send_response(200)
        request.send_header("Transfer-Encoding", "chunked")
        request.end_headers()
        request.close_connection = True
        chunk = b"x" * 65536
        try:
            for _ in range(16384):
                request.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                server.bytes_sent += len(chunk)
        except OSError:
            pass

    return handle


def test_a_body_without_length_is_cut_off_as_soon_as_it_passes_the_limit(server, local_allowed):
    server.routes["/endless"] = endless_chunks(server)
    started = time.monotonic()
    assert "larger than 100000 bytes" in refused(fetch, server.url("/endless"), max_bytes=100_000)
    assert time.monotonic() - started < 5
    time.sleep(0.2)
    assert server.bytes_sent < 50 * 2**20  # the server was stopped long before 1 GB


def test_a_compressed_body_is_refused(server, local_allowed):
    server.routes["/gz"] = answer(200, gzip.compress(b"x" * 100_000), Content_Encoding="gzip")
    assert "compressed" in refused(fetch, server.url("/gz"), max_bytes=1_000_000)


def trickle(request):
    """A byte every 50 ms: each read is quick, so only an overall deadline stops it."""
    request.send_response(200)
    request.end_headers()
    try:
        for _ in range(600):
            request.wfile.write(b"x")
            request.wfile.flush()
            time.sleep(0.05)
    except OSError:
        pass


def test_a_server_trickling_bytes_is_refused_at_the_overall_deadline(server, local_allowed):
    server.routes["/slow"] = trickle
    started = time.monotonic()
    assert "127.0.0.1 took longer than 1 s" in refused(
        fetch, server.url("/slow"), max_bytes=10**6, timeout=1.0
    )
    assert 0.8 < time.monotonic() - started < 2.5


# --- Posting webhooks -----------------------------------------------------------------------
def test_post_delivers_and_follows_no_redirect(servers, local_allowed):
    hook, elsewhere = servers(), servers()
    hook.routes["/hook"] = redirect(elsewhere.url("/hook"), 307)
    response = post(hook.url("/hook"), content=b'{"a":1}', headers={"X-Signature": "s"})
    assert response.status_code == 307 and response.headers["Location"] == elsewhere.url("/hook")
    method, _, body, headers = hook.hits[0]
    assert (method, body, headers["X-Signature"]) == ("POST", b'{"a":1}', "s")
    assert elsewhere.hits == []


def test_post_keeps_only_the_start_of_a_long_answer(server, local_allowed):
    server.routes["/hook"] = answer(200, b"y" * 200_000)
    response = post(server.url("/hook"), content=b"{}", headers={})
    assert response.status_code == 200 and response.content == b"y" * 65536


def test_post_leaves_network_failures_to_the_caller(local_allowed):
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    with pytest.raises(httpx.ConnectError):
        post(f"http://127.0.0.1:{port}/hook", content=b"{}", headers={})


def test_a_fetch_from_a_closed_port_is_refused_with_a_sentence(local_allowed):
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    assert "Could not fetch from 127.0.0.1" in refused(
        fetch, f"http://127.0.0.1:{port}/", max_bytes=10
    )


# --- TLS: the certificate is checked against the URL's host, not the pinned address -----------
def certificate_for(name, directory):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / f"{name}.pem", directory / f"{name}.key"
    cert_file.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


@pytest.fixture
def tls_server(servers, network, local_allowed, tmp_path):
    """An HTTPS server on 127.0.0.1 with a certificate for files.example, which DNS points at it;
    it records the host name each client asked for (SNI)."""
    network.dns = {"files.example": ["127.0.0.1"]}
    cert_file, key_file = certificate_for("files.example", tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server_names = []
    context.sni_callback = lambda sock, name, ctx: server_names.append(name)
    server = servers(tls=context)
    server.routes["/a.png"] = answer(200, b"png", Content_Type="image/png")
    server.server_names, server.cert_file = server_names, cert_file
    server.files_url = f"https://files.example:{server.httpd.server_address[1]}/a.png"
    return server


def trust(monkeypatch, cert_file):
    monkeypatch.setattr(
        public_urls, "_ssl_context", lambda: ssl.create_default_context(cafile=cert_file)
    )


def test_https_verifies_the_url_host_name_on_the_pinned_connection(
    tls_server, network, monkeypatch
):
    trust(monkeypatch, tls_server.cert_file)
    assert fetch(tls_server.files_url, max_bytes=100).data == b"png"
    assert tls_server.server_names == ["files.example"] and network.connects == ["127.0.0.1"]


def test_https_refuses_a_certificate_for_another_name(tls_server, network, monkeypatch, tmp_path):
    trust(monkeypatch, tls_server.cert_file)
    network.dns["other.example"] = ["127.0.0.1"]
    other_url = tls_server.files_url.replace("files.example", "other.example")
    assert "CERTIFICATE_VERIFY_FAILED" in refused(fetch, other_url, max_bytes=100)
    assert tls_server.hits == []


def test_https_refuses_an_untrusted_certificate(tls_server):
    assert "CERTIFICATE_VERIFY_FAILED" in refused(fetch, tls_server.files_url, max_bytes=100)
    with pytest.raises(httpx.ConnectError):
        post(tls_server.files_url, content=b"{}", headers={})
    assert tls_server.hits == []
