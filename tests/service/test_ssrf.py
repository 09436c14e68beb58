"""SSRF defence: reliability checklist B.1 (items 1-9), B.2 (10-15) and B.3 (16, 17, 19, 22).

No test touches outside DNS: hosts resolve through StaticResolver or stub resolvers, and the
only SystemResolver lookup is "localhost" (answered from /etc/hosts).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from typing import Any

import pytest

from service import ssrf
from service.ssrf import (
    IPAddress,
    NetworkPolicy,
    ParsedUrl,
    ResolutionError,
    StaticResolver,
    SystemResolver,
    UrlRejectedError,
    check_address,
    check_addresses,
    forbidden_reason,
    parse_url,
    vet_url,
)

SERVICE_PORTS = frozenset({7233, 50051})
POLICY = NetworkPolicy(blocked_ports=SERVICE_PORTS)

RESOLVER = StaticResolver(
    {
        "example.com": ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"],
        "xn--bcher-kva.example": ["8.8.4.4"],
        "internal.example": ["10.1.2.3"],
        "metadata.example": ["169.254.169.254"],
        "cgnat.example": ["100.100.100.100"],
        "ula.example": ["fd12:3456:789a::1"],
        "nat64-metadata.example": ["64:ff9b::a9fe:a9fe"],
        # B.3 item 16: mixed answers, A only and A + AAAA.
        "mixed.example": ["1.1.1.1", "127.0.0.1"],
        "mixed6.example": ["2606:4700:4700::1111", "::1"],
        "mixed46.example": ["8.8.8.8", "fd00::1"],
        "mixed64.example": ["::ffff:8.8.8.8", "10.0.0.1"],
        "empty.example": [],
    }
)

LONG_HOST = ".".join(["a" * 63] * 17) + ".com"  # 1091 characters
assert len(LONG_HOST) > 1024


def ip(text: str) -> IPAddress:
    return ipaddress.ip_address(text)


def fullwidth(text: str, dots: str = "\uff0e") -> str:
    """The text in fullwidth forms, which UTS #46 maps back to ASCII ("\uff11" is "1")."""
    return "".join(dots if ch == "." else chr(ord(ch) + 0xFEE0) for ch in text)


def _case(url: str, reason: str) -> Any:
    short = url if len(url) <= 48 else f"{url[:40]}...({len(url)} chars)"
    return pytest.param(url, reason, id=short)


