"""NodeAgent with the memory backend and a fake clock: Calico's lifecycle rules."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from pathlib import Path

import attrs
import dpkt
import pytest

import packetcapture as pc
from packetcapture.agent import NodeAgent, effective_selector, merge_status
from packetcapture.pcap import CaptureSettings, PcapReader
from packetcapture.testing import FakeClock, MemoryBackend

T0 = dt.datetime(2021, 8, 26, 12, 0, tzinfo=dt.UTC)
NODE = "node-1"


def frame(dport: int, proto: str = "tcp") -> bytes:
    if proto == "tcp":
        body: dpkt.Packet = dpkt.tcp.TCP(sport=40000, dport=dport, flags=dpkt.tcp.TH_SYN)
        p = 6
    else:
        body = dpkt.udp.UDP(sport=40000, dport=dport)
        body.ulen = len(body)
        p = 17
    ip = dpkt.ip.IP(src=b"\x0a\x00\x00\x01", dst=b"\x0a\x00\x00\x02", p=p, data=body)
    ip.len = len(ip)
    return bytes(dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\xee" * 6, data=ip))


def capture(
    name: str = "cap",
    namespace: str = "ns",
    selector: str = 'app == "web"',
    filters: tuple[pc.PacketCaptureRule, ...] = (),
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
) -> pc.PacketCapture:
    return pc.PacketCapture(
        metadata=pc.ObjectMeta(name=name, namespace=namespace),
        spec=pc.PacketCaptureSpec(
            selector=selector, filters=filters, start_time=start, end_time=end
        ),
    )


def endpoint(
    pod: str, iface: str, labels: dict[str, str], namespace: str = "ns", node: str = NODE
) -> pc.WorkloadEndpoint:
    return pc.WorkloadEndpoint(
        metadata=pc.ObjectMeta(name=f"{node}-k8s-{pod}-eth0", namespace=namespace, labels=labels),
        spec=pc.WorkloadEndpointSpec(
            node=node, orchestrator="k8s", pod=pod, endpoint="eth0", interface_name=iface
        ),
    )


@attrs.define
class Rig:
    agent: NodeAgent
    backend: MemoryBackend
    clock: FakeClock
    root: Path
    statuses: list[tuple[str, str, pc.PacketCaptureStatus]]

    def step(self, seconds: float = 0) -> None:
        if seconds:
            self.clock.advance(seconds)
        self.agent.step(timeout=0)

    def files(self, namespace: str = "ns", name: str = "cap") -> list[str]:
        d = self.root / namespace / name
        return sorted(p.name for p in d.glob("*.pcap")) if d.exists() else []

    def state(self, namespace: str = "ns", name: str = "cap") -> pc.CaptureState | None:
        return self.agent.status(namespace, name).files[0].state


_AGENTS: list[NodeAgent] = []


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    clock = FakeClock(T0)
    backend = MemoryBackend(clock=lambda: int(clock.now().timestamp() * 1e9))
    statuses: list[tuple[str, str, pc.PacketCaptureStatus]] = []
    agent = NodeAgent(
        NODE,
        backend,
        tmp_path,
        CaptureSettings(max_size_bytes=1_000_000, max_files=2),
        clock,
        on_status_change=lambda ns, n, s: statuses.append((ns, n, s)),
    )
    _AGENTS.append(agent)
    yield Rig(agent, backend, clock, tmp_path, statuses)
    _AGENTS.remove(agent)
    agent.close()


def count(path: Path) -> int:
    for agent in _AGENTS:
        agent.flush()
    with PcapReader(path) as reader:
        return sum(1 for _ in reader)


def total(rig: Rig) -> int:
    return sum(count(rig.root / "ns" / "cap" / name) for name in rig.files())


def test_effective_selector_is_namespace_scoped() -> None:
    assert effective_selector('app == "web"', "ns") == (
        '(app == "web" && projectcalico.org/namespace == "ns")'
    )
    assert effective_selector("", "x") == '(all() && projectcalico.org/namespace == "x")'


def test_selects_only_own_namespace_and_node(rig: Rig) -> None:
    rig.agent.apply(capture())
    rig.agent.upsert_endpoint(endpoint("web-1", "cali1", {"app": "web"}))
    rig.agent.upsert_endpoint(endpoint("web-2", "cali2", {"app": "web"}, namespace="other"))
    rig.agent.upsert_endpoint(endpoint("web-3", "cali3", {"app": "web"}, node="node-2"))
    rig.agent.upsert_endpoint(endpoint("db-1", "cali4", {"app": "db"}))
    assert [e.spec.pod for e in rig.agent.matches("ns", "cap")] == ["web-1"]
    rig.step()
    assert rig.state() is pc.CaptureState.WAITING_FOR_TRAFFIC
    assert rig.files() == []  # a file is created on the first packet
    for iface in ("cali1", "cali2", "cali3", "cali4"):
        rig.backend.inject(iface, frame(80))
    rig.step()
    assert rig.state() is pc.CaptureState.CAPTURING
    assert rig.files() == ["web-1_cali1.pcap"]
    assert count(rig.root / "ns" / "cap" / "web-1_cali1.pcap") == 1


def test_filters_apply(rig: Rig) -> None:
    rules = (pc.PacketCaptureRule(protocol="TCP", ports=(pc.PortRange(80, 80),)),)
    rig.agent.apply(capture(filters=rules))
    rig.agent.upsert_endpoint(endpoint("web-1", "cali1", {"app": "web"}))
    rig.step()
    for port, proto in ((80, "tcp"), (443, "tcp"), (80, "udp"), (80, "tcp")):
        rig.backend.inject("cali1", frame(port, proto))
    rig.step()
    details = rig.agent.details("ns", "cap")
    assert details.interfaces[0].packets == 2
    assert details.interfaces[0].filtered == 2
    assert details.expression == "tcp and (port 80)"


def test_label_change_stops_and_removes_files(rig: Rig) -> None:
    rig.agent.apply(capture())
    wep = endpoint("web-1", "cali1", {"app": "web"})
    rig.agent.upsert_endpoint(wep)
    rig.step()
    rig.backend.inject("cali1", frame(80))
    rig.step()
    assert rig.files() == ["web-1_cali1.pcap"]
    rig.agent.upsert_endpoint(attrs.evolve(wep, metadata=attrs.evolve(wep.metadata, labels={})))
    rig.step()
    assert rig.files() == []
    assert rig.agent.matches("ns", "cap") == []
    # Matching again starts a fresh capture.
    rig.agent.upsert_endpoint(wep)
    rig.step()
    assert rig.state() is pc.CaptureState.WAITING_FOR_TRAFFIC


def test_endpoint_delete_removes_files(rig: Rig) -> None:
    rig.agent.apply(capture())
    rig.agent.upsert_endpoint(endpoint("web-1", "cali1", {"app": "web"}))
    rig.agent.upsert_endpoint(endpoint("web-2", "cali2", {"app": "web"}))
    rig.step()
    rig.backend.inject("cali1", frame(80))
    rig.backend.inject("cali2", frame(80))
    rig.step()
    assert rig.files() == ["web-1_cali1.pcap", "web-2_cali2.pcap"]
    rig.agent.delete_endpoint("ns", f"{NODE}-k8s-web-1-eth0")
    rig.step()
    assert rig.files() == ["web-2_cali2.pcap"]


def test_interface_down_keeps_files_and_restarts(rig: Rig) -> None:
    rig.agent.apply(capture())
    rig.agent.upsert_endpoint(endpoint("web-1", "cali1", {"app": "web"}))
    rig.step()
    rig.backend.inject("cali1", frame(80))
    rig.step()
    rig.backend.remove_interface("cali1")  # the source ends: interface gone
    rig.step()
    assert rig.files() == ["web-1_cali1.pcap"]
    assert rig.state() is pc.CaptureState.FINISHED
    rig.agent.set_interface_up("cali1", True)
    rig.step()
    iface = rig.agent.details("ns", "cap").interfaces[0]
    assert iface.state is pc.CaptureState.WAITING_FOR_TRAFFIC
    # The node already captured in this window, so it still reports Capturing.
    assert rig.state() is pc.CaptureState.CAPTURING
    rig.backend.inject("cali1", frame(80))
    rig.step()
    # The earlier file is kept (rotated aside on restart) and the new packet follows.
    assert len(rig.files()) == 2
    assert total(rig) == 2


def test_schedule_start_and_end(rig: Rig) -> None:
    start, end = T0 + dt.timedelta(minutes=10), T0 + dt.timedelta(minutes=20)
    rig.agent.apply(capture(start=start, end=end))
    rig.agent.upsert_endpoint(endpoint("web-1", "cali1", {"app": "web"}))
    rig.step()
    assert rig.state() is pc.CaptureState.SCHEDULED
    rig.backend.inject("cali1", frame(80))  # nobody is listening yet
    rig.step()
    assert rig.files() == []
    assert rig.agent.step(timeout=0) == start  # the next deadline
    rig.clock.set(start)
    rig.step()
    assert rig.state() is pc.CaptureState.WAITING_FOR_TRAFFIC
    rig.backend.inject("cali1", frame(80))
    rig.step()
    assert rig.state() is pc.CaptureState.CAPTURING
    rig.clock.set(end)
    rig.step()
    assert rig.state() is pc.CaptureState.FINISHED
    rig.backend.inject("cali1", frame(80))
    rig.step()
    assert count(rig.root / "ns" / "cap" / "web-1_cali1.pcap") == 1
    assert rig.agent.idle()


def test_end_time_moved_to_past_stops_and_spec_change_keeps_files(rig: Rig) -> None:
    cap = capture()
    rig.agent.apply(cap)
    rig.agent.upsert_endpoint(endpoint("web-1", "cali1", {"app": "web"}))
    rig.step()
    rig.backend.inject("cali1", frame(80))
    rig.step()
    rules = (pc.PacketCaptureRule(protocol="UDP"),)
    rig.agent.apply(attrs.evolve(cap, spec=attrs.evolve(cap.spec, filters=rules)))
    rig.step()
    assert rig.files() == ["web-1_cali1.pcap"]  # restart keeps files
    rig.backend.inject("cali1", frame(80))  # TCP: filtered now
    rig.backend.inject("cali1", frame(53, "udp"))
    rig.step()
    assert total(rig) == 2
    past = T0 - dt.timedelta(hours=1)
    rig.agent.apply(
        attrs.evolve(
            cap, spec=attrs.evolve(cap.spec, start_time=past - dt.timedelta(hours=1), end_time=past)
        )
    )
    rig.step()
    assert rig.state() is pc.CaptureState.FINISHED


def test_delete_capture_removes_files(rig: Rig) -> None:
    rig.agent.apply(capture())
    rig.agent.upsert_endpoint(endpoint("web-1", "cali1", {"app": "web"}))
    rig.step()
    rig.backend.inject("cali1", frame(80))
    rig.step()
    rig.agent.delete("ns", "cap")
    assert not (rig.root / "ns" / "cap").exists()
    with pytest.raises(KeyError):
        rig.agent.status("ns", "cap")


def test_delete_capture_keeping_files(rig: Rig) -> None:
    rig.agent.apply(capture())
    rig.agent.upsert_endpoint(endpoint("web-1", "cali1", {"app": "web"}))
    rig.step()
    rig.backend.inject("cali1", frame(80))
    rig.step()
    rig.agent.delete("ns", "cap", clean_files=False)
    assert rig.files() == ["web-1_cali1.pcap"]


def test_backend_failure_goes_to_error_then_retries(rig: Rig) -> None:
    rig.agent.apply(capture())
    rig.agent.upsert_endpoint(endpoint("web-1", "cali1", {"app": "web"}))
    rig.step()
    rig.backend.fail("cali1", "disk on fire")
    rig.step()
    assert rig.state() is pc.CaptureState.ERROR
    details = rig.agent.details("ns", "cap")
    assert "disk on fire" in (details.interfaces[0].error or "")
    deadline = details.next_deadline
    assert deadline is not None and deadline > rig.clock.now()
    rig.clock.set(deadline)
    rig.step()
    assert rig.state() is pc.CaptureState.WAITING_FOR_TRAFFIC


def test_open_failure_is_error_with_reason(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    backend = MemoryBackend(interfaces=["cali-other"])
    with NodeAgent(NODE, backend, tmp_path, clock=clock, retry=None) as agent:
        agent.apply(capture())
        agent.upsert_endpoint(endpoint("web-1", "cali1", {"app": "web"}))
        agent.step(timeout=0)
        status = agent.status("ns", "cap").files[0]
        assert status.state is pc.CaptureState.ERROR
        assert "no such interface" in (agent.details("ns", "cap").interfaces[0].error or "")
        assert agent.idle()  # no retry policy: nothing more will happen


def test_status_shape_and_callbacks(rig: Rig) -> None:
    rig.agent.apply(capture())
    rig.agent.upsert_endpoint(endpoint("web-1", "cali1", {"app": "web"}))
    rig.step()
    rig.backend.inject("cali1", frame(80))
    rig.step()
    status = rig.agent.status("ns", "cap")
    assert status == pc.PacketCaptureStatus(
        files=(
            pc.PacketCaptureFile(
                directory=str(rig.root),
                file_names=("web-1_cali1.pcap",),
                node=NODE,
                state=pc.CaptureState.CAPTURING,
            ),
        )
    )
    states = [s.files[0].state for _, _, s in rig.statuses]
    assert states[-2:] == [pc.CaptureState.WAITING_FOR_TRAFFIC, pc.CaptureState.CAPTURING]


def test_rotation_through_agent(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    backend = MemoryBackend()
    settings = CaptureSettings(max_size_bytes=2000, max_files=2)
    with NodeAgent(NODE, backend, tmp_path, settings, clock) as agent:
        agent.apply(capture())
        agent.upsert_endpoint(endpoint("web-1", "cali1", {"app": "web"}))
        agent.step(timeout=0)
        for _ in range(200):
            backend.inject("cali1", frame(80) + b"x" * 100)
            clock.advance(0.001)
            agent.step(timeout=0)
        names = agent.status("ns", "cap").files[0].file_names
        details = agent.details("ns", "cap").interfaces[0]
    rotated = [n for n in names if "-" in n.removeprefix("web-1_cali1")]
    assert len(rotated) == 2 and "web-1_cali1.pcap" in names
    kept = sum(count(tmp_path / "ns" / "cap" / n) for n in names)
    assert kept + details.packets_deleted == details.packets == 200


def test_merge_status_last_writer_wins() -> None:
    a1 = pc.PacketCaptureFile(
        directory="/d", file_names=("a",), node="a", state=pc.CaptureState.CAPTURING
    )
    b1 = pc.PacketCaptureFile(
        directory="/d", file_names=("b",), node="b", state=pc.CaptureState.SCHEDULED
    )
    a2 = attrs.evolve(a1, state=pc.CaptureState.FINISHED)
    merged = merge_status(
        [pc.PacketCaptureStatus(files=(a1,)), b1, pc.PacketCaptureStatus(files=(a2,))]
    )
    assert merged.files == (a2, b1)


def test_thread_safe_calls_while_running(rig: Rig) -> None:
    stop = threading.Event()
    runner = threading.Thread(target=rig.agent.run, args=(stop,), kwargs={"max_wait": 0.05})
    runner.start()
    try:
        for i in range(20):
            rig.agent.apply(capture(name=f"cap-{i}"))
            rig.agent.upsert_endpoint(endpoint(f"web-{i}", f"cali{i}", {"app": "web"}))
        for i in range(20):
            rig.backend.inject(f"cali{i}", frame(80))
        for _ in range(200):
            if all(
                rig.agent.details("ns", f"cap-{i}").state is pc.CaptureState.CAPTURING
                for i in range(20)
            ):
                break
            threading.Event().wait(0.02)
        for i in range(0, 20, 2):
            rig.agent.delete("ns", f"cap-{i}")
    finally:
        stop.set()
        runner.join(10)
    assert not runner.is_alive()
    assert sorted(c.name for c in rig.agent.captures()) == sorted(
        f"cap-{i}" for i in range(1, 20, 2)
    )
    for i in range(1, 20, 2):
        assert rig.agent.details("ns", f"cap-{i}").state is pc.CaptureState.CAPTURING
        assert len(rig.agent.details("ns", f"cap-{i}").interfaces) == 20


def test_invalid_capture_rejected(rig: Rig) -> None:
    with pytest.raises(pc.ValidationError):
        rig.agent.apply(capture(selector="malformed&"))


def test_endpoint_update_brings_a_removed_interface_back(rig: Rig) -> None:
    rig.agent.apply(capture())
    wep = endpoint("web-1", "cali1", {"app": "web"})
    rig.agent.upsert_endpoint(wep)
    rig.step()
    rig.backend.inject("cali1", frame(80))
    rig.step()
    rig.backend.remove_interface("cali1")  # pod restarting: the interface goes away
    rig.step()
    assert rig.agent.details("ns", "cap").interfaces[0].state is pc.CaptureState.FINISHED
    rig.agent.upsert_endpoint(wep)  # the same object again (a watch resync): nothing happens
    rig.step()
    assert rig.agent.details("ns", "cap").interfaces[0].state is pc.CaptureState.FINISHED
    restarted = attrs.evolve(wep, spec=attrs.evolve(wep.spec, container_id="abc123"))
    rig.agent.upsert_endpoint(restarted)  # the new container: capture again, files kept
    rig.step()
    assert rig.agent.details("ns", "cap").interfaces[0].state is pc.CaptureState.WAITING_FOR_TRAFFIC
    rig.backend.inject("cali1", frame(80))
    rig.step()
    assert total(rig) == 2


def test_endpoint_update_retries_an_interface_in_error(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    backend = MemoryBackend(interfaces=[])
    with NodeAgent(NODE, backend, tmp_path, clock=clock) as agent:
        agent.apply(capture())
        wep = endpoint("web-1", "cali1", {"app": "web"})
        agent.upsert_endpoint(wep)
        agent.step(timeout=0)
        assert agent.details("ns", "cap").state is pc.CaptureState.ERROR
        backend.add_interface("cali1")
        agent.upsert_endpoint(
            attrs.evolve(wep, spec=attrs.evolve(wep.spec, mac="02:00:00:00:00:01"))
        )
        agent.step(timeout=0)  # no need to wait for the retry deadline
        assert agent.details("ns", "cap").state is pc.CaptureState.WAITING_FOR_TRAFFIC
