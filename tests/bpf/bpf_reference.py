"""Test helpers: frame builders, a random frame/rule generator, an independent reference
matcher for the filter semantics (written from docs/bpf.md, sharing no code with the
compiler), and a ctypes binding to libpcap's bpf_filter()/pcap_compile()."""

from __future__ import annotations

import ctypes
import ctypes.util
import random
import struct
from collections.abc import Sequence

from packetcapture.model import PacketCaptureRule, PortRange

TPIDS = (0x8100, 0x88A8)
EXT = (0, 43, 60)
FRAG = 44
PROTOS = [1, 6, 17, 58, 132, 136, 47, 50, 2, 255, 0, 43, 44, 60]


# ----------------------------------------------------------------------- reference matcher
def _u8(f: bytes, o: int) -> int | None:
    return f[o] if o < len(f) else None


def _u16(f: bytes, o: int) -> int | None:
    return struct.unpack_from(">H", f, o)[0] if o + 2 <= len(f) else None


def parse(frame: bytes, linktype: int, vlan: bool, ext: bool):
    """Return (family, protocol, l4 offset or None for a non-first fragment) or None."""
    if linktype == 1:
        et, l3 = _u16(frame, 12), 14
        if vlan:
            for _ in range(2):
                if et in TPIDS:
                    et, l3 = _u16(frame, l3 + 2), l3 + 4
        fam = {0x800: 4, 0x86DD: 6}.get(et)  # type: ignore[arg-type]
    elif linktype in (113, 276):
        off, l3 = (14, 16) if linktype == 113 else (0, 20)
        fam = {0x800: 4, 0x86DD: 6}.get(_u16(frame, off))  # type: ignore[arg-type]
    else:
        l3 = 0
        v = _u8(frame, 0)
        fam = None if v is None else {0x40: 4, 0x60: 6}.get(v & 0xF0)
    if fam is None:
        return None
    if fam == 4:
        proto = _u8(frame, l3 + 9)
        if proto is None:
            return None
        frag = _u16(frame, l3 + 6)
        ihl = _u8(frame, l3)
        assert frag is not None and ihl is not None
        first = frag & 0x1FFF == 0
        return (4, proto, l3 + (ihl & 0xF) * 4 if first else None)
    nh = _u8(frame, l3 + 6)
    if nh is None:
        return None
    off = l3 + 40
    if ext:
        for _ in range(4):
            if nh in EXT:
                ln, nxt = _u8(frame, off + 1), _u8(frame, off)
                if ln is None or nxt is None:
                    return None
                nh, off = nxt, off + (ln + 1) * 8
            elif nh == FRAG:
                fo = _u16(frame, off + 2)
                if fo is None:
                    return None
                nxt = _u8(frame, off)
                assert nxt is not None
                if fo & 0xFFF8:
                    return (6, nxt, None)
                nh, off = nxt, off + 8
            else:
                break
    return (6, nh, off)


NAMES = {"tcp": 6, "udp": 17, "sctp": 132, "udplite": 136, "icmp": 1, "icmpv6": 58}


def rule_matches_proto(protocol: int | str, fam: int, proto: int) -> bool:
    if isinstance(protocol, str):
        name = protocol.lower()
        if name == "icmp":
            return fam == 4 and proto == 1
        if name == "icmpv6":
            return fam == 6 and proto == 58
        return proto == NAMES[name]
    return proto == protocol


def reference_match(
    rules: Sequence[PacketCaptureRule], frame: bytes, linktype: int, vlan=True, ext=True
) -> bool:
    if not rules or any(r.protocol is None and not r.ports for r in rules):
        return True
    info = parse(frame, linktype, vlan and linktype == 1, ext)
    if info is None:
        return False
    fam, proto, l4 = info
    for r in rules:
        if r.protocol is None:
            if proto not in (6, 17, 132):
                continue
        elif not rule_matches_proto(r.protocol, fam, proto):
            continue
        if not r.ports:
            return True
        if proto not in (6, 17, 132, 136) or l4 is None:
            continue
        for port in (_u16(frame, l4), _u16(frame, l4 + 2)):
            if port is not None and any(p.min <= port <= p.max for p in r.ports):
                return True
    return False


# ------------------------------------------------------------------------ frame builders
def l4(sport: int, dport: int, rest: bytes = b"\x00" * 8) -> bytes:
    return struct.pack(">HH", sport, dport) + rest


