"""Benchmark ``packetcapture summary`` on 1M packets against ``tshark -q -z conv,tcp``.

Generates a classic pcap of N packets (default 1 million) over F TCP connections (default
10,000; IPv4 and IPv6, handshake, data both ways with ACKs, close) plus DNS queries and
responses (1 in 100 packets), then:

- summarises it in this process as the CLI does (``PcapReader`` batches into a
  ``Summarizer``), median of R runs: packets/s against the goal of 300,000;
- runs ``packetcapture summary FILE --json`` in a fresh process for files of N/4 and N
  packets over the same flows, and of N packets over 10x the flows, printing each peak RSS:
  memory follows the flows, not the packets;
- times ``tshark -q -z conv,tcp -r FILE`` on the same file (when installed).

    python bench/bench_summary.py [--packets N] [--flows F] [--repeat R] [--no-tshark]
"""

from __future__ import annotations

import argparse
import random
import resource
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from packetcapture.pcap import PcapReader, PcapWriter
from packetcapture.summary import Summarizer

GOAL = 300_000
T0 = 1_700_000_000 * 10**9


def _checksumless_ip4(src: bytes, dst: bytes, proto: int, body: bytes) -> bytes:
    return (
        struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(body), 0, 0x4000, 64, proto, 0, src, dst)
        + body
    )


def _ip6(src: bytes, dst: bytes, proto: int, body: bytes) -> bytes:
    return struct.pack("!IHBB16s16s", 6 << 28, len(body), proto, 64, src, dst) + body


def _frame(v6: bool, l3: bytes) -> bytes:
    return b"\x02\0\0\0\0\x02\x02\0\0\0\0\x01" + (b"\x86\xdd" if v6 else b"\x08\x00") + l3


def _tcp(sport: int, dport: int, seq: int, ack: int, flags: int, data: bytes) -> bytes:
    return struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0) + data


def _dns(qid: int, response: bool) -> bytes:
    name = b"\x03api\x04prod\x03svc\x00"
    flags = 0x8180 if response else 0x0100
    head = struct.pack("!HHHHHH", qid, flags, 1, 1 if response else 0, 0, 0)
    body = head + name + struct.pack("!HH", 1, 1)
    if response:
        body += b"\xc0\x0c" + struct.pack(
            "!HHIH4s", 1, 1, 30, 4, bytes([10, 96, qid >> 8 & 255, qid & 255])
        )
    return body


