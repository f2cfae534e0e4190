"""Writing this node's entry of each PacketCapture's ``status.files``.

``status.files`` is an atomic list shared by every node, so each write is a read-modify-write
guarded by the object's ``resourceVersion``: GET the capture, replace (or append) this node's
entry only, PUT the status subresource with the version just read. A ``409 Conflict`` means
another writer got there first: read again and retry, so no other node's entry is ever lost.
A capture that is gone (``404``) drops the update, as felix's status writer does.

Writes are coalesced and rate-limited: :meth:`StatusWriter.submit` only records the entry
this node wants; a writer thread sends at most one write per capture per ``interval``, and
none when the entry has not changed since the last write.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from packetcapture.kube._client import CaptureResource
from packetcapture.kube._reflector import Backoff, api_status
from packetcapture.kube._reflector import describe_error as _describe
from packetcapture.model import PacketCaptureFile

__all__ = ["StatusWriter", "entry_to_dict", "merge_entry"]

logger = logging.getLogger(__name__)

Key = tuple[str, str]


def entry_to_dict(entry: PacketCaptureFile) -> dict[str, Any]:
    """Return a status entry in its wire form (file names sorted in byte order)."""
    data: dict[str, Any] = {}
    if entry.directory is not None:
        data["directory"] = entry.directory
    data["fileNames"] = sorted(entry.file_names, key=lambda n: n.encode())
    if entry.node is not None:
        data["node"] = entry.node
    if entry.state is not None:
        data["state"] = entry.state.value
    return data


def merge_entry(status: object, entry: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``status`` with ``entry`` as its node's ``files`` entry; other entries kept.

    The node's existing entry is overwritten in place; a node seen for the first time is
    appended (felix does the same). Anything that is not an entry is kept as it was.
    """
    result = dict(status) if isinstance(status, Mapping) else {}
    files = result.get("files")
    files = list(files) if isinstance(files, list) else []
    for i, item in enumerate(files):
        if isinstance(item, Mapping) and item.get("node") == entry.get("node"):
            files[i] = dict(entry)
            break
    else:
        files.append(dict(entry))
    result["files"] = files
    return result


