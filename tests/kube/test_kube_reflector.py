"""The Reflector against the emulator: list then watch, bookmarks, 410, drops, backoff, resync."""

from __future__ import annotations

import functools
import random
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import pytest

from packetcapture.kube import Backoff, Reflector
from tests.kube.kube_helpers import pod, wait_for

kubernetes = pytest.importorskip("kubernetes")

from tests.kube.emulator import ApiEmulator  # noqa: E402


class Recorder:
    """Keeps what a reflector reported, as a controller's cache would."""

    def __init__(self) -> None:
        self.objects: dict[str, Mapping[str, Any]] = {}
        self.events: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def on_upsert(self, obj: Mapping[str, Any]) -> None:
        with self.lock:
            self.objects[obj["metadata"]["name"]] = obj
            self.events.append(("upsert", obj["metadata"]["name"]))

    def on_delete(self, obj: Mapping[str, Any]) -> None:
        with self.lock:
            self.objects.pop(obj["metadata"]["name"], None)
            self.events.append(("delete", obj["metadata"]["name"]))

    def labels(self) -> dict[str, dict[str, str]]:
        with self.lock:
            return {k: dict(v["metadata"].get("labels") or {}) for k, v in self.objects.items()}


@contextmanager
def reflecting(api_client: Any, **kw: Any) -> Iterator[tuple[Reflector, Recorder]]:
    core = kubernetes.client.CoreV1Api(api_client)
    recorder = Recorder()
    kw.setdefault("backoff", Backoff(initial=0.05, maximum=0.2))
    kw.setdefault("request_timeout", 5.0)
    reflector = Reflector(
        "pods",
        functools.partial(core.list_pod_for_all_namespaces, field_selector="spec.nodeName=n1"),
        recorder,
        **kw,
    )
    reflector.start()
    try:
        wait_for(reflector.synced.is_set, what="first list")
        yield reflector, recorder
    finally:
        started = time.monotonic()
        reflector.stop(timeout=5)
        assert reflector._thread is not None and not reflector._thread.is_alive()
        assert time.monotonic() - started < 3, "stop() must end a blocked watch at once"


def _watches(emulator: ApiEmulator) -> list[Any]:
    return [r for r in emulator.requests if r.path == "/api/v1/pods" and r.query.get("watch")]


def _lists(emulator: ApiEmulator) -> list[Any]:
    return [r for r in emulator.requests if r.path == "/api/v1/pods" and not r.query.get("watch")]


def test_list_then_watch_from_the_lists_version(emulator: ApiEmulator, api_client: Any) -> None:
    emulator.create(pod("ns", "a", "n1"))
    emulator.create(pod("ns", "other", "n2"))  # another node: the field selector drops it
    with reflecting(api_client) as (reflector, rec):
        assert set(rec.objects) == {"a"}
        listed_rv = reflector.resource_version
        wait_for(lambda: _watches(emulator), what="a watch")
        first = _watches(emulator)[0]
        assert first.query["resourceVersion"] == listed_rv
        assert first.query["allowWatchBookmarks"] == "true"
        assert first.query["fieldSelector"] == "spec.nodeName=n1"
        emulator.create(pod("ns", "b", "n1", {"x": "1"}))
        wait_for(lambda: "b" in rec.objects, what="ADDED b")
        emulator.patch("v1", "Pod", "ns", "b", {"metadata": {"labels": {"x": "2"}}})
        wait_for(lambda: rec.labels().get("b") == {"x": "2"}, what="MODIFIED b")
        emulator.delete("v1", "Pod", "ns", "a")
        wait_for(lambda: "a" not in rec.objects, what="DELETED a")
        assert reflector.lists == 1


def test_bookmarks_move_the_resume_point(emulator: ApiEmulator, api_client: Any) -> None:
    with reflecting(api_client) as (reflector, rec):
        before = reflector.resource_version
        # Changes elsewhere (another node's pod) move the server's version; only bookmarks
        # tell this watch about it.
        emulator.create(pod("ns", "far", "n2"))
        wait_for(lambda: reflector.resource_version != before, what="a bookmark")
        assert reflector.resource_version == emulator.resource_version
        assert rec.events == []