def generate(path: Path, packets: int, flows: int, seed: int = 1) -> None:
    """Write ``packets`` packets: TCP connections taking turns, DNS every 100th packet."""
    rnd = random.Random(seed)
    state = []
    for i in range(flows):
        v6 = i % 10 < 3
        if v6:
            c = socket.inet_pton(socket.AF_INET6, f"fd00::{(i + 1) >> 16:x}:{(i + 1) & 0xFFFF:x}")
            s = socket.inet_pton(socket.AF_INET6, f"fd00:1::{i % 200 + 1:x}")
        else:
            c, s = (
                struct.pack("!I", 0x0A000000 + i + 1),
                struct.pack("!I", 0x0AC80000 + i % 200 + 1),
            )
        state.append([v6, c, s, 10000 + i % 50000, 80 + i % 3, 0, 1000, 5000])
    dns_client, dns_server = struct.pack("!I", 0x0A0000FE), struct.pack("!I", 0x0A60000A)
    payload = bytes(1400)
    out = []
    ts = T0
    for n in range(packets):
        ts += 1000
        if n % 100 == 0:
            qid = (n // 100) & 0xFFFF
            response = (n // 100) % 2 == 1
            src, dst, sp, dp = (
                (dns_server, dns_client, 53, 40000)
                if response
                else (dns_client, dns_server, 40000, 53)
            )
            body = _dns(qid if not response else qid - 1, response)
            udp = struct.pack("!HHHH", sp, dp, 8 + len(body), 0) + body
            frame = _frame(False, _checksumless_ip4(src, dst, 17, udp))
            out.append((ts, frame, len(frame)))
            continue
        f = state[rnd.randrange(flows)]
        v6, c, s, cp, sp, step, cseq, sseq = f
        # SYN, SYN-ACK, ACK, then data from the server and ACKs from the client in turn.
        if step == 0:
            seg, src, dst = _tcp(cp, sp, cseq, 0, 0x02, b""), c, s
            f[6] = cseq + 1
        elif step == 1:
            seg, src, dst = _tcp(sp, cp, sseq, cseq, 0x12, b""), s, c
            f[7] = sseq + 1
        elif step % 2 == 0:
            seg, src, dst = _tcp(cp, sp, cseq, sseq, 0x10, b""), c, s
        else:
            size = rnd.randrange(0, 1400)
            seg, src, dst = _tcp(sp, cp, sseq, cseq, 0x18, payload[:size]), s, c
            f[7] = (sseq + size) & 0xFFFFFFFF
        f[5] = step + 1
        l3 = _ip6(src, dst, 6, seg) if v6 else _checksumless_ip4(src, dst, 6, seg)
        frame = _frame(v6, l3)
        out.append((ts, frame, len(frame)))
    with path.open("wb") as fh:
        PcapWriter(fh).write_many(out)


def summarise(path: Path) -> tuple[float, float, int, int]:
    """Summarise as the CLI does: (wall seconds, CPU seconds, packets, flows)."""
    start = time.perf_counter()
    cpu = time.process_time()
    s = Summarizer()
    with PcapReader(path) as r:
        ep = s.endpoint(path.stem)
        while batch := r.read_batch(8192):
            s.add_batch(batch, r.linktype, ep)
    result = s.result()
    return (
        time.perf_counter() - start,
        time.process_time() - cpu,
        result.totals.packets,
        len(result.flows),
    )


def peak_rss_mb(path: Path) -> float:
    """Peak RSS of ``packetcapture summary PATH --json`` in a fresh process.

    Read from ``VmHWM``: ``ru_maxrss`` would carry over this (big) process's peak through
    fork and exec.
    """
    code = (
        "import sys\n"
        "from packetcapture.cli import main\n"
        "sys.stdout = open('/dev/null', 'w')\n"
        "main(['summary', sys.argv[1], '--json'])\n"
        "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0]\n"
        "print(int(hwm.split()[1]), file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True
    )
    return int(done.stderr.strip().splitlines()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=1_000_000)
    parser.add_argument("--flows", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--no-tshark", action="store_true")
    args = parser.parse_args()
    d = Path(tempfile.mkdtemp(prefix="bench-summary-"))
    try:
        big = d / "big.pcap"
        generate(big, args.packets, args.flows)
        size = big.stat().st_size
        print(
            f"{args.packets:,} packets, {args.flows:,} TCP connections + DNS, {size / 1e6:.0f} MB"
        )
        walls, cpus = [], []
        for _ in range(args.repeat):
            wall, cpu, n, nflows = summarise(big)
            assert n == args.packets
            walls.append(wall)
            cpus.append(cpu)
        wall, cpu = statistics.median(walls), statistics.median(cpus)
        rate = args.packets / cpu
        print(
            f"summary (in process): wall {wall:.2f} s ({args.packets / wall:,.0f} packets/s), "
            f"CPU {cpu:.2f} s ({rate:,.0f} packets/s; goal >= {GOAL:,}: "
            f"{'met' if rate >= GOAL else 'NOT met'}), {nflows:,} flows"
        )
        quarter = d / "quarter.pcap"
        generate(quarter, args.packets // 4, args.flows)
        many = d / "many.pcap"
        generate(many, args.packets, args.flows * 10)
        print("peak RSS of `packetcapture summary FILE --json`:")
        for label, path in (
            (f"{args.packets // 4:,} packets, {args.flows:,} connections", quarter),
            (f"{args.packets:,} packets, {args.flows:,} connections", big),
            (f"{args.packets:,} packets, {args.flows * 10:,} connections", many),
        ):
            print(f"  {label:<40} {peak_rss_mb(path):8.0f} MB")
        tshark = shutil.which("tshark")
        if tshark and not args.no_tshark:
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            start = time.perf_counter()
            subprocess.run(
                [tshark, "-n", "-q", "-z", "conv,tcp", "-r", str(big)],
                capture_output=True,
                check=True,
            )
            t_wall = time.perf_counter() - start
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            t_cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            print(
                f"tshark -q -z conv,tcp: wall {t_wall:.2f} s ({args.packets / t_wall:,.0f} "
                f"packets/s), CPU {t_cpu:.2f} s ({args.packets / t_cpu:,.0f} packets/s); "
                f"ours takes {cpu / t_cpu:.2f}x tshark's CPU time, "
                f"{wall / t_wall:.2f}x its wall time"
            )
    finally:
        shutil.rmtree(d)


if __name__ == "__main__":
    main()