# (url, a fragment the reason must contain). The fragments name the address class, and for
# odd notations the normalised address, so every rejection is explained to the user.
BAD_CASES = [
    # --- B.1 item 1: loopback and unspecified
    _case("https://127.0.0.1/", "a loopback address (127.0.0.1)"),
    _case("https://127.255.255.255/", "a loopback address (127.255.255.255)"),
    _case("https://[::1]/", "a loopback address (::1)"),
    _case("https://0.0.0.0/", "the unspecified address (0.0.0.0)"),
    _case("https://[::]/", "the unspecified address (::)"),
    _case("https://0.1.2.3/", "'this network' address in 0.0.0.0/8 (0.1.2.3)"),
    # --- item 2: RFC 1918
    _case("https://10.0.0.1/", "a private address (10.0.0.1)"),
    _case("https://172.31.100.31/", "a private address (172.31.100.31)"),
    _case("https://192.168.1.1/", "a private address (192.168.1.1)"),
    # --- item 3: CGNAT (Python's is_private is False here)
    _case("https://100.64.0.1/", "carrier-grade NAT address in 100.64.0.0/10 (100.64.0.1)"),
    _case("https://100.127.255.254/", "carrier-grade NAT address in 100.64.0.0/10"),
    # --- item 4: metadata and link-local
    _case("https://169.254.169.254/latest/meta-data/", "the cloud metadata address"),
    _case("https://169.254.1.1/", "a link-local address (169.254.1.1)"),
    _case("https://[fd00:ec2::254]/", "the cloud metadata address (fd00:ec2::254)"),
    _case("https://[fe80::1]/", "a link-local address (fe80::1)"),
    _case("https://[febf:ffff::1]/", "a link-local address (febf:ffff::1)"),
    _case("https://[fec0::1]/", "a site-local address (fec0::1)"),
    # --- item 5: ULA
    _case("https://[fc00::1]/", "a unique local address (fc00::1)"),
    _case("https://[fd7a:115c:a1e0::1]/", "a unique local address (fd7a:115c:a1e0::1)"),
    # --- item 6: IPv4-mapped, unwrapped and judged as IPv4
    _case("https://[::ffff:127.0.0.1]/", "IPv4-mapped address of 127.0.0.1, which is a loopback"),
    _case("https://[::ffff:7f00:1]/", "IPv4-mapped address of 127.0.0.1, which is a loopback"),
    _case("https://[::ffff:0.0.0.0]/", "IPv4-mapped address of 0.0.0.0, which is the unspecified"),
    _case("https://[::ffff:a9fe:a9fe]/", "169.254.169.254, which is the cloud metadata address"),
    _case("https://[::ffff:10.0.0.1]/", "10.0.0.1, which is a private address"),
    # --- item 7: IPv4 wrapped in IPv6
    _case("https://[::7f00:1]/", "IPv4-compatible or reserved address in ::/8 (::7f00:1)"),
    _case("https://[::127.0.0.1]/", "IPv4-compatible or reserved address in ::/8"),
    _case("https://[::ffff:0:7f00:1]/", "IPv4-compatible or reserved address in ::/8"),
    _case("https://[::5efe:7f00:1]/", "IPv4-compatible or reserved address in ::/8"),
    _case("https://[2002:7f00:1::1]/", "6to4 address of 127.0.0.1, which is a loopback address"),
    _case("https://[2002:a9fe:a9fe::]/", "6to4 address of 169.254.169.254"),
    _case("https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/", "a Teredo address"),
    _case("https://[2001::1]/", "a Teredo address"),
    _case("https://[64:ff9b::a9fe:a9fe]/", "NAT64 address of 169.254.169.254, which is the cloud"),
    _case("https://[64:ff9b::7f00:1]/", "NAT64 address of 127.0.0.1, which is a loopback"),
    _case("https://[64:ff9b::10.0.0.1]/", "NAT64 address of 10.0.0.1, which is a private"),
    _case("https://[64:ff9b:1::a00:1]/", "NAT64 address of 10.0.0.1, which is a private"),
    # Local-use NAT64 prefix laid out as a /64: reads 8.0.0.0 as a /96 but 10.0.0.8 as a /64.
    _case("https://[64:ff9b:1:0:a:0:800:0]/", "NAT64 address of 10.0.0.8, which is a private"),
    # --- item 8: multicast, broadcast, reserved, benchmarking, documentation...
    _case("https://224.0.0.1/", "a multicast address (224.0.0.1)"),
    _case("https://239.255.255.250/", "a multicast address"),
    _case("https://255.255.255.255/", "the broadcast address (255.255.255.255)"),
    _case("https://240.240.240.240/", "a reserved address in 240.0.0.0/4 (240.240.240.240)"),
    _case("https://198.18.0.0/", "a benchmarking address (198.18.0.0)"),
    _case("https://198.19.255.255/", "a benchmarking address"),
    _case("https://192.88.99.1/", "a 6to4 relay anycast address (192.88.99.1)"),
    _case("https://192.0.0.8/", "an IETF protocol assignment address in 192.0.0.0/24"),
    _case("https://192.0.2.1/", "a documentation address (192.0.2.1)"),
    _case("https://198.51.100.7/", "a documentation address (198.51.100.7)"),
    _case("https://203.0.113.6/", "a documentation address (203.0.113.6)"),
    _case("https://[2001:db8::1]/", "a documentation address (2001:db8::1)"),
    _case("https://[3fff::1]/", "a documentation address (3fff::1)"),
    _case("https://[100::1]/", "a discard-only address in 100::/64 (100::1)"),
    _case("https://[5f00::1]/", "an SRv6 segment identifier in 5f00::/16 (5f00::1)"),
    _case("https://[ff02::1]/", "a multicast address (ff02::1)"),
    _case("https://[2001:10::1]/", "an address that is not globally routable (2001:10::1)"),
    # --- B.2 item 10: odd IPv4 notations, classified as getaddrinfo would read them
    _case("https://0177.1/", "a loopback address (127.0.0.1)"),
    _case("https://0177.0.0.1/", "a loopback address (127.0.0.1)"),
    _case("https://017700000001/", "a loopback address (127.0.0.1)"),
    _case("https://0x7f.1/", "a loopback address (127.0.0.1)"),
    _case("https://0X7F.0.0.1/", "a loopback address (127.0.0.1)"),
    _case("https://0x7f000001/", "a loopback address (127.0.0.1)"),
    _case("https://2130706433/", "a loopback address (127.0.0.1)"),
    _case("https://127.000.000.001/", "a loopback address (127.0.0.1)"),
    _case("https://127.0.1/", "a loopback address (127.0.0.1)"),
    _case("https://127.1/", "a loopback address (127.0.0.1)"),
    _case("https://127.0.0.1./", "a loopback address (127.0.0.1)"),
    _case("https://0/", "the unspecified address (0.0.0.0)"),
    # --- item 11: octal is octal
    _case("https://012.0.0.1/", "a private address (10.0.0.1)"),
    _case("https://0xa.0.0.1/", "a private address (10.0.0.1)"),
    _case("https://167772161/", "a private address (10.0.0.1)"),
    _case("https://0251.0376.0251.0376/", "the cloud metadata address (169.254.169.254)"),
    # --- item 12: broadcast in disguise
    _case("https://0377.0377.0377.0377/", "the broadcast address (255.255.255.255)"),
    _case("https://0xffffffff/", "the broadcast address (255.255.255.255)"),
    _case("https://4294967295/", "the broadcast address (255.255.255.255)"),
    _case("https://[::ffff:ffff:ffff]/", "IPv4-mapped address of 255.255.255.255, which is the"),
    # --- item 13: malformed URLs
    _case("http://1.1.1.1.1", "host '1.1.1.1.1' is not a valid IPv4 address"),
    _case("https://1.1.1.1.1/", "is not a valid IPv4 address"),
    _case("https://1.2.3.256/", "host '1.2.3.256' is not a valid IPv4 address"),
    _case("https://4294967296/", "is not a valid IPv4 address"),
    _case("https://08.0.0.1/", "host '08.0.0.1' is not a valid IPv4 address"),
    _case("https://0x/", "is not a valid IPv4 address"),
    _case("https://example.123/", "is not a valid IPv4 address"),
    _case("http://:8080", "URL has no host"),
    _case("https://:8080/", "URL has no host"),
    _case("https:///path", "URL has no host"),
    _case("https://user@/", "URL has no host"),
    _case("https://[[example.net]]:1337", "not a valid IPv6 address"),
    _case("https://[::1/", "missing its closing ']'"),
    _case("https://[::1]x/", "unexpected characters after the IPv6 literal"),
    _case("https://::1/", "IPv6 literal must be enclosed in brackets"),
    _case("https://ex[am]ple.com/", "bracket outside an IPv6 literal"),
    _case("https://[v1.fe]/", "not a valid IPv6 address"),
    _case("https://[::ffff:0177.0.0.1]/", "not a valid IPv6 address"),
    _case("https://example.com:91337/", "port 91337 is out of range (1-65535)"),
    _case("https://example.com:65536/", "port 65536 is out of range"),
    _case("https://example.com:0/", "port 0 is out of range"),
    _case("https://example.com:80a/", "port '80a' is not a number"),
    _case("https://example.com:+443/", "is not a number"),
    _case("https://example.com:/", "port is empty"),
    _case(f"https://{LONG_HOST}/", "host is longer than 253 characters"),
    _case(f"https://{'a' * 64}.example/", "label longer than 63 characters"),
    _case("https://a..b.example/", "host has an empty label"),
    _case("https://-bad.example/", "characters not allowed in a host name"),
    _case("https://127.0.0.%31/", "characters not allowed in a host name"),
    _case("https://ex%61mple.com/", "characters not allowed in a host name"),
    _case("javascript:alert(1)", "scheme 'javascript' is not allowed"),
    _case("file:///etc/passwd", "scheme 'file' is not allowed"),
    _case("gopher://127.0.0.1:6379/_INFO", "scheme 'gopher' is not allowed"),
    _case("ftp://example.com/", "scheme 'ftp' is not allowed"),
    _case("data:text/plain,hi", "scheme 'data' is not allowed"),
    _case("dict://example.com:11211/stat", "scheme 'dict' is not allowed"),
    _case("wss://example.com/", "scheme 'wss' is not allowed"),
    _case("example.com/hook", "URL has no scheme"),
    _case("//example.com/hook", "URL has no scheme"),
    _case("https:example.com", "URL must look like https://host/path"),
    _case("https:/example.com", "URL must look like https://host/path"),
    _case("http://example.com/", "plain http is not allowed"),
    _case("https://example.com/#frag", "must not contain a fragment"),
    _case("https://example.com/a b", "whitespace or control characters"),
    _case(" https://example.com/", "whitespace or control characters"),
    _case("https://example.com/\r\nX-Injected: 1", "whitespace or control characters"),
    _case("https://example.com\t/", "whitespace or control characters"),
    _case("https://example.com/\x00", "whitespace or control characters"),
    _case("https://example.com/\x7f", "whitespace or control characters"),
    _case("https://example.com\u3000/", "whitespace or control characters"),
    _case("https://example.com/" + "a" * 2048, "URL is longer than 2048 characters"),
    _case("", "URL is empty"),
    _case("https://example.com\\@127.0.0.1/", "backslash"),
    _case("https://user@evil.example@127.0.0.1/", "more than one '@'"),
    _case("https://a%3Ab:pw@example.com/", "username must not contain ':'"),
    _case("https://%ff:pw@example.com/", "invalid percent-encoding"),
    # --- item 14: IDN, zone ids, localhost
    _case("https://localhost/", "localhost is not allowed"),
    _case("https://LOCALHOST./", "localhost is not allowed"),
    _case("https://api.localhost:8443/", "localhost is not allowed"),
    _case(f"https://{fullwidth('localhost')}/", "localhost is not allowed"),
    _case(
        "https://" + fullwidth("127.0.0.1", dots="\u3002") + "/", "a loopback address (127.0.0.1)"
    ),
    _case("https://[fe80::1%25eth0]/", "a link-local address (fe80::1)"),
    _case("https://[fe80::1%eth0]/", "a link-local address (fe80::1)"),
    _case("https://[::1%25lo]/", "a loopback address (::1)"),
    _case("https://[fe80::1%25]/", "invalid zone id"),
    _case("https://\u2603.example/", "not a valid internationalised domain name"),
    # --- B.3 item 16: resolved answers, any forbidden address rejects the target
    _case("https://internal.example/", "host resolves to a private address (10.1.2.3)"),
    _case("https://metadata.example/", "host resolves to the cloud metadata address"),
    _case("https://cgnat.example/", "host resolves to a carrier-grade NAT address"),
    _case("https://ula.example/", "host resolves to a unique local address"),
    _case("https://nat64-metadata.example/", "resolves to a NAT64 address of 169.254.169.254"),
    _case("https://mixed.example/", "host resolves to a loopback address (127.0.0.1)"),
    _case("https://mixed6.example/", "host resolves to a loopback address (::1)"),
    _case("https://mixed46.example/", "host resolves to a unique local address (fd00::1)"),
    _case("https://mixed64.example/", "host resolves to a private address (10.0.0.1)"),
    _case("https://empty.example/", "host has no addresses"),
    # --- item 19: unresolvable, generic message
    _case("https://nxdomain.example/", "host could not be resolved"),
    # --- item 22: the service's own ports
    _case("https://example.com:50051/", "port 50051 is reserved for the service itself"),
    _case("https://1.1.1.1:7233/", "port 7233 is reserved for the service itself"),
]


