"""SSRF defence for webhook endpoint URLs (reliability checklist B.1-B.3).

Used twice: when an endpoint is registered (the API calls ``vet_url`` and turns a
``UrlRejectedError`` into a field violation) and again at connect time, when the delivery
client resolves the host, calls ``check_addresses``/``check_address`` on the answer and
connects only to an address it checked (closing the DNS-rebinding window).

The parser is deliberately stricter than RFC 3986: anything two URL parsers could read
differently (backslashes, several ``@``, percent-encoded hosts, odd IPv4 notations) is either
rejected or normalised the way ``getaddrinfo`` would see it, and the resulting address is
classified.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import string
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol, TypeAlias
from urllib.parse import quote, unquote

import idna

IPAddress: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork: TypeAlias = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_URL_LENGTH: Final = 2048
MAX_HOST_LENGTH: Final = 253
MAX_LABEL_LENGTH: Final = 63
DEFAULT_PORTS: Final[Mapping[str, int]] = {"https": 443, "http": 80}
UNRESOLVABLE_REASON: Final = "host could not be resolved"


class UrlRejectedError(ValueError):
    """The URL may not be used as a webhook target.

    ``reason`` is a short human message suitable for a BadRequest field violation, e.g.
    ``host resolves to a private address (10.0.0.1)``.
    """

    reason: str

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ResolutionError(Exception):
    """The host could not be resolved (NXDOMAIN, SERVFAIL, timeout). The message is generic."""


# --------------------------------------------------------------------------------------------
# Policy
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NetworkPolicy:
    # Operator allow-list, for local development only; empty (off) by default.
    allow_cidrs: tuple[IPNetwork, ...] = ()
    # Plain http:// is accepted only when every resolved address is inside allow_cidrs.
    allow_http_for_allowed: bool = False
    # The service's own ports (e.g. its gRPC port), refused for any host.
    blocked_ports: frozenset[int] = frozenset()

    @classmethod
    def from_strings(
        cls,
        cidrs: Sequence[str],
        *,
        allow_http: bool = False,
        blocked_ports: Iterable[int] = (),
    ) -> NetworkPolicy:
        """Build a policy from configuration strings; raises ValueError on a bad CIDR or port.

        CIDRs are parsed strictly: ``127.0.0.1/8`` (host bits set) is refused as a likely typo.
        """
        networks: list[IPNetwork] = []
        for text in cidrs:
            try:
                networks.append(ipaddress.ip_network(text.strip(), strict=True))
            except ValueError as exc:
                raise ValueError(f"invalid CIDR {text!r}: {exc}") from exc
        ports = frozenset(blocked_ports)
        for port in ports:
            if not 1 <= port <= 65535:
                raise ValueError(f"invalid blocked port {port}: must be 1-65535")
        return cls(
            allow_cidrs=tuple(networks),
            allow_http_for_allowed=allow_http,
            blocked_ports=ports,
        )


# --------------------------------------------------------------------------------------------
# Address classification
# --------------------------------------------------------------------------------------------


def _table(entries: Sequence[tuple[str, str]]) -> tuple[tuple[IPNetwork, str], ...]:
    return tuple((ipaddress.ip_network(network), reason) for network, reason in entries)


# One explicit table of forbidden ranges. First match wins, so a more specific network comes
# before the range containing it (the metadata address before link-local, ::1 before ::/8).
# Reasons are noun phrases: they are embedded as "host resolves to <reason> (<address>)".
# IPv4-mapped (::ffff:0:0/96), 6to4 (2002::/16) and NAT64 (64:ff9b::/96, 64:ff9b:1::/48)
# addresses never reach this table: they are unwrapped and judged by the IPv4 address inside.
_FORBIDDEN_NETWORKS: Final = _table(
    [
        # IPv4
        ("0.0.0.0/32", "the unspecified address"),
        ("0.0.0.0/8", "a 'this network' address in 0.0.0.0/8"),
        ("127.0.0.0/8", "a loopback address"),
        ("10.0.0.0/8", "a private address"),
        ("172.16.0.0/12", "a private address"),
        ("192.168.0.0/16", "a private address"),
        ("100.64.0.0/10", "a carrier-grade NAT address in 100.64.0.0/10"),
        ("169.254.169.254/32", "the cloud metadata address"),
        ("169.254.0.0/16", "a link-local address"),
        ("192.0.0.0/24", "an IETF protocol assignment address in 192.0.0.0/24"),
        ("192.0.2.0/24", "a documentation address"),
        ("198.51.100.0/24", "a documentation address"),
        ("203.0.113.0/24", "a documentation address"),
        ("192.88.99.0/24", "a 6to4 relay anycast address"),
        ("198.18.0.0/15", "a benchmarking address"),
        ("224.0.0.0/4", "a multicast address"),
        ("255.255.255.255/32", "the broadcast address"),
        ("240.0.0.0/4", "a reserved address in 240.0.0.0/4"),
        # IPv6
        ("::/128", "the unspecified address"),
        ("::1/128", "a loopback address"),
        # All of ::/8 (IPv4-compatible ::a.b.c.d, SIIT ::ffff:0:a.b.c.d, ISATAP-like forms...),
        # except ::ffff:0:0/96, which is unwrapped before the table is consulted.
        ("::/8", "an IPv4-compatible or reserved address in ::/8"),
        ("100::/64", "a discard-only address in 100::/64"),
        ("2001::/32", "a Teredo address"),
        ("2001:db8::/32", "a documentation address"),
        ("3fff::/20", "a documentation address"),
        ("5f00::/16", "an SRv6 segment identifier in 5f00::/16"),
        ("fd00:ec2::254/128", "the cloud metadata address"),
        ("fc00::/7", "a unique local address"),
        ("fe80::/10", "a link-local address"),
        ("fec0::/10", "a site-local address"),
        ("ff00::/8", "a multicast address"),
    ]
)

_NOT_GLOBAL_REASON: Final = "an address that is not globally routable"

# NAT64 decision (checklist B.1 item 7): Hook0's choice. An address in a NAT64 prefix
# inherits the verdict of the IPv4 address it wraps, so 64:ff9b::808:808 (8.8.8.8) is
# allowed and endpoints keep working on DNS64/NAT64 (IPv6-only) networks, while
# 64:ff9b::a9fe:a9fe (169.254.169.254) is blocked. Svix and smokescreen refuse the whole
# prefix instead.
_NAT64_WELL_KNOWN: Final = ipaddress.IPv6Network("64:ff9b::/96")
# RFC 8215 local-use prefix: the operator picks the prefix length inside it, so the position
# of the IPv4 address is not known. Every RFC 6052 layout that fits (/48, /56, /64, /96) is
# tried and the address is refused if any reading is forbidden. A crafted address cannot
# look public under one layout while reaching a private address under another; the cost is
# that /48 and /56 local-use deployments are refused (their /96 reading is 0.0.0.0).
_NAT64_LOCAL_USE: Final = ipaddress.IPv6Network("64:ff9b:1::/48")


def _strip_scope(address: IPAddress) -> IPAddress:
    if isinstance(address, ipaddress.IPv6Address) and address.scope_id is not None:
        return ipaddress.IPv6Address(address.packed)
    return address


def _rfc6052_local_use_candidates(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses a translator could extract from a 64:ff9b:1::/48 address (RFC 6052 2.2)."""
    raw = address.packed
    candidates = [ipaddress.IPv4Address(raw[12:16])]  # /96
    if raw[8] == 0:  # bits 64-71 ("u") are zero in every shorter layout
        layouts = (
            (raw[9:13], raw[13:]),  # /64
            (raw[7:8] + raw[9:12], raw[12:]),  # /56
            (raw[6:8] + raw[9:11], raw[11:]),  # /48
        )
        for embedded, suffix in layouts:
            if not any(suffix):
                candidates.append(ipaddress.IPv4Address(embedded))
    return candidates


