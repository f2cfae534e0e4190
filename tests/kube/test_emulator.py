"""The API emulator, driven by the real ``kubernetes`` client over HTTP.

Each test checks a behaviour of the real API server as its documentation (or source) states it,
so tests written against the emulator exercise what a cluster would do.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import tarfile
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import urllib3
import websocket
from hypothesis import given
from hypothesis import strategies as st
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException
from kubernetes.stream import stream

from tests.kube.emulator import ApiEmulator, LocalExec
from tests.kube.emulator._patch import PatchError, json_patch, merge_patch

GROUP, VERSION, PLURAL = "projectcalico.org", "v3", "packetcaptures"


def pod(name: str, node: str = "node-1", labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"nodeName": node, "containers": [{"name": "main", "image": "busybox"}]},
    }


def capture(name: str, selector: str = "all()") -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "PacketCapture",
        "metadata": {"name": name},
        "spec": {"selector": selector},
    }


@pytest.fixture
def core(api_client: Any) -> client.CoreV1Api:
    return client.CoreV1Api(api_client)


@pytest.fixture
def custom(api_client: Any) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api_client)


@pytest.fixture
def ns(core: client.CoreV1Api) -> str:
    core.create_namespace({"metadata": {"name": "ns1", "labels": {"team": "a"}}})
    return "ns1"


def events(func: Any, *args: Any, count: int, timeout: int = 3, **kwargs: Any) -> list[dict]:
    """Up to ``count`` watch events (the server ends the watch after ``timeout`` seconds)."""
    w = watch.Watch()
    out = []
    for event in w.stream(func, *args, timeout_seconds=timeout, **kwargs):
        out.append(event)
        if len(out) >= count:
            w.stop()
    return out


def status_body(exc: ApiException) -> dict[str, Any]:
    body = json.loads(exc.body)
    assert body["kind"] == "Status"
    return body


# ------------------------------------------------------------------- objects


def test_create_sets_system_fields_and_clears_status(core, ns):
    body = pod("p1")
    body["status"] = {"phase": "Running", "podIP": "10.0.0.1"}
    created = core.create_namespaced_pod(ns, body)
    assert created.metadata.uid
    assert created.metadata.creation_timestamp is not None
    assert int(created.metadata.resource_version) > 0
    # Pod create resets status: the kubelet, not the client, reports it.
    assert created.status.phase == "Pending"
    assert created.status.pod_ip is None


def test_create_twice_is_409_already_exists(core, ns):
    core.create_namespaced_pod(ns, pod("p1"))
    with pytest.raises(ApiException) as info:
        core.create_namespaced_pod(ns, pod("p1"))
    assert info.value.status == 409
    body = status_body(info.value)
    assert body["reason"] == "AlreadyExists"
    assert body["details"] == {"name": "p1", "group": "", "kind": "pods"}


def test_create_in_missing_namespace_is_404(core):
    with pytest.raises(ApiException) as info:
        core.create_namespaced_pod("nowhere", pod("p1"))
    assert info.value.status == 404
    assert status_body(info.value)["message"] == 'namespaces "nowhere" not found'


def test_pod_without_containers_is_422(emulator, ns):
    # The client validates this itself, so send the request raw.
    body = json.dumps({"metadata": {"name": "p"}, "spec": {}}).encode()
    with urllib3.PoolManager() as http:
        resp = http.request(
            "POST",
            f"{emulator.url}/api/v1/namespaces/{ns}/pods",
            body=body,
            headers={"Content-Type": "application/json"},
        )
    assert resp.status == 422
    assert json.loads(resp.data)["reason"] == "Invalid"


def test_missing_objects_are_404_not_found(core, custom, ns):
    for call in (
        lambda: core.read_namespaced_pod("nope", ns),
        lambda: core.patch_namespaced_pod("nope", ns, {"metadata": {"labels": {"a": "b"}}}),
        lambda: core.delete_namespaced_pod("nope", ns),
        lambda: custom.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "nope"),
    ):
        with pytest.raises(ApiException) as info:
            call()
        assert info.value.status == 404
        assert status_body(info.value)["reason"] == "NotFound"


def test_list_returns_collection_resource_version(core, ns, emulator):
    core.create_namespaced_pod(ns, pod("b"))
    core.create_namespaced_pod(ns, pod("a"))
    listed = core.list_namespaced_pod(ns)
    assert [p.metadata.name for p in listed.items] == ["a", "b"]
    assert listed.metadata.resource_version == emulator.resource_version
    # resourceVersions increase with every write; clients only compare them for equality.
    rvs = [int(p.metadata.resource_version) for p in listed.items]
    assert rvs[0] > rvs[1]


def test_field_selectors(core, ns):
    core.create_namespaced_pod(ns, pod("p1", node="node-1"))
    core.create_namespaced_pod(ns, pod("p2", node="node-2"))
    core.create_namespaced_pod(ns, pod("p3", node="node-1"))

    def names(**kw):
        return [p.metadata.name for p in core.list_pod_for_all_namespaces(**kw).items]

    assert names(field_selector="spec.nodeName=node-1") == ["p1", "p3"]
    assert names(field_selector="spec.nodeName!=node-1") == ["p2"]
    assert names(field_selector="spec.nodeName=node-1,metadata.name=p3") == ["p3"]
    assert names(field_selector="metadata.namespace=other") == []
    with pytest.raises(ApiException) as info:
        names(field_selector="spec.bogus=x")
    assert info.value.status == 400
    assert "field label not supported" in status_body(info.value)["message"]


def test_label_selectors(core, ns):
    core.create_namespaced_pod(ns, pod("p1", labels={"app": "web", "tier": "front"}))
    core.create_namespaced_pod(ns, pod("p2", labels={"app": "db"}))
    core.create_namespaced_pod(ns, pod("p3"))

    def names(selector):
        return [
            p.metadata.name for p in core.list_namespaced_pod(ns, label_selector=selector).items
        ]

    assert names("app=web") == ["p1"]
    assert names("app==web") == ["p1"]
    assert names("app!=web") == ["p2", "p3"]
    assert names("app in (web,db)") == ["p1", "p2"]
    assert names("app notin (web)") == ["p2", "p3"]
    assert names("tier") == ["p1"]
    assert names("!tier") == ["p2", "p3"]
    assert names("app in (web,db),!tier") == ["p2"]


def test_pagination_with_limit_and_continue(core, ns, emulator):
    for i in range(5):
        core.create_namespaced_pod(ns, pod(f"p{i}"))
    first = core.list_namespaced_pod(ns, limit=2)
    assert [p.metadata.name for p in first.items] == ["p0", "p1"]
    assert first.metadata.remaining_item_count == 3
    second = core.list_namespaced_pod(ns, limit=2, _continue=first.metadata._continue)
    assert [p.metadata.name for p in second.items] == ["p2", "p3"]
    core.create_namespaced_pod(ns, pod("later"))
    emulator.compact()  # the snapshot the token reads from is gone
    with pytest.raises(ApiException) as info:
        core.list_namespaced_pod(ns, limit=2, _continue=second.metadata._continue)
    assert info.value.status == 410
    assert status_body(info.value)["reason"] == "Expired"


def test_list_at_exact_resource_version(core, ns, emulator):
    core.create_namespaced_pod(ns, pod("p1"))
    rv = core.list_namespaced_pod(ns).metadata.resource_version
    core.create_namespaced_pod(ns, pod("p2"))
    core.delete_namespaced_pod("p1", ns)
    old = core.list_namespaced_pod(ns, resource_version=rv, resource_version_match="Exact")
    assert [p.metadata.name for p in old.items] == ["p1"]
    assert old.metadata.resource_version == rv
    emulator.compact()
    with pytest.raises(ApiException) as info:
        core.list_namespaced_pod(ns, resource_version=rv, resource_version_match="Exact")
    assert info.value.status == 410


# ------------------------------------------------------- status subresource


def test_custom_resource_status_subresource(custom, ns):
    body = capture("c1")
    body["status"] = {"files": [{"node": "n1"}]}
    created = custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, body)
    assert "status" not in created  # create ignores status
    assert created["metadata"]["generation"] == 1
    rv0 = int(created["metadata"]["resourceVersion"])

    # /status writes change only status, bump the RV, leave generation alone.
    after_status = custom.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        ns,
        PLURAL,
        "c1",
        {"spec": {"selector": "ignored"}, "status": {"files": [{"node": "n1"}]}},
    )
    assert after_status["status"] == {"files": [{"node": "n1"}]}
    assert after_status["spec"] == {"selector": "all()"}
    assert after_status["metadata"]["generation"] == 1
    rv1 = int(after_status["metadata"]["resourceVersion"])
    assert rv1 > rv0

    # Main-resource writes ignore status; a spec change bumps generation.
    after_spec = custom.patch_namespaced_custom_object(
        GROUP, VERSION, ns, PLURAL, "c1", {"spec": {"selector": "a == 'b'"}, "status": None}
    )
    assert after_spec["status"] == {"files": [{"node": "n1"}]}
    assert after_spec["metadata"]["generation"] == 2
    rv2 = int(after_spec["metadata"]["resourceVersion"])
    assert rv2 > rv1

    # A metadata-only change bumps the RV but not generation.
    labelled = custom.patch_namespaced_custom_object(
        GROUP, VERSION, ns, PLURAL, "c1", {"metadata": {"labels": {"x": "y"}}}
    )
    assert labelled["metadata"]["generation"] == 2
    assert int(labelled["metadata"]["resourceVersion"]) > rv2

    # PUT of the status subresource likewise keeps the spec.
    labelled["spec"] = {"selector": "nope"}
    labelled["status"] = {"files": []}
    put = custom.replace_namespaced_custom_object_status(GROUP, VERSION, ns, PLURAL, "c1", labelled)
    assert put["spec"] == {"selector": "a == 'b'"}
    assert put["status"] == {"files": []}


def test_noop_write_keeps_resource_version(custom, ns, emulator):
    created = custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, capture("c1"))
    same = custom.patch_namespaced_custom_object(
        GROUP, VERSION, ns, PLURAL, "c1", {"spec": {"selector": "all()"}}
    )
    # etcd3 storage skips writes that change nothing: same RV, no watch event.
    assert same["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
    assert emulator.resource_version == created["metadata"]["resourceVersion"]


def test_strategic_merge_patch_on_custom_resource_is_415(custom, ns):
    custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, capture("c1"))
    with pytest.raises(ApiException) as info:
        custom.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            ns,
            PLURAL,
            "c1",
            {"spec": {}},
            _content_type="application/strategic-merge-patch+json",
        )
    assert info.value.status == 415


# ------------------------------------------------------ optimistic concurrency


def test_put_with_stale_resource_version_is_409(custom, ns):
    first = custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, capture("c1"))
    custom.patch_namespaced_custom_object(
        GROUP, VERSION, ns, PLURAL, "c1", {"metadata": {"labels": {"a": "1"}}}
    )
    first["spec"]["selector"] = "stale()"
    with pytest.raises(ApiException) as info:
        custom.replace_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "c1", first)
    assert info.value.status == 409
    assert status_body(info.value)["reason"] == "Conflict"
    # Without a resourceVersion the update is unconditional.
    del first["metadata"]["resourceVersion"]
    replaced = custom.replace_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "c1", first)
    assert replaced["spec"]["selector"] == "stale()"


def test_merge_patch_with_resource_version_is_a_precondition(custom, ns):
    created = custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, capture("c1"))
    rv = created["metadata"]["resourceVersion"]
    ok = custom.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        ns,
        PLURAL,
        "c1",
        {"metadata": {"resourceVersion": rv}, "status": {"files": [{"node": "a"}]}},
    )
    with pytest.raises(ApiException) as info:
        custom.patch_namespaced_custom_object_status(
            GROUP,
            VERSION,
            ns,
            PLURAL,
            "c1",
            {"metadata": {"resourceVersion": rv}, "status": {"files": [{"node": "b"}]}},
        )
    assert info.value.status == 409
    # A merge patch without an RV always applies: last writer wins, entries are lost.
    lost = custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, ns, PLURAL, "c1", {"status": {"files": [{"node": "b"}]}}
    )
    assert ok["status"]["files"] == [{"node": "a"}]
    assert lost["status"]["files"] == [{"node": "b"}]


def test_json_patch_test_op_on_resource_version(custom, ns):
    created = custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, capture("c1"))
    rv = created["metadata"]["resourceVersion"]
    ops = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": rv},
        {"op": "add", "path": "/status", "value": {"files": [{"node": "a"}]}},
    ]
    patched = custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, ns, PLURAL, "c1", ops, _content_type="application/json-patch+json"
    )
    assert patched["status"] == {"files": [{"node": "a"}]}
    # The test op now fails: kube-apiserver answers a failed JSON patch with 422, not 409.
    with pytest.raises(ApiException) as info:
        custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, ns, PLURAL, "c1", ops, _content_type="application/json-patch+json"
        )
    assert info.value.status == 422
    assert "test failed" in status_body(info.value)["message"]


def test_delete_preconditions_and_finalizers(core, ns):
    created = core.create_namespaced_pod(
        ns, {**pod("p1"), "metadata": {"name": "p1", "finalizers": ["example.com/keep"]}}
    )
    with pytest.raises(ApiException) as info:
        core.delete_namespaced_pod(
            "p1",
            ns,
            body=client.V1DeleteOptions(preconditions=client.V1Preconditions(resource_version="1")),
        )
    assert info.value.status == 409
    core.delete_namespaced_pod("p1", ns)
    terminating = core.read_namespaced_pod("p1", ns)
    assert terminating.metadata.deletion_timestamp is not None
    assert terminating.metadata.uid == created.metadata.uid
    core.patch_namespaced_pod("p1", ns, {"metadata": {"finalizers": None}})
    with pytest.raises(ApiException) as info:
        core.read_namespaced_pod("p1", ns)
    assert info.value.status == 404


# ---------------------------------------------------------------------- watch


def test_watch_from_list_rv_streams_only_later_changes(core, ns, emulator):
    core.create_namespaced_pod(ns, pod("before"))
    rv = core.list_namespaced_pod(ns).metadata.resource_version
    core.create_namespaced_pod(ns, pod("p1"))
    emulator.patch("v1", "Pod", ns, "p1", {"status": {"podIP": "10.0.0.7"}}, subresource="status")
    core.delete_namespaced_pod("p1", ns)
    got = events(core.list_namespaced_pod, ns, resource_version=rv, count=3)
    assert [(e["type"], e["object"].metadata.name) for e in got] == [
        ("ADDED", "p1"),
        ("MODIFIED", "p1"),
        ("DELETED", "p1"),
    ]
    assert got[1]["object"].status.pod_ip == "10.0.0.7"
    rvs = [int(e["object"].metadata.resource_version) for e in got]
    assert rvs == sorted(rvs) and rvs[0] > int(rv)


def test_watch_without_rv_starts_with_synthetic_added(core, ns):
    core.create_namespaced_pod(ns, pod("a"))
    core.create_namespaced_pod(ns, pod("b"))
    got = events(core.list_namespaced_pod, ns, count=2)
    assert [(e["type"], e["object"].metadata.name) for e in got] == [("ADDED", "a"), ("ADDED", "b")]


def test_watch_with_selector_sees_objects_enter_and_leave(core, ns):
    rv = core.list_namespaced_pod(ns).metadata.resource_version
    core.create_namespaced_pod(ns, pod("p1", labels={"app": "x"}))
    core.patch_namespaced_pod("p1", ns, {"metadata": {"labels": {"app": "y"}}})
    core.patch_namespaced_pod("p1", ns, {"metadata": {"labels": {"app": "x"}}})
    core.create_namespaced_pod(ns, pod("other", labels={"app": "z"}))
    got = events(core.list_namespaced_pod, ns, resource_version=rv, label_selector="app=x", count=3)
    assert [e["type"] for e in got] == ["ADDED", "DELETED", "ADDED"]


def test_watch_is_live_and_resumes(core, ns, emulator):
    rv = core.list_namespaced_pod(ns).metadata.resource_version
    w = watch.Watch()
    seen: list[str] = []

    def run() -> None:
        for event in w.stream(core.list_namespaced_pod, ns, resource_version=rv, timeout_seconds=5):
            seen.append(event["object"].metadata.name)
            w.stop()

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 5
    while emulator.watch_count == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    emulator.create(
        {
            "apiVersion": "v1",
            "kind": "Pod",
            **pod("live", node="n", labels={}) | {"metadata": {"name": "live", "namespace": ns}},
        }
    )
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert seen == ["live"]
    # Resuming from the last RV seen gives nothing more until the next change.
    core.delete_namespaced_pod("live", ns)
    got = events(core.list_namespaced_pod, ns, resource_version=w.resource_version, count=1)
    assert [(e["type"], e["object"].metadata.name) for e in got] == [("DELETED", "live")]


def test_bookmarks_carry_the_current_resource_version(core, ns, emulator):
    core.create_namespaced_pod(ns, pod("p1"))
    rv = core.list_namespaced_pod(ns).metadata.resource_version
    core.create_namespaced_pod(ns, pod("p2"))
    got = events(
        core.list_namespaced_pod, ns, resource_version=rv, allow_watch_bookmarks=True, count=2
    )
    assert [e["type"] for e in got] == ["ADDED", "BOOKMARK"]
    bookmark = got[1]["raw_object"]
    assert bookmark["metadata"] == {"resourceVersion": emulator.resource_version}
    assert bookmark["kind"] == "Pod"
    # Without allowWatchBookmarks the stream stays silent until the timeout.
    assert (
        events(
            core.list_namespaced_pod,
            ns,
            resource_version=emulator.resource_version,
            count=1,
            timeout=1,
        )
        == []
    )


def test_timeout_seconds_ends_the_watch_cleanly(core, ns, emulator):
    rv = emulator.resource_version
    started = time.monotonic()
    assert events(core.list_namespaced_pod, ns, resource_version=rv, count=1, timeout=1) == []
    assert time.monotonic() - started < 4  # ended by the server, not by a client-side timeout
    request = [r for r in emulator.requests if r.query.get("watch")][-1]
    assert request.query["timeoutSeconds"] == "1"
    assert request.query["resourceVersion"] == rv


def test_watch_from_compacted_rv_is_410_error_event(core, ns, emulator, api_client):
    rv = core.list_namespaced_pod(ns).metadata.resource_version
    core.create_namespaced_pod(ns, pod("p1"))
    emulator.compact()
    # The client library turns the ERROR event into ApiException(410) when retries are off.
    with pytest.raises(ApiException) as info:
        events(core.list_namespaced_pod, ns, resource_version=rv, count=1)
    assert info.value.status == 410
    # On the wire: HTTP 200, then one ERROR event carrying a Status 410 Expired.
    resp = core.list_namespaced_pod(ns, watch=True, resource_version=rv, _preload_content=False)
    assert resp.status == 200
    line = json.loads(resp.data.decode().splitlines()[0])
    assert line["type"] == "ERROR"
    assert line["object"]["code"] == 410
    assert line["object"]["reason"] == "Expired"


def test_watch_from_compacted_rv_as_http_410(core, ns, emulator):
    emulator.expired_as = "http"
    rv = core.list_namespaced_pod(ns).metadata.resource_version
    core.create_namespaced_pod(ns, pod("p1"))
    emulator.compact()
    with pytest.raises(ApiException) as info:
        events(core.list_namespaced_pod, ns, resource_version=rv, count=1)
    assert info.value.status == 410
    assert status_body(info.value)["reason"] == "Expired"


def test_history_limit_expires_old_resource_versions():
    with contextlib.ExitStack() as stack, ApiEmulator(history=3) as emu:
        api = client.CoreV1Api(emu.api_client())
        stack.callback(api.api_client.close)
        rv = emu.resource_version
        for name in ("a", "b", "c"):
            api.create_namespace({"metadata": {"name": name}})
        assert len(events(api.list_namespace, resource_version=rv, count=3)) == 3
        api.create_namespace({"metadata": {"name": "d"}})
        with pytest.raises(ApiException) as info:
            events(api.list_namespace, resource_version=rv, count=1)
        assert info.value.status == 410


def test_expire_watches_mid_stream(core, ns, emulator):
    rv = core.list_namespaced_pod(ns).metadata.resource_version
    errors: list[int] = []

    def run() -> None:
        try:
            events(core.list_namespaced_pod, ns, resource_version=rv, count=5)
        except ApiException as exc:
            errors.append(exc.status)

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 5
    while emulator.watch_count == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    emulator.compact()
    emulator.expire_watches()
    thread.join(timeout=5)
    assert errors == [410]


def test_drop_watches_breaks_the_stream(core, ns, emulator):
    rv = core.list_namespaced_pod(ns).metadata.resource_version
    errors: list[BaseException] = []

    def run() -> None:
        try:
            events(core.list_namespaced_pod, ns, resource_version=rv, count=5, timeout=5)
        except Exception as exc:
            errors.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 5
    while emulator.watch_count == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    emulator.drop_watches()
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert len(errors) == 1
    assert isinstance(errors[0], urllib3.exceptions.ProtocolError)


def test_namespace_deletion_deletes_its_objects(core, custom, ns, emulator):
    core.create_namespaced_pod(ns, pod("p1"))
    custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, capture("c1"))
    rv = emulator.resource_version
    core.delete_namespace(ns)
    got = events(core.list_pod_for_all_namespaces, resource_version=rv, count=1)
    assert [(e["type"], e["object"].metadata.name) for e in got] == [("DELETED", "p1")]
    assert emulator.list(f"{GROUP}/{VERSION}", "PacketCapture") == []
    with pytest.raises(ApiException) as info:
        core.read_namespace(ns)
    assert info.value.status == 404


# ----------------------------------------------------------- faults and setup


def test_fail_next_429(core, ns, emulator):
    emulator.fail_next(2, 429, method="GET", path_contains="/pods")
    for _ in range(2):
        with pytest.raises(ApiException) as info:
            core.list_namespaced_pod(ns)
        assert info.value.status == 429
        assert status_body(info.value)["reason"] == "TooManyRequests"
    assert core.list_namespaced_pod(ns).items == []
    core.read_namespace(ns)  # other paths never failed


def test_429_with_retry_after_is_retried_by_the_client(core, ns, emulator):
    # urllib3 (under the kubernetes client) honours Retry-After on 429/503 by itself, up to
    # three retries: a caller sees success, or the error once the retries run out.
    emulator.fail_next(2, 429, path_contains="/pods", retry_after=0)
    assert core.list_namespaced_pod(ns).items == []
    pods = [r for r in emulator.requests if r.path.endswith("/pods")]
    assert len(pods) == 3
    emulator.clear_requests()
    emulator.fail_next(9, 503, path_contains="/pods", retry_after=0)
    with pytest.raises(ApiException) as info:
        core.list_namespaced_pod(ns)
    assert info.value.status == 503
    assert len(emulator.requests) == 4


def test_fail_next_500(core, ns, emulator):
    emulator.fail_next(1, 500, method="POST")
    with pytest.raises(ApiException) as info:
        core.create_namespaced_pod(ns, pod("p1"))
    assert info.value.status == 500
    assert status_body(info.value)["reason"] == "InternalError"
    core.create_namespaced_pod(ns, pod("p1"))


def test_latency_slows_matching_requests(core, ns, emulator):
    emulator.set_latency(2, path_contains="/pods")
    with pytest.raises(urllib3.exceptions.MaxRetryError) as info:
        core.list_namespaced_pod(ns, _request_timeout=0.2)
    assert isinstance(info.value.reason, urllib3.exceptions.ReadTimeoutError)
    core.read_namespace(ns, _request_timeout=0.5)
    emulator.set_latency(0, path_contains="/pods")
    core.list_namespaced_pod(ns, _request_timeout=1)


def test_set_down_refuses_connections_then_recovers(core, ns, emulator):
    emulator.set_down(True)
    with pytest.raises(urllib3.exceptions.MaxRetryError) as info:
        core.read_namespace(ns, _request_timeout=1)
    assert isinstance(info.value.reason, urllib3.exceptions.NewConnectionError)
    emulator.set_down(False)
    assert core.read_namespace(ns).metadata.name == ns  # state survives


def test_unserved_resource_is_404(custom, ns, emulator):
    emulator.set_served("projectcalico.org/v3", "workloadendpoints", False)
    with pytest.raises(ApiException) as info:
        custom.list_namespaced_custom_object(GROUP, VERSION, ns, "workloadendpoints")
    assert info.value.status == 404
    groups = client.ApisApi(custom.api_client).get_api_versions()
    assert "projectcalico.org" in [g.name for g in groups.groups]
    custom.list_namespaced_custom_object(GROUP, VERSION, ns, PLURAL)


def test_crd_group_alias_serves_the_same_objects():
    with (
        ApiEmulator(crd_groups=("crd.projectcalico.org/v1",)) as emu,
        emu.api_client() as api_client,
    ):
        emu.create(capture("c1") | {"metadata": {"name": "c1", "namespace": "ns1"}})
        api = client.CustomObjectsApi(api_client)
        items = api.list_namespaced_custom_object("crd.projectcalico.org", "v1", "ns1", PLURAL)
        assert [i["apiVersion"] for i in items["items"]] == ["crd.projectcalico.org/v1"]
        api.patch_namespaced_custom_object_status(
            "crd.projectcalico.org", "v1", "ns1", PLURAL, "c1", {"status": {"files": []}}
        )
        assert emu.get(f"{GROUP}/{VERSION}", "PacketCapture", "ns1", "c1")["status"] == {
            "files": []
        }


def test_server_side_apply_merges_declared_map_lists():
    with ApiEmulator() as emu, emu.api_client() as api_client:
        emu.serve_custom(
            "example.com", "v1", "things", "Thing", list_map_keys={"status.files": ("node",)}
        )
        emu.create(
            {
                "apiVersion": "example.com/v1",
                "kind": "Thing",
                "metadata": {"name": "t", "namespace": "ns1"},
                "status": {"files": [{"node": "a", "n": 1}], "tags": ["x"]},
            }
        )
        api = client.CustomObjectsApi(api_client)
        applied = api.patch_namespaced_custom_object_status(
            "example.com",
            "v1",
            "ns1",
            "things",
            "t",
            {
                "apiVersion": "example.com/v1",
                "kind": "Thing",
                "metadata": {"name": "t"},
                "status": {"files": [{"node": "b", "n": 2}], "tags": ["y"]},
            },
            field_manager="node-b",
            _content_type="application/apply-patch+yaml",
        )
        assert applied["status"]["files"] == [{"node": "a", "n": 1}, {"node": "b", "n": 2}]
        assert applied["status"]["tags"] == ["y"]  # not a map list: atomic


def test_kubeconfig_and_recorded_requests(tmp_path, emulator):
    path = emulator.write_kubeconfig(tmp_path / "kubeconfig")
    loaded = client.Configuration()
    config.load_kube_config(config_file=str(path), client_configuration=loaded)
    assert loaded.host == emulator.url
    with client.ApiClient(loaded) as api:
        client.CoreV1Api(api).list_node(label_selector="role=x")
    last = emulator.requests[-1]
    assert (last.method, last.path, last.query) == (
        "GET",
        "/api/v1/nodes",
        {"labelSelector": "role=x"},
    )


# ----------------------------------------------------------------------- exec


@pytest.fixture
def running_pod(core, ns) -> str:
    core.create_namespaced_pod(ns, pod("agent"))
    return "agent"


def close_ws(resp) -> None:
    """Close an exec session for good.

    After a server-sent close frame websocket-client marks itself disconnected and its
    ``close()`` returns early, leaving the socket open: ``shutdown()`` closes it.
    """
    resp.close()
    resp.sock.shutdown()


def open_exec(core, ns, name, argv, *, binary=False, stdin=False):
    """Start a command through pods/exec; returns the open WSClient."""
    return stream(
        core.connect_get_namespaced_pod_exec,
        name,
        ns,
        command=argv,
        stdout=True,
        stderr=True,
        stdin=stdin,
        tty=False,
        _preload_content=False,
        binary=binary,
    )


def run_exec(core, ns, name, argv, *, binary=False, stdin=None):
    """Run a command through pods/exec; returns (stdout, stderr, exit code)."""
    resp = open_exec(core, ns, name, argv, binary=binary, stdin=stdin is not None)
    try:
        if stdin is not None:
            resp.write_stdin(stdin)
            resp.write_stdin(b"")  # v4 has no half-close; an empty stdin frame ends stdin here
        out, err = (b"", b"") if binary else ("", "")
        deadline = time.monotonic() + 10
        while resp.is_open() and time.monotonic() < deadline:
            resp.update(timeout=1)
            out += resp.read_stdout(timeout=0)
            err += resp.read_stderr(timeout=0)
        out += resp.read_stdout(timeout=0)
        err += resp.read_stderr(timeout=0)
        return out, err, resp.returncode
    finally:
        close_ws(resp)


def test_exec_stdout_stderr_and_exit_code(core, ns, running_pod, emulator):
    calls = []

    def handler(namespace, name, container, argv, stdin, out, err):
        calls.append((namespace, name, container, argv, stdin))
        out(b"hello\n")
        err(b"oops\n")
        return int(argv[-1])

    emulator.set_exec_handler(handler)
    assert run_exec(core, ns, running_pod, ["x", "0"]) == ("hello\n", "oops\n", 0)
    assert run_exec(core, ns, running_pod, ["x", "3"]) == ("hello\n", "oops\n", 3)
    assert calls[0] == (ns, "agent", "main", ["x", "0"], None)
    assert emulator.requests[-1].query_all["command"] == ["x", "3"]


def test_exec_streams_output_as_it_is_produced(core, ns, running_pod, emulator):
    proceed = threading.Event()

    def handler(namespace, name, container, argv, stdin, out, err):
        out(b"first\n")
        proceed.wait(5)
        out(b"second\n")
        return 0

    emulator.set_exec_handler(handler)
    resp = open_exec(core, ns, running_pod, ["follow"])
    try:
        # "first" arrives while the command is still running (it waits for us).
        assert resp.readline_stdout(timeout=5) == "first"
        proceed.set()
        resp.run_forever(timeout=5)
        assert resp.read_stdout() == "second\n"
        assert resp.returncode == 0
    finally:
        close_ws(resp)


def test_exec_stdin(core, ns, running_pod, emulator):
    emulator.set_exec_handler(lambda ns_, pod_, c, argv, stdin, out, err: out(stdin[::-1]) or 0)
    assert run_exec(core, ns, running_pod, ["rev"], binary=True, stdin=b"abc") == (b"cba", b"", 0)


def test_exec_on_missing_pod_fails(core, ns, emulator):
    emulator.set_exec_handler(lambda *a: 0)
    with pytest.raises(ApiException) as info:
        run_exec(core, ns, "ghost", ["ls"])
    assert "404" in str(info.value)


def test_local_exec_runs_real_tar_with_container_paths(core, ns, running_pod, emulator, tmp_path):
    root = tmp_path / "pcap"
    (root / ns / "c1").mkdir(parents=True)
    (root / ns / "c1" / "a.pcap").write_bytes(b"\xd4\xc3\xb2\xa1" + b"x" * 100)
    local = LocalExec(pod_roots={(ns, running_pod): {"/var/log/calico/pcap": root}})
    emulator.set_exec_handler(local)
    out, err, code = run_exec(
        core, ns, running_pod, ["tar", "cf", "-", "/var/log/calico/pcap/ns1/c1"], binary=True
    )
    assert code == 0, err
    with tarfile.open(fileobj=io.BytesIO(out)) as tar:
        names = sorted(tar.getnames())
        data = tar.extractfile("var/log/calico/pcap/ns1/c1/a.pcap").read()
    assert names == ["var/log/calico/pcap/ns1/c1", "var/log/calico/pcap/ns1/c1/a.pcap"]
    assert data == b"\xd4\xc3\xb2\xa1" + b"x" * 100

    found = run_exec(core, ns, running_pod, ["find", "/var/log/calico/pcap", "-name", "*.pcap"])
    assert found == ("/var/log/calico/pcap/ns1/c1/a.pcap\n", "", 0)

    removed = run_exec(core, ns, running_pod, ["rm", "-f", "/var/log/calico/pcap/ns1/c1/a.pcap"])
    assert removed == ("", "", 0)
    assert not (root / ns / "c1" / "a.pcap").exists()
    assert run_exec(core, ns, running_pod, ["ls", "/var/log/calico/pcap/ns1/c1/a.pcap"])[2] == 2


def test_local_exec_refuses_shells(core, ns, running_pod, emulator):
    emulator.set_exec_handler(LocalExec())
    _out, err, code = run_exec(core, ns, running_pod, ["sh", "-c", "echo hi"])
    assert code == 126
    assert "not allowed" in err


def test_stop_closes_open_exec_sessions(core, ns, running_pod, emulator):
    started = threading.Event()
    ended = threading.Event()

    def handler(namespace, name, container, argv, stdin, out, err):
        started.set()
        try:
            while True:
                out(b".")
                time.sleep(0.05)
        finally:
            ended.set()

    emulator.set_exec_handler(handler)
    resp = open_exec(core, ns, running_pod, ["forever"])
    try:
        assert started.wait(5)
        emulator.stop()
        with contextlib.suppress(websocket.WebSocketConnectionClosedException):
            resp.run_forever(timeout=5)
        assert ended.wait(5)  # the handler's writes failed once the session was cut
    finally:
        close_ws(resp)


def test_local_exec_rewrites_option_values(tmp_path):
    local = LocalExec(pod_roots={("n", "p"): {"/data": tmp_path}}, commands={"cat": ["cat"]})
    (tmp_path / "f").write_text("content")
    out: list[bytes] = []
    code = local("n", "p", None, ["cat", "/data/f"], None, out.append, out.append)
    assert code == 0
    assert b"".join(out) == b"content"
    assert local._rewrite(local.pod_roots[("n", "p")], "--dir=/data/x") == f"--dir={tmp_path}/x"
    assert local._rewrite(local.pod_roots[("n", "p")], "/database") == "/database"


def test_emulator_is_usable_without_the_fixture(tmp_path: Path):
    with ApiEmulator() as emu:
        created = emu.create({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}})
        assert created["metadata"]["resourceVersion"] == emu.resource_version
        assert emu.get("v1", "Node", None, "n1")["metadata"]["uid"] == created["metadata"]["uid"]
        emu.delete("v1", "Node", None, "n1")
        assert emu.get("v1", "Node", None, "n1") is None


def test_terminating_namespace_forbids_new_content(core, ns):
    core.create_namespace({"metadata": {"name": "closing", "finalizers": ["example.com/hold"]}})
    core.delete_namespace("closing")
    with pytest.raises(ApiException) as info:
        core.create_namespaced_pod("closing", pod("p1"))
    assert info.value.status == 403
    assert "because it is being terminated" in status_body(info.value)["message"]


# ------------------------------------------------------------- concurrency


def test_guarded_read_modify_write_never_loses_an_entry(custom, ns, emulator):
    """Writers that send the RV they read and retry on 409 keep every entry (the agents' rule)."""
    custom.create_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, capture("c1"))
    writers, rounds = 4, 5
    conflicts = []

    def writer(node: str) -> None:
        with emulator.api_client() as api_client:
            api = client.CustomObjectsApi(api_client)
            for i in range(rounds):
                while True:
                    obj = api.get_namespaced_custom_object(GROUP, VERSION, ns, PLURAL, "c1")
                    files = (obj.get("status") or {}).get("files", [])
                    body = {
                        "metadata": {"resourceVersion": obj["metadata"]["resourceVersion"]},
                        "status": {"files": [*files, {"node": node, "n": i}]},
                    }
                    try:
                        api.patch_namespaced_custom_object_status(
                            GROUP, VERSION, ns, PLURAL, "c1", body
                        )
                        break
                    except ApiException as exc:
                        assert exc.status == 409
                        conflicts.append(node)

    threads = [threading.Thread(target=writer, args=(f"n{k}",)) for k in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(t.is_alive() for t in threads)
    files = emulator.get(f"{GROUP}/{VERSION}", "PacketCapture", ns, "c1")["status"]["files"]
    assert sorted((f["node"], f["n"]) for f in files) == sorted(
        (f"n{k}", i) for k in range(writers) for i in range(rounds)
    )


def test_watch_sees_every_concurrent_change_in_rv_order(core, ns, emulator):
    rv = core.list_namespaced_pod(ns).metadata.resource_version
    names = [f"p{t}-{i}" for t in range(3) for i in range(10)]

    def creator(t: int) -> None:
        for i in range(10):
            emulator.create(
                {"apiVersion": "v1", "kind": "Pod", **pod(f"p{t}-{i}")}
                | {"metadata": {"name": f"p{t}-{i}", "namespace": ns}}
            )

    threads = [threading.Thread(target=creator, args=(t,)) for t in range(3)]
    for thread in threads:
        thread.start()
    got = events(core.list_namespaced_pod, ns, resource_version=rv, count=len(names), timeout=5)
    for thread in threads:
        thread.join(timeout=10)
    assert sorted(e["object"].metadata.name for e in got) == sorted(names)
    rvs = [int(e["object"].metadata.resource_version) for e in got]
    assert rvs == sorted(rvs) and len(set(rvs)) == len(rvs)


# ------------------------------------------------------------------ patches

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=3),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children, max_size=3)
    ),
    max_leaves=10,
)
json_objects = st.dictionaries(st.text(max_size=3), json_values, max_size=4)


