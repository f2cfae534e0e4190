"""Build frames and capture files for the summary tests (dpkt builds the packets)."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterable, Sequence
from pathlib import Path

import dpkt

T0 = 1_700_000_000 * 10**9
MAC_A = b"\x02\x00\x00\x00\x00\x01"
MAC_B = b"\x02\x00\x00\x00\x00\x02"

Packet = tuple[int, bytes, int]  # timestamp_ns, captured bytes, wire length


def v6(addr: str) -> bool:
    return ":" in addr


def ip(src: str, dst: str, proto: int, body: bytes | dpkt.Packet, **kw: object) -> dpkt.Packet:
    """An IPv4 or IPv6 packet (by the addresses' family) carrying ``body``."""
    if v6(src):
        pkt = dpkt.ip6.IP6(
            src=socket.inet_pton(socket.AF_INET6, src),
            dst=socket.inet_pton(socket.AF_INET6, dst),
            nxt=proto,
            hlim=64,
            data=body,
            **kw,
        )
        pkt.plen = len(bytes(body))
        return pkt
    pkt = dpkt.ip.IP(
        src=socket.inet_aton(src), dst=socket.inet_aton(dst), p=proto, ttl=64, data=body, **kw
    )
    pkt.len = len(pkt)
    return pkt


def eth(payload: bytes | dpkt.Packet, vlans: Sequence[int] = ()) -> bytes:
    """An Ethernet frame, with 802.1Q tags (802.1ad for the outer of two) when asked."""
    raw = bytes(payload)
    etype = 0x86DD if raw[0] >> 4 == 6 else 0x0800
    if vlans:  # each tag's TPID stands where the ethertype was
        tpids = [0x88A8 if len(vlans) > 1 and i == 0 else 0x8100 for i in range(len(vlans))]
        fields = [*tpids, etype]
        chain = struct.pack("!H", fields[0])
        for i, vid in enumerate(vlans):
            chain += struct.pack("!HH", vid, fields[i + 1])
        return MAC_B + MAC_A + chain + raw
    return MAC_B + MAC_A + struct.pack("!H", etype) + raw


def sll(payload: bytes | dpkt.Packet) -> bytes:
    raw = bytes(payload)
    proto = 0x86DD if raw[0] >> 4 == 6 else 0x0800
    return struct.pack("!HHH8sH", 0, 1, 6, MAC_A + b"\0\0", proto) + raw


def sll2(payload: bytes | dpkt.Packet) -> bytes:
    raw = bytes(payload)
    proto = 0x86DD if raw[0] >> 4 == 6 else 0x0800
    return struct.pack("!HHIHBB8s", proto, 0, 2, 1, 0, 6, MAC_A + b"\0\0") + raw


def tcp(
    src: str,
    dst: str,
    sport: int,
    dport: int,
    flags: int,
    seq: int = 0,
    ack: int = 0,
    data: bytes = b"",
    win: int = 65535,
) -> dpkt.Packet:
    return ip(
        src,
        dst,
        6,
        dpkt.tcp.TCP(sport=sport, dport=dport, seq=seq, ack=ack, flags=flags, win=win, data=data),
    )


def udp(src: str, dst: str, sport: int, dport: int, data: bytes = b"x") -> dpkt.Packet:
    u = dpkt.udp.UDP(sport=sport, dport=dport, data=data)
    u.ulen = len(u)
    return ip(src, dst, 17, u)


def write_pcap(
    path: Path,
    packets: Iterable[Packet],
    *,
    linktype: int = 1,
    order: str = "<",
    snaplen: int = 262144,
) -> Path:
    """A classic pcap file (microseconds) in byte order ``order``."""
    out = [struct.pack(order + "IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, snaplen, linktype)]
    for ts, data, wire in packets:
        sec, ns = divmod(ts, 10**9)
        out.append(struct.pack(order + "IIII", sec, ns // 1000, len(data), wire) + data)
    path.write_bytes(b"".join(out))
    return path


def _block(order: str, btype: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    total = 12 + len(body)
    return struct.pack(order + "II", btype, total) + body + struct.pack(order + "I", total)


def write_pcapng(
    path: Path,
    packets: Iterable[Packet],
    *,
    linktype: int = 1,
    order: str = "<",
    snaplen: int = 262144,
    drops: Sequence[int] = (),
) -> Path:
    """A pcapng file (one interface, nanosecond timestamps) in byte order ``order``."""
    out = [_block(order, 0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1))]
    opts = struct.pack(order + "HH", 9, 1) + b"\x09\0\0\0" + struct.pack(order + "HH", 0, 0)
    out.append(_block(order, 1, struct.pack(order + "HHI", linktype, 0, snaplen) + opts))
    for ts, data, wire in packets:
        out.append(
            _block(
                order,
                6,
                struct.pack(order + "IIIII", 0, ts >> 32, ts & 0xFFFFFFFF, len(data), wire) + data,
            )
        )
    for dropped in drops:  # Interface Statistics Blocks, totals so far (isb_ifdrop)
        opts = struct.pack(order + "HHQ", 5, 8, dropped) + struct.pack(order + "HH", 0, 0)
        out.append(_block(order, 5, struct.pack(order + "III", 0, 0, 0) + opts))
    path.write_bytes(b"".join(out))
    return path


def frames(
    pkts: Iterable[bytes | dpkt.Packet], *, start: int = T0, step_ns: int = 1_000_000, link=eth
) -> list[Packet]:
    """Timestamped packets from frames (or IP packets, framed by ``link``)."""
    out = []
    for i, p in enumerate(pkts):
        data = p if isinstance(p, bytes) else link(p)
        out.append((start + i * step_ns, data, len(data)))
    return out
