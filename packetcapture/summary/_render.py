"""Render a :class:`CaptureSummary` as aligned text tables for a terminal (no I/O)."""

from __future__ import annotations

from collections.abc import Sequence

from packetcapture.summary._model import CaptureSummary, format_time

__all__ = ["format_summary"]

_LINK_NAMES = {
    1: "Ethernet",
    113: "Linux SLL",
    276: "Linux SLL2",
    101: "raw IP",
    12: "raw IP",
    14: "raw IP",
    228: "raw IPv4",
    229: "raw IPv6",
}


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: set[int]) -> list[str]:
    """Columns padded to their widest cell; numeric columns (``right``) right-aligned."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        out = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(out).rstrip()

    return [line(headers), *(line(r) for r in rows)]


def _ms(ns: int | None) -> str:
    return "-" if ns is None else f"{ns / 1e6:.3f}"


def _n(value: int) -> str:
    return f"{value:,}"


def format_summary(summary: CaptureSummary, top: int | None = None) -> str:
    """Render the summary as text: totals, then a table per section (``top`` largest flows)."""
    t = summary.totals
    start = t.first_ns or 0

    def rel(ts: int) -> str:
        return f"+{(ts - start) / 1e9:.6f}"

    span = (
        ""
        if t.first_ns is None or t.last_ns is None
        else f" over {(t.last_ns - t.first_ns) / 1e9:.6f} s"
    )
    links = ", ".join(
        f"{_LINK_NAMES.get(k, f'link type {k}')} {_n(v)}" for k, v in sorted(t.link_types.items())
    )
    out = [
        f"Totals: {_n(t.packets)} packets, {_n(t.bytes)} bytes{span}"
        f" ({_n(t.truncated)} truncated, {_n(t.undecoded)} undecoded; "
        f"drops: {'unknown' if t.drops is None else _n(t.drops)})",
        f"  from {format_time(t.first_ns) or '-'} to {format_time(t.last_ns) or '-'}; "
        f"link types: {links or '-'}; endpoints: {', '.join(t.endpoints) or '-'}",
    ]
    flows = summary.flows if top is None else summary.flows[:top]
    shown = (
        f"{len(flows)} of {len(summary.flows)}"
        if len(flows) < len(summary.flows)
        else str(len(flows))
    )
    out += ["", f"Flows ({shown}, by bytes; times from the first packet):"]
    if flows:
        out += _table(
            [
                "PROTO",
                "A",
                "B",
                "PKTS A>B",
                "PKTS B>A",
                "BYTES A>B",
                "BYTES B>A",
                "START",
                "DURATION",
                "RTT ms",
                "ENDPOINT",
            ],
            [
                [
                    f.proto,
                    f.a,
                    f.b,
                    _n(f.packets_ab),
                    _n(f.packets_ba),
                    _n(f.bytes_ab),
                    _n(f.bytes_ba),
                    rel(f.first_ns),
                    f"{(f.last_ns - f.first_ns) / 1e9:.6f}",
                    _ms(f.handshake_rtt_ns),
                    f.endpoint,
                ]
                for f in flows
            ],
            {3, 4, 5, 6, 7, 8, 9},
        )
    out += ["", f"TCP trouble ({len(summary.tcp_issues)}):"]
    if summary.tcp_issues:
        out += _table(
            [
                "A",
                "B",
                "HANDSHAKE",
                "RTT ms",
                "RESETS",
                "MID-STREAM",
                "RETRANS",
                "DUP ACKS",
                "ZERO WIN",
                "START",
                "ENDPOINT",
            ],
            [
                [
                    i.a,
                    i.b,
                    i.handshake,
                    _ms(i.handshake_rtt_ns),
                    _n(i.resets),
                    _n(i.mid_stream_resets),
                    _n(i.retransmissions),
                    _n(i.duplicate_acks),
                    _n(i.zero_windows),
                    rel(i.first_ns),
                    i.endpoint,
                ]
                for i in summary.tcp_issues
            ],
            {3, 4, 5, 6, 7, 8, 9},
        )
    out += ["", f"DNS ({len(summary.dns)}):"]
    if summary.dns:
        out += _table(
            [
                "NAME",
                "TYPE",
                "RESULT",
                "ANSWERS",
                "COUNT",
                "RESPONSE ms",
                "CLIENT",
                "SERVER",
                "START",
                "ENDPOINT",
            ],
            [
                [
                    q.name,
                    q.type,
                    q.rcode or "no response",
                    ", ".join(q.answers) or "-",
                    _n(q.count),
                    _ms(q.response_ns_avg),
                    q.client,
                    q.server,
                    rel(q.first_ns),
                    q.endpoint,
                ]
                for q in summary.dns
            ],
            {4, 5, 8},
        )
    out += ["", f"ICMP errors ({len(summary.icmp_errors)}):"]
    if summary.icmp_errors:
        out += _table(
            ["KIND", "REASON", "FROM", "ABOUT", "A", "B", "COUNT", "START", "ENDPOINT"],
            [
                [
                    e.kind,
                    e.reason + (f" (mtu {e.mtu})" if e.mtu is not None else ""),
                    e.reporter,
                    e.proto or "-",
                    e.a or "-",
                    e.b or "-",
                    _n(e.count),
                    rel(e.first_ns),
                    e.endpoint,
                ]
                for e in summary.icmp_errors
            ],
            {6, 7},
        )
    return "\n".join(out) + "\n"
