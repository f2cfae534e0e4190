"""Pure encoders and decoders for classic pcap and pcapng headers and records.

Nothing here touches files or clocks: every timestamp is passed in as integer nanoseconds
since the Unix epoch. The reader and writers build on these functions.

Formats (see the pcap and pcapng IETF drafts):

- classic pcap: a 24-byte file header (magic, version 2.4, zone, sigfigs, snaplen, link
  type) then records of a 16-byte header (seconds, micro- or nanoseconds, captured length,
  original length) and the captured bytes.
- pcapng: blocks of ``type, total length, body, total length``; a Section Header Block,
  one Interface Description Block per interface, then Enhanced Packet Blocks.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping

__all__ = [
    "BT_EPB",
    "BT_IDB",
    "BT_PB",
    "BT_SHB",
    "BT_SPB",
    "BYTE_ORDER_MAGIC",
    "LINKTYPE_ETHERNET",
    "MAGIC_MICRO",
    "MAGIC_NANO",
    "PCAPNG_MAGIC_BYTES",
    "PCAP_HEADER_LEN",
    "PCAP_RECORD_HEADER_LEN",
    "encode_pcap_header",
    "encode_pcap_record",
    "encode_pcap_record_header",
    "encode_pcapng_epb",
    "encode_pcapng_idb",
    "encode_pcapng_shb",
    "pcap_record_header_struct",
    "split_timestamp",
]

#: DLT/LINKTYPE for Ethernet, what Calico writes.
LINKTYPE_ETHERNET = 1
#: Classic pcap magic numbers (as native integers).
MAGIC_MICRO = 0xA1B2C3D4
MAGIC_NANO = 0xA1B23C4D
PCAP_HEADER_LEN = 24
PCAP_RECORD_HEADER_LEN = 16

#: pcapng block types.
BT_SHB = 0x0A0D0D0A
BT_IDB = 0x00000001
BT_PB = 0x00000002  # obsolete Packet Block, still read
BT_SPB = 0x00000003
BT_ISB = 0x00000005  # Interface Statistics Block: drop counts are read from it
BT_EPB = 0x00000006
BYTE_ORDER_MAGIC = 0x1A2B3C4D
PCAPNG_MAGIC_BYTES = b"\x0a\x0d\x0d\x0a"

# Options.
_OPT_ENDOFOPT = 0
_OPT_COMMENT = 1
_SHB_USERAPPL = 4
_IF_NAME = 2
_IF_DESCRIPTION = 3
_IF_TSRESOL = 9

# Writers always use little-endian, the byte order of every machine we run on in practice.
_PCAP_HEADER = struct.Struct("<IHHiIII")
_PCAP_RECORD = struct.Struct("<IIII")
_EPB_HEAD = struct.Struct("<IIIIIII")  # type, total len, iface, ts hi, ts lo, caplen, len
_U32 = struct.Struct("<I")


def pcap_record_header_struct() -> struct.Struct:
    """Return the little-endian ``struct`` of a classic record header (for fast writers)."""
    return _PCAP_RECORD


def split_timestamp(timestamp_ns: int, nanosecond: bool) -> tuple[int, int]:
    """Split nanoseconds since the epoch into ``(seconds, fraction)`` for a classic record.

    The fraction is in nanoseconds when ``nanosecond`` is true, else microseconds
    (truncated). Raises ``ValueError`` when the time does not fit the unsigned 32-bit
    seconds field.
    """
    sec, frac = divmod(timestamp_ns, 1_000_000_000)
    if not 0 <= sec <= 0xFFFFFFFF:
        raise ValueError(f"timestamp {timestamp_ns} ns does not fit a pcap record")
    return sec, frac if nanosecond else frac // 1000


def encode_pcap_header(linktype: int, snaplen: int, *, nanosecond: bool = False) -> bytes:
    """Encode the 24-byte classic pcap file header (little-endian)."""
    magic = MAGIC_NANO if nanosecond else MAGIC_MICRO
    return _PCAP_HEADER.pack(magic, 2, 4, 0, 0, snaplen, linktype)


def encode_pcap_record_header(
    timestamp_ns: int, caplen: int, wire_len: int, *, nanosecond: bool = False
) -> bytes:
    """Encode a 16-byte classic pcap record header."""
    sec, frac = split_timestamp(timestamp_ns, nanosecond)
    return _PCAP_RECORD.pack(sec, frac, caplen, wire_len)


def encode_pcap_record(
    timestamp_ns: int, data: bytes, wire_len: int | None = None, *, nanosecond: bool = False
) -> bytes:
    """Encode one classic pcap record: header plus the captured bytes.

    ``wire_len`` defaults to ``len(data)`` and is raised to it when smaller.
    """
    caplen = len(data)
    wire = caplen if wire_len is None else max(wire_len, caplen)
    return encode_pcap_record_header(timestamp_ns, caplen, wire, nanosecond=nanosecond) + data


def _pad4(n: int) -> int:
    return (4 - n % 4) % 4


def _option(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + b"\x00" * _pad4(len(value))


def _options(items: list[tuple[int, bytes]]) -> bytes:
    if not items:
        return b""
    return b"".join(_option(c, v) for c, v in items) + struct.pack("<HH", _OPT_ENDOFOPT, 0)


def _block(block_type: int, body: bytes) -> bytes:
    total = 12 + len(body)
    return _U32.pack(block_type) + _U32.pack(total) + body + _U32.pack(total)


def encode_pcapng_shb(*, user_application: str | None = None, comment: str | None = None) -> bytes:
    """Encode a pcapng Section Header Block (version 1.0, section length unknown)."""
    body = struct.pack("<IHHq", BYTE_ORDER_MAGIC, 1, 0, -1)
    opts: list[tuple[int, bytes]] = []
    if comment:
        opts.append((_OPT_COMMENT, comment.encode()))
    if user_application:
        opts.append((_SHB_USERAPPL, user_application.encode()))
    return _block(BT_SHB, body + _options(opts))


def encode_pcapng_idb(
    linktype: int,
    snaplen: int,
    *,
    name: str | None = None,
    description: str | None = None,
    nanosecond: bool = False,
) -> bytes:
    """Encode a pcapng Interface Description Block.

    Timestamps of the interface are in microseconds (the pcapng default) or, with
    ``nanosecond``, in nanoseconds (``if_tsresol`` 9).
    """
    body = struct.pack("<HHI", linktype, 0, snaplen)
    opts: list[tuple[int, bytes]] = []
    if name:
        opts.append((_IF_NAME, name.encode()))
    if description:
        opts.append((_IF_DESCRIPTION, description.encode()))
    if nanosecond:
        opts.append((_IF_TSRESOL, b"\x09"))
    return _block(BT_IDB, body + _options(opts))


def encode_pcapng_epb(
    interface_id: int,
    timestamp_ns: int,
    data: bytes,
    wire_len: int | None = None,
    *,
    nanosecond: bool = False,
) -> bytes:
    """Encode a pcapng Enhanced Packet Block (timestamp units as the interface's IDB says)."""
    caplen = len(data)
    wire = caplen if wire_len is None else max(wire_len, caplen)
    ticks = timestamp_ns if nanosecond else timestamp_ns // 1000
    if ticks < 0 or ticks >> 64:
        raise ValueError(f"timestamp {timestamp_ns} ns does not fit a pcapng block")
    pad = _pad4(caplen)
    total = 32 + caplen + pad
    return b"".join(
        (
            _EPB_HEAD.pack(
                BT_EPB, total, interface_id, ticks >> 32, ticks & 0xFFFFFFFF, caplen, wire
            ),
            data,
            b"\x00" * pad,
            _U32.pack(total),
        )
    )


def format_description(fields: Mapping[str, str]) -> str:
    """Render ``key=value`` pairs, space separated, for an interface description."""
    return " ".join(f"{k}={v}" for k, v in fields.items() if v)


def parse_description(text: str) -> dict[str, str]:
    """Parse a description written by :func:`format_description` (unknown words ignored)."""
    out: dict[str, str] = {}
    for word in text.split():
        key, sep, value = word.partition("=")
        if sep:
            out[key] = value
    return out
