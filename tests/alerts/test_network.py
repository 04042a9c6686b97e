"""The SSRF guard: the refusal table, URL checks with real and scripted resolution, and `post` against real local
aiohttp servers (plain HTTP, and HTTPS with a certificate made here by the openssl CLI)."""

from __future__ import annotations

import asyncio
import ipaddress
import shutil
import socket
import ssl
import subprocess
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from kamiyo.alerts.network import (
    Destination,
    NetworkPolicy,
    UnsafeDestination,
    check_destination,
    post,
)

LOOPBACK = NetworkPolicy.from_strings(["127.0.0.0/8", "::1/128"])
HOOK_HOST = "hooks.kamiyo.test"  # never resolvable: every connection below goes to a pinned address


def ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


# --- refusal table -------------------------------------------------------------------------------------------

REFUSED = [
    ("127.0.0.1", "loopback"),
    ("::1", "loopback"),
    ("10.20.30.40", "private"),
    ("172.16.5.4", "private"),
    ("192.168.1.1", "private"),
    ("169.254.1.1", "link-local"),
    ("169.254.169.254", "cloud metadata"),
    ("169.254.170.2", "cloud metadata"),
    ("100.100.100.200", "cloud metadata"),
    ("fd00:ec2::254", "cloud metadata"),
    ("fc00::1", "private"),
    ("fe80::1", "link-local"),
    ("0.0.0.0", "unspecified"),
    ("::", "unspecified"),
    ("224.0.0.1", "multicast"),
    ("ff02::1", "multicast"),
    ("100.64.0.1", "shared address space (CGNAT)"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "broadcast"),
    ("192.0.2.1", "documentation"),
    ("2001:db8::1", "documentation"),
    ("::ffff:127.0.0.1", "loopback"),  # IPv4-mapped
    ("::ffff:10.0.0.1", "private"),
    ("::ffff:169.254.169.254", "cloud metadata"),
    ("::127.0.0.1", "loopback"),  # IPv4-compatible
    ("2002:7f00:1::", "loopback"),  # 6to4 of 127.0.0.1
    ("2002:a9fe:a9fe::1", "cloud metadata"),  # 6to4 of 169.254.169.254
    ("64:ff9b::7f00:1", "loopback"),  # NAT64 of 127.0.0.1
    ("64:ff9b::a00:1", "private"),
    ("2001::1", "reserved"),  # Teredo
    ("4000::1", "reserved"),  # outside global unicast 2000::/3
]


@pytest.mark.parametrize(("address", "reason"), REFUSED)
def test_non_public_addresses_are_refused_with_their_reason(address: str, reason: str) -> None:
    assert NetworkPolicy().refusal(ip(address)) == reason


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "93.184.216.34", "2606:4700:4700::1111",
                                     "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1"])
def test_public_addresses_are_allowed(address: str) -> None:
    assert NetworkPolicy().refusal(ip(address)) is None


def test_an_allow_network_opens_only_itself() -> None:
    policy = NetworkPolicy.from_strings(["127.0.0.0/8"])
    assert policy.refusal(ip("127.0.0.1")) is None
    assert policy.refusal(ip("127.255.0.9")) is None
    assert policy.refusal(ip("::ffff:127.0.0.1")) is None  # judged by the IPv4 address it carries
    assert policy.refusal(ip("10.0.0.1")) == "private"
    assert policy.refusal(ip("::1")) == "loopback"  # IPv6 loopback is another network


def test_embedded_addresses_are_allowed_only_by_their_ipv4_network() -> None:
    """Allowing an IPv6 range must not smuggle in the IPv4 destinations its addresses translate to."""
    policy = NetworkPolicy.from_strings(["::ffff:0:0/96", "2002::/16", "64:ff9b::/96"])
    for address in ("::ffff:10.0.0.1", "2002:7f00:1::", "64:ff9b::a9fe:a9fe"):
        assert policy.refusal(ip(address)) is not None, address


def test_cloud_metadata_needs_an_allow_network_that_contains_it() -> None:
    assert NetworkPolicy.from_strings(["169.254.169.254/32"]).refusal(ip("169.254.169.254")) is None
    assert NetworkPolicy.from_strings(["169.254.0.0/16"]).refusal(ip("169.254.169.254")) is None
    assert NetworkPolicy.from_strings(["169.254.169.254"]).refusal(ip("169.254.170.2")) == "cloud metadata"
    assert NetworkPolicy.from_strings(["fd00:ec2::/64"]).refusal(ip("fd00:ec2::254")) is None
    # allowing the rest of the private space does not open the metadata endpoints
    assert NetworkPolicy.from_strings(["10.0.0.0/8", "fc00::/8"]).refusal(ip("fd00:ec2::254")) == "cloud metadata"