class StatusWriter:
    """Writes this node's status entries (see the module docstring).

    ``custom_api`` is a ``kubernetes.client.CustomObjectsApi``. ``interval`` is the least time
    between two writes of one capture; ``max_attempts`` bounds the conflict retries of one
    write (it is retried later when they run out).
    """

    def __init__(
        self,
        custom_api: Any,
        resource: CaptureResource,
        node: str,
        *,
        interval: float = 2.0,
        max_attempts: int = 10,
        request_timeout: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.api = custom_api
        self.resource = resource
        self.node = node
        self.interval = interval
        self.max_attempts = max_attempts
        self.request_timeout = request_timeout
        self.clock = clock
        self.writes = 0  #: successful status writes
        self.conflicts = 0  #: 409s met (each retried with a fresh read)
        self.failures = 0  #: writes that failed and were queued again
        self._lock = threading.Condition()
        self._pending: dict[Key, dict[str, Any]] = {}
        self._written: dict[Key, dict[str, Any]] = {}
        self._due: dict[Key, float] = {}  # earliest time of the next write of a capture
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._backoff = Backoff(initial=0.2, maximum=10.0)
        self._events: list[tuple[str, str, str]] = []
        #: ``kubernetes.client.CoreV1Api`` for Events (none: reasons are only logged).
        self.core_api: Any = None
        self.events_posted = 0

    # -- inputs ----------------------------------------------------------------------------

    def submit(self, namespace: str, name: str, entry: PacketCaptureFile) -> None:
        """Record the entry this node wants for a capture; it is written soon."""
        data = entry_to_dict(entry)
        with self._lock:
            key = (namespace, name)
            if self._written.get(key) == data:
                self._pending.pop(key, None)
                return
            self._pending[key] = data
            self._lock.notify_all()

    def forget(self, namespace: str, name: str) -> None:
        """Drop what was waiting to be written for a capture (it was deleted)."""
        with self._lock:
            key = (namespace, name)
            self._pending.pop(key, None)
            self._written.pop(key, None)
            self._due.pop(key, None)

    def post_event(self, namespace: str, name: str, reason: str) -> None:
        """Queue a ``Warning`` Event on the capture saying why this node is in ``Error``.

        Calico's status has no field for a reason; ``kubectl describe packetcapture`` shows
        Events. Posting is best effort (a missing RBAC rule only costs the Event).
        """
        with self._lock:
            self._events.append((namespace, name, reason))
            self._lock.notify_all()

    def pending(self) -> int:
        """Return how many captures have an entry waiting to be written."""
        with self._lock:
            return len(self._pending)

    # -- life cycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Write in a daemon thread until :meth:`stop`."""
        self._thread = threading.Thread(target=self._run, name="status-writer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> bool:
        """Write everything pending now (within ``timeout``), then stop. True if all written."""
        self._stop.set()
        with self._lock:
            self._lock.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
        deadline = self.clock() + timeout
        while self.pending() and self.clock() < deadline:
            self.write_due(ignore_interval=True)
            if self.pending():
                time.sleep(min(0.2, max(0.0, deadline - self.clock())))
        left = self.pending()
        if left:
            logger.warning("status of %d capture(s) not written before shutdown", left)
        return not left

    def alive(self) -> bool:
        """Return True while the writer thread runs (or was never started)."""
        return self._thread is None or self._thread.is_alive() or self._stop.is_set()

    def _run(self) -> None:
        while not self._stop.is_set():
            wait = self.write_due()
            with self._lock:
                if not self._stop.is_set():
                    self._lock.wait(wait)

    def write_due(self, *, ignore_interval: bool = False) -> float:
        """Write every pending entry whose interval has passed; return seconds to the next."""
        self._post_events()
        now = self.clock()
        with self._lock:
            due = [k for k in self._pending if ignore_interval or self._due.get(k, 0.0) <= now]
        next_wait = self.interval
        for key in due:
            with self._lock:
                data = self._pending.pop(key, None)
            if data is None:
                continue
            try:
                done = self._write(key, data)
            except Exception as exc:
                self.failures += 1
                delay = self._backoff.next()
                logger.warning(
                    "status of %s/%s on %s not written (%s); retrying in %.1f s",
                    *key,
                    self.node,
                    _describe(exc),
                    delay,
                )
                with self._lock:
                    self._pending.setdefault(key, data)  # unless a newer one came meanwhile
                    self._due[key] = self.clock() + delay
                next_wait = min(next_wait, delay)
                continue
            self._backoff.reset()
            with self._lock:
                self._due[key] = self.clock() + self.interval
                if done:
                    self._written[key] = data
        with self._lock:
            if self._pending:
                soonest = min(self._due.get(k, 0.0) for k in self._pending) - self.clock()
                next_wait = min(next_wait, max(soonest, 0.01))
        return next_wait

    def _post_events(self) -> None:
        with self._lock:
            events, self._events = self._events, []
        if self.core_api is None:
            return
        for namespace, name, reason in events:
            stamp = _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            body = {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"generateName": f"{name}.", "namespace": namespace},
                "involvedObject": {
                    "apiVersion": self.resource.api_version,
                    "kind": "PacketCapture",
                    "name": name,
                    "namespace": namespace,
                },
                "reason": "CaptureError",
                "message": f"node {self.node}: {reason}"[:1024],
                "type": "Warning",
                "source": {"component": "packetcapture-node", "host": self.node},
                "reportingComponent": "packetcapture-node",
                "reportingInstance": self.node,
                "firstTimestamp": stamp,
                "lastTimestamp": stamp,
                "count": 1,
            }
            try:
                self.core_api.create_namespaced_event(
                    namespace, body, _preload_content=False, _request_timeout=self.request_timeout
                )
                self.events_posted += 1
            except Exception as exc:
                logger.debug("event on %s/%s not posted: %s", namespace, name, _describe(exc))

    # -- the read-modify-write -------------------------------------------------------------

    def _write(self, key: Key, data: dict[str, Any]) -> bool:
        """Write one entry; return False when the capture is gone (update dropped)."""
        namespace, name = key
        res = self.resource
        for _attempt in range(self.max_attempts):
            try:
                response = self.api.get_namespaced_custom_object(
                    res.group,
                    res.version,
                    namespace,
                    res.plural,
                    name,
                    _preload_content=False,
                    _request_timeout=self.request_timeout,
                )
                obj = json.loads(response.data)
            except Exception as exc:
                if api_status(exc) == 404:
                    logger.debug("capture %s/%s is gone; status update dropped", *key)
                    return False
                raise
            new_status = merge_entry(obj.get("status"), data)
            if new_status == obj.get("status"):
                return True  # already so (written before a restart, say)
            obj["status"] = new_status
            try:
                self.api.replace_namespaced_custom_object_status(
                    res.group,
                    res.version,
                    namespace,
                    res.plural,
                    name,
                    obj,  # carries metadata.resourceVersion: the precondition
                    _preload_content=False,
                    _request_timeout=self.request_timeout,
                )
            except Exception as exc:
                status = api_status(exc)
                if status == 409:
                    self.conflicts += 1
                    continue  # someone else wrote: read again
                if status == 404:
                    return False
                raise
            self.writes += 1
            logger.debug("status of %s/%s on %s: %s", *key, self.node, data.get("state"))
            return True
        raise _ConflictError(f"still conflicting after {self.max_attempts} attempts")


class _ConflictError(Exception):
    """Every attempt of a write met a 409."""