@pytest.mark.parametrize(("url", "reason"), BAD_CASES)
async def test_bad_targets_are_rejected_with_a_clear_reason(url: str, reason: str) -> None:
    with pytest.raises(UrlRejectedError) as excinfo:
        await vet_url(url, POLICY, RESOLVER)
    assert reason in excinfo.value.reason
    assert str(excinfo.value) == excinfo.value.reason
    assert isinstance(excinfo.value, ValueError)


def test_bad_case_table_is_large_enough() -> None:
    assert len(BAD_CASES) >= 60


GOOD_CASES = [
    ("https://1.1.1.1/", ["1.1.1.1"]),
    ("https://8.8.8.8/", ["8.8.8.8"]),
    ("https://223.255.255.255/", ["223.255.255.255"]),
    ("https://100.63.255.254/", ["100.63.255.254"]),
    ("https://100.128.0.1/", ["100.128.0.1"]),
    ("https://172.32.0.1/", ["172.32.0.1"]),
    ("https://198.20.0.1/", ["198.20.0.1"]),
    ("https://169.255.0.1/", ["169.255.0.1"]),
    ("https://[::ffff:8.8.8.8]/", ["::ffff:8.8.8.8"]),
    ("https://[2606:4700:4700::1111]/", ["2606:4700:4700::1111"]),
    ("https://[64:ff9b::808:808]/", ["64:ff9b::808:808"]),
    ("https://[64:ff9b:1::808:808]/", ["64:ff9b:1::808:808"]),
    ("https://[2002:808:808::1]/", ["2002:808:808::1"]),
    ("https://0x08080808/", ["8.8.8.8"]),
    ("https://example.com/hook", ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"]),
    (
        "https://EXAMPLE.COM.:8443/x?y=1",
        ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"],
    ),
    (
        "https://user:pa%40ss@example.com/",
        ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"],
    ),
    ("https://Bücher.example/hook", ["8.8.4.4"]),
    ("https://bücher。example/hook", ["8.8.4.4"]),
]


@pytest.mark.parametrize(("url", "expected"), GOOD_CASES)
async def test_public_targets_are_allowed(url: str, expected: list[str]) -> None:
    parsed, addresses = await vet_url(url, POLICY, RESOLVER)
    assert addresses == [ip(a) for a in expected]
    assert parsed.scheme == "https"
    for address in addresses:
        assert forbidden_reason(address, POLICY) is None


def test_good_case_table_is_large_enough() -> None:
    assert len(GOOD_CASES) >= 10


# --- parsing details


def test_parse_url_normalises_idn_to_punycode() -> None:
    parsed = parse_url("https://Bücher.Example./hook?x=1", POLICY)
    assert parsed == ParsedUrl(
        scheme="https",
        host="xn--bcher-kva.example",
        port=443,
        literal_ip=None,
        username=None,
        password=None,
        target="/hook?x=1",
    )


@pytest.mark.parametrize(
    ("url", "host", "literal"),
    [
        ("https://0x7f.1/", "127.0.0.1", "127.0.0.1"),
        ("https://012.0.0.1/", "10.0.0.1", "10.0.0.1"),
        ("https://[FE80::1%25eth0]/", "fe80::1", "fe80::1"),
        ("https://[::FFFF:7F00:1]:8443/", "::ffff:7f00:1", "::ffff:7f00:1"),
        (f"https://{fullwidth('127.0.0.1')}/", "127.0.0.1", "127.0.0.1"),
    ],
)
def test_parse_url_normalises_ip_literals(url: str, host: str, literal: str) -> None:
    parsed = parse_url(url, POLICY)
    assert parsed.host == host
    assert parsed.literal_ip == ip(literal)


def test_parse_url_ports_and_targets() -> None:
    assert parse_url("HTTPS://Example.COM", POLICY).port == 443
    assert parse_url("https://example.com", POLICY).target == "/"
    assert parse_url("https://example.com?a=1", POLICY).target == "/?a=1"
    assert parse_url("https://example.com:08443/p", POLICY).port == 8443
    assert parse_url("https://my_host.example/", POLICY).host == "my_host.example"


def test_parse_url_is_syntax_only() -> None:
    # Forbidden literals are judged by vet_url/check_address, not by the parser.
    assert parse_url("https://127.0.0.1/", POLICY).literal_ip == ip("127.0.0.1")


def test_credentials_are_decoded_and_redacted() -> None:
    parsed = parse_url("https://alice:s3cr%40t@example.com:8443/hook?x=1", POLICY)
    assert parsed.username == "alice"
    assert parsed.password == "s3cr@t"
    assert parsed.redacted() == "https://alice:***@example.com:8443/hook?x=1"
    assert parsed.request_url() == "https://example.com:8443/hook?x=1"
    assert "s3cr" not in repr(parsed)
    assert "s3cr" not in parsed.redacted()


@pytest.mark.parametrize(
    ("url", "redacted"),
    [
        ("https://example.com/hook", "https://example.com/hook"),
        ("https://token@example.com/hook", "https://token@example.com/hook"),
        ("https://:pw@example.com/", "https://:***@example.com/"),
        ("https://a%20b:pw@[2606:4700::1]:8443/", "https://a%20b:***@[2606:4700::1]:8443/"),
        ("https://u:p@example.com:443", "https://u:***@example.com/"),
    ],
)
def test_redacted(url: str, redacted: str) -> None:
    assert parse_url(url, POLICY).redacted() == redacted


# --- addresses directly


@pytest.mark.parametrize(
    "address",
    ["1.1.1.1", "8.8.8.8", "223.255.255.255", "100.63.255.254", "100.128.0.1", "::ffff:8.8.8.8",
     "2606:4700:4700::1111", "64:ff9b::808:808"],
)  # fmt: skip
def test_forbidden_reason_allows_public_addresses(address: str) -> None:
    assert forbidden_reason(ip(address), NetworkPolicy()) is None


def test_forbidden_reason_ignores_zone_ids() -> None:
    assert forbidden_reason(ipaddress.IPv6Address("fe80::1%eth0"), POLICY) == "a link-local address"
    with pytest.raises(UrlRejectedError, match=r"link-local address \(fe80::1\)"):
        check_address(ipaddress.IPv6Address("fe80::1%eth0"), 443, POLICY)


def test_check_address_rejects_service_ports_for_public_hosts() -> None:
    check_address(ip("1.1.1.1"), 443, POLICY)
    with pytest.raises(UrlRejectedError, match="port 50051 is reserved"):
        check_address(ip("1.1.1.1"), 50051, POLICY)


def test_check_addresses_rejects_an_empty_answer() -> None:
    parsed = parse_url("https://example.com/", POLICY)
    with pytest.raises(UrlRejectedError, match="no addresses"):
        check_addresses(parsed, [], POLICY)


# --- B.3 item 16: mixed A/AAAA answers


async def test_dual_stack_public_answer_keeps_resolver_order_and_dedupes() -> None:
    resolver = StaticResolver({"dual.example": ["2606:4700:4700::1111", "1.1.1.1", "1.1.1.1"]})
    _, addresses = await vet_url("https://dual.example/", POLICY, resolver)
    assert addresses == [ip("2606:4700:4700::1111"), ip("1.1.1.1")]


@pytest.mark.parametrize(
    "answer",
    [
        ["1.1.1.1", "127.0.0.1"],
        ["127.0.0.1", "1.1.1.1"],
        ["1.1.1.1", "2606:4700:4700::1111", "fe80::1"],
        ["2606:4700:4700::1111", "::ffff:192.168.0.1"],
        ["8.8.8.8", "64:ff9b::a00:1"],
    ],
)
async def test_one_forbidden_address_rejects_the_whole_answer(answer: list[str]) -> None:
    resolver = StaticResolver({"mixed.example": answer})
    with pytest.raises(UrlRejectedError, match="host resolves to"):
        await vet_url("https://mixed.example/", POLICY, resolver)


# --- B.3 item 17: DNS rebinding


class RebindingResolver:
    """Answers with a public address first, then with loopback (like 1time.rebind.network)."""

    def __init__(self, answers: list[list[str]]) -> None:
        self._answers = answers
        self.calls = 0

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        answer = self._answers[min(self.calls, len(self._answers) - 1)]
        self.calls += 1
        return [ip(a) for a in answer]


async def test_vet_url_returns_exactly_the_addresses_it_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    checked: list[IPAddress] = []
    original = ssrf.forbidden_reason

    def spy(address: IPAddress, policy: NetworkPolicy) -> str | None:
        checked.append(address)
        return original(address, policy)

    monkeypatch.setattr(ssrf, "forbidden_reason", spy)
    resolver = RebindingResolver([["93.184.215.14", "2606:4700:4700::1111"], ["127.0.0.1"]])

    _, addresses = await vet_url("https://rebind.example/", POLICY, resolver)
    assert resolver.calls == 1  # resolved once; the caller connects to these addresses only
    assert addresses == [ip("93.184.215.14"), ip("2606:4700:4700::1111")]
    assert checked == addresses

    # The next lookup (a connect-time re-check) sees the rebound answer and refuses it.
    checked.clear()
    with pytest.raises(UrlRejectedError, match=r"loopback address \(127\.0\.0\.1\)"):
        await vet_url("https://rebind.example/", POLICY, resolver)
    assert resolver.calls == 2
    assert checked == [ip("127.0.0.1")]


async def test_literal_ip_skips_dns() -> None:
    resolver = RebindingResolver([["127.0.0.1"]])
    _, addresses = await vet_url("https://1.1.1.1/", POLICY, resolver)
    assert addresses == [ip("1.1.1.1")]
    assert resolver.calls == 0


# --- operator allow-list (local development)


async def test_allow_cidrs_permit_loopback_and_http_only_there() -> None:
    dev = NetworkPolicy.from_strings(["127.0.0.1/32"], allow_http=True, blocked_ports=[50051])
    resolver = StaticResolver({"dev.test": ["127.0.0.1"], "public.test": ["1.1.1.1"]})

    parsed, addresses = await vet_url("http://127.0.0.1:8080/hook", dev, resolver)
    assert (parsed.scheme, parsed.port, addresses) == ("http", 8080, [ip("127.0.0.1")])
    await vet_url("https://127.0.0.1:8443/hook", dev, resolver)
    await vet_url("http://dev.test:8080/", dev, resolver)
    await vet_url("http://[::ffff:127.0.0.1]:8080/", dev, resolver)
    await vet_url("https://public.test/", dev, resolver)

    with pytest.raises(UrlRejectedError, match="plain http is only allowed for allow-listed"):
        await vet_url("http://public.test/", dev, resolver)
    with pytest.raises(UrlRejectedError, match="plain http is only allowed for allow-listed"):
        await vet_url("http://1.1.1.1/", dev, resolver)
    with pytest.raises(UrlRejectedError, match=r"loopback address \(127\.0\.0\.2\)"):
        await vet_url("http://127.0.0.2/", dev, resolver)
    with pytest.raises(UrlRejectedError, match="port 50051 is reserved"):
        await vet_url("http://127.0.0.1:50051/", dev, resolver)
    # The name is still refused: the allow-list is about addresses.
    with pytest.raises(UrlRejectedError, match="localhost is not allowed"):
        await vet_url("http://localhost:8080/", dev, resolver)


async def test_allow_cidrs_without_allow_http_still_require_https() -> None:
    dev = NetworkPolicy.from_strings(["127.0.0.0/8"])
    await vet_url("https://127.0.0.1/", dev, RESOLVER)
    with pytest.raises(UrlRejectedError, match="plain http is not allowed"):
        await vet_url("http://127.0.0.1/", dev, RESOLVER)


async def test_allow_http_without_allow_cidrs_allows_nothing_over_http() -> None:
    policy = NetworkPolicy.from_strings([], allow_http=True)
    with pytest.raises(UrlRejectedError, match="plain http is not allowed"):
        await vet_url("http://1.1.1.1/", policy, RESOLVER)


def test_default_policy_is_closed() -> None:
    policy = NetworkPolicy()
    assert policy.allow_cidrs == ()
    assert policy.allow_http_for_allowed is False
    assert policy.blocked_ports == frozenset()


@pytest.mark.parametrize("cidr", ["not-a-cidr", "127.0.0.1/8", "10.0.0.0/33", ""])
def test_from_strings_rejects_bad_cidrs(cidr: str) -> None:
    with pytest.raises(ValueError, match="invalid CIDR"):
        NetworkPolicy.from_strings([cidr])


def test_from_strings_rejects_bad_ports() -> None:
    with pytest.raises(ValueError, match="invalid blocked port"):
        NetworkPolicy.from_strings([], blocked_ports=[0])


def test_from_strings_parses_both_families() -> None:
    policy = NetworkPolicy.from_strings([" 10.0.0.0/8", "fd00::/8"], blocked_ports=[7233])
    assert policy.allow_cidrs == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("fd00::/8"),
    )
    assert policy.blocked_ports == frozenset({7233})
    assert forbidden_reason(ip("10.9.9.9"), policy) is None
    assert forbidden_reason(ip("fd00::1"), policy) is None
    assert forbidden_reason(ip("192.168.0.1"), policy) == "a private address"