@given(json_objects, json_objects)
def test_merge_patch_is_idempotent_and_nulls_delete(target, patch):
    once = merge_patch(target, patch)
    assert merge_patch(once, patch) == once
    for key, value in patch.items():
        if value is None:
            assert key not in once
        elif not isinstance(value, dict):
            assert once[key] == value


@given(json_objects, st.text(max_size=3), json_values)
def test_json_patch_add_then_remove_restores(target, key, value):
    pointer = "/" + key.replace("~", "~0").replace("/", "~1")
    if key in target:
        replaced = json_patch(target, [{"op": "replace", "path": pointer, "value": value}])
        assert replaced[key] == value
        return
    added = json_patch(
        target,
        [
            {"op": "add", "path": pointer, "value": value},
            {"op": "test", "path": pointer, "value": value},
        ],
    )
    assert added[key] == value
    assert json_patch(added, [{"op": "remove", "path": pointer}]) == target
    with pytest.raises(PatchError):
        json_patch(target, [{"op": "remove", "path": pointer}])


def test_watch_with_field_selector(core, ns):
    rv = core.list_namespaced_pod(ns).metadata.resource_version
    core.create_namespaced_pod(ns, pod("elsewhere", node="node-2"))
    core.create_namespaced_pod(ns, pod("here", node="node-1"))
    got = events(
        core.list_pod_for_all_namespaces,
        resource_version=rv,
        field_selector="spec.nodeName=node-1",
        count=1,
    )
    assert [(e["type"], e["object"].metadata.name) for e in got] == [("ADDED", "here")]


