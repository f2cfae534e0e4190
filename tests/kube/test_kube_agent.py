"""The node agent against the API emulator: the real client over HTTP, the replay backend."""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.kube.kube_helpers import (
    PC,
    capture,
    entries,
    pod,
    replay_dir,
    running_agent,
    wait_for,
)

pytest.importorskip("kubernetes")

from packetcapture.kube import CaptureResource, interface_name
from packetcapture.kube._health import HealthServer
from tests.kube.emulator import ApiEmulator


def files_of(emulator: ApiEmulator, ns: str, name: str, node: str) -> list[str] | None:
    entry = entries(emulator, ns, name).get(node)
    return None if entry is None else entry.get("fileNames")


def pcap_name(ns: str, pod_name: str) -> str:
    return f"{pod_name}_{interface_name(ns, pod_name)}.pcap"


def on_disk(root: Path, ns: str, name: str) -> list[str]:
    directory = root / ns / name
    return sorted(p.name for p in directory.glob("*.pcap")) if directory.is_dir() else []


def test_capture_selected_pods_on_this_node_only(
    emulator: ApiEmulator, api_client: Any, tmp_path: Path
) -> None:
    emulator.create(pod("web", "a", "node-1", {"app": "web"}))
    emulator.create(pod("web", "b", "node-1", {"app": "db"}))
    emulator.create(pod("web", "c", "node-2", {"app": "web"}))
    emulator.create(pod("other", "d", "node-1", {"app": "web"}))  # another namespace
    replay = replay_dir(
        tmp_path / "replay", [("web", "a"), ("web", "b"), ("web", "c"), ("other", "d")]
    )
    root = tmp_path / "pcap"
    with running_agent(api_client, "node-1", root, replay) as kube:
        emulator.create(capture("web", "cap", 'app == "web"'))
        got = wait_for(lambda: files_of(emulator, "web", "cap", "node-1"), what="status files")
        assert got == [pcap_name("web", "a")]
        assert (root / "web" / "cap" / pcap_name("web", "a")).stat().st_size > 24
        entry = entries(emulator, "web", "cap")["node-1"]
        assert entry["directory"] == str(root)
        assert entry["state"] in ("Capturing", "Finished", "WaitingForTraffic")
        assert [e.spec.pod for e in kube.agent.matches("web", "cap")] == ["a"]
        assert on_disk(root, "other", "cap") == []
    # Shut down: the final status of this node says Finished, files kept.
    assert kube.final == [True]  # type: ignore[attr-defined]
    assert entries(emulator, "web", "cap")["node-1"]["state"] == "Finished"
    assert on_disk(root, "web", "cap") == [pcap_name("web", "a")]


def test_each_node_writes_its_own_entry(
    emulator: ApiEmulator, api_client: Any, tmp_path: Path
) -> None:
    pods = [("ns", f"p{i}") for i in range(3)]
    for i, (ns, name) in enumerate(pods):
        emulator.create(pod(ns, name, f"node-{i}", {"app": "x"}))
    replay = replay_dir(tmp_path / "replay", pods)
    # Every PUT of a status meets a 409 first: the writers must re-read and retry.
    emulator.fail_next(6, 409, method="PUT", path_contains="/status")
    with (
        running_agent(api_client, "node-0", tmp_path / "n0", replay),
        running_agent(api_client, "node-1", tmp_path / "n1", replay),
        running_agent(api_client, "node-2", tmp_path / "n2", replay),
    ):
        emulator.create(capture("ns", "cap", "all()"))

        def all_three() -> bool:
            got = entries(emulator, "ns", "cap")
            return all(got.get(f"node-{i}", {}).get("fileNames") for i in range(3))

        wait_for(all_three, what="three entries with files")
        got = entries(emulator, "ns", "cap")
        for i in range(3):
            assert got[f"node-{i}"]["fileNames"] == [pcap_name("ns", f"p{i}")]
            assert got[f"node-{i}"]["directory"] == str(tmp_path / f"n{i}")
    assert len(entries(emulator, "ns", "cap")) == 3


