"""This node's status entry: RV-guarded read-modify-write, 409 retries, coalescing."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from packetcapture.kube import CaptureResource, StatusWriter, entry_to_dict, merge_entry
from packetcapture.model import CaptureState, PacketCaptureFile
from tests.kube.kube_helpers import PC, capture, entries

kubernetes = pytest.importorskip("kubernetes")

from tests.kube.emulator import ApiEmulator  # noqa: E402

_names = itertools.count()


def entry(node: str, files: int, state: CaptureState = CaptureState.CAPTURING) -> PacketCaptureFile:
    names = tuple(f"p{i}_cali{i:011x}.pcap" for i in range(files))
    return PacketCaptureFile(directory="/pcap", file_names=names, node=node, state=state)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Interleaving:
    """A CustomObjectsApi whose status PUTs first let other writers in (stale RV -> 409)."""

    def __init__(self, api: Any) -> None:
        self.api = api
        self.before_put: list[Callable[[], None]] = []

    def get_namespaced_custom_object(self, *args: Any, **kw: Any) -> Any:
        return self.api.get_namespaced_custom_object(*args, **kw)

    def replace_namespaced_custom_object_status(self, *args: Any, **kw: Any) -> Any:
        while self.before_put:
            self.before_put.pop(0)()
        return self.api.replace_namespaced_custom_object_status(*args, **kw)


def test_merge_entry_replaces_only_this_nodes_entry() -> None:
    status = {"files": [{"node": "a", "state": "Capturing"}, {"node": "b", "state": "Error"}]}
    got = merge_entry(status, {"node": "b", "state": "Finished", "fileNames": []})
    assert got["files"] == [
        {"node": "a", "state": "Capturing"},
        {"node": "b", "state": "Finished", "fileNames": []},
    ]
    assert status["files"][1]["state"] == "Error"  # input untouched
    assert merge_entry(None, {"node": "c"}) == {"files": [{"node": "c"}]}
    assert merge_entry({"files": "junk", "other": 1}, {"node": "c"}) == {
        "files": [{"node": "c"}],
        "other": 1,
    }


def test_entry_wire_form_sorts_file_names_in_byte_order() -> None:
    e = PacketCaptureFile(
        directory="/d", file_names=("b.pcap", "B.pcap", "a-1.pcap", "a.pcap"), node="n",
        state=CaptureState.FINISHED,
    )  # fmt: skip
    assert entry_to_dict(e) == {
        "directory": "/d",
        "fileNames": ["B.pcap", "a-1.pcap", "a.pcap", "b.pcap"],
        "node": "n",
        "state": "Finished",
    }


def _writer(api: Any, node: str, **kw: Any) -> StatusWriter:
    kw.setdefault("interval", 0.0)
    return StatusWriter(api, CaptureResource(), node, request_timeout=5.0, **kw)


def _puts(emulator: ApiEmulator) -> list[Any]:
    return [r for r in emulator.requests if r.method == "PUT" and r.path.endswith("/status")]


def test_write_keeps_other_nodes_and_sends_the_read_version(
    emulator: ApiEmulator, api_client: Any
) -> None:
    obj = capture("ns", "cap")
    obj["status"] = {"files": [{"node": "other", "fileNames": ["x.pcap"], "state": "Capturing"}]}
    emulator.create(obj)
    rv = emulator.get(*PC, "ns", "cap")["metadata"]["resourceVersion"]
    writer = _writer(kubernetes.client.CustomObjectsApi(api_client), "me")
    writer.submit("ns", "cap", entry("me", 2))
    writer.write_due()
    (put,) = _puts(emulator)
    assert put.json()["metadata"]["resourceVersion"] == rv
    got = entries(emulator, "ns", "cap")
    assert got["other"]["fileNames"] == ["x.pcap"]
    assert got["me"] == entry_to_dict(entry("me", 2))
    # The same entry again: nothing to write.
    writer.submit("ns", "cap", entry("me", 2))
    writer.write_due()
    assert len(_puts(emulator)) == 1 and writer.writes == 1


def test_conflicts_are_retried_with_a_fresh_read(emulator: ApiEmulator, api_client: Any) -> None:
    emulator.create(capture("ns", "cap"))
    writer = _writer(kubernetes.client.CustomObjectsApi(api_client), "me")
    emulator.fail_next(3, 409, method="PUT", path_contains="/status")
    writer.submit("ns", "cap", entry("me", 1))
    writer.write_due()
    assert writer.conflicts == 3 and writer.writes == 1
    gets = [r for r in emulator.requests if r.method == "GET" and r.path.endswith("/cap")]
    assert len(gets) == 4  # one read per attempt
    assert entries(emulator, "ns", "cap")["me"]["fileNames"] == [entry("me", 1).file_names[0]]


def test_endless_conflicts_are_queued_again(emulator: ApiEmulator, api_client: Any) -> None:
    emulator.create(capture("ns", "cap"))
    clock = FakeClock()
    writer = _writer(
        kubernetes.client.CustomObjectsApi(api_client), "me", max_attempts=2, clock=clock
    )
    emulator.fail_next(2, 409, method="PUT", path_contains="/status")
    writer.submit("ns", "cap", entry("me", 1))
    writer.write_due()
    assert writer.failures == 1 and writer.pending() == 1
    clock.now += 60
    writer.write_due()
    assert writer.pending() == 0 and "me" in entries(emulator, "ns", "cap")


def test_a_deleted_capture_drops_the_update(emulator: ApiEmulator, api_client: Any) -> None:
    writer = _writer(kubernetes.client.CustomObjectsApi(api_client), "me")
    writer.submit("ns", "gone", entry("me", 1))
    writer.write_due()
    assert writer.pending() == 0 and writer.writes == 0 and writer.failures == 0
    # Deleted between the read and the write: dropped too.
    emulator.create(capture("ns", "cap"))
    api = Interleaving(kubernetes.client.CustomObjectsApi(api_client))
    api.before_put.append(lambda: emulator.delete(*PC, "ns", "cap"))
    writer = _writer(api, "me")
    writer.submit("ns", "cap", entry("me", 1))
    writer.write_due()
    assert writer.pending() == 0 and writer.failures == 0


def test_server_errors_are_retried_later(emulator: ApiEmulator, api_client: Any) -> None:
    emulator.create(capture("ns", "cap"))
    clock = FakeClock()
    writer = _writer(kubernetes.client.CustomObjectsApi(api_client), "me", clock=clock)
    emulator.fail_next(1, 500, method="GET")
    writer.submit("ns", "cap", entry("me", 1))
    assert writer.write_due() <= 0.2 + 1e-9  # the backoff's first delay
    assert writer.failures == 1 and writer.pending() == 1
    writer.write_due()  # not due yet: nothing sent
    assert writer.pending() == 1
    clock.now += 1
    writer.write_due()
    assert writer.pending() == 0 and "me" in entries(emulator, "ns", "cap")


def test_writes_are_rate_limited_and_coalesced(emulator: ApiEmulator, api_client: Any) -> None:
    emulator.create(capture("ns", "cap"))
    clock = FakeClock()
    writer = _writer(
        kubernetes.client.CustomObjectsApi(api_client), "me", interval=2.0, clock=clock
    )
    for second in range(10):  # a busy capture: a new entry every 0.1 s for 10 s
        for tenth in range(10):
            writer.submit("ns", "cap", entry("me", 1 + second * 10 + tenth))
            writer.write_due()
            clock.now += 0.1
    clock.now += 2
    writer.write_due()
    assert len(_puts(emulator)) == 6  # at 0, 2, 4, 6, 8 s and the last one
    assert len(entries(emulator, "ns", "cap")["me"]["fileNames"]) == 100


STEPS = st.lists(
    st.tuples(
        st.integers(0, 2),  # the writer
        st.integers(0, 4),  # its new file count
        st.lists(st.integers(0, 2), max_size=3),  # writers that get in before its PUT
        st.integers(0, 2),  # 409s injected on top
    ),
    min_size=1,
    max_size=8,
)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=STEPS)
def test_three_writers_never_lose_an_entry(
    steps: list[tuple[int, int, list[int], int]], emulator: ApiEmulator, api_client: Any
) -> None:
    name = f"cap{next(_names)}"
    obj = capture("ns", name)
    obj["status"] = {"files": [{"node": "bystander", "fileNames": [], "state": "Finished"}]}
    emulator.create(obj)
    base = kubernetes.client.CustomObjectsApi(api_client)
    apis = [Interleaving(base) for _ in range(3)]
    writers = [_writer(apis[i], f"n{i}", max_attempts=50) for i in range(3)]
    last: dict[str, dict[str, Any]] = {}
    for count, (i, files, intruders, conflicts) in enumerate(steps):
        for j in intruders:

            def intrude(j: int = j, count: int = count) -> None:
                e = entry(f"n{j}", count % 5, CaptureState.WAITING_FOR_TRAFFIC)
                writers[j].submit("ns", name, e)
                saved, apis[j].before_put = apis[j].before_put, []
                writers[j].write_due()
                apis[j].before_put = saved
                last[f"n{j}"] = entry_to_dict(e)

            apis[i].before_put.append(intrude)
        if conflicts:
            emulator.fail_next(conflicts, 409, method="PUT", path_contains=f"/{name}/status")
        e = entry(f"n{i}", files)
        writers[i].submit("ns", name, e)
        writers[i].write_due()
        apis[i].before_put.clear()
        last[f"n{i}"] = entry_to_dict(e)
    for writer in writers:
        writer.write_due()
        assert writer.pending() == 0
    got = entries(emulator, "ns", name)
    assert set(got) == {"bystander", *last}
    for node, want in last.items():
        assert got[node] == want


def test_three_writers_in_threads(emulator: ApiEmulator, api_client: Any) -> None:
    emulator.create(capture("ns", "cap"))
    writers = [
        _writer(kubernetes.client.CustomObjectsApi(api_client), f"n{i}", interval=0.0)
        for i in range(3)
    ]
    for w in writers:
        w.start()

    def churn(w: StatusWriter, node: str) -> None:
        for k in range(1, 31):
            w.submit("ns", "cap", entry(node, k))

    threads = [threading.Thread(target=churn, args=(w, f"n{i}")) for i, w in enumerate(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    for w in writers:
        assert w.stop(timeout=10)
    got = entries(emulator, "ns", "cap")
    assert {n: len(e["fileNames"]) for n, e in got.items()} == {"n0": 30, "n1": 30, "n2": 30}


def test_events_carry_the_reason(emulator: ApiEmulator, api_client: Any) -> None:
    emulator.serve_custom("", "v1", "events", "Event")
    emulator.create(capture("ns", "cap"))
    writer = _writer(kubernetes.client.CustomObjectsApi(api_client), "me")
    writer.core_api = kubernetes.client.CoreV1Api(api_client)
    writer.post_event("ns", "cap", "cali123: no such device")
    writer.write_due()
    posts = [r for r in emulator.requests if r.method == "POST" and r.path.endswith("/events")]
    assert len(posts) == 1
    body = posts[0].json()
    assert body["involvedObject"]["name"] == "cap" and body["type"] == "Warning"
    assert body["message"] == "node me: cali123: no such device"