# --- B.3 item 19: resolution failures


class FailingResolver:
    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        raise ResolutionError("SERVFAIL from 10.0.0.53 for internal.corp")


async def test_resolution_errors_become_a_generic_rejection() -> None:
    with pytest.raises(UrlRejectedError) as excinfo:
        await vet_url("https://example.com/", POLICY, FailingResolver())
    assert excinfo.value.reason == "host could not be resolved"
    assert excinfo.value.__cause__ is None
    assert excinfo.value.__suppress_context__


async def test_static_resolver_unknown_host_and_case() -> None:
    resolver = StaticResolver({"Known.Example.": ["1.1.1.1"]})
    assert await resolver.resolve("known.example", 443) == [ip("1.1.1.1")]
    with pytest.raises(ResolutionError):
        await resolver.resolve("unknown.example", 443)


async def test_system_resolver_localhost_is_loopback_and_blocked() -> None:
    addresses = await SystemResolver().resolve("localhost", 443)
    assert addresses
    assert all(address.is_loopback for address in addresses)
    for address in addresses:
        with pytest.raises(UrlRejectedError, match="loopback address"):
            check_address(address, 443, POLICY)


async def test_system_resolver_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    async def slow(*args: object, **kwargs: object) -> list[object]:
        await asyncio.sleep(30)
        return []

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", slow)
    with pytest.raises(ResolutionError, match=r"^host could not be resolved$"):
        await SystemResolver(timeout_seconds=0.05).resolve("slow.example", 443)


