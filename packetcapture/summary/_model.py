"""The summary's result types and their stable JSON form (no I/O)."""

from __future__ import annotations

import datetime as _dt
from typing import Any

import attrs

__all__ = [
    "CaptureSummary",
    "DnsQuery",
    "Flow",
    "IcmpError",
    "TcpIssue",
    "Totals",
    "format_time",
]

_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)


def format_time(timestamp_ns: int | None) -> str | None:
    """RFC 3339 UTC with nanoseconds (``2021-08-26T12:00:00.001000000Z``); None stays None.

    A time past year 9999 (a corrupt timestamp) is given as Unix seconds instead
    (``"16358703825810.667472000"``).
    """
    if timestamp_ns is None:
        return None
    sec, ns = divmod(timestamp_ns, 1_000_000_000)
    try:
        day = (_EPOCH + _dt.timedelta(seconds=sec)).strftime("%Y-%m-%dT%H:%M:%S")
    except OverflowError:
        return f"{sec}.{ns:09d}"
    return f"{day}.{ns:09d}Z"


def _ms(value_ns: int | None) -> float | None:
    return None if value_ns is None else round(value_ns / 1e6, 3)


@attrs.frozen
class Flow:
    """One bidirectional conversation seen on one endpoint.

    ``a`` is the source of the first packet seen, ``b`` its destination (``ip:port``, IPv6
    as ``[ip]:port``, the address alone for protocols without ports). ``*_ab`` count the
    packets from ``a`` to ``b``, ``*_ba`` the other way; bytes are the packets' lengths on
    the wire, link-layer header included (what tshark's conversation tables count).
    """

    proto: str
    a: str
    b: str
    packets_ab: int
    packets_ba: int
    bytes_ab: int
    bytes_ba: int
    first_ns: int
    last_ns: int
    endpoint: str
    #: TCP: SYN to the ACK completing the handshake (tshark's ``tcp.analysis.initial_rtt``).
    handshake_rtt_ns: int | None = None

    @property
    def packets(self) -> int:
        """Packets both ways."""
        return self.packets_ab + self.packets_ba

    @property
    def bytes(self) -> int:
        """Bytes both ways."""
        return self.bytes_ab + self.bytes_ba

    def to_dict(self) -> dict[str, Any]:
        """Return the flow's JSON object (keys documented in docs/summary.md)."""
        return {
            "proto": self.proto,
            "a": self.a,
            "b": self.b,
            "packets_ab": self.packets_ab,
            "packets_ba": self.packets_ba,
            "bytes_ab": self.bytes_ab,
            "bytes_ba": self.bytes_ba,
            "first": format_time(self.first_ns),
            "last": format_time(self.last_ns),
            "endpoint": self.endpoint,
            "handshake_rtt_ms": _ms(self.handshake_rtt_ns),
        }


@attrs.frozen
class TcpIssue:
    """A TCP connection that had trouble (one per flow with any).

    ``handshake`` is ``"unanswered"`` (SYN, no reply), ``"refused"`` (RST answering the
    SYN), ``"complete"``, ``"incomplete"`` (SYN-ACK but no final ACK seen) or
    ``"not_seen"`` (the capture started mid-connection).
    """

    a: str
    b: str
    endpoint: str
    first_ns: int
    handshake: str
    resets: int
    mid_stream_resets: int
    retransmissions: int
    duplicate_acks: int
    zero_windows: int
    handshake_rtt_ns: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the issue's JSON object."""
        return {
            "a": self.a,
            "b": self.b,
            "endpoint": self.endpoint,
            "first": format_time(self.first_ns),
            "handshake": self.handshake,
            "handshake_rtt_ms": _ms(self.handshake_rtt_ns),
            "resets": self.resets,
            "mid_stream_resets": self.mid_stream_resets,
            "retransmissions": self.retransmissions,
            "duplicate_acks": self.duplicate_acks,
            "zero_windows": self.zero_windows,
        }


