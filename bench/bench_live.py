"""Live capture on a veth at increasing offered rates: ours vs tcpdump, highest zero-drop rate.

Two network namespaces made for the run (unique names, always deleted) are joined by a veth
pair. Namespace B replays a generated pcap of 60-byte UDP frames addressed to namespace A's
veth (its MAC, IP 10.213.x.1, UDP port 9000) at fixed packet rates; namespace A captures its
veth end with the filter ``udp port 9000`` into pcap files, one tool at a time, the same
traffic for each:

* ``tcpdump``: ``tcpdump -i VETH -w out.pcap 'udp port 9000'`` (default settings);
* ``ours``: a process running AfPacketBackend (ring, default settings) -> RotatingWriter,
  with the agent's read loop (``read(4096)`` batches, one ``selectors`` loop) and one
  ``RotatingWriter.write()`` call per packet;
* ``batch``: the same, but each ``read()`` batch goes to ``RotatingWriter.write_many`` (as
  the agent does; left out when the writer has no ``write_many``);
* ``cli``: ``packetcapture run --live`` with an endpoints file naming the veth (the whole
  pipeline: agent, schedule, status files, rotation);
* ``before``: the same ``packetcapture run --live`` from another checkout (``--before DIR``,
  e.g. ``git worktree add /tmp/before main``), run in the same rounds, interleaved with the
  others, so a change is measured against the code before it under the same load.

CPU per captured packet (``cap us/pkt``) is the capturing process's user + system time over
the packets in its files, start-up included: at moderate rates start-up is a large part of it
(``packetcapture run`` imports, parses and opens files before its first packet). With
``--idle`` each tool also runs once per repeat with no traffic for as long as a round lasts;
``net us/pkt`` is (CPU - median idle CPU) / packets: the cost of the packets themselves.
``steady`` needs no idle run: the process's CPU time (every thread's ``schedstat``, exact to
the nanosecond) from just before the traffic starts to just before the tool is stopped
(after its last ring block retired), over the packets: the per-packet cost with neither
start-up nor exit in it, and none of the idle runs' noise. The
package's bytecode is compiled first (as an installed package has it), and the processes
run without ``PYTHONDONTWRITEBYTECODE``.

Counts per round: frames the sender says it sent; frames that reached A's veth (the
kernel's ``rx_packets`` of that veth, read before and after: the capture point's real
offered load); frames in the output file(s). ``lost`` = arrived - in file. The tools' own
kernel drop counters (PACKET_STATISTICS; tcpdump's "dropped by kernel") are shown too.
A rate is zero-drop for a tool when nothing was lost in any repeat.

Senders: ``tcpreplay --pps=N`` (installed with apt-get if missing) for paced rates,
``tcpreplay --topspeed`` for "top", and a small C program using ``sendmmsg`` on a packet
socket (compiled with gcc) for "max" and for any rate above tcpreplay's own ceiling
(measured first, without a capture). Without tcpreplay or gcc: parallel Python senders.

The veth delivers a frame in the sender's context: the receive path, the capture's BPF
filter and the copy into the capture ring all run on the sender's CPU (or ksoftirqd next to
it), so on a 2-core machine the sender and the kernel side of the capture share one core and
the capturing process gets the other: a capturer that needs more CPU slows the sender, so the
"achieved" rate (frames at the veth per second of sending) differs between tools at the same
offered rate. ``--pin`` puts the sender on CPU 1 and the capturer on CPU 0. A UDP socket
bound to port 9000 in A (never read, tiny buffer) absorbs the frames so the kernel answers
none with ICMP port-unreachable.

Usage (root): python bench/bench_live.py [--rates 50k,100k,...,top,max] [--seconds S]
    [--repeat N] [--tools tcpdump,ours,batch,cli] [--sender auto|tcpreplay|c|python] [--pin]
    [--before DIR] [--idle]
Issue 12's figure (CPU per packet of ``run --live`` at a fixed offered rate, against the code
of when the issue was filed, ``git worktree add /tmp/orig ad9156c``):
    python bench/bench_live.py --tools tcpdump,cli --rates 100k --seconds 3 --repeat 7 \
        --idle --before /tmp/orig
Not a test: prints a table, no timed asserts. About 2-3 minutes with the defaults.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable
DEFAULT_RATES = "50k,100k,200k,300k,500k,750k,1M,top,max"
FILTER = "udp port 9000"
PORT = 9000
FRAMES_IN_PCAP = 10_000
TOP_COUNT = 600_000  # frames sent in a "top"/"max" round
NODE, CAP_NS, CAP_NAME, POD = "bench-node", "bench", "live", "bench-pod"

# -- helpers run inside the namespaces ------------------------------------------------------

#: Namespace A: hold UDP port 9000 so the frames are dropped quietly (full receive buffer)
#: instead of each costing an ICMP port-unreachable. Exits when stdin closes.
SINK = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
s.bind((sys.argv[1], int(sys.argv[2])))
print("ready", flush=True)
sys.stdin.read()
"""

