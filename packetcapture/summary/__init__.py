"""What is in a capture, without Wireshark: flows, TCP trouble, DNS, ICMP errors, totals.

A pure core over decoded packets (no I/O): feed ``(timestamp_ns, data, wire_len)``
packets of a link type, per endpoint, to a :class:`Summarizer` (or call
:func:`summarize`), and read the :class:`CaptureSummary`; :func:`format_summary` renders
it as aligned text tables, ``CaptureSummary.to_dict()`` as the stable JSON form. The CLI
``packetcapture summary`` reads files and directories into it. See ``docs/summary.md``.
"""

from packetcapture.summary._core import Summarizer, summarize
from packetcapture.summary._model import (
    CaptureSummary,
    DnsQuery,
    Flow,
    IcmpError,
    TcpIssue,
    Totals,
)
from packetcapture.summary._render import format_summary

__all__ = [
    "CaptureSummary",
    "DnsQuery",
    "Flow",
    "IcmpError",
    "Summarizer",
    "TcpIssue",
    "Totals",
    "format_summary",
    "summarize",
]
