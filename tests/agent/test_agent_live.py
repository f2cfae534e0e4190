"""Live end to end as root: ``packetcapture run --live`` on a veth, checked against tcpdump.

Two network namespaces joined by a veth pair (the backends tests' helpers). The endpoint's
interface is the veth end in namespace A; two captures select it with different filters.
The CLI and a tcpdump per capture (the same filter as a libpcap expression, written by
hand) capture that interface at the same time while known TCP/UDP/ICMP traffic, IPv4 and
IPv6, goes both ways, plus TCP traffic no filter matches. Our files, all of them and in
rotation order, must hold exactly tcpdump's packets, byte for byte and in the same order.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import dpkt
import pytest
import yaml

from packetcapture.pcap import PcapReader, parse_file_name
from tests.conftest import REPO, require_tool

BACKENDS = Path(__file__).resolve().parent.parent / "backends"
if str(BACKENDS) not in sys.path:
    sys.path.insert(0, str(BACKENDS))  # the backends tests' helpers, as they import them

from backends_netns import VethPair, sh, veth_pair  # noqa: E402

pytestmark = pytest.mark.root

TRAFFIC = BACKENDS / "backends_traffic.py"
NODE = "node-live"
NAMESPACE = "live"
POD = "live-pod"
DURATION = 5.0  # seconds the agent captures; the traffic takes about one
#: capture name -> (Calico filters, the same filter as a tcpdump expression)
CAPTURES: dict[str, tuple[list[dict[str, object]], str]] = {
    "everything": (
        [
            {"protocol": "TCP", "ports": [6000]},
            {"protocol": "UDP"},
            {"protocol": "ICMP"},
            {"protocol": "ICMPv6"},
        ],
        "(tcp port 6000) or udp or icmp or icmp6",
    ),
    "tcp-only": ([{"protocol": "TCP", "ports": ["5999:6001"]}], "tcp portrange 5999-6001"),
}
# A TCP port no filter matches: its SYN/RST exchanges must be in no file.
NOISE_PORT = 7000
NOISE = """
import contextlib, socket, sys
for family, dst in ((socket.AF_INET, sys.argv[1]), (socket.AF_INET6, sys.argv[2])):
    with socket.socket(family, socket.SOCK_STREAM) as s, contextlib.suppress(OSError):
        s.settimeout(2)
        s.connect((dst, int(sys.argv[3])))
