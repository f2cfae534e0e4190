"""Build a capture summary from packets: flows, TCP trouble, DNS, ICMP errors (no I/O).

The hot path decodes only what a summary needs with ``struct`` straight from the captured
bytes (link layer, IPv4/IPv6 addresses, ports, TCP sequence fields); dpkt decodes the rare
packets that need a full parser (DNS). Every piece of state is per flow (per endpoint), so
memory grows with the number of flows, not packets.

TCP analysis follows Wireshark's definitions (``tcp.analysis.*``) so that counts agree
with tshark: a *retransmission* is a segment carrying data, SYN or FIN whose sequence number
is below the next expected one of its direction (not a keep-alive, not out of order: within
the initial RTT, or 3 ms, of the segment that advanced it), fast retransmissions included;
a *duplicate ACK* is an empty segment repeating its direction's last ACK number, window
(non-zero) and sequence number; a *zero window* is a segment advertising window 0 (not
SYN/FIN/RST).
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterable
from typing import Any

from packetcapture.summary._model import (
    CaptureSummary,
    DnsQuery,
    Flow,
    IcmpError,
    TcpIssue,
    Totals,
)

__all__ = ["Summarizer", "summarize"]

_IP4 = struct.Struct("!BxHHHxB2x4s4s").unpack_from  # vihl, len, id, frag, proto, src, dst
_IP6 = struct.Struct("!4xHB1x16s16s").unpack_from  # payload len, next header, src, dst
_TCP = struct.Struct("!HHIIBBH").unpack_from  # ports, seq, ack, offset, flags, window
_PORTS = struct.Struct("!HH").unpack_from
_PACK_PORTS = struct.Struct("!HH").pack
# Untagged Ethernet, a 20-byte IPv4 header / a 40-byte IPv6 header, then TCP (or UDP: the
# ports are right, the rest is ignored) in one unpack: the hot path.
# The addresses are left in the packet until a flow is new (their bytes are the flow key).
_ETH_IP4_L4 = struct.Struct("!12xHBxHxxHxB10xHHIIBBH").unpack_from
_ETH_IP6_L4 = struct.Struct("!12xH4xHB33xHHIIBBH").unpack_from
# The ports count only with the whole header captured (as tshark's conversations do).
_UDP = struct.Struct("!HH4x").unpack_from
_SCTP = struct.Struct("!HH8x").unpack_from
_U16 = struct.Struct("!H").unpack_from
_U32 = struct.Struct("!I").unpack_from

_FIN, _SYN, _RST, _ACK = 0x01, 0x02, 0x04, 0x10
_M = 0xFFFFFFFF
_HALF = 0x80000000
_OOO_NS = 3_000_000  # tshark's out-of-order window when the initial RTT is unknown
_FAST_NS = 20_000_000  # a fast retransmission follows a duplicate ACK within 20 ms

_VLAN_TPIDS = (0x8100, 0x88A8)
_MAX_VLAN_TAGS = 2  # as the BPF compiler looks through
_IPV6_EXT = frozenset({0, 43, 60, 135, 139, 140, 253, 254})  # (len + 1) * 8 bytes
_IPV6_MAX_EXT = 8

#: Link types decoded: 0 Ethernet, 1 Linux SLL, 2 SLL2, 3 raw IP, 4 raw IPv4, 5 raw IPv6.
_LINK_MODES = {1: 0, 113: 1, 276: 2, 101: 3, 12: 3, 14: 3, 228: 4, 229: 5}

_PROTO_NAMES = {1: "icmp", 6: "tcp", 17: "udp", 58: "icmpv6", 132: "sctp"}
_PORTED = frozenset({6, 17, 132})

_MAX_FRAGMENTS = 4096  # first fragments remembered, to give later fragments their ports
_MAX_PENDING_DNS = 65536  # queries waiting for a response
_MAX_ANSWERS = 8

_DNS_RCODES = {
    0: "NOERROR",
    1: "FORMERR",
    2: "SERVFAIL",
    3: "NXDOMAIN",
    4: "NOTIMP",
    5: "REFUSED",
    6: "YXDOMAIN",
    7: "YXRRSET",
    8: "NXRRSET",
    9: "NOTAUTH",
    10: "NOTZONE",
}
_DNS_TYPES = {
    1: "A",
    2: "NS",
    5: "CNAME",
    6: "SOA",
    12: "PTR",
    15: "MX",
    16: "TXT",
    28: "AAAA",
    33: "SRV",
    35: "NAPTR",
    64: "SVCB",
    65: "HTTPS",
    255: "ANY",
}

# (version, type) -> kind; the reasons name the codes.
_ICMP_KINDS = {
    (4, 3): "unreachable",
    (4, 11): "time_exceeded",
    (4, 12): "parameter_problem",
    (6, 1): "unreachable",
    (6, 2): "packet_too_big",
    (6, 3): "time_exceeded",
    (6, 4): "parameter_problem",
}
_ICMP_REASONS = {
    (4, 3, 0): "network unreachable",
    (4, 3, 1): "host unreachable",
    (4, 3, 2): "protocol unreachable",
    (4, 3, 3): "port unreachable",
    (4, 3, 4): "fragmentation needed",
    (4, 3, 5): "source route failed",
    (4, 3, 6): "destination network unknown",
    (4, 3, 7): "destination host unknown",
    (4, 3, 9): "network administratively prohibited",
    (4, 3, 10): "host administratively prohibited",
    (4, 3, 13): "communication administratively prohibited",
    (4, 11, 0): "TTL exceeded in transit",
    (4, 11, 1): "fragment reassembly time exceeded",
    (6, 1, 0): "no route to destination",
    (6, 1, 1): "administratively prohibited",
    (6, 1, 2): "beyond scope of source address",
    (6, 1, 3): "address unreachable",
    (6, 1, 4): "port unreachable",
    (6, 1, 5): "source address failed policy",
    (6, 1, 6): "reject route",
    (6, 2, 0): "packet too big",
    (6, 3, 0): "hop limit exceeded in transit",
    (6, 3, 1): "fragment reassembly time exceeded",
}


def _ip(addr: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET6 if len(addr) == 16 else socket.AF_INET, addr)


def _where(addr: bytes, port: int | None) -> str:
    """``ip:port`` (IPv6 in brackets), or the address alone without a port."""
    ip = _ip(addr)
    if port is None:
        return ip
    return f"[{ip}]:{port}" if len(addr) == 16 else f"{ip}:{port}"


def _proto_name(proto: int) -> str:
    return _PROTO_NAMES.get(proto) or str(proto)


class _Dir:
    """TCP analysis state of one direction of a connection (Wireshark's names)."""

    __slots__ = ("dupacknum", "lastack", "lastack_ts", "nextseq", "nextseq_ts", "win")

    def __init__(self) -> None:
        self.nextseq: int | None = None  # the sequence number expected next
        self.nextseq_ts = 0  # when it last advanced
        self.lastack: int | None = None
        self.lastack_ts = 0
        self.win: int | None = None
        self.dupacknum = 0  # duplicate ACKs in a row


class _Tcp:
    """Per-connection TCP analysis state (the directions' state is in :class:`_Dir`)."""

    __slots__ = (
        "dupacks",
        "hs_ack",
        "mid_resets",
        "refused",
        "resets",
        "retrans",
        "syn",
        "syn_dir",
        "synack",
        "watch",
        "zerowin",
    )

    def __init__(self) -> None:
        self.retrans = self.dupacks = self.zerowin = self.resets = self.mid_resets = 0
        self.syn: int | None = None  # time of the first SYN
        self.syn_dir = 0
        self.synack: int | None = None
        self.hs_ack: int | None = None  # the ACK completing the handshake
        self.watch = False  # waiting for that ACK: the hot path leaves segments to segment()
        self.refused = False

    def rtt(self) -> int | None:
        if self.syn is None or self.hs_ack is None:
            return None
        return self.hs_ack - self.syn

    def handshake(self) -> str:
        if self.syn is None:
            return "not_seen"
        if self.refused:
            return "refused"
        if self.synack is None:
            return "unanswered"
        return "complete" if self.hs_ack is not None else "incomplete"

    def segment(  # noqa: PLR0917 - one pass over Wireshark's checks, in its order
        self,
        d: int,
        fw: _Dir,
        rv: _Dir,
        ts: int,
        seq: int,
        ack: int,
        flags: int,
        win: int,
        seglen: int,
    ) -> None:
        """Account one segment sent in direction ``d`` (``fw`` its state, ``rv`` the other's).

        The hot loop in :meth:`Summarizer.add_batch` handles the common in-order segment
        itself, exactly as this would.
        """
        syn_fin = flags & (_SYN | _FIN)
        if flags & _SYN:
            if not flags & _ACK:
                if self.syn is None:
                    self.syn, self.syn_dir = ts, d
            elif self.synack is None and self.syn is not None and d != self.syn_dir:
                self.synack = ts
                self.watch = True
        elif flags & _ACK and self.watch and d == self.syn_dir:
            self.hs_ack = ts
            self.watch = False
        if flags & _RST:
            self.resets += 1
            if self.syn is not None and self.synack is None and d != self.syn_dir:
                self.refused = True
            elif not self.refused:
                self.mid_resets += 1
        if win == 0 and not flags & (_RST | _FIN | _SYN):
            self.zerowin += 1
        nxt = fw.nextseq
        if nxt is not None:
            if seglen <= 1 and not flags & (_SYN | _FIN | _RST) and (nxt - 1) & _M == seq:
                pass  # a keep-alive
            elif (seglen or syn_fin) and seq != nxt and (nxt - seq) & _M < _HALF:
                # Sequence number not advanced: fast retransmission, out of order, or
                # retransmission, as Wireshark tells them apart.
                if rv.dupacknum >= 2 and rv.lastack == seq and ts - rv.lastack_ts < _FAST_NS:
                    self.retrans += 1
                elif ts - fw.nextseq_ts < (self.rtt() or _OOO_NS) and (seq + seglen) & _M != nxt:
                    pass  # out of order
                else:
                    self.retrans += 1
            elif (
                seglen == 0
                and win
                and win == fw.win
                and seq == nxt
                and ack == fw.lastack
                and not flags & (_SYN | _FIN | _RST)
            ):
                self.dupacks += 1
                fw.dupacknum += 1
        end = (seq + seglen + (1 if syn_fin else 0)) & _M
        if nxt is None or (end != nxt and (end - nxt) & _M < _HALF):
            fw.nextseq = end
            fw.nextseq_ts = ts
        fw.win = win
        if flags & _ACK and ack != fw.lastack:
            fw.lastack = ack
            fw.lastack_ts = ts
            fw.dupacknum = 0


class Summarizer:
    """Accumulate packets into a :class:`CaptureSummary`; pure, no I/O.

    Feed it with :meth:`add` or (faster) :meth:`add_batch`, per endpoint (an ``int`` from
    :meth:`endpoint`), then call :meth:`result`. Packets of one endpoint must come in
    time order; endpoints may interleave in any order, since all analysis state is kept
    per endpoint. Nothing raises on a malformed packet: it is counted as undecoded.
    """

    def __init__(self) -> None:
        # Flows without ports (and fragments not placed); the others are in _ported.
        self._flows: dict[tuple[Any, ...], tuple[list[Any], int]] = {}
        self._ported: dict[tuple[int, int], dict[bytes, tuple[list[Any], int]]] = {}
        self._flow_list: list[list[Any]] = []
        self._endpoints: list[str] = []
        self._endpoint_ids: dict[str, int] = {}
        self._frags: dict[tuple[Any, ...], tuple[int, int]] = {}
        self._pending_dns: dict[tuple[Any, ...], tuple[int, str, str]] = {}
        self._dns: dict[tuple[Any, ...], list[Any]] = {}
        self._icmp: dict[tuple[Any, ...], list[Any]] = {}
        self._link_types: dict[int, int] = {}
        self._drops: int | None = None
        self.packets = 0
        self.bytes = 0
        self.captured_bytes = 0
        self.truncated = 0
        self.undecoded = 0
        self.first_ns: int | None = None
        self.last_ns: int | None = None

    def endpoint(self, name: str) -> int:
        """Return the id of the endpoint called ``name`` (``pod/interface``), adding it."""
        ep = self._endpoint_ids.get(name)
        if ep is None:
            ep = self._endpoint_ids[name] = len(self._endpoints)
            self._endpoints.append(name)
        return ep

    def add_drops(self, count: int) -> None:
        """Add packets the kernel dropped, as a capture file or status recorded them."""
        self._drops = (self._drops or 0) + count

    def add(
        self, timestamp_ns: int, data: bytes, wire_len: int, linktype: int = 1, endpoint: int = 0
    ) -> None:
        """Account one packet (``data`` as captured, ``wire_len`` its length on the wire)."""
        self.add_batch(((timestamp_ns, data, wire_len),), linktype, endpoint)

    def add_batch(
        self, packets: Iterable[tuple[int, bytes, int]], linktype: int = 1, endpoint: int = 0
    ) -> None:
        """Account packets of one link type seen on one endpoint, in time order.

        The first and last packet of the batch give its time span.
        """
        if endpoint >= len(self._endpoints):
            for i in range(len(self._endpoints), endpoint + 1):
                self.endpoint(f"endpoint-{i}")
        mode = _LINK_MODES.get(linktype, -1)
        new_flow = self._new_flow
        tcp_get = self._table(endpoint, 6).get
        udp_get = self._table(endpoint, 17).get
        entry: tuple[list[Any], int] | None
        eth4, eth6, ip4, ip6, tcp, udp = _ETH_IP4_L4, _ETH_IP6_L4, _IP4, _IP6, _TCP, _UDP
        ep = endpoint
        if not isinstance(packets, list):
            packets = list(packets)
        if not packets:
            return
        n = len(packets)
        first, last = packets[0][0], packets[-1][0]
        nbytes = ncap = trunc = bad = 0
        eth = mode == 0
        for ts, data, wire in packets:
            nbytes += wire
            caplen = len(data)
            ncap += caplen
            if caplen < wire:
                trunc += 1
            try:
                # Fast path: untagged Ethernet, IPv4 without options (or IPv6 without
                # extension headers), not a fragment, TCP or UDP: one unpack for it all.
                quick = False
                if eth and caplen >= 54:
                    if data[12] == 8:
                        (etype, vihl, plen, frag, proto, sport, dport,
                         seq, ack, hl, flags, win) = eth4(data)  # fmt: skip
                        quick = (
                            etype == 0x0800
                            and vihl == 0x45
                            and not frag & 0x3FFF
                            and (proto == 6 or proto == 17)  # noqa: PLR1714 - faster
                        )
                        plen -= 20
                        l4 = 34
                    elif caplen >= 74 and data[12] == 0x86:
                        (etype, plen, proto, sport, dport,
                         seq, ack, hl, flags, win) = eth6(data)  # fmt: skip
                        quick = etype == 0x86DD and (proto == 6 or proto == 17)  # noqa: PLR1714
                        l4 = 54
                if not quick:
                    if mode == 0:
                        etype = (data[12] << 8) | data[13]
                        off = 14
                        if etype in {0x8100, 0x88A8}:
                            etype, off = self._vlan(data)
                    elif mode == 1:
                        etype = (data[14] << 8) | data[15]
                        off = 16
                    elif mode == 2:
                        etype = (data[0] << 8) | data[1]
                        off = 20
                    elif mode >= 3:
                        off = 0
                        v = data[0] >> 4 if mode == 3 else mode
                        etype = 0x0800 if v == 4 else 0x86DD if v in {5, 6} else 0
                    else:
                        bad += 1
                        continue
                    if etype == 0x0800:
                        vihl, tlen, ident, frag, proto, src, dst = ip4(data, off)
                        ihl = (vihl & 15) << 2
                        if vihl >> 4 != 4 or ihl < 20:
                            bad += 1
                            continue
                        l4 = off + ihl
                        plen = tlen - ihl
                        if frag & 0x3FFF:  # a fragment: only the first carries the ports
                            ports = self._fragment(
                                data, l4, (src, dst, ident, proto), frag & 0x1FFF, frag & 0x2000
                            )
                            new_flow(ts, wire, proto, src, dst, ep, *ports)
                            continue
                    elif etype == 0x86DD:
                        plen, proto, src, dst = ip6(data, off)
                        l4 = off + 40
                        if proto in _IPV6_EXT or proto in {44, 51}:
                            proto, l4, fragment = self._ipv6_ext(data, proto, l4, src, dst)
                            plen -= l4 - off - 40
                            if fragment is not None:
                                new_flow(ts, wire, proto, src, dst, ep, *fragment)
                                continue
                    else:
                        bad += 1
                        continue
                    try:
                        if proto == 6:
                            sport, dport, seq, ack, hl, flags, win = tcp(data, l4)
                        elif proto == 17:
                            sport, dport = udp(data, l4)
                        elif proto == 132:
                            sport, dport = _SCTP(data, l4)
                        else:
                            new_flow(ts, wire, proto, src, dst, ep, None, None)
                            if proto in {1, 58}:
                                self._icmp_packet(ts, ep, proto, src, data, l4)
                            continue
                    except struct.error:  # cut before the whole header: no ports
                        new_flow(ts, wire, proto, src, dst, ep, None, None)
                        continue
                if quick:
                    key = data[26:38] if l4 == 34 else data[22:58]
                else:
                    key = src + dst + data[l4 : l4 + 4]
                if proto == 6:
                    entry = tcp_get(key)
                elif proto == 17:
                    entry = udp_get(key)
                else:
                    entry = self._table(ep, proto).get(key)
                if entry is None:
                    if quick:
                        src, dst = (key[:4], key[4:8]) if l4 == 34 else (key[:16], key[16:32])
                    f, d = new_flow(ts, wire, proto, src, dst, ep, sport, dport)
                else:
                    f, d = entry
                    f[d] += 1
                    f[2 + d] += wire
                    f[5] = ts
                if proto == 6:
                    seglen = plen - ((hl >> 4) << 2)
                    if seglen < 0:  # noqa: PLR1730 - max() is a call
                        seglen = 0
                    t = f[7]
                    fw = f[8 + d]
                    # The common case, an in-order segment, as _Tcp.segment() would do it.
                    if not flags & 7 and seq == fw.nextseq and win and not t.watch:
                        if seglen:
                            fw.nextseq = (seq + seglen) & 0xFFFFFFFF
                            fw.nextseq_ts = ts
                        elif win == fw.win and ack == fw.lastack:
                            t.dupacks += 1
                            fw.dupacknum += 1
                        fw.win = win
                        if flags & 0x10 and ack != fw.lastack:
                            fw.lastack = ack
                            fw.lastack_ts = ts
                            fw.dupacknum = 0
                    else:
                        t.segment(d, fw, f[9 - d], ts, seq, ack, flags, win, seglen)
                elif proto == 17 and (sport == 53 or dport == 53):
                    if quick:
                        src, dst = (key[:4], key[4:8]) if l4 == 34 else (key[:16], key[16:32])
                    self._dns_packet(ts, ep, src, sport, dst, dport, data[l4 + 8 : l4 + plen])
            except (struct.error, IndexError):
                bad += 1
        self.packets += n
        self.bytes += nbytes
        self.captured_bytes += ncap
        self.truncated += trunc
        self.undecoded += bad
        self._link_types[linktype] = self._link_types.get(linktype, 0) + n
        if self.first_ns is None or first < self.first_ns:
            self.first_ns = first
        if self.last_ns is None or last > self.last_ns:
            self.last_ns = last

    # -- rarer decoding, out of the hot loop ----------------------------------------

    @staticmethod
    def _vlan(data: bytes) -> tuple[int, int]:
        off = 14
        etype = (data[12] << 8) | data[13]
        tags = 0
        while etype in _VLAN_TPIDS:
            if tags == _MAX_VLAN_TAGS:
                return 0, off
            etype = (data[off + 2] << 8) | data[off + 3]
            off += 4
            tags += 1
        return etype, off

    def _fragment(
        self, data: bytes, l4: int, key: tuple[Any, ...], offset: int, more: int
    ) -> tuple[int | None, int | None]:
        """Ports of a fragment: read from the first one, remembered for the others."""
        if offset == 0:
            proto = key[3]
            if proto not in _PORTED:
                return None, None
            try:
                got = _PORTS(data, l4)
            except struct.error:
                return None, None
            if more:
                frags = self._frags
                if len(frags) >= _MAX_FRAGMENTS:
                    del frags[next(iter(frags))]
                frags[key] = got
            return got
        known = self._frags.get(key)
        if known is None:
            return None, None
        if not more:
            del self._frags[key]  # the last fragment
        return known

    def _ipv6_ext(
        self, data: bytes, nxt: int, pos: int, src: bytes, dst: bytes
    ) -> tuple[int, int, tuple[int | None, int | None] | None]:
        """Walk extension headers: (upper protocol, its offset, ports if a fragment)."""
        for _ in range(_IPV6_MAX_EXT):
            if nxt in _IPV6_EXT:
                nxt, pos = data[pos], pos + ((data[pos + 1] + 1) << 3)
            elif nxt == 51:  # AH counts 4-byte words, minus 2
                nxt, pos = data[pos], pos + ((data[pos + 1] + 2) << 2)
            elif nxt == 44:
                upper = data[pos]
                offflag = _U16(data, pos + 2)[0]
                (ident,) = _U32(data, pos + 4)
                pos += 8
                ports = self._fragment(
                    data, pos, (src, dst, ident, upper), offflag >> 3, offflag & 1
                )
                return upper, pos, ports
            else:
                break
        return nxt, pos, None

    def _table(self, ep: int, proto: int) -> dict[bytes, tuple[list[Any], int]]:
        """Return the flows of one endpoint and protocol with ports, keyed by bytes.

        The key is the addresses and ports as they are in the packet: cheaper to hash
        than a tuple.
        """
        table = self._ported.get((ep, proto))
        if table is None:
            table = self._ported[ep, proto] = {}
        return table

    def _new_flow(  # noqa: PLR0917 - the hot loop's arguments, positionally for speed
        self,
        ts: int,
        wire: int,
        proto: int,
        src: bytes,
        dst: bytes,
        ep: int,
        sport: int | None,
        dport: int | None,
    ) -> tuple[list[Any], int]:
        """Count a packet of a flow not in the table yet (or of one without ports)."""
        table: dict[Any, tuple[list[Any], int]]
        if sport is not None and dport is not None and proto in _PORTED:
            table = self._table(ep, proto)
            key: Any = src + dst + _PACK_PORTS(sport, dport)
            rev: Any = dst + src + _PACK_PORTS(dport, sport)
        else:
            table = self._flows
            key = (proto, src, sport, dst, dport, ep)
            rev = (proto, dst, dport, src, sport, ep)
        entry = table.get(key)
        if entry is not None:
            f, d = entry
            f[d] += 1
            f[2 + d] += wire
            f[5] = ts
            return entry
        f = [1, 0, wire, 0, ts, ts, (proto, src, sport, dst, dport, ep), None, None, None]
        if proto == 6 and sport is not None:
            f[7:10] = [_Tcp(), _Dir(), _Dir()]
        entry = (f, 0)
        table[key] = entry
        if rev != key:
            table[rev] = (f, 1)
        self._flow_list.append(f)
        return entry

    def _dns_packet(  # noqa: PLR0917
        self, ts: int, ep: int, src: bytes, sport: int, dst: bytes, dport: int, payload: bytes
    ) -> None:
        import dpkt  # only when a capture holds DNS

        try:
            msg = dpkt.dns.DNS(payload)
            q = msg.qd[0] if msg.qd else None
            name = q.name if q is not None else ""
            qtype = _DNS_TYPES.get(q.type, f"TYPE{q.type}") if q is not None else ""
            response = msg.qr == dpkt.dns.DNS_R
            answers = [_dns_answer(rr) for rr in msg.an] if response else []
        except (dpkt.Error, struct.error, IndexError, ValueError, UnicodeError):
            return  # not DNS after all; the packet is counted in its flow
        pending = self._pending_dns
        if not response:
            key = (ep, src, sport, dst, msg.id)
            if key not in pending:  # a repeated query counts once, from its first copy
                if len(pending) >= _MAX_PENDING_DNS:
                    old = next(iter(pending))
                    self._dns_row(old[0], old[1], old[3], *pending.pop(old), None, None, [])
                pending[key] = (ts, name, qtype)
            return
        rcode = _DNS_RCODES.get(msg.rcode, f"RCODE{msg.rcode}")
        asked = pending.pop((ep, dst, dport, src, msg.id), None)
        if asked is None:  # the query was not captured
            self._dns_row(ep, dst, src, ts, name, qtype, rcode, None, answers)
        else:
            self._dns_row(ep, dst, src, asked[0], asked[1], asked[2], rcode, ts - asked[0], answers)

    def _dns_row(  # noqa: PLR0917
        self,
        ep: int,
        client: bytes,
        server: bytes,
        ts: int,
        name: str,
        qtype: str,
        rcode: str | None,
        took: int | None,
        answers: list[str],
    ) -> None:
        key = (ep, client, server, name, qtype, rcode)
        row = self._dns.get(key)
        if row is None:
            row = self._dns[key] = [0, ts, 0, 0, None, []]
        row[0] += 1
        if took is not None:
            row[2] += took
            row[3] += 1
            row[4] = took if row[4] is None else max(row[4], took)
        seen: list[str] = row[5]
        for a in answers:
            if a not in seen and len(seen) < _MAX_ANSWERS:
                seen.append(a)

    def _icmp_packet(  # noqa: PLR0917
        self, ts: int, ep: int, proto: int, reporter: bytes, data: bytes, l4: int
    ) -> None:
        version = 4 if proto == 1 else 6
        try:
            icmp_type, code = data[l4], data[l4 + 1]
            kind = _ICMP_KINDS.get((version, icmp_type))
            if kind is None:
                return
            mtu = None
            if version == 6 and icmp_type == 2:
                (mtu,) = _U32(data, l4 + 4)
            elif version == 4 and icmp_type == 3 and code == 4:
                (mtu,) = _U16(data, l4 + 6)
        except (struct.error, IndexError):
            return  # cut short; the packet is counted in its flow
        inner = l4 + 8
        qproto, qsrc, qdst, sport, dport = _quoted(data, inner)
        reason = _ICMP_REASONS.get((version, icmp_type, code), f"code {code}")
        key = (ep, kind, icmp_type, code, reporter, qproto, qsrc, sport, qdst, dport)
        row = self._icmp.get(key)
        if row is None:
            self._icmp[key] = [1, ts, mtu, reason]
        else:
            row[0] += 1

    # -- the result -------------------------------------------------------------------

    def result(self) -> CaptureSummary:
        """Return the summary of everything added so far (the summarizer stays usable)."""
        eps = self._endpoints
        flows: list[Flow] = []
        issues: list[TcpIssue] = []
        for f in self._flow_list:
            proto, src, sport, dst, dport, ep = f[6]
            t: _Tcp | None = f[7]
            a, b = _where(src, sport), _where(dst, dport)
            rtt = t.rtt() if t is not None else None
            flows.append(
                Flow(
                    _proto_name(proto),
                    a,
                    b,
                    f[0],
                    f[1],
                    f[2],
                    f[3],
                    f[4],
                    f[5],
                    eps[ep],
                    rtt,
                )
            )
            if t is not None:
                hs = t.handshake()
                if (
                    hs in ("unanswered", "refused", "incomplete")
                    or t.resets
                    or t.retrans
                    or t.dupacks
                    or t.zerowin
                ):
                    issues.append(
                        TcpIssue(
                            a,
                            b,
                            eps[ep],
                            f[4],
                            hs,
                            t.resets,
                            t.mid_resets,
                            t.retrans,
                            t.dupacks,
                            t.zerowin,
                            rtt,
                        )
                    )
        flows.sort(key=lambda fl: (-fl.bytes, -fl.packets, fl.first_ns))
        issues.sort(key=lambda i: i.first_ns)
        dns_rows = dict(self._dns)
        for (ep, src, _sport, dst, _id), (ts, name, qtype) in self._pending_dns.items():
            key = (ep, src, dst, name, qtype, None)
            row = dns_rows.get(key)
            dns_rows[key] = [1, ts, 0, 0, None, []] if row is None else [row[0] + 1, *row[1:]]
        dns = sorted(
            (
                DnsQuery(
                    name,
                    qtype,
                    _ip(client),
                    _ip(server),
                    eps[ep],
                    rcode,
                    rcode is not None,
                    row[0],
                    tuple(row[5]),
                    row[1],
                    row[2] // row[3] if row[3] else None,
                    row[4],
                )
                for (ep, client, server, name, qtype, rcode), row in dns_rows.items()
            ),
            key=lambda q: (q.first_ns, q.name, q.rcode or ""),
        )
        icmp = sorted(
            (
                IcmpError(
                    kind,
                    icmp_type,
                    code,
                    row[3],
                    _ip(reporter),
                    _proto_name(qproto) if qproto is not None else "",
                    _where(qsrc, sport) if qsrc else "",
                    _where(qdst, dport) if qdst else "",
                    eps[ep],
                    row[0],
                    row[1],
                    row[2],
                )
                for (
                    ep,
                    kind,
                    icmp_type,
                    code,
                    reporter,
                    qproto,
                    qsrc,
                    sport,
                    qdst,
                    dport,
                ), row in (self._icmp.items())
            ),
            key=lambda e: e.first_ns,
        )
        totals = Totals(
            packets=self.packets,
            bytes=self.bytes,
            captured_bytes=self.captured_bytes,
            truncated=self.truncated,
            undecoded=self.undecoded,
            first_ns=self.first_ns,
            last_ns=self.last_ns,
            link_types=dict(self._link_types),
            endpoints=tuple(eps),
            drops=self._drops,
            flows=len(flows),
        )
        return CaptureSummary(tuple(flows), tuple(issues), tuple(dns), tuple(icmp), totals)


def _dns_answer(rr: Any) -> str:
    rtype = getattr(rr, "type", 0)
    if rtype == 1:
        return socket.inet_ntop(socket.AF_INET, rr.ip)
    if rtype == 28:
        return socket.inet_ntop(socket.AF_INET6, rr.ip6)
    if rtype == 5:
        return f"CNAME {rr.cname}"
    if rtype == 12:
        return f"PTR {rr.ptrname}"
    return _DNS_TYPES.get(rtype, f"TYPE{rtype}")


def _quoted(
    data: bytes, pos: int
) -> tuple[int | None, bytes | None, bytes | None, int | None, int | None]:
    """Decode the flow an ICMP error quotes: (protocol, source, destination, ports)."""
    try:
        version = data[pos] >> 4
        if version == 4:
            vihl, _len, _id, frag, proto, src, dst = _IP4(data, pos)
            l4 = pos + ((vihl & 15) << 2)
            if frag & 0x1FFF:
                return proto, src, dst, None, None
        elif version == 6:
            _plen, proto, src, dst = _IP6(data, pos)
            l4 = pos + 40
        else:
            return None, None, None, None, None
    except (struct.error, IndexError):
        return None, None, None, None, None
    if proto in _PORTED:
        try:
            sport, dport = _PORTS(data, l4)
        except struct.error:
            return proto, src, dst, None, None
        return proto, src, dst, sport, dport
    return proto, src, dst, None, None


def summarize(
    packets: Iterable[tuple[int, bytes, int]], linktype: int = 1, endpoint: str = ""
) -> CaptureSummary:
    """Summarise ``(timestamp_ns, data, wire_len)`` packets of one link type and endpoint."""
    s = Summarizer()
    s.add_batch(packets, linktype, s.endpoint(endpoint))
    return s.result()