def test_exec_v5_closes_stdin_with_a_close_frame(core, ns, running_pod, emulator):
    emulator.exec_protocols = ("v5.channel.k8s.io", "v4.channel.k8s.io")
    emulator.set_exec_handler(lambda ns_, pod_, c, argv, stdin, out, err: out(stdin.upper()) or 0)
    resp = open_exec(core, ns, running_pod, ["upper"], binary=True, stdin=True)
    try:
        assert resp.subprotocol == "v5.channel.k8s.io"
        resp.write_stdin(b"abc")
        resp.close_channel(0)
        resp.run_forever(timeout=5)
        assert resp.read_stdout() == b"ABC"
        assert resp.returncode == 0
    finally:
        close_ws(resp)


def test_local_exec_runs_mapped_commands_with_rewritten_paths(
    core, ns, running_pod, emulator, tmp_path
):
    (tmp_path / ns).mkdir()
    local = LocalExec(
        pod_roots={(ns, running_pod): {"/var/log/calico/pcap": tmp_path}},
        commands={"packetcapture": [sys.executable, "-m", "packetcapture"]},
    )
    emulator.set_exec_handler(local)
    _out, err, code = run_exec(
        core,
        ns,
        running_pod,
        ["packetcapture", "status", "--capture-dir=/var/log/calico/pcap", f"{ns}/missing"],
    )
    assert code != 0
    assert "error: " in err  # the real CLI ran and refused the arguments
    ((_ns, _pod, argv),) = local.calls
    assert argv[:3] == [sys.executable, "-m", "packetcapture"]
    assert f"--capture-dir={tmp_path}" in argv


@pytest.mark.parametrize("how", ["stop", "end_watches"])
def test_open_watches_end_on_stop_or_end_watches(core, ns, emulator, how):
    rv = core.list_namespaced_pod(ns).metadata.resource_version
    outcome: list[str] = []

    def run() -> None:
        try:
            got = events(core.list_namespaced_pod, ns, resource_version=rv, count=5, timeout=30)
            outcome.append(f"ended with {len(got)} events")
        except Exception as exc:
            outcome.append(type(exc).__name__)

    thread = threading.Thread(target=run)
    thread.start()
    deadline = time.monotonic() + 5
    while emulator.watch_count == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    getattr(emulator, how)()
    thread.join(timeout=10)
    assert not thread.is_alive()
    # stop() cuts the connection; end_watches() closes the stream the way a server timeout does.
    assert outcome == (["ProtocolError"] if how == "stop" else ["ended with 0 events"])