def test_from_strings_names_every_bad_entry() -> None:
    with pytest.raises(ValueError) as caught:
        NetworkPolicy.from_strings(["127.0.0.0/8", "not-a-network", "10.0.0.1/8", "::1/129"])
    message = str(caught.value)
    for bad in ("not-a-network", "10.0.0.1/8", "::1/129"):
        assert repr(bad) in message
    assert "'127.0.0.0/8'" not in message
    with pytest.raises(ValueError, match="got the string"):
        NetworkPolicy.from_strings("127.0.0.0/8")
    policy = NetworkPolicy.from_strings([" 10.0.0.0/8 ", "::1"])
    assert policy.allow == (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("::1/128"))


# --- check_destination ---------------------------------------------------------------------------------------

class ScriptedResolver:
    """Answers every name with `answers` and counts the lookups."""

    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)
        self.lookups: list[str] = []

    async def __call__(self, host: str) -> list[str]:
        self.lookups.append(host)
        return self.answers


@pytest.mark.parametrize(("url", "fragment"), [
    ("ftp://example.com/hook", "scheme 'ftp' is not allowed"),
    ("file:///etc/passwd", "scheme 'file' is not allowed"),
    ("//example.com/hook", "without a scheme"),
    ("http:///hook", "without a host"),
    ("http://user:secret@example.com/hook", "user info"),
    ("http://:secret@example.com/hook", "user info"),
    ("http://[::1/", "cannot be parsed"),
    ("http://example.com:0/", "port 0"),
    ("http://2130706433/", "not a canonical IP address"),
    ("http://127.1/", "not a canonical IP address"),
    ("http://0x7f.0.0.1/", "not a canonical IP address"),
    ("http://[fe80::1%25eth0]/", "zone ids"),
])
async def test_urls_that_are_refused_before_any_lookup(url: str, fragment: str) -> None:
    resolver = ScriptedResolver("93.184.216.34")
    with pytest.raises(UnsafeDestination, match=fragment) as caught:
        await check_destination(url, NetworkPolicy(), resolver=resolver)
    assert resolver.lookups == []
    assert "secret" not in str(caught.value)  # the message never echoes credentials
    assert caught.value.retryable is False


async def test_localhost_is_refused_by_default_through_the_system_resolver() -> None:
    with pytest.raises(UnsafeDestination, match=r"localhost resolves to (127\.0\.0\.1|::1).*loopback") as caught:
        await check_destination("http://localhost:8080/x", NetworkPolicy())
    assert caught.value.context["reason"] == "loopback"


async def test_a_name_with_one_private_address_is_refused_although_the_first_is_public() -> None:
    resolver = ScriptedResolver("93.184.216.34", "10.0.0.5")
    with pytest.raises(UnsafeDestination, match=r"resolves to 10\.0\.0\.5.*private") as caught:
        await check_destination("https://rebind.example/hook?token=s3cret", NetworkPolicy(), resolver=resolver)
    assert resolver.lookups == ["rebind.example"]
    assert caught.value.context["address"] == "10.0.0.5"
    assert "s3cret" not in str(caught.value) and "/hook" not in str(caught.value)


async def test_literal_addresses_are_checked_without_a_lookup() -> None:
    resolver = ScriptedResolver("93.184.216.34")
    with pytest.raises(UnsafeDestination, match=r"::1 is not public \(loopback\)"):
        await check_destination("http://[::1]:80/", NetworkPolicy(), resolver=resolver)
    with pytest.raises(UnsafeDestination, match=r"::ffff:a9fe:a9fe \(IPv4 169\.254\.169\.254\).*cloud metadata"):
        await check_destination("http://[::ffff:169.254.169.254]/", NetworkPolicy(), resolver=resolver)
    destination = await check_destination("https://8.8.8.8/hook", NetworkPolicy(), resolver=resolver)
    assert (destination.host, destination.address, destination.port) == ("8.8.8.8", "8.8.8.8", 443)
    assert resolver.lookups == []


async def test_an_accepted_name_pins_its_first_address() -> None:
    resolver = ScriptedResolver("2606:4700:4700::1111", "1.1.1.1", "1.1.1.1")
    destination = await check_destination("https://Hooks.Example.com/a?b=c", NetworkPolicy(), resolver=resolver)
    assert destination == Destination(url="https://Hooks.Example.com/a?b=c", scheme="https",
                                      host="hooks.example.com", port=443, address="2606:4700:4700::1111")
    assert resolver.lookups == ["hooks.example.com"]