def test_relabel_starts_and_stops_capture_and_removes_files(
    emulator: ApiEmulator, api_client: Any, tmp_path: Path
) -> None:
    emulator.create(pod("ns", "a", "n1", {"capture": "yes"}))
    emulator.create(pod("ns", "b", "n1", {"capture": "no"}))
    replay = replay_dir(tmp_path / "replay", [("ns", "a"), ("ns", "b")])
    root = tmp_path / "pcap"
    with running_agent(api_client, "n1", root, replay):
        emulator.create(capture("ns", "cap", 'capture == "yes"'))
        wait_for(lambda: files_of(emulator, "ns", "cap", "n1") == [pcap_name("ns", "a")])
        # b starts matching: captured.
        emulator.patch("v1", "Pod", "ns", "b", {"metadata": {"labels": {"capture": "yes"}}})
        both = sorted([pcap_name("ns", "a"), pcap_name("ns", "b")])
        wait_for(lambda: files_of(emulator, "ns", "cap", "n1") == both, what="b captured")
        # a stops matching: its capture stops and its files go, as Calico does.
        emulator.patch("v1", "Pod", "ns", "a", {"metadata": {"labels": {"capture": "no"}}})
        wait_for(
            lambda: files_of(emulator, "ns", "cap", "n1") == [pcap_name("ns", "b")],
            what="a's files removed from status",
        )
        assert on_disk(root, "ns", "cap") == [pcap_name("ns", "b")]


def test_namespace_labels_re_evaluate_selectors(
    emulator: ApiEmulator, api_client: Any, tmp_path: Path
) -> None:
    emulator.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ns"}})
    emulator.create(pod("ns", "a", "n1"))
    replay = replay_dir(tmp_path / "replay", [("ns", "a")])
    with running_agent(api_client, "n1", tmp_path / "pcap", replay) as kube:
        emulator.create(capture("ns", "cap", 'pcns.env == "prod"'))
        wait_for(lambda: entries(emulator, "ns", "cap").get("n1"), what="an entry")
        assert kube.agent.matches("ns", "cap") == []
        emulator.patch("v1", "Namespace", None, "ns", {"metadata": {"labels": {"env": "prod"}}})
        wait_for(lambda: files_of(emulator, "ns", "cap", "n1") == [pcap_name("ns", "a")])


def test_delete_capture_stops_and_cleans(
    emulator: ApiEmulator, api_client: Any, tmp_path: Path
) -> None:
    emulator.create(pod("ns", "a", "n1"))
    replay = replay_dir(tmp_path / "replay", [("ns", "a")])
    root = tmp_path / "pcap"
    with running_agent(api_client, "n1", root, replay) as kube:
        emulator.create(capture("ns", "cap"))
        wait_for(lambda: files_of(emulator, "ns", "cap", "n1"), what="files")
        assert on_disk(root, "ns", "cap")
        emulator.delete(*PC, "ns", "cap")
        wait_for(lambda: not (root / "ns" / "cap").exists(), what="files cleaned")
        assert kube.agent.captures() == []
        assert kube.status_writer.pending() == 0