def _wrapped_verdict(kind: str, inner: Sequence[ipaddress.IPv4Address]) -> str | None:
    for ipv4 in inner:
        reason = _classify(ipv4)
        if reason is not None:
            return f"{kind} of {ipv4}, which is {reason}"
    return None


def _classify(address: IPAddress) -> str | None:
    """Reason the address is forbidden, ignoring the operator allow-list; None when public."""
    if isinstance(address, ipaddress.IPv6Address):
        # Python classifies ::ffff:127.0.0.1 by its IPv6 form (not loopback): unwrap first.
        mapped = address.ipv4_mapped
        if mapped is not None:
            return _wrapped_verdict("an IPv4-mapped address", [mapped])
        if address in _NAT64_WELL_KNOWN:
            embedded = ipaddress.IPv4Address(address.packed[12:])
            return _wrapped_verdict("a NAT64 address", [embedded])
        if address in _NAT64_LOCAL_USE:
            return _wrapped_verdict("a NAT64 address", _rfc6052_local_use_candidates(address))
        sixtofour = address.sixtofour
        if sixtofour is not None:
            return _wrapped_verdict("a 6to4 address", [sixtofour])
    for network, reason in _FORBIDDEN_NETWORKS:
        if address in network:
            return reason
    if not address.is_global:
        return _NOT_GLOBAL_REASON
    return None


