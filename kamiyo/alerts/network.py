"""Safe outgoing HTTP for user-supplied webhook URLs: `check_destination` decides whether a URL may be contacted
and pins the one address it checked; `post` sends to exactly that address.

Webhook URLs are user input, so a request to one must not become a server-side request forgery. The rules:
- only http and https, no user info in the URL (secrets belong in headers), no zone ids, no legacy numeric IPv4
  spellings (2130706433, 127.1, 0x7f.1) that a later layer might resolve on its own;
- the host is resolved once, every address it resolves to must be public (a name answering one public and one
  private address is how DNS rebinding is set up), and the first address is the one connected to;
- an address that embeds an IPv4 address (IPv4-mapped, IPv4-compatible, 6to4, NAT64) is judged, and allowed, only
  by that IPv4 address, since that is where the packets end up;
- the operator may allow networks (`[alerts] allow_networks`); cloud metadata endpoints are refused like any other
  non-public address and are allowed only by an allow network that contains them;
- `post` connects through a resolver that knows only the checked host and its checked address, so there is no
  second lookup to rebind, while the Host header, SNI and certificate verification stay the hostname's; it never
  follows redirects (a 3xx comes back as it is: it could point inside) and reads at most `max_body` bytes.

This module must not log, retry or classify failures: callers do that. Network failures surface as the
aiohttp/asyncio exceptions they are. URLs appear in errors only as scheme://host:port, since webhook paths and
queries usually carry the secret.

One ClientSession per `post` call, no pooled `Sender`: alert volume is low, so a TLS handshake per delivery costs
nothing that matters, and a pool keyed by host would keep connections to addresses checked long ago alive past a
re-check, which is exactly the staleness this module exists to prevent.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import ssl
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from kamiyo.errors import KamiyoError

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str], Awaitable[Sequence[str]]]
SessionFactory = Callable[[aiohttp.TCPConnector], aiohttp.ClientSession]

SCHEMES = ("http", "https")

# Instance-metadata endpoints (credentials live there). Checked before the ranges they sit in, so that the reason
# says what they are: AWS/GCP/Azure/Oracle/DigitalOcean, AWS ECS task metadata, EKS Pod Identity, Alibaba Cloud.
METADATA_ADDRESSES: frozenset[Address] = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "169.254.170.23", "100.100.100.200",
              "fd00:ec2::254", "fd00:ec2::23")
)


def _table(rows: Iterable[tuple[str, str]]) -> tuple[tuple[Network, str], ...]:
    return tuple((ipaddress.ip_network(net), reason) for net, reason in rows)


# IANA special-purpose registries, written out rather than taken from `ipaddress.is_private`/`is_global`, whose
# answers changed between Python versions. First match wins, so a range inside another comes first.
_IPV4_SPECIAL = _table([
    ("0.0.0.0/8", "unspecified"),  # "this network"; Linux connects 0.0.0.0 to the local host
    ("10.0.0.0/8", "private"),
    ("100.64.0.0/10", "shared address space (CGNAT)"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),
    ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "reserved"),  # IETF protocol assignments
    ("192.0.2.0/24", "documentation"),
    ("192.88.99.0/24", "reserved"),  # deprecated 6to4 relay anycast
    ("192.168.0.0/16", "private"),
    ("198.18.0.0/15", "benchmarking"),
    ("198.51.100.0/24", "documentation"),
    ("203.0.113.0/24", "documentation"),
    ("224.0.0.0/4", "multicast"),
    ("255.255.255.255/32", "broadcast"),
    ("240.0.0.0/4", "reserved"),
])
_IPV6_SPECIAL = _table([
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("64:ff9b:1::/48", "private"),  # local-use NAT64 (RFC 8215)
    ("100::/64", "reserved"),  # discard-only
    ("2001::/23", "reserved"),  # IETF protocol assignments, Teredo among them
    ("2001:db8::/32", "documentation"),
    ("3fff::/20", "documentation"),
    ("fc00::/7", "private"),  # unique local
    ("fe80::/10", "link-local"),
    ("fec0::/10", "site-local"),
    ("ff00::/8", "multicast"),
])
_GLOBAL_UNICAST = ipaddress.ip_network("2000::/3")  # the rest of the IPv6 space is unassigned or special
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class UnsafeDestination(KamiyoError):
    """A webhook URL whose destination is refused; the message says which address and why."""

    retryable = False


def embedded_ipv4(address: Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries and delivers to: IPv4-mapped, IPv4-compatible, 6to4, NAT64."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64 or (address in _IPV4_COMPATIBLE and int(address) > 1):  # :: and ::1 are themselves
        return ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF)
    return None


def _special_reason(address: Address) -> str | None:
    if address in METADATA_ADDRESSES:
        return "cloud metadata"
    table = _IPV4_SPECIAL if isinstance(address, ipaddress.IPv4Address) else _IPV6_SPECIAL
    for network, reason in table:
        if address in network:
            return reason
    if isinstance(address, ipaddress.IPv6Address) and address not in _GLOBAL_UNICAST:
        return "reserved"
    return None if address.is_global else "reserved"  # anything the tables above miss, in the stdlib's view


@dataclass(frozen=True, slots=True)
class NetworkPolicy:
    """Which non-public networks the operator allows webhooks to reach; by default none."""

    allow: tuple[Network, ...] = ()

    @classmethod
    def from_strings(cls, networks: Iterable[str]) -> NetworkPolicy:
        """Parse `allow_networks` entries ("127.0.0.0/8", "::1", …). Every bad entry is named in one ValueError;
        an entry with host bits set ("10.0.0.1/8") is bad, because it is a typo more often than not."""
        if isinstance(networks, str):
            raise ValueError(f"allow_networks: expected a list of networks, got the string {networks!r}")
        parsed: list[Network] = []
        problems: list[str] = []
        for entry in networks:
            try:
                if not isinstance(entry, str):
                    raise TypeError(f"expected a string, got {type(entry).__name__}")
                parsed.append(ipaddress.ip_network(entry.strip(), strict=True))
            except (TypeError, ValueError) as exc:
                problems.append(f"{entry!r} ({exc})")
        if problems:
            raise ValueError(f"allow_networks: not a network: {'; '.join(problems)}")
        return cls(tuple(parsed))

    def refusal(self, address: Address) -> str | None:
        """None if `address` may be contacted, else why not ("loopback", "private", "cloud metadata", …)."""
        effective = embedded_ipv4(address) or address
        reason = _special_reason(effective)
        if reason is None or any(effective in network for network in self.allow):
            return None
        return reason


@dataclass(frozen=True, slots=True)
class Destination:
    """A webhook URL and the one address to connect to. `check_destination` is what makes one that a policy
    accepted; constructing one directly skips the policy but not the consistency checks below, which keep `post`
    from ever connecting anywhere other than `address`."""

    url: str
    scheme: str
    host: str  # as on the wire: IDNA-encoded, IPv6 without brackets
    port: int
    address: str

    def __post_init__(self) -> None:
        if _split(self.url) != (self.scheme, self.host, self.port):
            raise ValueError(f"Destination fields do not match its URL {_origin(self.scheme, self.host, self.port)}")
        address = ipaddress.ip_address(self.address)
        literal = _literal(self.host)
        if literal is not None and literal != address:
            # aiohttp connects to a literal host directly, without asking the pinned resolver.
            raise ValueError(f"Destination host {self.host} is an IP address other than {self.address}")


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    headers: Mapping[str, str]  # case-insensitive
    body: bytes  # at most the `max_body` that `post` was given


def _origin(scheme: str, host: str, port: int | None) -> str:
    host = f"[{host}]" if ":" in host else host
    return f"{scheme}://{host}" + (f":{port}" if port is not None else "")


def _literal(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _numeric_spelling(host: str) -> bool:
    """A host some layer would read as an address although `ipaddress` does not: aiohttp's is-it-an-IP heuristic
    (digits and dots, or any colon) and what inet_aton accepts (127.1, 0x7f.0.0.1, 2130706433)."""
    if ":" in host or host.replace(".", "").isdigit():
        return True
    try:
        socket.inet_aton(host)
    except OSError:
        return False
    return True


def _split(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of a URL we are willing to contact at all, else UnsafeDestination."""
    try:
        parsed = URL(url)
        port = parsed.port
    except (TypeError, ValueError) as exc:
        raise UnsafeDestination(f"refused webhook URL: it cannot be parsed ({exc})", reason="unparsable") from exc
    scheme, host = parsed.scheme, parsed.raw_host
    if scheme not in SCHEMES:
        what = f"scheme {scheme!r} is" if scheme else "a URL without a scheme is"
        raise UnsafeDestination(f"refused webhook URL: {what} not allowed (only http and https)", reason="scheme",
                                scheme=scheme)
    if not host:
        raise UnsafeDestination(f"refused webhook URL: {scheme}:// URL without a host", reason="no host")
    origin = _origin(scheme, host, port)
    if parsed.raw_user is not None or parsed.raw_password is not None:
        raise UnsafeDestination(f"refused {origin}: user info (user:password@) is not allowed in a webhook URL; "
                                "send credentials in a header", reason="userinfo", origin=origin)
    if port is None or port == 0:
        raise UnsafeDestination(f"refused {origin}: port 0", reason="port", origin=origin)
    if "%" in host:
        raise UnsafeDestination(f"refused {origin}: IPv6 zone ids are not allowed", reason="zone id", origin=origin)
    if _literal(host) is None and _numeric_spelling(host):
        raise UnsafeDestination(f"refused {origin}: {host!r} is not a canonical IP address (write IPv4 as four "
                                "decimal numbers, IPv6 in brackets)", reason="non-canonical address", origin=origin)
    return scheme, host, port


