"""Generate the bundled example traffic: one small pcap per example endpoint interface.

Deterministic (fixed timestamps and payloads), so the files only change when this script
does. Run from the repository root: ``python scripts/make_example_traffic.py``.
Each file holds, for its pod: an HTTP exchange on TCP 80 (IPv4), HTTPS on 443, a DNS query
on UDP 53 (no response), ICMP echo, ICMPv6 echo and an HTTP exchange over IPv6. The pod on
``cali1a2b3c4d5e6`` (node-1's sample-app pod) also has trouble, for ``packetcapture
summary`` to find (docs/summary.md): a connection to port 80 refused (SYN answered by RST), a
DNS lookup failing with NXDOMAIN, one answered, and a DNS query to a host that answers
with ICMP port unreachable.
"""

from __future__ import annotations

import socket
from pathlib import Path

import dpkt

OUT = Path(__file__).resolve().parent.parent / "examples" / "traffic"
T0 = 1629979200  # 2021-08-26T12:00:00Z, the reference samples' start time

# interface -> (pod IPv4, pod IPv6, peer IPv4, peer IPv6)
PODS = {
    "cali1a2b3c4d5e6": ("10.244.1.10", "fd00:10:244:1::10", "10.244.2.20", "fd00:10:244:2::20"),
    "cali6f7e8d9c0b1": ("10.244.2.11", "fd00:10:244:2::11", "10.244.1.21", "fd00:10:244:1::21"),
    "calia9b8c7d6e5f": ("10.244.1.12", "fd00:10:244:1::12", "10.244.2.22", "fd00:10:244:2::22"),
    "cali0f1e2d3c4b5": ("10.244.2.13", "fd00:10:244:2::13", "10.244.1.23", "fd00:10:244:1::23"),
    "cali5e4d3c2b1a0": ("10.244.1.14", "fd00:10:244:1::14", "10.244.2.24", "fd00:10:244:2::24"),
}
POD_MAC = b"\x02\x00\x00\x00\x00\x01"
GW_MAC = b"\xee\xee\xee\xee\xee\xee"  # Calico's host-side veth MAC


def eth(payload: dpkt.Packet, v6: bool, outbound: bool) -> bytes:
    src, dst = (POD_MAC, GW_MAC) if outbound else (GW_MAC, POD_MAC)
    kind = dpkt.ethernet.ETH_TYPE_IP6 if v6 else dpkt.ethernet.ETH_TYPE_IP
    return bytes(dpkt.ethernet.Ethernet(src=src, dst=dst, type=kind, data=payload))


def ip4(src: str, dst: str, proto: int, body: dpkt.Packet) -> dpkt.ip.IP:
    pkt = dpkt.ip.IP(
        src=socket.inet_aton(src), dst=socket.inet_aton(dst), p=proto, ttl=64, data=body
    )
    pkt.len = len(pkt)
    return pkt


def ip6(src: str, dst: str, nxt: int, body: dpkt.Packet) -> dpkt.ip6.IP6:
    pkt = dpkt.ip6.IP6(
        src=socket.inet_pton(socket.AF_INET6, src),
        dst=socket.inet_pton(socket.AF_INET6, dst),
        nxt=nxt,
        hlim=64,
        data=body,
    )
    pkt.plen = len(body)
    return pkt


def tcp_exchange(  # noqa: PLR0917 - a plain list of the exchange's parts
    a: str, b: str, sport: int, dport: int, request: bytes, reply: bytes, v6: bool
):
    """A TCP handshake, one request and reply, and the close: (frame, outbound) pairs."""
    seq_a, seq_b = 1000, 5000
    flags = dpkt.tcp
    steps = [
        (True, flags.TH_SYN, b""),
        (False, flags.TH_SYN | flags.TH_ACK, b""),
        (True, flags.TH_ACK, b""),
        (True, flags.TH_PUSH | flags.TH_ACK, request),
        (False, flags.TH_PUSH | flags.TH_ACK, reply),
        (True, flags.TH_FIN | flags.TH_ACK, b""),
        (False, flags.TH_FIN | flags.TH_ACK, b""),
        (True, flags.TH_ACK, b""),
    ]
    for outbound, fl, data in steps:
        src, dst = (a, b) if outbound else (b, a)
        sp, dp = (sport, dport) if outbound else (dport, sport)
        seg = dpkt.tcp.TCP(
            sport=sp,
            dport=dp,
            seq=seq_a if outbound else seq_b,
            ack=seq_b if outbound else seq_a,
            flags=fl,
            win=65535,
            data=data,
        )
        if outbound:
            seq_a += len(data) + (1 if fl & (flags.TH_SYN | flags.TH_FIN) else 0)
        else:
            seq_b += len(data) + (1 if fl & (flags.TH_SYN | flags.TH_FIN) else 0)
        pkt = ip6(src, dst, 6, seg) if v6 else ip4(src, dst, 6, seg)
        yield eth(pkt, v6, outbound), outbound


TROUBLE_IFACE = "cali1a2b3c4d5e6"
DNS_SERVER = "10.96.0.10"