def _is_allow_listed(address: IPAddress, policy: NetworkPolicy) -> bool:
    address = _strip_scope(address)
    candidates: list[IPAddress] = [address]
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        candidates.append(address.ipv4_mapped)
    return any(c in network for c in candidates for network in policy.allow_cidrs)


def forbidden_reason(address: IPAddress, policy: NetworkPolicy) -> str | None:
    """Why the address may not be a webhook target, or None when it is allowed.

    Addresses inside ``policy.allow_cidrs`` (directly, or as IPv4-mapped IPv6) are allowed:
    that is the operator's local-development escape hatch.
    """
    address = _strip_scope(address)
    if _is_allow_listed(address, policy):
        return None
    return _classify(address)


def _check_port(port: int, policy: NetworkPolicy) -> None:
    if port in policy.blocked_ports:
        raise UrlRejectedError(f"port {port} is reserved for the service itself")


def _check_one(address: IPAddress, policy: NetworkPolicy, subject: str) -> None:
    reason = forbidden_reason(address, policy)
    if reason is not None:
        raise UrlRejectedError(f"{subject} {reason} ({_strip_scope(address)})")


def check_address(address: IPAddress, port: int, policy: NetworkPolicy) -> None:
    """Connect-time check of one resolved address; raises UrlRejectedError."""
    _check_port(port, policy)
    _check_one(address, policy, "host resolves to")


# --------------------------------------------------------------------------------------------
# URL parsing
# --------------------------------------------------------------------------------------------

_SCHEME_RE: Final = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):")
# Host name label after lowercasing: letters, digits, hyphen, underscore (seen in real DNS
# names), not starting or ending with a hyphen. Length is checked separately.
_LABEL_RE: Final = re.compile(r"[a-z0-9_](?:[a-z0-9_\-]*[a-z0-9_])?")
_ZONE_RE: Final = re.compile(r"[A-Za-z0-9._~\-]+")
_DECIMAL: Final = frozenset(string.digits)
_OCTAL: Final = frozenset(string.octdigits)
_HEX: Final = frozenset(string.hexdigits)


def _shorten(text: str, limit: int = 32) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class ParsedUrl:
    scheme: str  # "https" or "http"
    host: str  # ASCII (IDNA/punycode) host, lowercased, no brackets, zone id stripped
    port: int  # explicit or default
    literal_ip: IPAddress | None  # set when the host is an IP literal (after normalising)
    username: str | None  # percent-decoded; becomes Basic auth
    password: str | None = field(repr=False)  # percent-decoded; never in repr or logs
    target: str = "/"  # path and query as given, "/" when empty

    def _netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        if self.port == DEFAULT_PORTS[self.scheme]:
            return host
        return f"{host}:{self.port}"

    def redacted(self) -> str:
        """The URL with any password replaced by ``***`` (for logs)."""
        userinfo = ""
        if self.username is not None:
            userinfo = quote(self.username, safe="")
            if self.password is not None:
                userinfo += ":***"
            userinfo += "@"
        return f"{self.scheme}://{userinfo}{self._netloc()}{self.target}"

    def request_url(self) -> str:
        """The URL without user info, to send with the credentials as Basic auth."""
        return f"{self.scheme}://{self._netloc()}{self.target}"