def ipv4(proto: int, payload: bytes, *, options: bytes = b"", frag: int = 0, ihl=None) -> bytes:
    hl = ihl if ihl is not None else 5 + len(options) // 4
    hdr = struct.pack(
        ">BBHHHBBH4s4s",
        0x40 | hl,
        0,
        20 + len(options) + len(payload),
        1,
        frag,
        64,
        proto,
        0,
        b"\x0a\x00\x00\x01",
        b"\x0a\x00\x00\x02",
    )
    return hdr + options + payload


def ipv6(nh: int, payload: bytes, exts: Sequence[tuple[int, bytes]] = ()) -> bytes:
    """exts: (header type, body) in order; each body already holds its next-header byte."""
    first = exts[0][0] if exts else nh
    body = b"".join(b for _, b in exts) + payload
    return (
        struct.pack(">IHBB16s16s", 0x60000000, len(body), first, 64, b"\x20" * 16, b"\x21" * 16)
        + body
    )


def ext_generic(nxt: int, units: int = 0) -> bytes:
    return bytes([nxt, units]) + b"\x01" * (6 + 8 * units)


def ext_frag(nxt: int, offset: int = 0, more: bool = False, reserved: int = 0) -> bytes:
    return bytes([nxt, reserved]) + struct.pack(">HI", (offset << 3) | int(more), 7)


def ether(ethertype: int, payload: bytes, tags: Sequence[int] = ()) -> bytes:
    out = b"\x02" * 6 + b"\x04" * 6
    for tpid in tags:
        out += struct.pack(">HH", tpid, 10)
    return out + struct.pack(">H", ethertype) + payload


def link(linktype: int, ethertype: int, payload: bytes, tags: Sequence[int] = ()) -> bytes:
    if linktype == 1:
        return ether(ethertype, payload, tags)
    if linktype == 113:
        return struct.pack(">HHH8sH", 0, 1, 6, b"\x02" * 8, ethertype) + payload
    if linktype == 276:
        return struct.pack(">HHIHBB8s", ethertype, 0, 2, 1, 0, 6, b"\x02" * 8) + payload
    return payload


# ------------------------------------------------------------------------ random inputs
PORT_POOL = [0, 1, 2, 22, 53, 79, 80, 81, 443, 1000, 1023, 1024, 2000, 8080, 65534, 65535]


def random_rules(rng: random.Random) -> list[PacketCaptureRule]:
    rules = []
    for _ in range(rng.choice([1, 1, 2, 2, 3, 4])):
        proto = rng.choice(
            [
                None,
                None,
                "TCP",
                "UDP",
                "ICMP",
                "ICMPv6",
                "SCTP",
                "UDPLite",
                6,
                17,
                47,
                58,
                1,
                136,
                132,
                44,
                60,
                rng.randint(1, 255),
            ]
        )
        ports = []
        if rng.random() < 0.7 or proto is None:
            for _ in range(rng.randint(1, 6)):
                a = rng.choice(PORT_POOL) if rng.random() < 0.7 else rng.randint(0, 65535)
                b = a if rng.random() < 0.6 else min(65535, a + rng.choice([1, 2, 10, 500]))
                ports.append(PortRange(a, b))
        if proto is None and not ports:
            ports = [PortRange(80, 80)]
        rules.append(PacketCaptureRule(proto, ports))
    return rules