async def test_a_resolver_answer_that_is_not_an_address_or_no_answer_is_refused() -> None:
    with pytest.raises(UnsafeDestination, match="not an address"):
        await check_destination("http://x.example/", NetworkPolicy(), resolver=ScriptedResolver("localhost"))
    with pytest.raises(UnsafeDestination, match="no address"):
        await check_destination("http://x.example/", NetworkPolicy(), resolver=ScriptedResolver())


def test_a_destination_must_agree_with_its_url() -> None:
    with pytest.raises(ValueError, match="do not match"):
        Destination(url="http://a.example/", scheme="http", host="b.example", port=80, address="8.8.8.8")
    with pytest.raises(ValueError, match="IP address other than"):
        Destination(url="http://127.0.0.2/", scheme="http", host="127.0.0.2", port=80, address="127.0.0.1")
    with pytest.raises(ValueError):
        Destination(url="http://a.example/", scheme="http", host="a.example", port=80, address="a.example")


# --- post() against real servers -----------------------------------------------------------------------------

class Receiver:
    """A local webhook receiver that records every request it gets."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.release = asyncio.Event()
        self.huge_stopped_at = -1
        self.port = 0

    async def hook(self, request: web.Request) -> web.Response:
        self.requests.append((request.path, dict(request.headers), await request.read()))
        return web.Response(status=202, text="accepted", headers={"X-Receiver": "yes"})

    async def redirect(self, request: web.Request) -> web.Response:
        self.requests.append((request.path, dict(request.headers), await request.read()))
        raise web.HTTPFound(f"http://127.0.0.1:{self.port}/target")

    async def huge(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        chunk = bytes(range(256)) * 4096  # 1 MiB
        for sent in range(64):
            try:
                await response.write(chunk)
            except (ConnectionError, RuntimeError):
                self.huge_stopped_at = sent
                return response
        return response

    async def hang(self, request: web.Request) -> web.Response:
        await self.release.wait()
        return web.Response(text="late")

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/hook", self.hook)
        app.router.add_post("/redirect", self.redirect)
        app.router.add_route("*", "/target", self.hook)
        app.router.add_post("/huge", self.huge)
        app.router.add_post("/hang", self.hang)
        return app


@pytest.fixture
async def receiver():
    receiver = Receiver()
    server = TestServer(receiver.app(), host="127.0.0.1")  # port None: the OS picks a free one
    await server.start_server()
    receiver.port = server.port
    yield receiver
    receiver.release.set()
    await server.close()


def pinned(port: int, path: str, host: str = HOOK_HOST, scheme: str = "http") -> Destination:
    return Destination(url=f"{scheme}://{host}:{port}{path}", scheme=scheme, host=host, port=port,
                       address="127.0.0.1")


async def test_the_request_arrives_with_its_body_and_headers(receiver: Receiver) -> None:
    destination = await check_destination(f"http://127.0.0.1:{receiver.port}/hook", LOOPBACK)
    response = await post(destination, b'{"finding": 1}', {"Content-Type": "application/json",
                                                           "X-Kamiyo-Signature": "sha256=abc"})
    assert (response.status, response.body) == (202, b"accepted")
    assert response.headers["x-receiver"] == "yes"  # case-insensitive
    [(path, headers, body)] = receiver.requests
    assert (path, body) == ("/hook", b'{"finding": 1}')
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Kamiyo-Signature"] == "sha256=abc"
    assert headers["Accept-Encoding"] == "identity"


async def test_a_checked_name_is_sent_to_its_pinned_address_with_its_own_host_header(receiver: Receiver) -> None:
    resolver = ScriptedResolver("127.0.0.1")
    destination = await check_destination(f"http://{HOOK_HOST}:{receiver.port}/hook", LOOPBACK, resolver=resolver)
    response = await post(destination, b"x", {})
    assert response.status == 202
    assert receiver.requests[0][1]["Host"] == f"{HOOK_HOST}:{receiver.port}"
    assert resolver.lookups == [HOOK_HOST]  # once, by the check; post asked no one


async def test_post_never_looks_the_host_up_again(receiver: Receiver) -> None:
    """example.invalid cannot resolve anywhere (RFC 6761): reaching the server proves the pinned address was used."""
    response = await post(pinned(receiver.port, "/hook", host="example.invalid"), b"pinned", {})
    assert response.status == 202
    assert receiver.requests[0][1]["Host"] == f"example.invalid:{receiver.port}"
    assert receiver.requests[0][2] == b"pinned"


async def test_redirects_are_returned_not_followed(receiver: Receiver) -> None:
    response = await post(pinned(receiver.port, "/redirect"), b"x", {})
    assert response.status == 302
    assert response.headers["Location"] == f"http://127.0.0.1:{receiver.port}/target"
    assert [path for path, _, _ in receiver.requests] == ["/redirect"]


async def test_a_huge_answer_is_cut_at_max_body(receiver: Receiver) -> None:
    response = await asyncio.wait_for(post(pinned(receiver.port, "/huge"), b"", {}, max_body=100_000), 10)
    assert response.status == 200
    assert response.body == (bytes(range(256)) * 4096)[:100_000]
    short = await post(pinned(receiver.port, "/hook"), b"", {}, max_body=3)
    assert short.body == b"acc"


async def test_the_timeout_bounds_the_exchange(receiver: Receiver) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(asyncio.TimeoutError):
        await post(pinned(receiver.port, "/hang"), b"", {}, timeout=0.3)
    assert loop.time() - started < 5


async def test_network_failures_are_raised_as_aiohttp_raises_them() -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))  # bound, not listening: connecting is refused
    try:
        with pytest.raises(aiohttp.ClientConnectorError):
            await post(pinned(sock.getsockname()[1], "/hook"), b"", {})
    finally:
        sock.close()


async def test_a_session_factory_must_use_the_pinned_connector(receiver: Receiver) -> None:
    def tagged(connector: aiohttp.TCPConnector) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(connector=connector, headers={"User-Agent": "kamiyo-test"})

    assert (await post(pinned(receiver.port, "/hook"), b"", {}, session_factory=tagged)).status == 202
    assert receiver.requests[0][1]["User-Agent"] == "kamiyo-test"

    def own_connector(_connector: aiohttp.TCPConnector) -> aiohttp.ClientSession:
        return aiohttp.ClientSession()

    def trusting_env(connector: aiohttp.TCPConnector) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(connector=connector, trust_env=True)

    for factory in (own_connector, trusting_env):
        with pytest.raises(ValueError, match="pinned connector"):
            await post(pinned(receiver.port, "/hook"), b"", {}, session_factory=factory)
    assert len(receiver.requests) == 1


# --- HTTPS: SNI and certificate verification stay the hostname's -----------------------------------------------

@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for HOOK_HOST only (not for 127.0.0.1), made by the openssl CLI."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl CLI is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "2", "-subj", f"/CN={HOOK_HOST}", "-addext", f"subjectAltName=DNS:{HOOK_HOST}",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


@pytest.fixture
async def tls_receiver(certificate: tuple[Path, Path]):
    cert, key = certificate
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    receiver = Receiver()
    server_names: list[str | None] = []
    server_context.sni_callback = lambda _sock, name, _context: server_names.append(name)
    server = TestServer(receiver.app(), host="127.0.0.1")
    await server.start_server(ssl=server_context)
    receiver.port = server.port
    yield receiver, server_names, ssl.create_default_context(cafile=str(cert))
    await server.close()


async def test_https_sends_sni_and_verifies_the_certificate_for_the_hostname(tls_receiver) -> None:
    receiver, server_names, trust = tls_receiver
    response = await post(pinned(receiver.port, "/hook", scheme="https"), b"tls", {}, ssl_context=trust)
    assert response.status == 202
    assert server_names == [HOOK_HOST]
    assert receiver.requests[0][1]["Host"] == f"{HOOK_HOST}:{receiver.port}"


async def test_https_refuses_a_certificate_for_another_name(tls_receiver) -> None:
    receiver, server_names, trust = tls_receiver
    with pytest.raises(aiohttp.ClientConnectorCertificateError):
        await post(pinned(receiver.port, "/hook", host="other.kamiyo.test", scheme="https"), b"", {},
                   ssl_context=trust)
    with pytest.raises(aiohttp.ClientConnectorCertificateError):  # the system store does not know this certificate
        await post(pinned(receiver.port, "/hook", scheme="https"), b"", {})
    assert receiver.requests == []


async def test_verification_cannot_be_switched_off() -> None:
    lax = ssl.create_default_context()
    lax.check_hostname = False
    lax.verify_mode = ssl.CERT_NONE
    with pytest.raises(ValueError, match="must verify"):
        await post(pinned(443, "/hook", scheme="https"), b"", {}, ssl_context=lax)