def _parse_inet_aton_part(part: str) -> int | None:
    if part[:2] in ("0x", "0X"):
        digits, base, allowed = part[2:], 16, _HEX
    elif len(part) > 1 and part[0] == "0":
        digits, base, allowed = part[1:], 8, _OCTAL
    else:
        digits, base, allowed = part, 10, _DECIMAL
    if not digits or not allowed.issuperset(digits) or len(digits) > 12:
        return None
    return int(digits, base)


def _parse_inet_aton(text: str) -> ipaddress.IPv4Address | None:
    """Parse like glibc inet_aton (what getaddrinfo does with a numeric host); None if invalid.

    1-4 parts, each decimal, octal (leading 0) or hex (0x); the last part fills the remaining
    bytes: ``127.1`` is 127.0.0.1, ``0x7f000001`` and ``2130706433`` are too, ``012.0.0.1`` is
    10.0.0.1.
    """
    parts = text.split(".")
    if not 1 <= len(parts) <= 4:
        return None
    values: list[int] = []
    for part in parts:
        value = _parse_inet_aton_part(part)
        if value is None:
            return None
        values.append(value)
    *head, last = values
    if any(value > 0xFF for value in head) or last >= 1 << (8 * (4 - len(head))):
        return None
    number = last
    for index, value in enumerate(head):
        number |= value << (8 * (3 - index))
    return ipaddress.IPv4Address(number)


def _ends_in_number(host: str) -> bool:
    """WHATWG rule: a host whose last label is numeric is an IPv4 address or invalid."""
    last = host.rsplit(".", 1)[-1]
    if last[:2] in ("0x", "0X"):
        return _HEX.issuperset(last[2:])
    return bool(last) and _DECIMAL.issuperset(last)


def _parse_ipv6_literal(inner: str) -> ipaddress.IPv6Address:
    text, percent, zone = inner.partition("%")
    if percent:
        # RFC 6874 writes the zone as %25<zone>; a bare % is accepted too. Then dropped.
        if zone.startswith("25"):
            zone = zone[2:]
        if not _ZONE_RE.fullmatch(zone):
            raise UrlRejectedError("IPv6 literal has an invalid zone id")
    if not text.isascii():
        raise UrlRejectedError("host is not a valid IPv6 address")
    try:
        return ipaddress.IPv6Address(text)
    except ValueError:
        raise UrlRejectedError("host is not a valid IPv6 address") from None


def _normalise_host(text: str) -> tuple[str, ipaddress.IPv4Address | None]:
    if not text.isascii():
        try:
            text = idna.encode(text, uts46=True, transitional=False).decode("ascii")
        except (idna.IDNAError, UnicodeError):
            raise UrlRejectedError("host is not a valid internationalised domain name") from None
    host = text.lower()
    if host.endswith("."):
        host = host[:-1]
    if not host:
        raise UrlRejectedError("URL has no host")
    if len(host) > MAX_HOST_LENGTH:
        raise UrlRejectedError(f"host is longer than {MAX_HOST_LENGTH} characters")
    if _ends_in_number(host):
        # Resolvers would treat it as an IPv4 address in inet_aton notation, so must we.
        address = _parse_inet_aton(host)
        if address is None:
            raise UrlRejectedError(f"host '{_shorten(host)}' is not a valid IPv4 address")
        return str(address), address
    for label in host.split("."):
        if not label:
            raise UrlRejectedError("host has an empty label")
        if len(label) > MAX_LABEL_LENGTH:
            raise UrlRejectedError(f"host has a label longer than {MAX_LABEL_LENGTH} characters")
        if not _LABEL_RE.fullmatch(label):
            raise UrlRejectedError("host contains characters not allowed in a host name")
    if host == "localhost" or host.endswith(".localhost"):
        raise UrlRejectedError("localhost is not allowed")
    return host, None