def test_deleted_namespace_is_handled(
    emulator: ApiEmulator, api_client: Any, tmp_path: Path
) -> None:
    emulator.create(pod("gone", "a", "n1"))
    emulator.create(pod("stays", "b", "n1"))
    replay = replay_dir(tmp_path / "replay", [("gone", "a"), ("stays", "b")])
    root = tmp_path / "pcap"
    with running_agent(api_client, "n1", root, replay) as kube:
        emulator.create(capture("gone", "cap"))
        emulator.create(capture("stays", "cap"))
        wait_for(lambda: files_of(emulator, "gone", "cap", "n1"), what="files in gone")
        emulator.delete("v1", "Namespace", None, "gone")
        wait_for(lambda: not (root / "gone" / "cap").exists(), what="gone's files cleaned")
        assert [c.key for c in kube.agent.captures()] == [("stays", "cap")]
        assert kube.live() and kube.ready()
        # Still working: a new pod in the other namespace is captured.
        (tmp_path / "replay" / f"{interface_name('stays', 'c')}.pcap").write_bytes(
            (replay / f"{interface_name('stays', 'b')}.pcap").read_bytes()
        )
        emulator.create(pod("stays", "c", "n1"))
        want = sorted([pcap_name("stays", "b"), pcap_name("stays", "c")])
        wait_for(lambda: files_of(emulator, "stays", "cap", "n1") == want, what="c captured")


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ({"selector": "malformed&"}, "selector"),
        ({"filters": [{"protocol": "ICMP", "ports": [80]}]}, "does not accept ports"),
        ({"filters": [{"protocol": "tcp"}]}, "protocol"),
        (
            {"startTime": "2030-01-01T00:00:00Z", "endTime": "2029-01-01T00:00:00Z"},
            "startTime",
        ),
        ({"selector": "all()", "bogus": 1}, "bogus"),
    ],
    ids=["selector", "ports-with-icmp", "lower-case-protocol", "end-before-start", "unknown-field"],
)
def test_invalid_capture_gets_an_error_entry_and_the_agent_goes_on(
    spec: dict[str, Any],
    says: str,
    emulator: ApiEmulator,
    api_client: Any,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="packetcapture.kube")
    emulator.create(pod("ns", "a", "n1"))
    replay = replay_dir(tmp_path / "replay", [("ns", "a")])
    with running_agent(api_client, "n1", tmp_path / "pcap", replay) as kube:
        bad = capture("ns", "bad")
        bad["spec"] = spec
        emulator.create(bad)
        emulator.create(capture("ns", "good"))
        entry = wait_for(lambda: entries(emulator, "ns", "bad").get("n1"), what="Error entry")
        assert entry["state"] == "Error"
        assert entry["fileNames"] == []
        lines = [r.getMessage() for r in caplog.records if "ns/bad is invalid" in r.getMessage()]
        assert len(lines) == 1 and says in lines[0]
        wait_for(lambda: files_of(emulator, "ns", "good", "n1"), what="the good one captured")
        assert kube.live()
        # Fixed: it captures.
        emulator.patch(*PC, "ns", "bad", {"spec": None})
        fixed = {"selector": "all()"}
        emulator.patch(*PC, "ns", "bad", {"spec": fixed})
        wait_for(
            lambda: files_of(emulator, "ns", "bad", "n1") == [pcap_name("ns", "a")],
            what="fixed capture captures",
        )


def test_odd_pods_never_stop_the_agent(
    emulator: ApiEmulator, api_client: Any, tmp_path: Path
) -> None:
    emulator.create(pod("ns", "hostnet", "n1", {"app": "x"}, host_network=True))
    emulator.create(pod("ns", "pending", "n1", {"app": "x"}, ip=None))
    emulator.create(pod("ns", "done", "n1", {"app": "x"}, phase="Succeeded"))
    weird = pod("ns", "weird", "n1", {"app": "x"})
    weird["metadata"]["labels"] = {"app": "x", "num": 7, "null": None, "e": ""}
    emulator.create(weird)
    replay = replay_dir(tmp_path / "replay", [("ns", "weird")])
    with running_agent(api_client, "n1", tmp_path / "pcap", replay) as kube:
        emulator.create(capture("ns", "cap", 'app == "x" && num == "7" && has(null)'))
        wait_for(lambda: files_of(emulator, "ns", "cap", "n1") == [pcap_name("ns", "weird")])
        assert [e.spec.pod for e in kube.agent.matches("ns", "cap")] == ["weird"]


def _state(kube: Any, root: Path, emulator: ApiEmulator) -> dict[str, Any]:
    agent = kube.agent
    result: dict[str, Any] = {}
    for c in agent.captures():
        ns, name = c.key
        result[f"{ns}/{name}"] = {
            "pods": sorted(e.spec.pod for e in agent.matches(ns, name)),
            "disk": on_disk(root, ns, name),
            "status": files_of(emulator, ns, name, "n1"),
        }
    return result


