"""A stateful Kubernetes API server emulator speaking real HTTP (see docs/kubernetes-testing.md).

One lock guards the whole state: objects per store, the global resourceVersion counter, the
event history that watches resume from, and the open watches. Each HTTP connection is served by
its own daemon thread (``ThreadingHTTPServer``); a watch thread waits on its own queue, which
writers fill under the lock, so events reach every watch in resourceVersion order.
"""

from __future__ import annotations

import base64
import collections
import contextlib
import copy
import dataclasses
import datetime as dt
import http.server
import json
import logging
import queue
import random
import socket
import string
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import yaml

from ._patch import PatchError, json_patch, merge_patch
from ._resources import ResourceType, default_resources
from ._selectors import SelectorError, parse_field_selector, parse_label_selector
from ._websocket import ConnectionClosedError, WebSocket, accept_key

log = logging.getLogger(__name__)

_REASONS = {
    400: "BadRequest",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    410: "Expired",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}

# Sentinels a writer puts on a watch queue.
_DROP = object()  # cut the connection abruptly
_EXPIRE = object()  # send ERROR 410 Expired, then end the stream
_END = object()  # end the stream cleanly


class EmulatorError(Exception):
    """An API error: carries the ``Status`` object the emulator answers with."""

    def __init__(
        self,
        code: int,
        message: str,
        *,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{code} {reason or _REASONS.get(code, '')}: {message}")
        self.code = code
        self.reason = reason or _REASONS.get(code, "")
        self.message = message
        self.details = details
        self.headers = headers or {}

    @property
    def status(self) -> dict[str, Any]:
        """The ``Status`` object for this error."""
        body: dict[str, Any] = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            body["details"] = self.details
        return body


@dataclasses.dataclass
class RecordedRequest:
    """One request the emulator received (``query`` keeps the last value of each key)."""

    method: str
    path: str
    query: dict[str, str]
    query_all: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body parsed as JSON (``None`` when empty)."""
        return json.loads(self.body) if self.body else None


@dataclasses.dataclass
class _Event:
    rv: int
    store: str
    type: str
    obj: dict[str, Any]
    prev: dict[str, Any] | None


@dataclasses.dataclass(eq=False)
class _Watch:
    rt: ResourceType
    namespace: str | None
    labels: Callable[[Any], bool] | None
    fields: Callable[[Any], bool] | None
    queue: queue.Queue[Any] = dataclasses.field(default_factory=queue.Queue)

    def matches(self, obj: dict[str, Any] | None) -> bool:
        if obj is None:
            return False
        meta = obj.get("metadata", {})
        if self.namespace is not None and meta.get("namespace") != self.namespace:
            return False
        if self.labels is not None and not self.labels(meta.get("labels") or {}):
            return False
        return self.fields is None or self.fields(obj)


@dataclasses.dataclass
class _Fault:
    remaining: int
    code: int
    method: str | None
    path_contains: str | None
    retry_after: float | None


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _meta(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        meta = obj["metadata"] = {}
    return meta


def _truthy(value: str | None) -> bool:
    return value is not None and value.lower() in ("1", "true", "t", "yes")


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.emulator._track(self.connection, add=True)

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        self.server.emulator._track(self.connection, add=False)

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("emulator: " + format, *args)

    def _dispatch(self) -> None:
        self.server.emulator._handle(self)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch  # noqa: N815


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    emulator: ApiEmulator


class ApiEmulator:
    """A stateful Kubernetes API server for tests (see docs/kubernetes-testing.md).

    ``history`` is how many events watches can resume from; ``bookmark_interval`` how often a
    watch with ``allowWatchBookmarks=true`` gets a BOOKMARK; ``expired_as`` how a watch from a
    too-old resourceVersion fails (``"event"``: 200 then an ERROR event, as kube-apiserver does;
    ``"http"``: an HTTP 410 answer); ``crd_groups`` also serves PacketCaptures (the same
    objects) under these ``group/version`` API versions, e.g. ``("crd.projectcalico.org/v1",)``.
    """

    def __init__(
        self,
        *,
        history: int = 10_000,
        bookmark_interval: float = 1.0,
        expired_as: str = "event",
        crd_groups: tuple[str, ...] = (),
        resources: list[ResourceType] | None = None,
        start_rv: int = 1000,
    ) -> None:
        self._lock = threading.RLock()
        self._rv = start_rv
        self._oldest_rv = start_rv
        self._history: collections.deque[_Event] = collections.deque()
        self._history_max = history
        self._objects: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}
        self._watches: set[_Watch] = set()
        self._types: dict[tuple[str, str, str], ResourceType] = {}
        self._unserved: set[tuple[str, str, str]] = set()
        self._faults: list[_Fault] = []
        self._latency: list[tuple[float, str | None]] = []
        self._conns: set[socket.socket] = set()
        self._exec_handler: Callable[..., int] | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._port = 0
        self.bookmark_interval = bookmark_interval
        self.expired_as = expired_as
        #: WebSocket subprotocols for exec, in order of preference.
        self.exec_protocols: tuple[str, ...] = ("v4.channel.k8s.io", "v5.channel.k8s.io")
        #: Every request received, in order.
        self.requests: list[RecordedRequest] = []
        for rt in resources if resources is not None else default_resources():
            self._register(rt)
        for gv in crd_groups:
            group, version = gv.split("/")
            self.serve_custom(
                group,
                version,
                "packetcaptures",
                "PacketCapture",
                store="projectcalico.org/packetcaptures",
            )

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> ApiEmulator:
        """Listen on 127.0.0.1 (a free port, kept across :meth:`set_down`) and serve."""
        server = _Server(("127.0.0.1", self._port), _Handler)
        server.emulator = self
        self._port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
            name=f"kube-emulator-{self._port}",
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close every open connection (watches and exec sessions too)."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        with self._lock:
            for watch in self._watches:
                watch.queue.put(_DROP)
        self._close_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> ApiEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self._port}"

    def api_client(self) -> Any:
        """A ``kubernetes.client.ApiClient`` for this emulator (no auth)."""
        import kubernetes.client

        configuration = kubernetes.client.Configuration()
        configuration.host = self.url
        return kubernetes.client.ApiClient(configuration)

    def write_kubeconfig(self, path: str | Path) -> Path:
        """Write a kubeconfig pointing at this emulator (for ``--kubeconfig``)."""
        path = Path(path)
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "emulator", "cluster": {"server": self.url}}],
            "users": [{"name": "emulator", "user": {"token": "emulator"}}],
            "contexts": [
                {"name": "emulator", "context": {"cluster": "emulator", "user": "emulator"}}
            ],
            "current-context": "emulator",
        }
        path.write_text(yaml.safe_dump(config))
        return path

    def set_down(self, down: bool) -> None:
        """Make the API go away (connections refused, open ones cut) or come back."""
        if down:
            self.stop()
        elif self._server is None:
            deadline = time.monotonic() + 5
            while True:
                try:
                    self.start()
                    return
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._conns.add(conn)
            else:
                self._conns.discard(conn)

    def _close_connections(self) -> None:
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    # ------------------------------------------------------------ configuration

    def _register(self, rt: ResourceType) -> None:
        self._types[(rt.group, rt.version, rt.plural)] = rt

    def serve_custom(
        self,
        group: str,
        version: str,
        plural: str,
        kind: str,
        namespaced: bool = True,
        status_subresource: bool = True,
        *,
        store: str = "",
        list_map_keys: dict[str, tuple[str, ...]] | None = None,
    ) -> ResourceType:
        """Serve a custom resource; ``store`` shares objects with another type of that store."""
        rt = ResourceType(
            group,
            version,
            plural,
            kind,
            namespaced=namespaced,
            status_subresource=status_subresource,
            store=store,
            list_map_keys=list_map_keys or {},
        )
        self._register(rt)
        return rt

    def set_served(self, api_version: str, plural: str, served: bool) -> None:
        """Turn a resource off (every path under it answers 404, as when not served) or on."""
        group, _, version = api_version.rpartition("/")
        key = (group, version, plural)
        if key not in self._types:
            raise KeyError(f"unknown resource {api_version} {plural}")
        if served:
            self._unserved.discard(key)
        else:
            self._unserved.add(key)

    def set_exec_handler(self, handler: Callable[..., int] | None) -> None:
        """Handle pods/exec: ``handler(ns, pod, container, argv, stdin, out, err) -> exit code``."""
        self._exec_handler = handler

    def fail_next(
        self,
        n: int,
        code: int = 500,
        *,
        method: str | None = None,
        path_contains: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        """Answer the next ``n`` matching requests with an error Status (429 gets Retry-After)."""
        with self._lock:
            self._faults.append(_Fault(n, code, method, path_contains, retry_after))

    def set_latency(self, seconds: float, *, path_contains: str | None = None) -> None:
        """Delay matching requests by ``seconds`` (0 removes the rule for that path filter)."""
        with self._lock:
            self._latency = [r for r in self._latency if r[1] != path_contains]
            if seconds > 0:
                self._latency.append((seconds, path_contains))

    def clear_requests(self) -> None:
        """Forget the recorded requests."""
        with self._lock:
            self.requests.clear()

    # --------------------------------------------------------- server-side API

    def _type_for(self, api_version: str, kind: str) -> ResourceType:
        group, _, version = api_version.rpartition("/")
        for rt in self._types.values():
            if rt.group == group and rt.version == version and rt.kind == kind:
                return rt
        raise KeyError(f"unknown kind {api_version} {kind}")

    @property
    def resource_version(self) -> str:
        """The current (latest) resourceVersion."""
        with self._lock:
            return str(self._rv)

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Store a new object as given (status included), as any controller could have."""
        rt = self._type_for(obj["apiVersion"], obj["kind"])
        ns = _meta(obj).get("namespace", "default") if rt.namespaced else ""
        with self._lock:
            if rt.namespaced and self._find("namespaces", "", ns) is None:
                self._create_locked(
                    self._core("namespaces"), "", {"metadata": {"name": ns}}, from_api=False
                )
            return self._render(rt, self._create_locked(rt, ns, obj, from_api=False))

    def replace(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Replace an object (status included); a stale ``resourceVersion`` raises 409."""
        rt = self._type_for(obj["apiVersion"], obj["kind"])
        meta = _meta(obj)
        ns = meta.get("namespace", "default") if rt.namespaced else ""
        with self._lock:
            stored = self._update_locked(
                rt,
                ns,
                meta["name"],
                copy.deepcopy(obj),
                subresource=None,
                whole=True,
                precondition=meta.get("resourceVersion") or None,
            )
            return self._render(rt, stored)

    def patch(
        self,
        api_version: str,
        kind: str,
        namespace: str | None,
        name: str,
        patch: dict[str, Any],
        *,
        subresource: str | None = None,
    ) -> dict[str, Any]:
        """Merge-patch an object (``subresource="status"``: only its status changes)."""
        rt = self._type_for(api_version, kind)
        ns = (namespace or "") if rt.namespaced else ""
        with self._lock:
            old = self._get_or_404(rt, ns, name)
            patched = merge_patch(self._render(rt, old), patch)
            stored = self._update_locked(
                rt,
                ns,
                name,
                patched,
                subresource=subresource,
                whole=subresource is None,
                precondition=_meta(patched).get("resourceVersion") or None,
            )
            return self._render(rt, stored)

    def delete(self, api_version: str, kind: str, namespace: str | None, name: str) -> None:
        """Delete an object (finalizers honoured; a Namespace takes its objects with it)."""
        rt = self._type_for(api_version, kind)
        with self._lock:
            self._delete_locked(rt, (namespace or "") if rt.namespaced else "", name)

    def get(
        self, api_version: str, kind: str, namespace: str | None, name: str
    ) -> dict[str, Any] | None:
        """The stored object, or None."""
        rt = self._type_for(api_version, kind)
        with self._lock:
            obj = self._find(rt.store_key, (namespace or "") if rt.namespaced else "", name)
            return None if obj is None else self._render(rt, obj)

    def list(
        self, api_version: str, kind: str, namespace: str | None = None
    ) -> list[dict[str, Any]]:
        """Every stored object of a kind (in one namespace when given), sorted by key."""
        rt = self._type_for(api_version, kind)
        with self._lock:
            items = self._objects.get(rt.store_key, {})
            return [
                self._render(rt, items[key])
                for key in sorted(items)
                if namespace is None or key[0] == namespace
            ]

    def compact(self) -> None:
        """Forget the event history: watches/lists from any older resourceVersion get 410."""
        with self._lock:
            self._history.clear()
            self._oldest_rv = self._rv

    def drop_watches(self) -> None:
        """Cut every open watch connection abruptly (the client sees a broken stream)."""
        with self._lock:
            for watch in self._watches:
                watch.queue.put(_DROP)

    def expire_watches(self) -> None:
        """Send every open watch an ERROR event (410 Expired) and end it, as compaction does."""
        with self._lock:
            for watch in self._watches:
                watch.queue.put(_EXPIRE)

    def end_watches(self) -> None:
        """End every open watch cleanly (as a server-side watch timeout does)."""
        with self._lock:
            for watch in self._watches:
                watch.queue.put(_END)

    @property
    def watch_count(self) -> int:
        """How many watches are open now."""
        with self._lock:
            return len(self._watches)

    # ------------------------------------------------------------ storage core

    def _core(self, plural: str) -> ResourceType:
        return self._types[("", "v1", plural)]

    def _find(self, store: str, ns: str, name: str) -> dict[str, Any] | None:
        if "/" not in store:
            store = f"/{store}"
        return self._objects.get(store, {}).get((ns, name))

    def _get_or_404(self, rt: ResourceType, ns: str, name: str) -> dict[str, Any]:
        obj = self._find(rt.store_key, ns, name)
        if obj is None:
            raise self._not_found(rt, name)
        return obj

    @staticmethod
    def _not_found(rt: ResourceType, name: str) -> EmulatorError:
        return EmulatorError(
            404,
            f'{rt.group_resource} "{name}" not found',
            details={"name": name, "group": rt.group, "kind": rt.plural},
        )

    @staticmethod
    def _conflict(rt: ResourceType, name: str) -> EmulatorError:
        return EmulatorError(
            409,
            f'Operation cannot be fulfilled on {rt.group_resource} "{name}": the object has been '
            "modified; please apply your changes to the latest version and try again",
            details={"name": name, "group": rt.group, "kind": rt.plural},
        )

    def _render(self, rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        out = copy.deepcopy(obj)
        out["apiVersion"] = rt.api_version
        out["kind"] = rt.kind
        return out

    def _bump(self) -> int:
        self._rv += 1
        return self._rv

    def _emit(
        self, rt: ResourceType, kind: str, obj: dict[str, Any], prev: dict[str, Any] | None
    ) -> None:
        event = _Event(self._rv, rt.store_key, kind, copy.deepcopy(obj), prev)
        self._history.append(event)
        while len(self._history) > self._history_max:
            self._oldest_rv = self._history.popleft().rv
        for watch in self._watches:
            if watch.rt.store_key == rt.store_key:
                self._deliver(watch, event)

    def _deliver(self, watch: _Watch, event: _Event) -> None:
        now_match = event.type != "DELETED" and watch.matches(event.obj)
        if event.type == "ADDED":
            kind = "ADDED" if now_match else None
        elif event.type == "DELETED":
            kind = "DELETED" if watch.matches(event.obj) else None
        else:
            was_match = watch.matches(event.prev)
            # Like the watch cache: an object entering the selection is ADDED, leaving it DELETED.
            kind = {
                (True, True): "MODIFIED",
                (False, True): "ADDED",
                (True, False): "DELETED",
            }.get((was_match, now_match))
        if kind is not None:
            watch.queue.put({"type": kind, "object": self._render(watch.rt, event.obj)})

    def _check_namespace(self, rt: ResourceType, ns: str, name: str) -> None:
        if not rt.namespaced:
            return
        namespace = self._find("namespaces", "", ns)
        if namespace is None:
            raise EmulatorError(
                404,
                f'namespaces "{ns}" not found',
                details={"name": ns, "kind": "namespaces"},
            )
        if namespace["metadata"].get("deletionTimestamp"):
            raise EmulatorError(
                403,
                f'{rt.group_resource} "{name}" is forbidden: unable to '
                f"create new content in namespace {ns} because it is being terminated",
            )

    def _create_locked(
        self, rt: ResourceType, ns: str, obj: dict[str, Any], *, from_api: bool
    ) -> dict[str, Any]:
        obj = copy.deepcopy(obj)
        meta = _meta(obj)
        if not meta.get("name"):
            if meta.get("generateName"):
                suffix = "".join(random.choices(string.ascii_lowercase + string.digits, k=5))
                meta["name"] = meta["generateName"] + suffix
            else:
                raise EmulatorError(
                    422,
                    f'{rt.kind}.{rt.group or "core"} "" is invalid: metadata.name: '
                    "Required value: name or generateName is required",
                )
        name = meta["name"]
        if rt.namespaced:
            if meta.get("namespace") not in (None, "", ns):
                raise EmulatorError(
                    400,
                    "the namespace of the provided object does not match the namespace "
                    "sent on the request",
                )
            meta["namespace"] = ns
            if from_api:
                self._check_namespace(rt, ns, name)
        else:
            meta.pop("namespace", None)
        if from_api and rt.kind == "Pod" and not (obj.get("spec") or {}).get("containers"):
            raise EmulatorError(
                422,
                f'Pod "{name}" is invalid: spec.containers: Required value',
                details={
                    "name": name,
                    "kind": "Pod",
                    "causes": [
                        {
                            "reason": "FieldValueRequired",
                            "message": "Required value",
                            "field": "spec.containers",
                        }
                    ],
                },
            )
        store = self._objects.setdefault(rt.store_key, {})
        if (ns, name) in store:
            raise EmulatorError(
                409,
                f'{rt.group_resource} "{name}" already exists',
                reason="AlreadyExists",
                details={"name": name, "group": rt.group, "kind": rt.plural},
            )
        for key in ("deletionTimestamp", "deletionGracePeriodSeconds", "managedFields"):
            meta.pop(key, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = _now()
        if rt.generation:
            meta["generation"] = 1
        else:
            meta.pop("generation", None)
        if from_api and rt.status_subresource:
            obj.pop("status", None)
        if rt.kind == "Pod" and "phase" not in (obj.get("status") or {}):
            obj.setdefault("status", {})["phase"] = "Pending"
        if rt.kind == "Namespace":
            obj.setdefault("status", {}).setdefault("phase", "Active")
            meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = name
        obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
        meta["resourceVersion"] = str(self._bump())
        store[(ns, name)] = obj
        self._emit(rt, "ADDED", obj, None)
        return obj

    def _spec_part(self, rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        skip = {"metadata", "apiVersion", "kind"} | ({"status"} if rt.status_subresource else set())
        return {k: v for k, v in obj.items() if k not in skip}

    def _update_locked(
        self,
        rt: ResourceType,
        ns: str,
        name: str,
        new: dict[str, Any],
        *,
        subresource: str | None,
        whole: bool = False,
        precondition: str | None = None,
        system: bool = False,
    ) -> dict[str, Any]:
        old = self._get_or_404(rt, ns, name)
        old_meta = old["metadata"]
        if precondition is not None and precondition != old_meta["resourceVersion"]:
            raise self._conflict(rt, name)
        new_meta = _meta(new)
        if new_meta.get("name", name) != name:
            raise EmulatorError(
                400,
                f"the name of the object ({new_meta.get('name')}) does not match the name "
                f"on the URL ({name})",
            )
        if rt.namespaced and new_meta.get("namespace") not in (None, "", ns):
            raise EmulatorError(
                400,
                "the namespace of the provided object does not match the namespace sent "
                "on the request",
            )
        if new_meta.get("uid") not in (None, "", old_meta["uid"]):
            raise EmulatorError(
                409,
                f"Precondition failed: UID in precondition: {new_meta['uid']}, UID in object "
                f"meta: {old_meta['uid']}",
            )
        if subresource == "status":
            result = copy.deepcopy(old)
            if "status" in new:
                result["status"] = copy.deepcopy(new["status"])
            else:
                result.pop("status", None)
        elif subresource is not None:
            raise EmulatorError(
                404, f"the server could not find the requested resource ({subresource})"
            )
        else:
            result = copy.deepcopy(new)
            meta = _meta(result)
            kept = ["uid", "creationTimestamp", "generation"]
            if not system:  # clients cannot set or clear a deletion themselves
                kept += ["deletionTimestamp", "deletionGracePeriodSeconds"]
            for key in kept:
                if key in old_meta:
                    meta[key] = old_meta[key]
                else:
                    meta.pop(key, None)
            if rt.namespaced:
                meta["namespace"] = ns
            meta["name"] = name
            if rt.status_subresource and not whole:
                if "status" in old:
                    result["status"] = copy.deepcopy(old["status"])
                else:
                    result.pop("status", None)
            if rt.generation and self._spec_part(rt, result) != self._spec_part(rt, old):
                meta["generation"] = int(old_meta.get("generation", 1)) + 1
        result["apiVersion"], result["kind"] = rt.api_version, rt.kind
        _meta(result)["resourceVersion"] = old_meta["resourceVersion"]
        if result == old:
            # Like etcd3 storage: an update that changes nothing writes nothing (same RV, no event).
            return old
        _meta(result)["resourceVersion"] = str(self._bump())
        store = self._objects[rt.store_key]
        if _meta(result).get("deletionTimestamp") and not _meta(result).get("finalizers"):
            del store[(ns, name)]
            self._emit(rt, "DELETED", result, old)
            return result
        store[(ns, name)] = result
        self._emit(rt, "MODIFIED", result, old)
        return result

    def _delete_locked(
        self, rt: ResourceType, ns: str, name: str, preconditions: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        obj = self._get_or_404(rt, ns, name)
        meta = obj["metadata"]
        pre = preconditions or {}
        if pre.get("resourceVersion") not in (None, meta["resourceVersion"]):
            raise EmulatorError(
                409,
                f"Precondition failed: ResourceVersion in precondition: "
                f"{pre['resourceVersion']}, ResourceVersion in object meta: "
                f"{meta['resourceVersion']}",
            )
        if pre.get("uid") not in (None, meta["uid"]):
            raise EmulatorError(
                409,
                f"Precondition failed: UID in precondition: {pre['uid']}, UID in object "
                f"meta: {meta['uid']}",
            )
        if meta.get("finalizers"):
            if meta.get("deletionTimestamp"):
                return obj
            new = copy.deepcopy(obj)
            new["metadata"]["deletionTimestamp"] = _now()
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            return self._update_locked(rt, ns, name, new, subresource=None, whole=True, system=True)
        if rt.kind == "Namespace":
            # The namespace controller's work, done at once: every object in it goes first.
            for other in self._types.values():
                if not other.namespaced:
                    continue
                items = self._objects.get(other.store_key, {})
                for key in sorted(k for k in items if k[0] == name):
                    if key in items:
                        self._delete_locked(other, key[0], key[1])
            obj = self._find(rt.store_key, ns, name) or obj
        store = self._objects[rt.store_key]
        if (ns, name) not in store:
            return obj
        del store[(ns, name)]
        gone = copy.deepcopy(obj)
        gone["metadata"]["resourceVersion"] = str(self._bump())
        self._emit(rt, "DELETED", gone, obj)
        return gone

    # ------------------------------------------------------------------- HTTP

    def _handle(self, h: _Handler) -> None:
        parts = urlsplit(h.path)
        query_all = parse_qs(parts.query, keep_blank_values=True)
        query = {k: v[-1] for k, v in query_all.items()}
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        request = RecordedRequest(
            h.command, parts.path, query, query_all, {k: v for k, v in h.headers.items()}, body
        )
        with self._lock:
            self.requests.append(request)
            delay = max((s for s, p in self._latency if p is None or p in h.path), default=0.0)
            fault = None
            for rule in self._faults:
                if (rule.method is None or rule.method.upper() == h.command) and (
                    rule.path_contains is None or rule.path_contains in h.path
                ):
                    fault = rule
                    rule.remaining -= 1
                    break
            self._faults = [r for r in self._faults if r.remaining > 0]
        if delay:
            time.sleep(delay)
        try:
            if fault is not None:
                headers = {}
                if fault.retry_after is not None:
                    headers["Retry-After"] = f"{fault.retry_after:g}"
                raise EmulatorError(
                    fault.code,
                    "injected failure"
                    if fault.code != 429
                    else "Too many requests, please try again later.",
                    headers=headers,
                    details={"retryAfterSeconds": int(fault.retry_after)}
                    if fault.retry_after is not None
                    else None,
                )
            self._route(h, request)
        except EmulatorError as exc:
            self._send_json(h, exc.code, exc.status, exc.headers)
        except (ConnectionError, ConnectionClosedError, TimeoutError):
            h.close_connection = True

    def _send_json(
        self, h: _Handler, code: int, body: Any, headers: dict[str, str] | None = None
    ) -> None:
        data = json.dumps(body).encode()
        h.send_response(code)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.send_header("Audit-Id", str(uuid.uuid4()))
        for key, value in (headers or {}).items():
            h.send_header(key, value)
        h.end_headers()
        h.wfile.write(data)

    def _route(self, h: _Handler, req: RecordedRequest) -> None:
        segs = [s for s in req.path.split("/") if s]
        method = req.method
        if method == "GET" and self._discovery(h, segs):
            return
        if segs[:2] == ["api", "v1"]:
            group, version, rest = "", "v1", segs[2:]
        elif len(segs) >= 3 and segs[0] == "apis":
            group, version, rest = segs[1], segs[2], segs[3:]
        else:
            raise EmulatorError(404, "the server could not find the requested resource")
        ns = None
        if len(rest) >= 3 and rest[0] == "namespaces" and (group, version, rest[2]) in self._types:
            ns, rest = rest[1], rest[2:]
        if not rest or (group, version, rest[0]) not in self._types:
            raise EmulatorError(404, "the server could not find the requested resource")
        key = (group, version, rest[0])
        rt = self._types[key]
        if key in self._unserved:
            raise EmulatorError(404, "the server could not find the requested resource")
        if rt.namespaced != (ns is not None) and not (len(rest) == 1 and method == "GET"):
            raise EmulatorError(404, "the server could not find the requested resource")
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if len(rest) > 3 or (sub is not None and sub not in ("status", "exec")):
            raise EmulatorError(404, "the server could not find the requested resource")
        if sub == "status" and not rt.status_subresource:
            raise EmulatorError(404, "the server could not find the requested resource")
        nsv = ns or ""
        if sub == "exec":
            if rt.kind != "Pod" or method not in ("GET", "POST"):
                raise EmulatorError(404, "the server could not find the requested resource")
            self._exec(h, req, nsv, name or "")
            return
        if name is None:
            if method == "GET":
                if _truthy(req.query.get("watch")):
                    self._watch(h, req, rt, ns)
                else:
                    self._send_json(h, 200, self._list(rt, ns, req.query))
            elif method == "POST":
                body = self._body(req)
                with self._lock:
                    created = self._create_locked(rt, nsv, body, from_api=True)
                    self._send_json(h, 201, self._render(rt, created))
            elif method == "DELETE":
                self._send_json(h, 200, self._delete_collection(rt, ns, req.query))
            else:
                raise EmulatorError(405, f"{method} is not supported on a collection")
            return
        with self._lock:
            if method == "GET":
                self._send_json(h, 200, self._render(rt, self._get_or_404(rt, nsv, name)))
            elif method == "PUT":
                body = self._body(req)
                stored = self._update_locked(
                    rt,
                    nsv,
                    name,
                    body,
                    subresource=sub,
                    precondition=_meta(body).get("resourceVersion") or None,
                )
                self._send_json(h, 200, self._render(rt, stored))
            elif method == "PATCH":
                self._send_json(h, 200, self._render(rt, self._patch(rt, nsv, name, sub, req)))
            elif method == "DELETE" and sub is None:
                options = self._body(req) if req.body else {}
                gone = self._delete_locked(rt, nsv, name, options.get("preconditions"))
                if rt.delete_returns_object or gone["metadata"].get("deletionTimestamp"):
                    self._send_json(h, 200, self._render(rt, gone))
                else:
                    self._send_json(
                        h,
                        200,
                        {
                            "kind": "Status",
                            "apiVersion": "v1",
                            "metadata": {},
                            "status": "Success",
                            "details": {
                                "name": name,
                                "group": rt.group,
                                "kind": rt.plural,
                                "uid": gone["metadata"]["uid"],
                            },
                        },
                    )
            else:
                raise EmulatorError(405, f"{method} is not supported")

    @staticmethod
    def _body(req: RecordedRequest) -> Any:
        try:
            body = json.loads(req.body or b"null")
        except ValueError as exc:
            raise EmulatorError(400, f"error decoding request body: {exc}") from exc
        if not isinstance(body, dict):
            raise EmulatorError(400, "the request body must be a JSON object")
        return body

    def _patch(
        self, rt: ResourceType, ns: str, name: str, sub: str | None, req: RecordedRequest
    ) -> dict[str, Any]:
        ctype = (req.headers.get("Content-Type") or "").split(";")[0].strip()
        old = self._render(rt, self._get_or_404(rt, ns, name))
        try:
            if ctype == "application/merge-patch+json":
                patched = merge_patch(old, json.loads(req.body))
            elif ctype == "application/strategic-merge-patch+json":
                if not rt.builtin:
                    raise EmulatorError(
                        415,
                        "the body of the request was in an unknown format - accepted "
                        "media types include: application/json-patch+json, "
                        "application/merge-patch+json, application/apply-patch+yaml",
                    )
                # Lists are replaced, not merged by their patchMergeKey (documented limit).
                patched = merge_patch(old, json.loads(req.body))
            elif ctype == "application/json-patch+json":
                try:
                    patched = json_patch(old, json.loads(req.body))
                except PatchError as exc:
                    raise EmulatorError(422, str(exc)) from exc
            elif ctype == "application/apply-patch+yaml":
                if not req.query.get("fieldManager"):
                    raise EmulatorError(
                        400,
                        'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required '
                        "value: is required for apply patch",
                    )
                patched = self._apply(rt, old, yaml.safe_load(req.body))
            else:
                raise EmulatorError(
                    415, f"the body of the request was in an unknown format - {ctype!r}"
                )
        except ValueError as exc:
            raise EmulatorError(400, f"error decoding patch: {exc}") from exc
        if not isinstance(patched, dict):
            raise EmulatorError(422, "the patched object is not an object")
        # A patch whose result carries a resourceVersion is an optimistic-concurrency precondition.
        rv = _meta(patched).get("resourceVersion") or None
        return self._update_locked(rt, ns, name, patched, subresource=sub, precondition=rv)

    def _apply(self, rt: ResourceType, old: dict[str, Any], applied: Any) -> dict[str, Any]:
        """Simplified server-side apply: merge maps, lists atomic unless declared map lists."""
        if not isinstance(applied, dict):
            raise EmulatorError(400, "error decoding YAML: not an object")

        def merge(base: Any, new: Any, path: str) -> Any:
            if isinstance(base, dict) and isinstance(new, dict):
                out = copy.deepcopy(base)
                for key, value in new.items():
                    out[key] = merge(base.get(key), value, f"{path}.{key}" if path else key)
                return out
            keys = rt.list_map_keys.get(path)
            if keys and isinstance(base, list) and isinstance(new, list):
                out_list = copy.deepcopy(base)
                for entry in new:
                    ident = tuple(entry.get(k) for k in keys)
                    for i, existing in enumerate(out_list):
                        if tuple(existing.get(k) for k in keys) == ident:
                            out_list[i] = merge(existing, entry, path)
                            break
                    else:
                        out_list.append(copy.deepcopy(entry))
                return out_list
            return copy.deepcopy(new)

        applied = dict(applied)
        _meta(applied).pop("resourceVersion", None)
        return merge(old, applied, "")

    # ------------------------------------------------------------- list/watch

    def _selectors(
        self, rt: ResourceType, query: dict[str, str]
    ) -> tuple[Callable[[Any], bool] | None, Callable[[Any], bool] | None]:
        try:
            labels = (
                parse_label_selector(query["labelSelector"]) if query.get("labelSelector") else None
            )
            fields = (
                parse_field_selector(query["fieldSelector"], rt.field_labels)
                if query.get("fieldSelector")
                else None
            )
        except SelectorError as exc:
            raise EmulatorError(400, str(exc)) from exc
        return labels, fields

    def _expired(self, rv: str) -> EmulatorError:
        return EmulatorError(
            410, f"too old resource version: {rv} ({self._oldest_rv})", reason="Expired"
        )

    def _parse_rv(self, rv: str) -> int:
        try:
            return int(rv)
        except ValueError:
            raise EmulatorError(400, f"invalid resource version: {rv!r}") from None

    def _list(self, rt: ResourceType, ns: str | None, query: dict[str, str]) -> dict[str, Any]:
        labels, fields = self._selectors(rt, query)
        probe = _Watch(rt, ns, labels, fields)
        with self._lock:
            start_after: tuple[str, str] | None = None
            list_rv = self._rv
            if query.get("continue"):
                try:
                    token = json.loads(base64.urlsafe_b64decode(query["continue"]))
                    token_rv, start_after = int(token["rv"]), (token["ns"], token["name"])
                except (ValueError, KeyError, TypeError):
                    raise EmulatorError(400, "invalid continue token") from None
                if token_rv < self._oldest_rv:
                    raise EmulatorError(
                        410,
                        "The provided continue parameter is too old to display a consistent "
                        "list result. You can start a new list without the continue parameter.",
                        reason="Expired",
                    )
            rv = query.get("resourceVersion")
            if rv and rv != "0" and query.get("resourceVersionMatch") == "Exact":
                wanted = self._parse_rv(rv)
                if wanted < self._oldest_rv:
                    raise self._expired(rv)
                items = self._state_at(rt, wanted)
                list_rv = wanted
            else:
                items = dict(self._objects.get(rt.store_key, {}))
            keys = sorted(k for k, obj in items.items() if probe.matches(obj))
            if start_after is not None:
                keys = [k for k in keys if k > start_after]
            meta: dict[str, Any] = {"resourceVersion": str(list_rv)}
            limit = int(query.get("limit") or 0)
            if limit and len(keys) > limit:
                keys, rest = keys[:limit], len(keys) - limit
                last = keys[-1]
                meta["continue"] = base64.urlsafe_b64encode(
                    json.dumps({"rv": list_rv, "ns": last[0], "name": last[1]}).encode()
                ).decode()
                meta["remainingItemCount"] = rest
            out = []
            for key in keys:
                item = self._render(rt, items[key])
                if rt.builtin:  # typed lists omit each item's kind and apiVersion
                    item.pop("kind", None)
                    item.pop("apiVersion", None)
                out.append(item)
            return {
                "kind": f"{rt.kind}List",
                "apiVersion": rt.api_version,
                "metadata": meta,
                "items": out,
            }

    def _state_at(self, rt: ResourceType, rv: int) -> dict[tuple[str, str], dict[str, Any]]:
        """The objects of ``rt`` as they were at ``rv``, undoing later history."""
        items = dict(self._objects.get(rt.store_key, {}))
        for event in reversed(self._history):
            if event.rv <= rv:
                break
            if event.store != rt.store_key:
                continue
            meta = event.obj["metadata"]
            key = (meta.get("namespace", ""), meta["name"])
            if event.prev is None:
                items.pop(key, None)
            else:
                items[key] = event.prev
        return items

    def _delete_collection(
        self, rt: ResourceType, ns: str | None, query: dict[str, str]
    ) -> dict[str, Any]:
        listed = self._list(rt, ns, query)
        with self._lock:
            for item in listed["items"]:
                meta = item["metadata"]
                with contextlib.suppress(EmulatorError):
                    self._delete_locked(rt, meta.get("namespace", ""), meta["name"])
        return listed

    def _watch(self, h: _Handler, req: RecordedRequest, rt: ResourceType, ns: str | None) -> None:
        labels, fields = self._selectors(rt, req.query)
        watch = _Watch(rt, ns, labels, fields)
        rv = req.query.get("resourceVersion", "")
        timeout = float(req.query["timeoutSeconds"]) if req.query.get("timeoutSeconds") else None
        bookmarks = _truthy(req.query.get("allowWatchBookmarks"))
        expired = False
        with self._lock:
            if rv in ("", "0"):
                # No RV: synthetic ADDED events for what exists now, then changes.
                items = self._objects.get(rt.store_key, {})
                for key in sorted(items):
                    if watch.matches(items[key]):
                        watch.queue.put({"type": "ADDED", "object": self._render(rt, items[key])})
            else:
                start = self._parse_rv(rv)
                if start < self._oldest_rv:
                    if self.expired_as == "http":
                        raise self._expired(rv)
                    expired = True
                    watch.queue.put(_EXPIRE)
                else:
                    for event in self._history:
                        if event.rv > start and event.store == rt.store_key:
                            self._deliver(watch, event)
            if not expired:
                self._watches.add(watch)
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Transfer-Encoding", "chunked")
        h.send_header("Audit-Id", str(uuid.uuid4()))
        h.end_headers()
        try:
            self._pump_watch(h, watch, rv, timeout, bookmarks)
        finally:
            with self._lock:
                self._watches.discard(watch)

    def _pump_watch(
        self, h: _Handler, watch: _Watch, rv: str, timeout: float | None, bookmarks: bool
    ) -> None:
        def chunk(data: bytes) -> None:
            h.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

        def event(body: dict[str, Any]) -> None:
            chunk(json.dumps(body).encode() + b"\n")

        started = time.monotonic()
        last_bookmark = started
        while True:
            now = time.monotonic()
            waits = []
            if timeout is not None:
                waits.append(started + timeout - now)
            if bookmarks:
                waits.append(last_bookmark + self.bookmark_interval - now)
            wait = max(0.0, min(waits)) if waits else None
            try:
                item = watch.queue.get(timeout=wait)
            except queue.Empty:
                now = time.monotonic()
                if timeout is not None and now >= started + timeout:
                    chunk(b"")
                    return
                with self._lock:
                    if bookmarks and watch.queue.empty():
                        # Every event up to this RV that matches has been sent already.
                        event(
                            {
                                "type": "BOOKMARK",
                                "object": {
                                    "kind": watch.rt.kind,
                                    "apiVersion": watch.rt.api_version,
                                    "metadata": {"resourceVersion": str(self._rv)},
                                },
                            }
                        )
                last_bookmark = now
                continue
            if item is _DROP:
                h.close_connection = True
                with contextlib.suppress(OSError):
                    h.connection.shutdown(socket.SHUT_RDWR)
                return
            if item is _EXPIRE:
                event({"type": "ERROR", "object": self._expired(rv or "0").status})
                chunk(b"")
                return
            if item is _END:
                chunk(b"")
                return
            event(item)

    # ---------------------------------------------------------------- exec

    def _exec(self, h: _Handler, req: RecordedRequest, ns: str, name: str) -> None:
        rt = self._core("pods")
        with self._lock:
            pod = copy.deepcopy(self._get_or_404(rt, ns, name))
        containers = [c.get("name") for c in (pod.get("spec") or {}).get("containers") or []]
        container = req.query.get("container")
        if container is None:
            if len(containers) > 1:
                raise EmulatorError(
                    400,
                    f"a container name must be specified for pod {name}, choose one of: "
                    f"[{' '.join(containers)}]",
                )
            container = containers[0] if containers else None
        elif containers and container not in containers:
            raise EmulatorError(400, f"container {container} is not valid for pod {name}")
        argv = req.query_all.get("command", [])
        if not argv:
            raise EmulatorError(400, "you must specify at least 1 command")
        if "websocket" not in (h.headers.get("Upgrade") or "").lower():
            raise EmulatorError(400, "Upgrade request required")
        offered = [p.strip() for p in (h.headers.get("Sec-WebSocket-Protocol") or "").split(",")]
        chosen = next((p for p in self.exec_protocols if p in offered), None)
        if chosen is None:
            raise EmulatorError(400, f"no supported subprotocol in {offered}")
        handler = self._exec_handler
        h.close_connection = True
        h.send_response(101, "Switching Protocols")
        h.send_header("Upgrade", "websocket")
        h.send_header("Connection", "Upgrade")
        h.send_header("Sec-WebSocket-Accept", accept_key(h.headers.get("Sec-WebSocket-Key", "")))
        h.send_header("Sec-WebSocket-Protocol", chosen)
        h.end_headers()
        ws = WebSocket(h.connection, h.rfile)
        try:
            stdin: bytes | None = None
            if _truthy(req.query.get("stdin")):
                stdin = self._read_stdin(ws, v5=chosen.startswith("v5"))
            # Read until the client closes, so a streaming command stops when it goes away.
            threading.Thread(target=self._drain, args=(ws,), daemon=True).start()

            def writer(channel: int) -> Callable[[bytes], None]:
                def write(data: bytes) -> None:
                    for i in range(0, len(data), 1 << 15):
                        ws.send_binary(bytes([channel]) + data[i : i + (1 << 15)])

                return write

            want_out = _truthy(req.query.get("stdout"))
            want_err = _truthy(req.query.get("stderr"))
            out = writer(1) if want_out else (lambda _data: None)
            err = writer(2) if want_err else (lambda _data: None)
            if handler is None:
                status = {
                    "metadata": {},
                    "status": "Failure",
                    "reason": "InternalError",
                    "message": "the emulator has no exec handler",
                }
            else:
                try:
                    code = handler(ns, name, container, list(argv), stdin, out, err)
                except ConnectionClosedError:
                    return
                except Exception as exc:
                    log.exception("exec handler failed")
                    status = {
                        "metadata": {},
                        "status": "Failure",
                        "reason": "InternalError",
                        "message": f"exec handler failed: {exc}",
                    }
                else:
                    status = (
                        {"metadata": {}, "status": "Success"}
                        if code == 0
                        else {
                            "metadata": {},
                            "status": "Failure",
                            "message": "command terminated with non-zero exit code: "
                            f"exit status {code}",
                            "reason": "NonZeroExitCode",
                            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
                        }
                    )
            ws.send_binary(b"\x03" + json.dumps(status).encode())
            ws.close()
        except ConnectionClosedError:
            pass
        finally:
            with contextlib.suppress(OSError):
                h.connection.shutdown(socket.SHUT_RDWR)

    @staticmethod
    def _read_stdin(ws: WebSocket, *, v5: bool) -> bytes:
        """Collect stdin until its end: v5 closes channel 0; on v4 an empty stdin frame ends it."""
        data = bytearray()
        while True:
            try:
                _op, payload = ws.recv()
            except ConnectionClosedError:
                return bytes(data)
            if not payload:
                continue
            if v5 and payload[0] == 255:
                if payload[1:2] == b"\x00":
                    return bytes(data)
                continue
            if payload[0] == 0:
                if len(payload) == 1:
                    return bytes(data)
                data += payload[1:]

    @staticmethod
    def _drain(ws: WebSocket) -> None:
        with contextlib.suppress(ConnectionClosedError, OSError, ValueError):
            while True:
                ws.recv()

    # ------------------------------------------------------------ discovery

    def _served(self) -> Iterator[ResourceType]:
        for key, rt in self._types.items():
            if key not in self._unserved:
                yield rt

    def _discovery(self, h: _Handler, segs: list[str]) -> bool:
        if segs == ["version"]:
            self._send_json(
                h,
                200,
                {
                    "major": "1",
                    "minor": "34",
                    "gitVersion": "v1.34.0-emulator",
                    "platform": "linux/amd64",
                },
            )
        elif segs == ["api"]:
            self._send_json(
                h,
                200,
                {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []},
            )
        elif segs == ["apis"]:
            groups: dict[str, list[str]] = {}
            for rt in self._served():
                if rt.group and rt.version not in groups.setdefault(rt.group, []):
                    groups[rt.group].append(rt.version)
            self._send_json(
                h,
                200,
                {
                    "kind": "APIGroupList",
                    "apiVersion": "v1",
                    "groups": [
                        {
                            "name": g,
                            "versions": [{"groupVersion": f"{g}/{v}", "version": v} for v in vs],
                            "preferredVersion": {"groupVersion": f"{g}/{vs[0]}", "version": vs[0]},
                        }
                        for g, vs in sorted(groups.items())
                    ],
                },
            )
        elif segs == ["api", "v1"] or (len(segs) == 3 and segs[0] == "apis"):
            group, version = ("", "v1") if segs[0] == "api" else (segs[1], segs[2])
            resources = []
            for rt in self._served():
                if (rt.group, rt.version) != (group, version):
                    continue
                verbs = [
                    "create",
                    "delete",
                    "deletecollection",
                    "get",
                    "list",
                    "patch",
                    "update",
                    "watch",
                ]
                resources.append(
                    {
                        "name": rt.plural,
                        "singularName": rt.kind.lower(),
                        "namespaced": rt.namespaced,
                        "kind": rt.kind,
                        "verbs": verbs,
                    }
                )
                if rt.status_subresource:
                    resources.append(
                        {
                            "name": f"{rt.plural}/status",
                            "singularName": "",
                            "namespaced": rt.namespaced,
                            "kind": rt.kind,
                            "verbs": ["get", "patch", "update"],
                        }
                    )
            if not resources:
                raise EmulatorError(404, "the server could not find the requested resource")
            gv = f"{group}/{version}" if group else version
            self._send_json(
                h,
                200,
                {
                    "kind": "APIResourceList",
                    "apiVersion": "v1",
                    "groupVersion": gv,
                    "resources": resources,
                },
            )
        else:
            return False
        return True