#: Namespace A, "ours": AfPacketBackend (defaults) -> RotatingWriter, the agent's read loop
#: (one write() per packet); "batch": the same with RotatingWriter.write_many per read().
#: A line on stdin: keep reading until the ring stays empty for 0.3 s, then report.
CAPTURER = r"""
import json, selectors, sys, time
from packetcapture.backends.afpacket import AfPacketBackend
from packetcapture.bpf import compile_filters
from packetcapture.model import PacketCaptureRule
from packetcapture.pcap import CaptureSettings, RotatingWriter
dev, outdir, batched = sys.argv[1], sys.argv[2], sys.argv[3] == "batch"
program = compile_filters([PacketCaptureRule(protocol="UDP", ports=["9000"])])
settings = CaptureSettings(max_files=1000)  # rotate as usual, but delete nothing
with AfPacketBackend().open(dev, program) as src, RotatingWriter(
    outdir, "bench", "live", "pod", dev, linktype=src.linktype, settings=settings
) as w:
    write, write_many = w.write, getattr(w, "write_many", None)
    sel = selectors.DefaultSelector()
    sel.register(src, selectors.EVENT_READ)
    sel.register(sys.stdin, selectors.EVENT_READ)
    print("ready", flush=True)
    stopping, last = False, time.monotonic()
    while True:
        got = 0
        for key, _ in sel.select(0.05):
            if key.fileobj is sys.stdin:
                sys.stdin.readline()
                sel.unregister(sys.stdin)
                stopping = True
                continue
            now = time.time()
            for _ in range(64):  # as NodeAgent._pump_source
                packets = src.read(4096)
                if batched:
                    write_many(packets, now)
                else:
                    for ts, data, wire in packets:
                        write(ts, data, wire, now)
                got += len(packets)
                if len(packets) < 4096:
                    break
        if got:
            last = time.monotonic()
        elif stopping and time.monotonic() - last > 0.3:
            break
    st = src.stats()
    written = w.packets_written
print(json.dumps({"written": written, "received": st.received, "dropped": st.dropped}))
"""

#: Namespace B fallback sender (no tcpreplay, no gcc): paced raw sends of the pcap's frames.
PY_SENDER = r"""
import socket, struct, sys, time
dev, rate, count, path = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
raw = open(path, "rb").read()
frames, off = [], 24
while off + 16 <= len(raw) and len(frames) < 4096:
    incl = struct.unpack_from("<I", raw, off + 8)[0]
    frames.append(raw[off + 16 : off + 16 + incl]); off += 16 + incl
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0); s.bind((dev, 0))
send, nf, sent, t0 = s.send, len(frames), 0, time.perf_counter()
while sent < count:
    if rate:
        due = int((time.perf_counter() - t0) * rate) + 1
        if due <= sent:
            time.sleep((sent + 1) / rate - (time.perf_counter() - t0)); continue
        k = min(due - sent, count - sent, 256)
    else:
        k = min(256, count - sent)
    for i in range(k):
        try:
            send(frames[(sent + i) % nf])
        except BlockingIOError:
            k = i; break
    sent += k
print(sent, time.perf_counter() - t0)
"""