async def _system_resolve(host: str) -> list[str]:
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, None, family=socket.AF_UNSPEC, type=socket.SOCK_STREAM,
                                   proto=socket.IPPROTO_TCP)
    return [str(info[4][0]) for info in infos]


async def check_destination(url: str, policy: NetworkPolicy, *, resolver: Resolver | None = None) -> Destination:
    """Check `url` against `policy` and pin the address to connect to (see the module docstring for the rules).
    `resolver` (host -> addresses) replaces the system's getaddrinfo, for tests. Resolution failures propagate as
    the resolver raised them (socket.gaierror, an OSError, from the system resolver); bound the wait with
    asyncio.timeout if needed."""
    scheme, host, port = _split(url)
    origin = _origin(scheme, host, port)
    literal = _literal(host)
    if literal is not None:
        addresses = [literal]
    else:
        answers = list(dict.fromkeys(await (resolver or _system_resolve)(host)))
        if not answers:
            raise UnsafeDestination(f"refused {origin}: {host} resolves to no address", reason="no address",
                                    origin=origin, host=host)
        try:
            addresses = [ipaddress.ip_address(str(answer)) for answer in answers]
        except ValueError as exc:
            raise UnsafeDestination(f"refused {origin}: the resolver answered something that is not an address "
                                    f"({exc})", reason="bad answer", origin=origin, host=host) from exc
    for address in addresses:
        reason = policy.refusal(address)
        if reason is None:
            continue
        inner = embedded_ipv4(address)
        shown = f"{address} (IPv4 {inner})" if inner is not None else str(address)
        where = f"{shown} is" if literal is not None else f"{host} resolves to {shown}, which is"
        raise UnsafeDestination(f"refused {origin}: {where} not public ({reason}); allow its network in "
                                "[alerts] allow_networks if that is intended", reason=reason, origin=origin,
                                host=host, address=str(address))
    return Destination(url=url, scheme=scheme, host=host, port=port, address=str(addresses[0]))