def random_frame(
    rng: random.Random, linktype: int, ports: Sequence[int], *, plain: bool = False
) -> bytes:
    """A random frame; ``plain`` = no VLAN tags, IPv6 extension headers or truncation.

    (On a truncated frame libpcap's verdict depends on the order its program reads
    fields, as an out-of-bounds read rejects the whole packet.)"""

    def port() -> int:
        return rng.choice(ports) if ports and rng.random() < 0.7 else rng.randint(0, 65535)

    kind = rng.random()
    proto = rng.choice(PROTOS) if rng.random() < 0.85 else rng.randint(0, 255)
    if plain and proto in (0, 43, 44, 60):
        proto = 6
    payload = l4(port(), port()) if rng.random() < 0.95 else b"\x00"
    if kind < 0.45:
        opts = bytes(rng.randrange(256) for _ in range(4 * rng.choice([0, 0, 0, 1, 3, 10])))
        frag = 0 if rng.random() < 0.8 else rng.randint(0, 0x3FFF)
        ihl = rng.randint(0, 15) if rng.random() < 0.05 else None
        l3, et = ipv4(proto, payload, options=opts, frag=frag, ihl=ihl), 0x800
    elif kind < 0.9:
        exts: list[tuple[int, bytes]] = []
        if not plain:
            kinds = [rng.choice([0, 43, 60, 44]) for _ in range(rng.choice([0, 0, 1, 2, 3, 4, 5]))]
            for i, t in enumerate(kinds):
                nxt = kinds[i + 1] if i + 1 < len(kinds) else proto
                if t == FRAG:
                    off = 0 if rng.random() < 0.6 else rng.randint(1, 8191)
                    body = ext_frag(nxt, off, rng.random() < 0.5, rng.choice([0, 0, 3]))
                else:
                    body = ext_generic(nxt, rng.choice([0, 0, 1, 2]))
                exts.append((t, body))
        l3, et = ipv6(proto, payload, exts), 0x86DD
    elif kind < 0.95:
        l3, et = b"\x00\x01\x08\x00\x06\x04\x00\x01" + b"\x00" * 20, 0x806
    else:
        l3, et = bytes(rng.randrange(256) for _ in range(40)), rng.choice([0x800, 0x86DD, 0x1234])
    tags: list[int] = []
    if not plain and linktype == 1 and rng.random() < 0.25:
        tags = [rng.choice(TPIDS) for _ in range(rng.choice([1, 2, 2, 3]))]
    if linktype not in (1, 113, 276) and et not in (0x800, 0x86DD):
        l3 = bytes([rng.choice([0x45, 0x60, 0x50, 0x00])]) + l3[1:]
    frame = link(linktype, et, l3, tags)
    if not plain and rng.random() < 0.12:
        frame = frame[: rng.randint(0, len(frame))]
    return frame


# ----------------------------------------------------------------------------- libpcap
class BpfInsn(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_ushort),
        ("jt", ctypes.c_ubyte),
        ("jf", ctypes.c_ubyte),
        ("k", ctypes.c_uint32),
    ]


class BpfProgramC(ctypes.Structure):
    _fields_ = [("bf_len", ctypes.c_uint), ("bf_insns", ctypes.POINTER(BpfInsn))]


def load_libpcap() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("pcap") or "libpcap.so.0.8"
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        return None
    lib.bpf_filter.argtypes = [
        ctypes.POINTER(BpfInsn),
        ctypes.c_char_p,
        ctypes.c_uint,
        ctypes.c_uint,
    ]
    lib.bpf_filter.restype = ctypes.c_uint
    lib.pcap_open_dead.argtypes = [ctypes.c_int, ctypes.c_int]
    lib.pcap_open_dead.restype = ctypes.c_void_p
    lib.pcap_compile.argtypes = [
        ctypes.c_void_p,
        ctypes.POINTER(BpfProgramC),
        ctypes.c_char_p,
        ctypes.c_int,
        ctypes.c_uint32,
    ]
    lib.pcap_geterr.argtypes = [ctypes.c_void_p]
    lib.pcap_geterr.restype = ctypes.c_char_p
    lib.pcap_freecode.argtypes = [ctypes.POINTER(BpfProgramC)]
    lib.pcap_close.argtypes = [ctypes.c_void_p]
    lib.bpf_image.argtypes = [ctypes.POINTER(BpfInsn), ctypes.c_int]
    lib.bpf_image.restype = ctypes.c_char_p
    return lib


def c_program(insns) -> ctypes.Array[BpfInsn]:
    arr = (BpfInsn * len(insns))()
    for i, ins in enumerate(insns):
        arr[i].code, arr[i].jt, arr[i].jf, arr[i].k = ins.code, ins.jt, ins.jf, ins.k
    return arr


def libpcap_compile(lib, expr: str, linktype: int, snaplen: int = 262144):
    """Return libpcap's optimized program for ``expr`` as (code, jt, jf, k) tuples."""
    dlt = 12 if linktype in (101, 12, 14) else linktype
    p = lib.pcap_open_dead(dlt, snaplen)
    prog = BpfProgramC()
    try:
        if lib.pcap_compile(p, ctypes.byref(prog), expr.encode(), 1, 0xFFFFFFFF) != 0:
            raise ValueError(lib.pcap_geterr(p).decode())
        out = [
            (prog.bf_insns[i].code, prog.bf_insns[i].jt, prog.bf_insns[i].jf, prog.bf_insns[i].k)
            for i in range(prog.bf_len)
        ]
        lib.pcap_freecode(ctypes.byref(prog))
        return out
    finally:
        lib.pcap_close(p)