#: Namespace B fast sender: sendmmsg batches of the pcap's frames on a packet socket, paced by
#: CLOCK_MONOTONIC (rate 0: as fast as possible). Prints "sent seconds".
C_SENDER = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <linux/if_packet.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
enum { BATCH = 256, MAXF = 4096 };
static double now(void) {
    struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9;
}
int main(int argc, char **argv) {
    if (argc != 5) { fprintf(stderr, "usage: %s DEV RATE COUNT PCAP\n", argv[0]); return 2; }
    double rate = atof(argv[2]); long count = atol(argv[3]);
    FILE *f = fopen(argv[4], "rb"); if (!f) { perror(argv[4]); return 1; }
    static unsigned char buf[MAXF][128]; static size_t len[MAXF]; int nf = 0;
    unsigned char hdr[16]; fseek(f, 24, SEEK_SET);
    while (nf < MAXF && fread(hdr, 1, 16, f) == 16) {
        unsigned incl = hdr[8] | hdr[9] << 8 | hdr[10] << 16 | (unsigned)hdr[11] << 24;
        if (incl > 128 || fread(buf[nf], 1, incl, f) != incl) break;
        len[nf++] = incl;
    }
    fclose(f); if (!nf) { fprintf(stderr, "no frames\n"); return 1; }
    int s = socket(AF_PACKET, SOCK_RAW, 0); if (s < 0) { perror("socket"); return 1; }
    struct sockaddr_ll a; memset(&a, 0, sizeof a);
    a.sll_family = AF_PACKET; a.sll_ifindex = if_nametoindex(argv[1]);
    if (!a.sll_ifindex || bind(s, (struct sockaddr *)&a, sizeof a)) { perror("bind"); return 1; }
    static struct mmsghdr m[BATCH]; static struct iovec v[BATCH];
    long sent = 0; double t0 = now();
    while (sent < count) {
        long k = count - sent < BATCH ? count - sent : BATCH;
        if (rate > 0) {
            long due = (long)((now() - t0) * rate) + 1;
            if (due <= sent) {
                double wait = (sent + 1) / rate - (now() - t0);
                struct timespec ts = {0, wait > 0 ? (long)(wait * 1e9) : 0};
                nanosleep(&ts, NULL); continue;
            }
            if (due - sent < k) k = due - sent;
        }
        for (long i = 0; i < k; i++) {
            int j = (int)((sent + i) % nf);
            v[i].iov_base = buf[j]; v[i].iov_len = len[j];
            memset(&m[i], 0, sizeof m[i]);
            m[i].msg_hdr.msg_iov = &v[i]; m[i].msg_hdr.msg_iovlen = 1;
        }
        int r = sendmmsg(s, m, (unsigned)k, 0);
        if (r < 0) {
            if (errno == ENOBUFS || errno == EAGAIN || errno == EINTR) { sched_yield(); continue; }
            perror("sendmmsg"); return 1;
        }
        sent += r;
    }
    printf("%ld %.6f\n", sent, now() - t0); return 0;
}
"""


#: Children run as an installed package would: bytecode compiled once and then read.
CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def sh(*args: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, check=check, capture_output=True, text=True, timeout=timeout)


def parse_rate(text: str) -> int | str:
    text = text.strip().lower()
    if text in ("top", "max"):
        return text
    mult = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(float(text.rstrip("km")) * mult)


def label(rate: int | str) -> str:
    if isinstance(rate, str):
        return rate
    return f"{rate / 1e6:g}M" if rate >= 1_000_000 else f"{rate / 1e3:g}k"


# -- namespaces -------------------------------------------------------------------------------


@dataclass
class Pair:
    ns_a: str
    ns_b: str
    dev_a: str
    dev_b: str
    ip_a: str
    ip_b: str
    mac_a: str = ""
    mac_b: str = ""

    def in_a(self, *args: str) -> list[str]:
        return ["ip", "netns", "exec", self.ns_a, *args]

    def in_b(self, *args: str) -> list[str]:
        return ["ip", "netns", "exec", self.ns_b, *args]


@contextmanager
def veth_namespaces() -> Iterator[Pair]:
    tag = f"{os.getpid() % 100000}"
    net = 100 + os.getpid() % 150  # 10.213.<net>.0/24, only ever on this veth
    pair = Pair(
        f"pcxlA{tag}", f"pcxlB{tag}", f"plA{tag}", f"plB{tag}", f"10.213.{net}.1", f"10.213.{net}.2"
    )
    sh("ip", "netns", "add", pair.ns_a)
    try:
        sh("ip", "netns", "add", pair.ns_b)
        sh(
            "ip",
            "link",
            "add",
            pair.dev_a,
            "netns",
            pair.ns_a,
            "type",
            "veth",
            "peer",
            "name",
            pair.dev_b,
            "netns",
            pair.ns_b,
        )
        for ns, dev, ip in ((pair.ns_a, pair.dev_a, pair.ip_a), (pair.ns_b, pair.dev_b, pair.ip_b)):
            # no IPv6 (no router solicitations or MLD): only our frames on the wire
            sh("ip", "netns", "exec", ns, "sysctl", "-qw", f"net.ipv6.conf.{dev}.disable_ipv6=1")
            sh("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up")
        pair.mac_a = str(link_json(pair.ns_a, pair.dev_a)["address"])
        pair.mac_b = str(link_json(pair.ns_b, pair.dev_b)["address"])
        yield pair
    finally:
        sh("ip", "netns", "del", pair.ns_a, check=False)
        sh("ip", "netns", "del", pair.ns_b, check=False)


def link_json(ns: str, dev: str) -> dict[str, object]:
    data: list[dict[str, object]] = json.loads(
        sh("ip", "-j", "-s", "-n", ns, "link", "show", "dev", dev).stdout
    )
    return data[0]


def veth_counters(pair: Pair) -> dict[str, int]:
    """rx packets/drops of A's end, tx packets/drops of B's end (kernel counters)."""
    a = link_json(pair.ns_a, pair.dev_a)["stats64"]
    b = link_json(pair.ns_b, pair.dev_b)["stats64"]
    assert isinstance(a, dict) and isinstance(b, dict)
    return {
        "rx": a["rx"]["packets"],
        "rx_dropped": a["rx"]["dropped"],
        "tx": b["tx"]["packets"],
        "tx_dropped": b["tx"]["dropped"],
    }


def cpu_times() -> list[tuple[int, int]]:
    """(busy, total) jiffies per CPU from /proc/stat."""
    out = []
    for line in Path("/proc/stat").read_text().splitlines():
        if re.match(r"cpu\d", line):
            v = [int(x) for x in line.split()[1:]]
            idle = v[3] + v[4]
            out.append((sum(v) - idle, sum(v)))
    return out


def busy_percent(before: list[tuple[int, int]], after: list[tuple[int, int]]) -> str:
    parts = []
    for (b0, t0), (b1, t1) in zip(before, after, strict=True):
        parts.append(f"{100 * (b1 - b0) / max(t1 - t0, 1):.0f}")
    return "/".join(parts)


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def make_pcap(path: Path, pair: Pair) -> None:
    """FRAMES_IN_PCAP 60-byte UDP frames B -> A:9000 (payload: a sequence number)."""
    dst, src = (
        bytes.fromhex(pair.mac_a.replace(":", "")),
        bytes.fromhex(pair.mac_b.replace(":", "")),
    )
    ip_src = bytes(int(x) for x in pair.ip_b.split("."))
    ip_dst = bytes(int(x) for x in pair.ip_a.split("."))
    chunks = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for i in range(FRAMES_IN_PCAP):
        payload = struct.pack("!I", i) + bytes(14)
        udp = struct.pack("!HHHH", 40000, PORT, 8 + len(payload), 0) + payload
        hdr = struct.pack(
            "!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), i & 0xFFFF, 0, 64, 17, 0, ip_src, ip_dst
        )
        s = sum(struct.unpack("!10H", hdr))
        s = (s & 0xFFFF) + (s >> 16)
        s = (s & 0xFFFF) + (s >> 16)
        hdr = hdr[:10] + struct.pack("!H", ~s & 0xFFFF) + hdr[12:]
        frame = dst + src + b"\x08\x00" + hdr + udp
        chunks.append(struct.pack("<IIII", 1_700_000_000, i, len(frame), len(frame)) + frame)
    path.write_bytes(b"".join(chunks))


# -- processes ---------------------------------------------------------------------------------


@dataclass
class Finished:
    stdout: str
    stderr: str
    cpu: float  # user + system seconds of the process


def run_with_rusage(argv: list[str], timeout: float) -> Finished:
    """Run to completion; return its output and CPU time."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(argv, stdout=out, stderr=err, text=True)
        deadline = time.monotonic() + timeout
        while True:
            pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
            time.sleep(0.005)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        result = Finished(out.read(), err.read(), ru.ru_utime + ru.ru_stime)
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[3:5]} failed ({proc.returncode}): {result.stderr.strip()}")
    return result