class _PinnedResolver(AbstractResolver):
    """Answers the checked host with the checked address and refuses every other name."""

    def __init__(self, host: str, address: str) -> None:
        self._host = host
        self._address = address

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        if host != self._host:
            raise OSError(f"only {self._host} may be resolved here, not {host}")  # aiohttp wraps it as a DNS error
        return [ResolveResult(hostname=host, host=self._address, port=port,
                              family=socket.AF_INET6 if ":" in self._address else socket.AF_INET,
                              proto=socket.IPPROTO_TCP, flags=socket.AI_NUMERICHOST)]

    async def close(self) -> None:
        return None


def _default_session(connector: aiohttp.TCPConnector) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=connector, trust_env=False, cookie_jar=aiohttp.DummyCookieJar())


async def _read_at_most(stream: aiohttp.StreamReader, limit: int) -> bytes:
    body = bytearray()
    while len(body) < limit:
        chunk = await stream.read(limit - len(body))
        if not chunk:
            break
        body += chunk
    return bytes(body)


async def post(destination: Destination, body: bytes, headers: Mapping[str, str], *, timeout: float = 10.0,
               max_body: int = 65_536, session_factory: SessionFactory | None = None,
               ssl_context: ssl.SSLContext | None = None) -> Response:
    """POST `body` to `destination.address`, speaking to it as `destination.host`.

    `timeout` bounds the whole exchange, body read included. Redirects are not followed. The answer's body is cut
    at `max_body` bytes (not an error); it is asked for uncompressed (`Accept-Encoding: identity` unless `headers`
    say otherwise) and never decompressed here, so the limit bounds memory. `ssl_context` replaces the system
    trust store (an internal CA); it must verify certificates and hostnames. `session_factory(connector)` builds
    the session (tracing, default headers); it must use the given connector and must not trust the environment
    (proxies would resolve the host themselves). Network failures raise as aiohttp/asyncio raise them."""
    if max_body < 0 or timeout <= 0:
        raise ValueError(f"post: max_body must be >= 0 and timeout > 0, got {max_body} and {timeout}")
    if ssl_context is not None and (ssl_context.verify_mode != ssl.CERT_REQUIRED or not ssl_context.check_hostname):
        raise ValueError("post: ssl_context must verify certificates and hostnames")
    connector = aiohttp.TCPConnector(resolver=_PinnedResolver(destination.host, destination.address),
                                     use_dns_cache=False, ssl=ssl_context if ssl_context is not None else True)
    request_headers = CIMultiDict({"Accept-Encoding": "identity"})
    request_headers.update(headers)
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(connector.close)  # also when the factory fails or brings its own connector
        session = await stack.enter_async_context((session_factory or _default_session)(connector))
        if session.connector is not connector or session.trust_env:
            raise ValueError("post: session_factory must use the pinned connector and trust_env=False")
        async with session.post(destination.url, data=body, headers=request_headers, allow_redirects=False,
                                timeout=aiohttp.ClientTimeout(total=timeout), auto_decompress=False) as response:
            data = await _read_at_most(response.content, max_body)
            return Response(status=response.status, headers=CIMultiDictProxy(CIMultiDict(response.headers)),
                            body=data)