def _parse_port(text: str | None, scheme: str) -> int:
    if text is None:
        return DEFAULT_PORTS[scheme]
    if not text:
        raise UrlRejectedError("port is empty")
    if not (text.isascii() and text.isdigit()):
        raise UrlRejectedError(f"port '{_shorten(text)}' is not a number")
    if len(text) > 5 or not 1 <= int(text) <= 65535:
        raise UrlRejectedError(f"port {_shorten(text)} is out of range (1-65535)")
    return int(text)


def _parse_credentials(userinfo: str) -> tuple[str | None, str | None]:
    if not userinfo:
        return None, None
    user, colon, secret = userinfo.partition(":")
    try:
        username = unquote(user, errors="strict")
        password = unquote(secret, errors="strict") if colon else None
    except UnicodeDecodeError:
        raise UrlRejectedError("URL credentials have invalid percent-encoding") from None
    if ":" in username:
        raise UrlRejectedError("URL username must not contain ':'")
    return username, password


def parse_url(url: str, policy: NetworkPolicy) -> ParsedUrl:
    """Check the URL's syntax and normalise it; no DNS. Raises UrlRejectedError."""
    if not url:
        raise UrlRejectedError("URL is empty")
    if len(url) > MAX_URL_LENGTH:
        raise UrlRejectedError(f"URL is longer than {MAX_URL_LENGTH} characters")
    if any(ch.isspace() or unicodedata.category(ch) == "Cc" for ch in url):
        raise UrlRejectedError("URL contains whitespace or control characters")
    if "\\" in url:
        raise UrlRejectedError("URL contains a backslash")

    match = _SCHEME_RE.match(url)
    if match is None:
        raise UrlRejectedError("URL has no scheme; use https://")
    scheme = match.group(1).lower()
    if scheme not in DEFAULT_PORTS:
        raise UrlRejectedError(f"scheme '{_shorten(scheme)}' is not allowed; use https")
    rest = url[match.end() :]
    if not rest.startswith("//"):
        raise UrlRejectedError(f"URL must look like {scheme}://host/path")
    if "#" in rest:
        raise UrlRejectedError("URL must not contain a fragment")
    rest = rest[2:]
    end = min((i for i in (rest.find("/"), rest.find("?")) if i != -1), default=len(rest))
    authority, target = rest[:end], rest[end:]
    if not target.startswith("/"):
        target = "/" + target

    userinfo, at, hostport = authority.rpartition("@")
    if at and "@" in userinfo:
        raise UrlRejectedError("URL has more than one '@' before the host")
    username, password = _parse_credentials(userinfo)

    literal: IPAddress | None
    port_text: str | None
    if hostport.startswith("["):
        close = hostport.find("]")
        if close == -1:
            raise UrlRejectedError("IPv6 literal is missing its closing ']'")
        literal = _parse_ipv6_literal(hostport[1:close])
        after = hostport[close + 1 :]
        if after and not after.startswith(":"):
            raise UrlRejectedError("unexpected characters after the IPv6 literal")
        port_text = after[1:] if after else None
        host = str(literal)
    else:
        if "[" in hostport or "]" in hostport:
            raise UrlRejectedError("host contains a bracket outside an IPv6 literal")
        host_text, colon, port_part = hostport.partition(":")
        if ":" in port_part:
            raise UrlRejectedError("IPv6 literal must be enclosed in brackets")
        if not host_text:
            raise UrlRejectedError("URL has no host")
        port_text = port_part if colon else None
        host, literal = _normalise_host(host_text)
    port = _parse_port(port_text, scheme)

    if scheme == "http" and not (policy.allow_http_for_allowed and policy.allow_cidrs):
        raise UrlRejectedError("plain http is not allowed; use https")
    _check_port(port, policy)
    return ParsedUrl(
        scheme=scheme,
        host=host,
        port=port,
        literal_ip=literal,
        username=username,
        password=password,
        target=target,
    )