def wait_rusage(proc: subprocess.Popen[str], timeout: float) -> float:
    """Reap ``proc`` (its pipes already drained) and return its CPU seconds."""
    deadline = time.monotonic() + timeout
    while True:
        pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return ru.ru_utime + ru.ru_stime
        if time.monotonic() > deadline:
            proc.kill()
        time.sleep(0.005)


# -- senders -----------------------------------------------------------------------------------


@dataclass
class Sent:
    frames: int
    seconds: float
    cpu: float
    name: str


class Senders:
    def __init__(self, pair: Pair, pcap: Path, tmp: Path, prefer: str, pin: bool) -> None:
        self.pair, self.pcap, self.pin = pair, pcap, pin
        self.tcpreplay = shutil.which("tcpreplay") if prefer in ("auto", "tcpreplay") else None
        if prefer in ("auto", "tcpreplay") and self.tcpreplay is None:
            self.tcpreplay = install_tcpreplay()
        self.c_sender: str | None = None
        if prefer in ("auto", "c") or (prefer == "tcpreplay" and self.tcpreplay is None):
            self.c_sender = compile_c_sender(tmp)
        self.tcpreplay_ceiling = 0.0

    def describe(self) -> str:
        parts = []
        if self.tcpreplay:
            parts.append("tcpreplay")
        if self.c_sender:
            parts.append("C sendmmsg")
        return " + ".join(parts) or "parallel Python senders (no tcpreplay, no gcc)"

    def calibrate(self) -> None:
        """Ceilings without a capture running (and a warm-up of the path)."""
        msgs = []
        if self.tcpreplay:
            s = self.send("top", TOP_COUNT // 2)
            self.tcpreplay_ceiling = s.frames / s.seconds
            msgs.append(f"tcpreplay --topspeed {self.tcpreplay_ceiling:,.0f} pps")
        if self.c_sender:
            s = self.send("max", TOP_COUNT)
            msgs.append(f"C sendmmsg {s.frames / s.seconds:,.0f} pps")
        if msgs:
            print("sender ceilings with no capture running: " + ", ".join(msgs))

    def _pinned(self, argv: list[str]) -> list[str]:
        return ["taskset", "-c", "1", *argv] if self.pin else argv

    def send(self, rate: int | str, count: int) -> Sent:
        pair = self.pair
        use_tcpreplay = self.tcpreplay is not None and (
            rate == "top"
            or (
                isinstance(rate, int)
                and (
                    not self.c_sender
                    or not self.tcpreplay_ceiling
                    or rate <= 0.9 * self.tcpreplay_ceiling
                )
            )
        )
        if use_tcpreplay:
            assert self.tcpreplay is not None
            pace = ["--topspeed"] if rate in ("top", "max") else [f"--pps={rate}"]
            # --timer=nano: the cheapest pacing here (gtod costs twice the CPU at 50k pps)
            argv = [
                self.tcpreplay,
                "-q",
                "-K",
                "--timer=nano",
                "--loop=0",
                f"--limit={count}",
                *pace,
                "-i",
                pair.dev_b,
                str(self.pcap),
            ]
            res = run_with_rusage(self._pinned(pair.in_b(*argv)), timeout=120)
            m = re.search(r"Actual: (\d+) packets .* in ([\d.]+) seconds", res.stdout)
            if m is None:
                raise RuntimeError(f"tcpreplay output not understood: {res.stdout!r}")
            return Sent(int(m.group(1)), float(m.group(2)), res.cpu, "tcpreplay")
        pps = 0 if isinstance(rate, str) else rate
        if self.c_sender:
            argv = [self.c_sender, pair.dev_b, str(pps), str(count), str(self.pcap)]
            res = run_with_rusage(self._pinned(pair.in_b(*argv)), timeout=120)
            sent, secs = res.stdout.split()
            return Sent(int(sent), float(secs), res.cpu, "sendmmsg")
        # last resort: two Python senders, half the rate each
        procs = []
        for i in range(2):
            part = count // 2 + (count % 2 if i == 0 else 0)
            argv = [PY, "-c", PY_SENDER, pair.dev_b, str(pps / 2), str(part), str(self.pcap)]
            procs.append(subprocess.Popen(pair.in_b(*argv), stdout=subprocess.PIPE, text=True))
        total, longest, cpu = 0, 0.0, 0.0
        for p in procs:
            assert p.stdout is not None
            n, t = p.stdout.read().split()
            cpu += wait_rusage(p, 60)
            total, longest = total + int(n), max(longest, float(t))
        return Sent(total, longest, cpu, "python x2")


def install_tcpreplay() -> str | None:
    print("tcpreplay not found: apt-get install -y tcpreplay ...", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        subprocess.run(
            ["apt-get", "install", "-y", "tcpreplay"],
            env=env,
            check=True,
            capture_output=True,
            timeout=300,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        print(f"  cannot install tcpreplay ({exc.__class__.__name__}): using the fallback sender")
        return None
    return shutil.which("tcpreplay")


def compile_c_sender(tmp: Path) -> str | None:
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        return None
    src, exe = tmp / "sender.c", tmp / "sender"
    src.write_text(C_SENDER)
    res = subprocess.run(
        [gcc, "-O2", "-o", str(exe), str(src)], capture_output=True, text=True, check=False
    )
    if res.returncode != 0:
        print(f"cannot compile the C sender: {res.stderr.strip()[:300]}")
        return None
    return str(exe)


# -- capturers ---------------------------------------------------------------------------------


@dataclass
class Captured:
    in_file: int
    tool_received: int | None
    tool_dropped: int | None
    cpu: float
    steady_cpu: float | None = None  # CPU from just before the traffic to just before stop


def cpu_seconds(pid: int) -> float | None:
    """The CPU time of process ``pid`` so far (every thread's, exact: schedstat's ns)."""
    total = 0
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            total += int((task / "schedstat").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return total / 1e9


class Capture:
    """One capturing tool on A's veth: start(), then (after the traffic) stop()."""

    def __init__(
        self, tool: str, pair: Pair, workdir: Path, pin: bool, before: Path | None = None
    ) -> None:
        self.tool, self.pair, self.dir, self.pin = tool, pair, workdir, pin
        self.proc: subprocess.Popen[str] | None = None
        self.cpu_before: float | None = None  # mark_traffic(): CPU when the traffic starts
        # "before": python -m packetcapture from that checkout (its directory comes first
        # on sys.path), everything else from this one
        self.tree = before if tool == "before" and before is not None else REPO

    def _argv(self, *args: str) -> list[str]:
        argv = self.pair.in_a(*args)
        return ["taskset", "-c", "0", *argv] if self.pin else argv

    def start(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True)
        dev = self.pair.dev_a
        if self.tool == "tcpdump":
            argv = self._argv("tcpdump", "-i", dev, "-n", "-w", str(self.dir / "out.pcap"), FILTER)
            self.proc = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)
            assert self.proc.stderr is not None
            line = self.proc.stderr.readline()
            if "listening on" not in line:
                raise RuntimeError(f"tcpdump did not start: {line}")
        elif self.tool in ("ours", "batch"):
            argv = self._argv(PY, "-c", CAPTURER, dev, str(self.dir), self.tool)
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                cwd=REPO,
                env=CHILD_ENV,
            )
            assert self.proc.stdout is not None
            if self.proc.stdout.readline().strip() != "ready":
                raise RuntimeError("our capturer did not start")
        else:
            self._write_cli_inputs()
            argv = self._argv(
                PY,
                "-m",
                "packetcapture",
                "run",
                str(self.dir / "capture.yaml"),
                "--endpoints",
                str(self.dir / "endpoints.yaml"),
                "--node",
                NODE,
                "--capture-dir",
                str(self.dir / "out"),
                "--live",
                "--max-files",
                "1000",
                "--progress",
                "never",
            )
            self.proc = subprocess.Popen(
                argv,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
                cwd=self.tree,
                env=dict(CHILD_ENV, PYTHONPATH=str(self.tree)),
            )
            state = self.dir / "out" / CAP_NS / CAP_NAME / f".status-{NODE}.yaml"
            deadline = time.monotonic() + 20
            while "WaitingForTraffic" not in (state.read_text() if state.exists() else ""):
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("packetcapture run did not reach WaitingForTraffic")
                time.sleep(0.02)
        time.sleep(0.1)

    def _write_cli_inputs(self) -> None:
        capture = {
            "apiVersion": "projectcalico.org/v3",
            "kind": "PacketCapture",
            "metadata": {"name": CAP_NAME, "namespace": CAP_NS},
            "spec": {
                "selector": 'app == "bench"',
                "filters": [{"protocol": "UDP", "ports": [PORT]}],
            },
        }
        endpoint = {
            "apiVersion": "projectcalico.org/v3",
            "kind": "WorkloadEndpoint",
            "metadata": {
                "name": f"{NODE}-k8s-{POD}-eth0",
                "namespace": CAP_NS,
                "labels": {"app": "bench"},
            },
            "spec": {
                "node": NODE,
                "orchestrator": "k8s",
                "pod": POD,
                "endpoint": "eth0",
                "interfaceName": self.pair.dev_a,
            },
        }
        # YAML, as users write them (examples/): JSON input would make `run` import json
        import yaml

        (self.dir / "capture.yaml").write_text(yaml.safe_dump(capture, sort_keys=False))
        (self.dir / "endpoints.yaml").write_text(yaml.safe_dump(endpoint, sort_keys=False))

    def mark_traffic(self) -> None:
        """Note the capturer's CPU time now, as the traffic starts (for ``steady_cpu``)."""
        assert self.proc is not None
        # ip netns exec and taskset exec the tool: the process we started is the tool
        self.cpu_before = cpu_seconds(self.proc.pid)

    def _steady(self) -> float | None:
        assert self.proc is not None
        now = cpu_seconds(self.proc.pid)
        if now is None or self.cpu_before is None:
            return None
        return now - self.cpu_before

    def kill(self) -> None:
        """Kill the capturer if it still runs (a no-op after a clean stop())."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> Captured:
        proc = self.proc
        assert proc is not None
        received = dropped = None
        if self.tool == "tcpdump":
            time.sleep(1.2)  # libpcap's ring blocks retire after tcpdump's 1 s timeout
            steady = self._steady()
            proc.send_signal(signal.SIGINT)
            assert proc.stderr is not None
            err = proc.stderr.read()
            cpu = wait_rusage(proc, 30)
            m1 = re.search(r"(\d+) packets? received by filter", err)
            m2 = re.search(r"(\d+) packets? dropped by kernel", err)
            received = int(m1.group(1)) if m1 else None
            dropped = int(m2.group(1)) if m2 else None
        elif self.tool in ("ours", "batch"):
            assert proc.stdin is not None and proc.stdout is not None
            time.sleep(0.2)  # the last ring block retires (0.1 s timeout)
            steady = self._steady()
            proc.stdin.write("stop\n")
            proc.stdin.close()
            report = json.loads(proc.stdout.read())
            cpu = wait_rusage(proc, 30)
            received, dropped = report["received"], report["dropped"]
        else:
            time.sleep(0.5)  # ring block timeout (0.1 s) + the agent's loop
            steady = self._steady()
            proc.send_signal(signal.SIGINT)
            assert proc.stderr is not None
            err = proc.stderr.read()
            cpu = wait_rusage(proc, 30)
            m = re.search(r"(\d+) packets, \d+ bytes, (\d+) dropped", err)
            if m is None:
                raise RuntimeError(f"packetcapture run: no counts in {err!r}")
            received, dropped = int(m.group(1)), int(m.group(2))
        if proc.returncode != 0:
            raise RuntimeError(f"{self.tool} exited with {proc.returncode}")
        return Captured(count_files(self.dir), received, dropped, cpu, steady)


def count_files(directory: Path) -> int:
    from packetcapture.pcap import count_packets

    return sum(count_packets(p) for p in directory.rglob("*.pcap"))


# -- the run -----------------------------------------------------------------------------------


@dataclass
class Row:
    rate: int | str
    tool: str
    sender: str = ""
    sent: list[int] = field(default_factory=list)
    arrived: list[int] = field(default_factory=list)
    achieved: list[float] = field(default_factory=list)
    in_file: list[int] = field(default_factory=list)
    tool_dropped: list[int | None] = field(default_factory=list)
    veth_dropped: list[int] = field(default_factory=list)
    cap_cpu: list[float] = field(default_factory=list)
    snd_cpu: list[float] = field(default_factory=list)
    busy: list[str] = field(default_factory=list)
    idle_cpu: list[float] = field(default_factory=list)  # --idle: the same run, no traffic
    steady_cpu: list[float] = field(default_factory=list)  # traffic start to stop (no start-up)

    def cpu_list(self) -> list[float]:
        """CPU per captured packet of each repeat, start-up included (us)."""
        return [c / max(n, 1) * 1e6 for c, n in zip(self.cap_cpu, self.in_file, strict=True)]

    def net_list(self) -> list[float]:
        """CPU per packet of each repeat over the median idle run's (empty without --idle)."""
        if not self.idle_cpu:
            return []
        idle = statistics.median(self.idle_cpu)
        return [
            (c - idle) / max(n, 1) * 1e6 for c, n in zip(self.cap_cpu, self.in_file, strict=True)
        ]

    def steady_list(self) -> list[float]:
        """CPU per packet of each repeat while the traffic ran (no start-up, no exit)."""
        return [c / max(n, 1) * 1e6 for c, n in zip(self.steady_cpu, self.in_file, strict=False)]

    def steady_us(self) -> float | None:
        """Median CPU per captured packet while the traffic ran, or None (no /proc)."""
        steady = self.steady_list()
        return statistics.median(steady) if len(steady) == len(self.in_file) else None

    def cpu_us(self) -> float:
        """Median CPU per captured packet, start-up included (us)."""
        return statistics.median(self.cpu_list())

    def net_us(self) -> float | None:
        """Median CPU per packet over the idle run's (start-up and waiting), or None."""
        net = self.net_list()
        return statistics.median(net) if net else None

    @property
    def lost(self) -> list[int]:
        return [a - f for a, f in zip(self.arrived, self.in_file, strict=True)]

    @property
    def zero_drop(self) -> bool:
        return all(x == 0 for x in self.lost) and all(not d for d in self.tool_dropped)


def idle_round(cap: Capture, seconds: float, row: Row) -> None:
    """Start the tool, send nothing for as long as a round's traffic lasts, stop it."""
    try:
        cap.start()
        time.sleep(seconds)
        got = cap.stop()
    finally:
        cap.kill()
    row.idle_cpu.append(got.cpu)


def one_round(rate: int | str, cap: Capture, senders: Senders, seconds: float, row: Row) -> None:
    count = TOP_COUNT if isinstance(rate, str) else int(rate * seconds)
    try:
        cap.start()
        before, cpu0 = veth_counters(cap.pair), cpu_times()
        cap.mark_traffic()
        sent = senders.send(rate, count)
        cpu1 = cpu_times()
        after = veth_counters(cap.pair)
        got = cap.stop()
    finally:
        cap.kill()  # after a failure: no capturer left running in the namespace
    arrived = after["rx"] - before["rx"]
    row.sender = sent.name
    row.sent.append(sent.frames)
    row.arrived.append(arrived)
    row.achieved.append(arrived / sent.seconds)
    row.in_file.append(got.in_file)
    row.tool_dropped.append(got.tool_dropped)
    row.veth_dropped.append(
        after["rx_dropped"] - before["rx_dropped"] + after["tx_dropped"] - before["tx_dropped"]
    )
    row.cap_cpu.append(got.cpu)
    if got.steady_cpu is not None:
        row.steady_cpu.append(got.steady_cpu)
    row.snd_cpu.append(sent.cpu / sent.seconds)
    row.busy.append(busy_percent(cpu0, cpu1))


#: Issue 12: half of the ~1 us of CPU per packet `run --live` took before it (without
#: --before; with it, the goal is half of the before checkout's figure in the same run).
CLI_CPU_GOAL_US = 0.5


def print_table(rows: list[Row], repeat: int) -> None:
    med = statistics.median
    print(
        f"\n{'rate':>5} {'sender':>9} {'tool':>7} {'sent':>8} {'arrived':>8} {'achieved':>9} "
        f"{'in file':>8} {'lost':>7} {'tool drop':>9} {'veth drop':>9} {'cap us/pkt':>10} "
        f"{'net us/pkt':>10} {'steady':>6} {'snd cpu':>7} {'busy % cpu0/1':>13}"
    )
    for r in rows:
        drops = [d for d in r.tool_dropped if d is not None]
        cpu_us = r.cpu_us()
        net = r.net_us()
        net_text = "-" if net is None else f"{net:.2f}"
        steady = r.steady_us()
        steady_text = "-" if steady is None else f"{steady:.2f}"
        print(
            f"{label(r.rate):>5} {r.sender:>9} {r.tool:>7} {med(r.sent):8.0f} "
            f"{med(r.arrived):8.0f} "
            f"{med(r.achieved):9,.0f} {med(r.in_file):8.0f} {max(r.lost):7} "
            f"{max(drops) if drops else '-':>9} {max(r.veth_dropped):9} {cpu_us:10.2f} "
            f"{net_text:>10} {steady_text:>6} {100 * med(r.snd_cpu):6.0f}% "
            f"{r.busy[len(r.busy) // 2]:>13}"
        )
    if repeat > 1:
        print(f"(medians of {repeat} repeats; lost, drops: the worst repeat)")
    # Issue 12's goal: halve run --live's CPU per captured packet, beside tcpdump's in the
    # same rows; against the before checkout's figure in the same run when there is one.
    for r in rows:
        if r.tool != "cli":
            continue
        same = {t.tool: t for t in rows if t.rate == r.rate}
        peer, before = same.get("tcpdump"), same.get("before")
        for what, mine, theirs, old, pairs in (
            (
                "start-up included",
                r.cpu_us(),
                peer and peer.cpu_us(),
                before and before.cpu_us(),
                zip(r.cpu_list(), before.cpu_list() if before else [], strict=False),
            ),
            (
                "over an idle run",
                r.net_us(),
                peer and peer.net_us(),
                before and before.net_us(),
                zip(r.net_list(), before.net_list() if before else [], strict=False),
            ),
            (
                "steady, while the traffic ran",
                r.steady_us(),
                peer and peer.steady_us(),
                before and before.steady_us(),
                zip(r.steady_list(), before.steady_list() if before else [], strict=False),
            ),
        ):
            if mine is None:
                continue
            goal = old / 2 if old is not None else CLI_CPU_GOAL_US
            verdict = "met" if mine <= goal else "NOT met"
            basis = f"half of before's {old:.2f}" if old is not None else "half of ~1 us"
            text = f"{label(r.rate)}: run --live {mine:.2f} us/packet ({what}), goal <= {goal:.2f}"
            text += f" ({basis}): {verdict}"
            if old is not None:
                # rounds of the same repeat ran one after the other: their ratio is the
                # steadier figure on a machine whose load changes
                ratios = sorted(a / b for a, b in pairs if b > 0)
                text += f"; {mine / old:.2f} of before"
                if ratios:
                    text += f" (median of each repeat's ratio {statistics.median(ratios):.2f}"
                    text += f", {ratios[0]:.2f}-{ratios[-1]:.2f})"
            if theirs:
                text += f"; tcpdump {theirs:.2f} us ({mine / theirs:.1f}x)"
            print(text)


def summarize(rows: list[Row], tools: list[str]) -> None:
    print()
    best: dict[str, float] = {}
    for tool in tools:
        ok = [statistics.median(r.achieved) for r in rows if r.tool == tool and r.zero_drop]
        best[tool] = max(ok, default=0.0)
        lossy = [r for r in rows if r.tool == tool and not r.zero_drop]
        first = min(lossy, key=lambda r: statistics.median(r.achieved), default=None)
        note = "no loss at any rate"
        if first is not None:
            frac = max(max(r.lost) / max(*r.arrived, 1) for r in lossy)
            note = (
                f"first loss at {statistics.median(first.achieved):,.0f} pps "
                f"(offered {label(first.rate)}: {max(first.lost)} lost, "
                f"{100 * max(first.lost) / max(*first.arrived, 1):.1f}%; "
                f"worst row {100 * frac:.1f}%)"
            )
        print(
            f"highest zero-drop rate {tool:>7}: {best[tool]:>9,.0f} pps (achieved at the veth);"
            f" {note}"
        )
    if "tcpdump" in tools:
        for tool in tools:
            if tool == "tcpdump":
                continue
            by_rate = {label(r.rate): r for r in rows if r.tool == tool}
            clean = [r for r in rows if r.tool == "tcpdump" and r.zero_drop]
            bad = [label(r.rate) for r in clean if not by_rate[label(r.rate)].zero_drop]
            verdict = "yes" if not bad else f"NO ({tool} lost packets at {', '.join(bad)})"
            print(f"{tool} drops nothing wherever tcpdump drops nothing: {verdict}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rates",
        default=DEFAULT_RATES,
        help="comma-separated pps (50k, 1M, ...), 'top' (tcpreplay --topspeed), "
        "'max' (C sendmmsg flat out)",
    )
    parser.add_argument("--seconds", type=float, default=1.5, help="traffic per paced round")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument(
        "--tools",
        default="tcpdump,ours,batch,cli",
        help="batch is left out when RotatingWriter has no write_many",
    )
    parser.add_argument("--sender", choices=("auto", "tcpreplay", "c", "python"), default="auto")
    parser.add_argument(
        "--pin", action="store_true", help="pin the sender to CPU 1 and the capturer to CPU 0"
    )
    parser.add_argument(
        "--before",
        type=Path,
        metavar="DIR",
        help="also run 'packetcapture run --live' from the checkout DIR (tool 'before'), "
        "interleaved with the others",
    )
    parser.add_argument(
        "--idle",
        action="store_true",
        help="also run each tool once per repeat without traffic: 'net us/pkt' subtracts it",
    )
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("bench_live: skipped: needs root (network namespaces, AF_PACKET sockets)")
        return 0
    for tool in ("ip", "tcpdump"):
        if shutil.which(tool) is None:
            print(f"bench_live: skipped: needs {tool}")
            return 0
    rates = [parse_rate(r) for r in args.rates.split(",") if r.strip()]
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    if args.before is not None:
        if not (args.before / "packetcapture" / "__init__.py").is_file():
            print(f"bench_live: --before {args.before}: no packetcapture package there")
            return 2
        if "before" not in tools:
            tools.append("before")
    for tree in {REPO, args.before or REPO}:  # as installed: bytecode compiled once
        subprocess.run(
            [PY, "-m", "compileall", "-q", str(tree / "packetcapture")], check=False, env=CHILD_ENV
        )
    from packetcapture.pcap import RotatingWriter

    if "batch" in tools and not hasattr(RotatingWriter, "write_many"):
        print("(no RotatingWriter.write_many here: the 'batch' tool is left out)")
        tools.remove("batch")
    started = time.monotonic()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="pcxlive") as tmp_name, veth_namespaces() as pair:
        tmp = Path(tmp_name)
        sink = subprocess.Popen(
            pair.in_a(PY, "-c", SINK, pair.ip_a, str(PORT)),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert sink.stdout is not None
            if sink.stdout.readline().strip() != "ready":
                raise RuntimeError("the UDP sink did not start")
            pcap = tmp / "traffic.pcap"
            make_pcap(pcap, pair)
            senders = Senders(pair, pcap, tmp, args.sender, args.pin)
            if "max" in rates and senders.c_sender is None:
                rates.remove("max")
            if "top" in rates and senders.tcpreplay is None:
                rates.remove("top")
            print(
                f"veth {pair.dev_a} ({pair.ns_a}) <- {pair.dev_b} ({pair.ns_b}); "
                f"{os.cpu_count()} CPUs; filter '{FILTER}'; 60-byte frames; "
                f"sender: {senders.describe()}{'; pinned' if args.pin else ''}"
            )
            print(f"load average before: {load_average()} (other work on this machine competes)")
            senders.calibrate()
            for rate in rates:
                for tool in tools:
                    rows.append(Row(rate, tool))
                for _ in range(args.repeat):
                    for row in rows[-len(tools) :]:
                        cap = Capture(row.tool, pair, tmp / row.tool, args.pin, args.before)
                        one_round(rate, cap, senders, args.seconds, row)
                        if args.idle:
                            idle_round(cap, args.seconds, row)
                for row in rows[-len(tools) :]:
                    print(
                        f"  {label(rate):>5} {row.tool:>7}: arrived {row.arrived[-1]:>8}, "
                        f"in file {row.in_file[-1]:>8}, lost {row.lost[-1]}",
                        flush=True,
                    )
        finally:
            if sink.stdin is not None:
                sink.stdin.close()
            try:
                sink.wait(5)
            except subprocess.TimeoutExpired:
                sink.kill()
                sink.wait()
    print_table(rows, args.repeat)
    print(
        "arrived: the kernel's rx_packets of A's veth during the round; lost = arrived - in "
        "file; tool drop: the tool's kernel drop counter; veth drop: frames the veth itself "
        "dropped (never reached the capture point); cap us/pkt: the capturing process's "
        "user+sys CPU per captured packet (start-up included); net us/pkt (--idle): the same "
        "less the CPU of a run without traffic; steady: CPU per packet from the traffic's start "
        "to the tool's stop (no start-up, no exit); snd cpu: the sender's CPU "
        "share while sending (its kernel work, including delivery into the capture ring, "
        "shows up here or in ksoftirqd); busy: each CPU's busy share while sending"
    )
    summarize(rows, tools)
    print(f"total time {time.monotonic() - started:.0f} s; load average now {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
