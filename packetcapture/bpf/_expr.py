"""Render filter rules as an equivalent libpcap (tcpdump) filter expression."""

from __future__ import annotations

from collections.abc import Sequence

from packetcapture.bpf._compiler import PORT_PROTOCOLS, families, merge_ranges, protocol_number
from packetcapture.model import PacketCaptureRule

__all__ = ["pcap_expression"]

_NAMED = {6: "tcp", 17: "udp", 132: "sctp"}
#: A libpcap expression that matches no packet (the wire length is never negative).
NEVER = "len < 0"


def _ports(ranges: Sequence[tuple[int, int]]) -> str:
    return " or ".join(f"port {a}" if a == b else f"portrange {a}-{b}" for a, b in ranges)


def _rule(rule: PacketCaptureRule) -> str | None:
    ranges = merge_ranges(rule.ports)
    if rule.protocol is None:
        return _ports(ranges)
    v4, v6 = families(rule.protocol)
    n = protocol_number(rule.protocol)
    if v6 is None:
        proto = "icmp"
    elif v4 is None:
        proto = "icmp6"
    else:
        proto = _NAMED.get(n, f"proto {n}")
    if not ranges:
        return proto
    if n in _NAMED:
        return f"{proto} and ({_ports(ranges)})"
    if n in PORT_PROTOCOLS and v4 is not None:
        # libpcap's "port" knows only TCP, UDP and SCTP: spell the offsets out.
        ihl = "((ip[0]&0xf)<<2)"
        v4_tests = " or ".join(
            t
            for a, b in ranges
            for t in (
                (f"ip[{ihl}:2] = {a}", f"ip[{ihl}+2:2] = {a}")
                if a == b
                else (
                    f"(ip[{ihl}:2] >= {a} and ip[{ihl}:2] <= {b})",
                    f"(ip[{ihl}+2:2] >= {a} and ip[{ihl}+2:2] <= {b})",
                )
            )
        )
        v6_tests = " or ".join(
            t
            for a, b in ranges
            for t in (
                (f"ip6[40:2] = {a}", f"ip6[42:2] = {a}")
                if a == b
                else (
                    f"(ip6[40:2] >= {a} and ip6[40:2] <= {b})",
                    f"(ip6[42:2] >= {a} and ip6[42:2] <= {b})",
                )
            )
        )
        return (
            f"(ip proto {n} and ip[6:2] & 0x1fff = 0 and ({v4_tests}))"
            f" or (ip6 proto {n} and ({v6_tests}))"
        )
    # Ports on a protocol without ports never match (libpcap refuses such expressions).
    return None


def pcap_expression(rules: Sequence[PacketCaptureRule]) -> str:
    """Return a libpcap filter expression equivalent to ``rules``.

    The empty string means "everything" (no rules, or a rule with neither protocol nor
    ports). libpcap itself does not look through VLAN tags or IPv6 extension headers
    (other than one fragment header), so the expression agrees with ``compile_filters``
    on frames without those (and that hold every header field both programs read).
    ``"len < 0"`` means nothing can match: ports on a protocol without ports, such as
    ICMP, never match, and libpcap refuses filters that are constant false.
    """
    if not rules:
        return ""
    parts = []
    for rule in rules:
        if rule.protocol is None and not rule.ports:
            return ""
        part = _rule(rule)
        if part is not None:
            parts.append(part)
    if not parts:
        # Nothing can match. libpcap rejects constant-false filters, so say it at run time.
        return NEVER
    if len(parts) == 1:
        return parts[0]
    return " or ".join(f"({p})" for p in parts)