"""


@pytest.fixture
def pair() -> Iterator[VethPair]:
    """A veth pair with static neighbours: no ARP or neighbour discovery on the wire."""
    with veth_pair() as p:
        for ns, dev, peer_ns, peer_dev, peer_ips in (
            (p.ns_a, p.dev_a, p.ns_b, p.dev_b, (p.ip4_b, p.ip6_b)),
            (p.ns_b, p.dev_b, p.ns_a, p.dev_a, (p.ip4_a, p.ip6_a)),
        ):
            mac = sh("ip", "-n", peer_ns, "-br", "link", "show", peer_dev).stdout.split()[2]
            for addr in peer_ips:
                sh("ip", "-n", ns, "neigh", "replace", addr, "lladdr", mac, "dev", dev,
                   "nud", "permanent")  # fmt: skip
        time.sleep(0.3)  # let link-up chatter (MLD reports) pass before capturing
        yield p


def expected_events(p: VethPair) -> list[tuple[str, str, str]]:
    """(src, dst, what) of every packet backends_traffic.py causes, A->B then B->A."""
    events = []
    for src, dst, src6, dst6, tag in (
        (p.ip4_a, p.ip4_b, p.ip6_a, p.ip6_b, "ab"),
        (p.ip4_b, p.ip4_a, p.ip6_b, p.ip6_a, "ba"),
    ):
        events += [
            (src, dst, f"udp:5000:udp-{tag}"),
            (dst, src, "icmp:3"),  # nobody listens: port unreachable
            (src6, dst6, f"udp:5000:udp-{tag}"),
            (dst6, src6, "icmp6:1"),
            (src, dst, "tcp:6000:S"),
            (dst, src, "tcp:6000:RA"),
            (src6, dst6, "tcp:6000:S"),
            (dst6, src6, "tcp:6000:RA"),
            (src, dst, f"icmp:8:{tag}"),
            (dst, src, f"icmp:0:{tag}"),
            (src6, dst6, f"icmp6:128:{tag}"),
            (dst6, src6, f"icmp6:129:{tag}"),
        ]
    return events


def describe(frame: bytes) -> tuple[str, str, str]:
    """(src, dst, what) of one captured Ethernet frame."""
    ip = dpkt.ethernet.Ethernet(frame).data
    family = socket.AF_INET if isinstance(ip, dpkt.ip.IP) else socket.AF_INET6
    src, dst = socket.inet_ntop(family, ip.src), socket.inet_ntop(family, ip.dst)
    l4 = ip.data
    if isinstance(l4, dpkt.udp.UDP):
        return src, dst, f"udp:{l4.dport}:{l4.data.decode()}"
    if isinstance(l4, dpkt.tcp.TCP):
        flags = "".join(c for c, bit in (("S", 2), ("R", 4), ("A", 16)) if l4.flags & bit)
        return src, dst, f"tcp:{min(l4.sport, l4.dport)}:{flags}"
    kind = "icmp" if isinstance(l4, dpkt.icmp.ICMP) else "icmp6"
    what = f"{kind}:{l4.type}"
    if l4.type in (0, 8, 128, 129):  # echo: the helper put its tag in the payload
        what += f":{bytes(l4.data)[4:].decode()}"
    return src, dst, what


def write_inputs(tmp: Path, p: VethPair) -> tuple[Path, Path]:
    """The captures and the endpoints (one on this node on the veth, one elsewhere)."""
    captures = [
        {
            "apiVersion": "projectcalico.org/v3",
            "kind": "PacketCapture",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"selector": 'app == "live"', "filters": filters},
        }
        for name, (filters, _) in CAPTURES.items()
    ]

    def wep(node: str, pod: str, iface: str) -> dict[str, object]:
        return {
            "apiVersion": "projectcalico.org/v3",
            "kind": "WorkloadEndpoint",
            "metadata": {
                "name": f"{node}-k8s-{pod}-eth0",
                "namespace": NAMESPACE,
                "labels": {"app": "live"},
            },
            "spec": {
                "node": node,
                "orchestrator": "k8s",
                "pod": pod,
                "endpoint": "eth0",
                "interfaceName": iface,
            },
        }

    endpoints = {
        "apiVersion": "projectcalico.org/v3",
        "kind": "WorkloadEndpointList",
        # The second endpoint is on another node: the agent must not touch its interface.
        "items": [wep(NODE, POD, p.dev_a), wep("node-elsewhere", "far-pod", p.dev_b)],
    }
    cap_file, ep_file = tmp / "captures.yaml", tmp / "endpoints.yaml"
    cap_file.write_text(yaml.safe_dump_all(captures))
    ep_file.write_text(yaml.safe_dump(endpoints))
    return cap_file, ep_file


def capture_files(directory: Path) -> list[Path]:
    """Every capture file in ``directory``, oldest first (rotated by time, then active)."""
    files = [f for f in directory.iterdir() if f.suffix == ".pcap"]
    parsed = {f: parse_file_name(f.name) for f in files}
    assert None not in parsed.values(), parsed

    def age(f: Path) -> tuple[bool, int]:
        rotated = parsed[f].rotated_us  # type: ignore[union-attr]
        return rotated is None, rotated or 0

    return sorted(files, key=age)


def wait_for(what: str, ok: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not ok():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def state_of(capture_dir: Path, name: str) -> str | None:
    path = capture_dir / NAMESPACE / name / f".status-{NODE}.yaml"
    try:
        data = yaml.safe_load(path.read_text())
    except (FileNotFoundError, yaml.YAMLError):
        return None  # not yet, or caught half-written
    return data.get("state") if isinstance(data, dict) else None


def tcpdump_listing(tcpdump: str, files: list[Path]) -> list[str]:
    """``tcpdump -r``'s view of the files in order: one line per packet, every byte in hex.

    Without timestamps: each AF_PACKET socket stamps a sent packet itself, microseconds apart.
    """
    lines: list[str] = []
    for f in files:
        out = subprocess.run(
            [tcpdump, "-r", str(f), "-nn", "-t", "-xx"], capture_output=True, text=True, check=True
        ).stdout
        lines += out.replace("\n\t", " ").splitlines()
    return lines


def test_live_run_matches_tcpdump(pair: VethPair, tmp_path: Path) -> None:
    tcpdump = require_tool("tcpdump")
    capture_file, endpoints_file = write_inputs(tmp_path, pair)
    capture_dir = tmp_path / "captures"
    out_path, err_path = tmp_path / "run.out", tmp_path / "run.err"
    dumps: dict[str, subprocess.Popen[str]] = {}
    run: subprocess.Popen[bytes] | None = None
    try:
        expressions = {name: expr for name, (_, expr) in CAPTURES.items()}
        expressions["noise"] = f"tcp port {NOISE_PORT}"  # proves the noise was on the wire
        for name, expression in expressions.items():
            dump = subprocess.Popen(
                pair.exec_a(tcpdump, "-i", pair.dev_a, "-n", "-U", "--immediate-mode",
                            "-w", str(tmp_path / f"ref-{name}.pcap"), expression),
                stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
            dumps[name] = dump
            assert dump.stderr is not None
            assert "listening on" in dump.stderr.readline()
        with out_path.open("wb") as out_file, err_path.open("wb") as err_file:
            run = subprocess.Popen(
                pair.exec_a(sys.executable, "-m", "packetcapture", "run", str(capture_file),
                            "--endpoints", str(endpoints_file), "--node", NODE,
                            "--capture-dir", str(capture_dir), "--live",
                            "--duration", str(DURATION),
                            # small files: the packets are spread over several rotated files
                            "--max-size-bytes", "1000", "--max-files", "100",
                            "--status-file", str(tmp_path / "status.yaml")),
                stdout=out_file, stderr=err_file, cwd=REPO,
            )  # fmt: skip
        wait_for(
            "the agent to start capturing",
            lambda: (
                all(state_of(capture_dir, n) == "WaitingForTraffic" for n in CAPTURES)
                or run.poll() is not None
            ),
            timeout=15,
        )
        assert run.poll() is None, err_path.read_text()

        for ns, dst4, dst6, tag in (
            (pair.ns_a, pair.ip4_b, pair.ip6_b, "ab"),
            (pair.ns_b, pair.ip4_a, pair.ip6_a, "ba"),
        ):
            sent = subprocess.run(
                ["ip", "netns", "exec", ns, sys.executable, str(TRAFFIC), dst4, dst6, tag],
                capture_output=True, text=True, check=True, timeout=10,
            )  # fmt: skip
            assert sent.stdout.strip() == "done"
            sh("ip", "netns", "exec", ns, sys.executable, "-c", NOISE, dst4, dst6,
               str(NOISE_PORT))  # fmt: skip
        wait_for(
            "the agent to see traffic",
            lambda: all(state_of(capture_dir, n) == "Capturing" for n in CAPTURES),
            timeout=5,
        )
        time.sleep(0.3)  # the last replies reach both capturers
        assert run.poll() is None, "the run ended before the traffic did: " + err_path.read_text()
        code = run.wait(timeout=DURATION + 15)
    finally:
        for dump in dumps.values():
            dump.send_signal(signal.SIGINT)
        for dump in dumps.values():
            try:
                dump.wait(5)
            except subprocess.TimeoutExpired:
                dump.kill()
                dump.wait()
            if dump.stderr is not None:
                dump.stderr.close()
        if run is not None and run.poll() is None:
            run.kill()
            run.wait()

    err = err_path.read_text()
    assert code == 0, err
    assert "Traceback" not in err

    # The final status, as `kubectl get packetcapture -o yaml` shows it.
    printed = yaml.safe_load(out_path.read_text())
    assert yaml.safe_load((tmp_path / "status.yaml").read_text()) == printed
    assert printed["kind"] == "List"
    items = {item["metadata"]["name"]: item for item in printed["items"]}
    assert sorted(items) == sorted(CAPTURES)

    events = expected_events(pair)
    want = {"everything": events, "tcp-only": [e for e in events if e[2].startswith("tcp:")]}
    assert len(want["everything"]) == 24 and len(want["tcp-only"]) == 8
    for name, item in items.items():
        directory = capture_dir / NAMESPACE / name
        ours = capture_files(directory)
        assert item["status"] == {
            "files": [
                {
                    "directory": str(capture_dir),
                    "fileNames": sorted(f.name for f in ours),
                    "node": NODE,
                    "state": "Finished",
                }
            ]
        }
        assert all(f.name.startswith(f"{POD}_{pair.dev_a}") for f in ours)
        # Reference and ours: same packets, byte for byte, in the same order.
        reference = tmp_path / f"ref-{name}.pcap"
        listing = tcpdump_listing(tcpdump, ours)
        assert listing == tcpdump_listing(tcpdump, [reference]), name
        got = [p for f in ours for p in read(f)]
        theirs = read(reference)
        assert [(d, w) for _, d, w in got] == [(d, w) for _, d, w in theirs], name
        assert all(abs(a[0] - b[0]) < 10_000_000 for a, b in zip(got, theirs, strict=True))
        assert [ts for ts, _, _ in got] == sorted(ts for ts, _, _ in got)
        # ... and those are exactly the packets sent that match this capture's filter.
        assert [describe(data) for _, data, _ in got] == want[name], name
        assert all(len(data) == wire for _, data, wire in got)
    noise = [describe(data)[2] for _, data, _ in read(tmp_path / "ref-noise.pcap")]
    assert noise == [f"tcp:{NOISE_PORT}:S", f"tcp:{NOISE_PORT}:RA"] * 4
    # Several rotated files, so reading "all of them, in order" was really tested.
    assert len(capture_files(capture_dir / NAMESPACE / "everything")) >= 2
    for name in CAPTURES:
        assert f"{NAMESPACE}/{name} on {NODE}: Finished" in err, err
        assert f"{NAMESPACE}/{name} {NAMESPACE}/{NODE}-k8s-{POD}-eth0 {pair.dev_a}: " in err
    assert f"{len(events)} packets" in err and "0 dropped" in err
    assert pair.dev_b not in err  # the other node's endpoint was never opened


def read(path: Path) -> list[tuple[int, bytes, int]]:
    with PcapReader(path) as reader:
        return [(ts, data, wire) for ts, data, wire in reader]


def test_agent_keeps_the_last_packets_of_a_removed_interface(tmp_path: Path) -> None:
    """The pod's interface goes away right after traffic: every frame is still in the file.

    The kernel has not handed the ring's last block over yet (its timeout is long here);
    the source reads it in place, then ends.
    """
    import packetcapture as pc
    from packetcapture.agent import NodeAgent
    from packetcapture.backends import AfPacketBackend
    from packetcapture.backends.afpacket import _in_netns
    from packetcapture.testing import conformance_frames

    frames = conformance_frames()
    with veth_pair(addresses=False, ipv6=False) as p:
        endpoint = pc.WorkloadEndpoint(
            metadata=pc.ObjectMeta(name="n-k8s-pod-eth0", namespace="ns", labels={"app": "a"}),
            spec=pc.WorkloadEndpointSpec(
                node=NODE, orchestrator="k8s", pod="pod", endpoint="eth0", interface_name=p.dev_a
            ),
        )
        capture = pc.PacketCapture(
            metadata=pc.ObjectMeta(name="cap", namespace="ns"),
            spec=pc.PacketCaptureSpec(selector="app == 'a'"),
        )
        agent = NodeAgent(
            NODE, AfPacketBackend(netns=p.ns_a, block_timeout_ms=5000), tmp_path, retry=None
        )
        try:
            agent.upsert_endpoint(endpoint)
            agent.apply(capture)
            agent.step(timeout=0)
            tx = _in_netns(p.ns_b, lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0))
            with tx:
                tx.bind((p.dev_b, 0))
                for frame in frames:
                    tx.send(frame)
            time.sleep(0.05)
            sh("ip", "-n", p.ns_a, "link", "del", p.dev_a)
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                agent.step(timeout=0.1)
                (iface,) = agent.details("ns", "cap").interfaces
                if iface.packets == len(frames):
                    break
            assert iface.packets == len(frames)
        finally:
            agent.close()
    (path,) = (tmp_path / "ns" / "cap").glob("*.pcap")
    with PcapReader(path) as reader:
        assert [d for _, d, _ in reader] == frames


def test_live_run_follows_the_link_down_and_up(pair: VethPair, tmp_path: Path) -> None:
    """Calico's lifecycle in `run --live`: link down -> stop, files kept, said on stderr
    without -v; link up -> capture again; the run goes on until it is told to stop."""
    capture_file, endpoints_file = write_inputs(tmp_path, pair)
    capture_dir = tmp_path / "captures"
    err_path = tmp_path / "run.err"
    with err_path.open("wb") as err_file:
        run = subprocess.Popen(
            pair.exec_a(sys.executable, "-m", "packetcapture", "run", str(capture_file),
                        "--endpoints", str(endpoints_file), "--node", NODE,
                        "--capture-dir", str(capture_dir), "--live"),
            stdout=subprocess.PIPE, stderr=err_file, cwd=REPO,
        )  # fmt: skip
    try:
        waiting = lambda: all(state_of(capture_dir, n) == "WaitingForTraffic" for n in CAPTURES)  # noqa: E731
        wait_for("the agent to start capturing", lambda: waiting() or run.poll() is not None, 15)
        sh("ip", "-n", pair.ns_a, "link", "set", pair.dev_a, "down")
        wait_for(
            "the captures to stop",
            lambda: all(state_of(capture_dir, n) == "Finished" for n in CAPTURES),
            timeout=10,
        )
        time.sleep(0.5)
        assert run.poll() is None, err_path.read_text()  # waits for the link to come back
        err = err_path.read_text()
        assert f"interface {pair.dev_a} went down (files kept; capturing again" in err
        sh("ip", "-n", pair.ns_a, "link", "set", pair.dev_a, "up")
        wait_for("the captures to start again", waiting, timeout=10)
        run.send_signal(signal.SIGINT)
        out, _ = run.communicate(timeout=15)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    err = err_path.read_text()
    assert run.returncode == 0, err
    assert "Traceback" not in err
    printed = yaml.safe_load(out)
    assert {item["status"]["files"][0]["state"] for item in printed["items"]} == {"Finished"}


def test_agent_writes_or_counts_every_packet_queued_at_stop(tmp_path: Path) -> None:
    """100k frames wait in the ring when the agent stops: written + dropped == sent."""
    import packetcapture as pc
    from packetcapture.agent import NodeAgent
    from packetcapture.backends import AfPacketBackend
    from packetcapture.backends.afpacket import _in_netns
    from packetcapture.testing import conformance_frames

    count = 100_000
    frame = conformance_frames()[0]
    with veth_pair(addresses=False, ipv6=False) as p:
        endpoint = pc.WorkloadEndpoint(
            metadata=pc.ObjectMeta(name="n-k8s-pod-eth0", namespace="ns", labels={"app": "a"}),
            spec=pc.WorkloadEndpointSpec(
                node=NODE, orchestrator="k8s", pod="pod", endpoint="eth0", interface_name=p.dev_a
            ),
        )
        capture = pc.PacketCapture(
            metadata=pc.ObjectMeta(name="cap", namespace="ns"),
            spec=pc.PacketCaptureSpec(selector="app == 'a'"),
        )
        agent = NodeAgent(NODE, AfPacketBackend(netns=p.ns_a), tmp_path, retry=None)
        try:
            agent.upsert_endpoint(endpoint)
            agent.apply(capture)
            agent.step(timeout=0)
            tx = _in_netns(p.ns_b, lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0))
            with tx:
                tx.bind((p.dev_b, 0))
                for _ in range(count):
                    tx.send(frame)
            time.sleep(0.2)  # the last ones reach the ring
        finally:
            agent.close()  # no step(): everything is still queued
        (iface,) = agent.details("ns", "cap").interfaces
    assert iface.packets > 4096  # more than the one batch read at stop before
    assert iface.packets + iface.dropped == count, iface
    (path,) = (tmp_path / "ns" / "cap").glob("*.pcap")
    with PcapReader(path) as reader:
        assert sum(1 for _ in reader) == iface.packets