def test_dropped_stream_resumes_without_relisting(emulator: ApiEmulator, api_client: Any) -> None:
    with reflecting(api_client) as (reflector, rec):
        wait_for(lambda: emulator.watch_count, what="watch open")
        emulator.drop_watches()
        emulator.create(pod("ns", "b", "n1"))
        wait_for(lambda: "b" in rec.objects, what="b after the drop")
        assert reflector.lists == 1
        assert rec.events == [("upsert", "b")]


@pytest.mark.parametrize("expired_as", ["event", "http"])
def test_gone_relists_and_reports_deletions_missed(expired_as: str, api_client: Any) -> None:
    emulator = ApiEmulator(bookmark_interval=30, expired_as=expired_as)
    emulator.start()
    try:
        client = emulator.api_client()
        emulator.create(pod("ns", "a", "n1"))
        emulator.create(pod("ns", "b", "n1"))
        with reflecting(client, watch_seconds=1) as (reflector, rec):
            wait_for(lambda: emulator.watch_count, what="watch open")
            emulator.set_down(True)
            # While it is away: one pod deleted, one changed, one added, history compacted.
            emulator.delete("v1", "Pod", "ns", "a")
            emulator.patch("v1", "Pod", "ns", "b", {"metadata": {"labels": {"v": "2"}}})
            emulator.create(pod("ns", "c", "n1"))
            emulator.compact()
            emulator.set_down(False)
            wait_for(lambda: set(rec.objects) == {"b", "c"}, timeout=15, what="resync")
            assert rec.labels()["b"] == {"v": "2"}
            assert ("delete", "a") in rec.events
            assert reflector.lists >= 2
        client.close()
    finally:
        emulator.stop()


def test_expired_watch_event_relists(emulator: ApiEmulator, api_client: Any) -> None:
    with reflecting(api_client) as (reflector, rec):
        wait_for(lambda: emulator.watch_count, what="watch open")
        emulator.compact()
        emulator.expire_watches()
        wait_for(lambda: reflector.lists >= 2, what="relist after ERROR 410")
        emulator.create(pod("ns", "z", "n1"))
        wait_for(lambda: "z" in rec.objects, what="z after relist")


def test_errors_back_off_and_recover(emulator: ApiEmulator, api_client: Any) -> None:
    emulator.fail_next(3, 500, path_contains="/api/v1/pods")
    emulator.create(pod("ns", "a", "n1"))
    with reflecting(api_client) as (reflector, rec):
        assert set(rec.objects) == {"a"}
        assert reflector.errors == 3
        assert reflector.last_error is not None and "500" in reflector.last_error
        assert len(_lists(emulator)) == 4


def test_periodic_resync_relists(emulator: ApiEmulator, api_client: Any) -> None:
    emulator.create(pod("ns", "a", "n1"))
    with reflecting(api_client, resync_seconds=0.5) as (reflector, rec):
        wait_for(lambda: reflector.lists >= 3, what="two resyncs")
        # A resync of unchanged objects reports nothing new.
        assert rec.events == [("upsert", "a")]


def test_a_failing_handler_does_not_stop_the_watch(emulator: ApiEmulator, api_client: Any) -> None:
    class Fussy(Recorder):
        def on_upsert(self, obj: Mapping[str, Any]) -> None:
            if obj["metadata"]["name"] == "bad":
                raise RuntimeError("boom")
            super().on_upsert(obj)

    core = kubernetes.client.CoreV1Api(api_client)
    rec = Fussy()
    reflector = Reflector("pods", core.list_pod_for_all_namespaces, rec, request_timeout=5.0)
    reflector.start()
    try:
        wait_for(reflector.synced.is_set)
        emulator.create(pod("ns", "bad", "n1"))
        emulator.create(pod("ns", "good", "n1"))
        wait_for(lambda: "good" in rec.objects, what="good after bad")
    finally:
        reflector.stop()


def test_backoff_grows_with_jitter_and_resets() -> None:
    backoff = Backoff(initial=1.0, maximum=8.0, random=random.Random(7))
    delays = [backoff.next() for _ in range(6)]
    ceilings = [1, 2, 4, 8, 8, 8]
    for delay, ceiling in zip(delays, ceilings, strict=True):
        assert ceiling / 2 <= delay <= ceiling
    assert len(set(delays)) == len(delays)  # jittered
    backoff.reset()
    assert backoff.next() <= 1.0