async def test_system_resolver_maps_gaierror(monkeypatch: pytest.MonkeyPatch) -> None:
    async def nxdomain(*args: object, **kwargs: object) -> list[object]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", nxdomain)
    with pytest.raises(ResolutionError, match=r"^host could not be resolved$"):
        await SystemResolver().resolve("nxdomain.example", 443)


async def test_system_resolver_dedupes_keeps_order_and_drops_zones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[tuple[object, ...]] = []

    async def fake(host: str, port: int, **kwargs: object) -> list[object]:
        seen.append((host, port, kwargs.get("type")))
        stream = socket.SOCK_STREAM
        return [
            (socket.AF_INET6, stream, 6, "", ("2606:4700:4700::1111", port, 0, 0)),
            (socket.AF_INET, stream, 6, "", ("1.1.1.1", port)),
            (socket.AF_INET6, stream, 6, "", ("2606:4700:4700::1111", port, 0, 0)),
            (socket.AF_INET6, stream, 6, "", ("fe80::1%eth0", port, 0, 2)),
        ]

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", fake)
    addresses = await SystemResolver().resolve("dual.example", 8443)
    assert addresses == [ip("2606:4700:4700::1111"), ip("1.1.1.1"), ip("fe80::1")]
    assert seen == [("dual.example", 8443, socket.SOCK_STREAM)]
    with pytest.raises(UrlRejectedError, match="link-local"):
        check_addresses(parse_url("https://dual.example:8443/", POLICY), addresses, POLICY)


def test_system_resolver_rejects_bad_timeout() -> None:
    with pytest.raises(ValueError, match="positive"):
        SystemResolver(timeout_seconds=0)