def udp4(src: str, dst: str, sport: int, dport: int, payload: bytes) -> dpkt.ip.IP:
    udp = dpkt.udp.UDP(sport=sport, dport=dport, data=payload)
    udp.ulen = len(udp)
    return ip4(src, dst, 17, udp)


def dns_exchange(  # noqa: PLR0917 - a plain list of the exchange's parts
    client: str, sport: int, qid: int, name: str, rcode: int, answer: str | None
) -> list[bytes]:
    """A DNS query for ``name`` (type A) from the pod and the server's response."""
    query = dpkt.dns.DNS(id=qid, qd=[dpkt.dns.DNS.Q(name=name, type=dpkt.dns.DNS_A)])
    query.rd = 1
    reply = dpkt.dns.DNS(id=qid, qd=[dpkt.dns.DNS.Q(name=name, type=dpkt.dns.DNS_A)])
    reply.qr, reply.rd, reply.ra, reply.rcode = dpkt.dns.DNS_R, 1, 1, rcode
    if answer is not None:
        reply.an = [
            dpkt.dns.DNS.RR(
                name=name,
                type=dpkt.dns.DNS_A,
                cls=dpkt.dns.DNS_IN,
                ttl=30,
                ip=socket.inet_aton(answer),
            )
        ]
    return [
        eth(udp4(client, DNS_SERVER, sport, 53, bytes(query)), False, True),
        eth(udp4(DNS_SERVER, client, 53, sport, bytes(reply)), False, False),
    ]


def trouble(pod4: str, peer4: str) -> list[bytes]:
    """A refused connection, a failing and a working DNS lookup, an ICMP error."""
    flags = dpkt.tcp
    syn = dpkt.tcp.TCP(sport=40003, dport=80, seq=7000, flags=flags.TH_SYN, win=64240)
    rst = dpkt.tcp.TCP(
        sport=80, dport=40003, seq=0, ack=7001, flags=flags.TH_RST | flags.TH_ACK, win=0
    )
    out = [eth(ip4(pod4, peer4, 6, syn), False, True), eth(ip4(peer4, pod4, 6, rst), False, False)]
    out += dns_exchange(pod4, 53001, 0x2345, "db.sample-namespace.svc.cluster.local", 3, None)
    out += dns_exchange(
        pod4, 53002, 0x2346, "sample-app.sample-namespace.svc.cluster.local", 0, "10.96.100.20"
    )
    # A query to a pod that runs no DNS server: its host answers "port unreachable".
    probe = udp4(
        pod4, peer4, 53003, 53, bytes(dpkt.dns.DNS(id=0x2347, qd=[dpkt.dns.DNS.Q(name="db")]))
    )
    unreach = dpkt.icmp.ICMP(type=3, code=3, data=dpkt.icmp.ICMP.Unreach(data=bytes(probe)))
    out += [eth(probe, False, True), eth(ip4(peer4, pod4, 1, unreach), False, False)]
    return out


def frames(iface: str) -> list[bytes]:
    pod4, pod6, peer4, peer6 = PODS[iface]
    out: list[bytes] = []
    http_req = b"GET / HTTP/1.1\r\nHost: sample-app\r\n\r\n"
    http_rep = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
    # Inbound HTTP to the pod on port 80 (the pod is the server).
    out += [f for f, _ in tcp_exchange(peer4, pod4, 40000, 80, http_req, http_rep, v6=False)]
    out += [
        f
        for f, _ in tcp_exchange(
            pod4, peer4, 40001, 443, b"\x16\x03\x01hello", b"\x16\x03\x03", v6=False
        )
    ]
    dns_q = dpkt.dns.DNS(id=0x1234, qd=[dpkt.dns.DNS.Q(name="sample-app.sample-namespace.svc")])
    udp = dpkt.udp.UDP(sport=53000, dport=53, data=bytes(dns_q))
    udp.ulen = len(udp)
    out.append(eth(ip4(pod4, "10.96.0.10", 17, udp), False, True))
    echo = dpkt.icmp.ICMP(type=8, data=dpkt.icmp.ICMP.Echo(id=1, seq=1, data=b"ping"))
    out.append(eth(ip4(pod4, peer4, 1, echo), False, True))
    echo6 = dpkt.icmp6.ICMP6(type=128, data=dpkt.icmp6.ICMP6.Echo(id=1, seq=1, data=b"ping"))
    out.append(eth(ip6(pod6, peer6, 58, echo6), True, True))
    out += [f for f, _ in tcp_exchange(peer6, pod6, 40002, 80, http_req, http_rep, v6=True)]
    if iface == TROUBLE_IFACE:
        out += trouble(pod4, peer4)
    return out


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for index, iface in enumerate(sorted(PODS)):
        with (OUT / f"{iface}.pcap").open("wb") as fh:
            writer = dpkt.pcap.Writer(fh, snaplen=262144, linktype=dpkt.pcap.DLT_EN10MB)
            for i, frame in enumerate(frames(iface)):
                writer.writepkt(frame, ts=T0 + index + i * 0.001)
        print(f"wrote {OUT / (iface + '.pcap')}")


if __name__ == "__main__":
    main()