@pytest.mark.parametrize("compacted", [False, True], ids=["resume", "410"])
def test_api_going_away_and_back_ends_in_the_same_state(
    compacted: bool, api_client: Any, tmp_path: Path
) -> None:
    emulator = ApiEmulator(bookmark_interval=30)
    emulator.start()
    client = emulator.api_client()
    try:
        names = ["a", "b", "c", "d"]
        for n in names[:3]:
            emulator.create(pod("ns", n, "n1", {"app": "web"}))
        replay = replay_dir(tmp_path / "replay", [("ns", n) for n in names])
        root = tmp_path / "pcap"
        with running_agent(client, "n1", root, replay, watch_seconds=2) as kube:
            emulator.create(capture("ns", "keep", 'app == "web"'))
            emulator.create(capture("ns", "drop", "all()"))
            wait_for(lambda: len(files_of(emulator, "ns", "keep", "n1") or []) == 3)
            wait_for(lambda: len(files_of(emulator, "ns", "drop", "n1") or []) == 3)
            emulator.set_down(True)
            # While the agent cannot see the API:
            emulator.delete("v1", "Pod", "ns", "a")
            emulator.patch("v1", "Pod", "ns", "b", {"metadata": {"labels": {"app": "db"}}})
            emulator.create(pod("ns", "d", "n1", {"app": "web"}))
            emulator.delete(*PC, "ns", "drop")
            emulator.create(capture("ns", "new", 'app == "db"'))
            if compacted:
                emulator.compact()
            emulator.set_down(False)
            expected = {
                "ns/keep": {
                    "pods": ["c", "d"],
                    "disk": sorted([pcap_name("ns", "c"), pcap_name("ns", "d")]),
                    "status": sorted([pcap_name("ns", "c"), pcap_name("ns", "d")]),
                },
                "ns/new": {
                    "pods": ["b"],
                    "disk": [pcap_name("ns", "b")],
                    "status": [pcap_name("ns", "b")],
                },
            }
            wait_for(
                lambda: _state(kube, root, emulator) == expected,
                timeout=20,
                what=f"the same state as without the outage: {expected}",
            )
            assert not (root / "ns" / "drop").exists()
            relists = sum(r.lists for r in kube.reflectors)
            assert relists > len(kube.reflectors) if compacted else True
        client.close()
    finally:
        emulator.stop()


def test_status_writes_are_coalesced(
    emulator: ApiEmulator, api_client: Any, tmp_path: Path
) -> None:
    for i in range(5):
        emulator.create(pod("ns", f"p{i}", "n1"))
    replay = replay_dir(tmp_path / "replay", [("ns", f"p{i}") for i in range(5)])
    with running_agent(api_client, "n1", tmp_path / "pcap", replay, status_interval=0.5):
        emulator.create(capture("ns", "cap"))
        wait_for(lambda: len(files_of(emulator, "ns", "cap", "n1") or []) == 5, what="5 files")
        wait_for(lambda: entries(emulator, "ns", "cap")["n1"]["state"] == "Finished")
    puts = [r for r in emulator.requests if r.method == "PUT" and r.path.endswith("/status")]
    # Five interfaces start, see traffic and end: many agent status changes, few writes.
    assert 1 <= len(puts) <= 6


def test_dry_run_logs_and_writes_nothing(
    emulator: ApiEmulator, api_client: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="packetcapture.kube")
    emulator.create(pod("ns", "a", "n1", {"app": "x"}))
    with running_agent(api_client, "n1", tmp_path / "pcap", None, dry_run=True) as kube:
        emulator.create(capture("ns", "cap", 'app == "x"'))
        wait_for(lambda: kube.agent.matches("ns", "cap"), what="a match")
        emulator.patch("v1", "Pod", "ns", "a", {"metadata": {"labels": {"app": "y"}}})
        wait_for(lambda: not kube.agent.matches("ns", "cap"), what="match gone")
    messages = [r.getMessage() for r in caplog.records]
    iface = interface_name("ns", "a")
    assert f"dry run: capture ns/cap would capture pod a ({iface})" in messages
    assert any("would stop capturing" in m for m in messages)
    assert not (tmp_path / "pcap").exists()
    assert not [r for r in emulator.requests if r.method in ("PUT", "PATCH")]