@attrs.frozen
class DnsQuery:
    """DNS queries for one name and type from one client to one server, with one outcome.

    ``rcode`` is the response code's name (``NOERROR``, ``NXDOMAIN``, ``SERVFAIL``, ...) or
    None for queries no response was seen to (``answered`` is then False).
    """

    name: str
    type: str
    client: str
    server: str
    endpoint: str
    rcode: str | None
    answered: bool
    count: int
    answers: tuple[str, ...]
    first_ns: int
    response_ns_avg: int | None
    response_ns_max: int | None

    def to_dict(self) -> dict[str, Any]:
        """Return the query row's JSON object."""
        return {
            "name": self.name,
            "type": self.type,
            "client": self.client,
            "server": self.server,
            "endpoint": self.endpoint,
            "rcode": self.rcode,
            "answered": self.answered,
            "count": self.count,
            "answers": list(self.answers),
            "first": format_time(self.first_ns),
            "response_ms": _ms(self.response_ns_avg),
            "max_response_ms": _ms(self.response_ns_max),
        }


@attrs.frozen
class IcmpError:
    """ICMP/ICMPv6 errors of one kind about one quoted flow, from one reporter.

    ``kind`` is ``"unreachable"``, ``"time_exceeded"``, ``"packet_too_big"`` or
    ``"parameter_problem"``; ``a``/``b`` are the quoted packet's source and destination.
    """

    kind: str
    type: int
    code: int
    reason: str
    reporter: str
    proto: str
    a: str
    b: str
    endpoint: str
    count: int
    first_ns: int
    mtu: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """Return the error row's JSON object."""
        return {
            "kind": self.kind,
            "type": self.type,
            "code": self.code,
            "reason": self.reason,
            "reporter": self.reporter,
            "proto": self.proto,
            "a": self.a,
            "b": self.b,
            "endpoint": self.endpoint,
            "count": self.count,
            "first": format_time(self.first_ns),
            "mtu": self.mtu,
        }


@attrs.frozen
class Totals:
    """Counts over everything summarised.

    ``truncated`` counts packets captured shorter than they were on the wire (snap
    length); ``undecoded`` packets that are not IP or whose IP header is cut or malformed;
    ``drops`` the kernel's drops where a file recorded them (pcapng statistics), else None.
    """

    packets: int
    bytes: int
    captured_bytes: int
    truncated: int
    undecoded: int
    first_ns: int | None
    last_ns: int | None
    link_types: dict[int, int]
    endpoints: tuple[str, ...]
    drops: int | None = None
    flows: int = 0

    def to_dict(self) -> dict[str, Any]:
        """Return the totals' JSON object."""
        span = None
        if self.first_ns is not None and self.last_ns is not None:
            span = round((self.last_ns - self.first_ns) / 1e9, 9)
        return {
            "packets": self.packets,
            "bytes": self.bytes,
            "captured_bytes": self.captured_bytes,
            "truncated": self.truncated,
            "undecoded": self.undecoded,
            "first": format_time(self.first_ns),
            "last": format_time(self.last_ns),
            "duration_s": span,
            "link_types": {str(k): v for k, v in sorted(self.link_types.items())},
            "endpoints": list(self.endpoints),
            "flows": self.flows,
            "drops": self.drops,
        }


@attrs.frozen
class CaptureSummary:
    """What is in a capture: flows, TCP trouble, DNS, ICMP errors and totals.

    Flows are sorted by bytes (largest first); the other lists by time.
    """

    flows: tuple[Flow, ...]
    tcp_issues: tuple[TcpIssue, ...]
    dns: tuple[DnsQuery, ...]
    icmp_errors: tuple[IcmpError, ...]
    totals: Totals

    def to_dict(self, top: int | None = None) -> dict[str, Any]:
        """Return one JSON-ready object (``flows``, ``tcp_issues``, ``dns``, ...).

        The keys are ``flows``, ``tcp_issues``, ``dns``, ``icmp_errors`` and ``totals``;
        ``top`` keeps only the largest flows.
        """
        flows = self.flows if top is None else self.flows[:top]
        return {
            "flows": [f.to_dict() for f in flows],
            "tcp_issues": [i.to_dict() for i in self.tcp_issues],
            "dns": [d.to_dict() for d in self.dns],
            "icmp_errors": [e.to_dict() for e in self.icmp_errors],
            "totals": self.totals.to_dict(),
        }