# --------------------------------------------------------------------------------------------
# Resolution and the full check
# --------------------------------------------------------------------------------------------


class Resolver(Protocol):
    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        """Addresses for host, in resolver order; raises ResolutionError."""
        ...


def _dedupe(addresses: Iterable[IPAddress]) -> list[IPAddress]:
    return list(dict.fromkeys(_strip_scope(address) for address in addresses))


class SystemResolver:
    """The system resolver (``getaddrinfo``), bounded by a timeout.

    On timeout the lookup thread is abandoned, not killed; asyncio's default executor bounds
    how many can pile up.
    """

    def __init__(self, timeout_seconds: float = 5.0) -> None:
        if timeout_seconds <= 0:
            raise ValueError("timeout_seconds must be positive")
        self._timeout = timeout_seconds

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self._timeout):
                infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, TimeoutError, UnicodeError) as exc:
            raise ResolutionError(UNRESOLVABLE_REASON) from exc
        addresses: list[IPAddress] = []
        for family, _type, _proto, _canonname, sockaddr in infos:
            if family not in (socket.AF_INET, socket.AF_INET6):
                continue
            # A link-local IPv6 answer may carry its zone ("fe80::1%eth0"): drop it.
            text = str(sockaddr[0]).partition("%")[0]
            try:
                addresses.append(ipaddress.ip_address(text))
            except ValueError:
                continue
        return _dedupe(addresses)


class StaticResolver:
    """A fixed table host -> addresses, for tests and tools; an unknown host is unresolvable."""

    def __init__(self, table: Mapping[str, Sequence[str]]) -> None:
        self._table: dict[str, tuple[IPAddress, ...]] = {
            host.lower().rstrip("."): tuple(ipaddress.ip_address(a) for a in addresses)
            for host, addresses in table.items()
        }

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        try:
            return list(self._table[host.lower().rstrip(".")])
        except KeyError:
            raise ResolutionError(UNRESOLVABLE_REASON) from None


def check_addresses(
    parsed: ParsedUrl, addresses: Sequence[IPAddress], policy: NetworkPolicy
) -> None:
    """Check every address the host resolved to (connect time or registration time).

    Raises UrlRejectedError when there is no address, when ANY address is forbidden, or when
    plain http is used and not every address is in the operator allow-list.
    """
    if not addresses:
        raise UrlRejectedError("host has no addresses")
    _check_port(parsed.port, policy)
    subject = "host is" if parsed.literal_ip is not None else "host resolves to"
    # A mixed answer such as [1.1.1.1, 127.0.0.1] is rejected outright (Hook0's choice),
    # rather than filtered down to its public part as Svix and Discourse do: a host that
    # resolves to internal addresses at all is not a legitimate webhook target.
    for address in addresses:
        _check_one(address, policy, subject)
    if parsed.scheme == "http" and not all(_is_allow_listed(a, policy) for a in addresses):
        raise UrlRejectedError("plain http is only allowed for allow-listed addresses; use https")


async def vet_url(
    url: str, policy: NetworkPolicy, resolver: Resolver
) -> tuple[ParsedUrl, list[IPAddress]]:
    """Parse, resolve (IP literals skip DNS) and check; returns the URL and the checked addresses.

    The caller must connect only to one of the returned addresses (sending the original host
    in the Host header and SNI); resolving again would reopen the DNS-rebinding window.
    """
    parsed = parse_url(url, policy)
    if parsed.literal_ip is not None:
        addresses = [parsed.literal_ip]
    else:
        try:
            addresses = _dedupe(await resolver.resolve(parsed.host, parsed.port))
        except ResolutionError:
            raise UrlRejectedError(UNRESOLVABLE_REASON) from None
    check_addresses(parsed, addresses, policy)
    return parsed, addresses