def test_workload_endpoints_when_served(
    emulator: ApiEmulator, api_client: Any, tmp_path: Path
) -> None:
    iface = "cali0123456789a"
    emulator.create(
        {
            "apiVersion": "projectcalico.org/v3",
            "kind": "WorkloadEndpoint",
            "metadata": {"name": "n1-k8s-w-eth0", "namespace": "ns", "labels": {"app": "w"}},
            "spec": {"node": "n1", "pod": "w", "endpoint": "eth0", "interfaceName": iface,
                     "orchestrator": "k8s"},
        }
    )  # fmt: skip
    replay = tmp_path / "replay"
    replay.mkdir()
    (replay / f"{iface}.pcap").write_bytes(
        (Path(__file__).parents[2] / "examples/traffic/cali1a2b3c4d5e6.pcap").read_bytes()
    )
    with running_agent(api_client, "n1", tmp_path / "pcap", replay, endpoint_source="auto") as k:
        assert k.endpoint_source == "workloadendpoints"
        emulator.create(capture("ns", "cap", 'app == "w"'))
        wait_for(lambda: files_of(emulator, "ns", "cap", "n1") == [f"w_{iface}.pcap"])
    emulator.set_served("projectcalico.org/v3", "workloadendpoints", False)
    with running_agent(api_client, "n1", tmp_path / "pcap2", replay, endpoint_source="auto") as k:
        assert k.endpoint_source == "pods"


def test_crd_group_and_version_are_configurable(tmp_path: Path) -> None:
    emulator = ApiEmulator(crd_groups=("crd.projectcalico.org/v1",), bookmark_interval=0.2)
    emulator.start()
    client = emulator.api_client()
    try:
        emulator.create(pod("ns", "a", "n1"))
        replay = replay_dir(tmp_path / "replay", [("ns", "a")])
        resource = CaptureResource("crd.projectcalico.org", "v1")
        with running_agent(client, "n1", tmp_path / "pcap", replay, resource=resource):
            emulator.create(capture("ns", "cap"))
            wait_for(lambda: files_of(emulator, "ns", "cap", "n1"), what="status via v1")
        paths = {r.path for r in emulator.requests if r.method == "PUT"}
        assert paths == {"/apis/crd.projectcalico.org/v1/namespaces/ns/packetcaptures/cap/status"}
        client.close()
    finally:
        emulator.stop()


def test_health_endpoints(emulator: ApiEmulator, api_client: Any, tmp_path: Path) -> None:
    replay = replay_dir(tmp_path / "replay", [])
    with running_agent(api_client, "n1", tmp_path / "pcap", replay) as kube:
        server = HealthServer(kube.health, 0)
        server.start()
        try:
            base = f"http://127.0.0.1:{server.port}"
            for path in ("/healthz", "/livez", "/readyz"):
                with urllib.request.urlopen(base + path, timeout=5) as response:
                    assert response.status == 200
                    body = json.loads(response.read())
                    assert body["ready"] is True and body["live"] is True
                    assert set(body["watches"]) == {
                        "namespaces", "serviceaccounts", "pods", "packetcaptures"
                    }  # fmt: skip
            with pytest.raises(urllib.error.HTTPError) as info:
                urllib.request.urlopen(base + "/nope", timeout=5)
            assert info.value.code == 404
            info.value.close()
        finally:
            server.stop()


def test_health_not_ready_answers_503() -> None:
    server = HealthServer(lambda: {"live": True, "ready": False}, 0)
    server.start()
    try:
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(f"http://127.0.0.1:{server.port}/readyz", timeout=5)
        assert info.value.code == 503
        info.value.close()
        with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/livez", timeout=5) as r:
            assert r.status == 200
    finally:
        server.stop()
