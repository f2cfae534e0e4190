"""List-then-watch of one Kubernetes resource, resumed and resynced as a client should.

A :class:`Reflector` lists the resource, hands every object to its handler, then watches from
the list's ``resourceVersion`` (with bookmarks), resuming from the last version seen when a
watch ends or drops. ``410 Gone`` (as the HTTP status or an ``ERROR`` event) means that
version is too old: it lists again and resyncs, so objects deleted while it was away are
reported deleted. Errors back off exponentially with jitter; a full relist also runs every
``resync_seconds``. Objects are handled as plain dicts, as the API sends them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol

import attrs

__all__ = ["Backoff", "Reflector", "ReflectorHandler", "api_status", "describe_error"]

logger = logging.getLogger(__name__)

Key = tuple[str, str]
#: A call of the plain client (``CoreV1Api.list_pod_for_all_namespaces`` with its arguments
#: bound, say) taking the list/watch keyword arguments.
ListCall = Callable[..., Any]


class ReflectorHandler(Protocol):
    """What a :class:`Reflector` reports to."""

    def on_upsert(self, obj: Mapping[str, Any]) -> None:
        """Take an object added or changed (or listed for the first time)."""

    def on_delete(self, obj: Mapping[str, Any]) -> None:
        """Take an object deleted (or missing from a relist)."""


@attrs.define
class Backoff:
    """Exponential backoff with jitter: each delay is drawn from [d/2, d], d doubling."""

    initial: float = 0.5
    maximum: float = 30.0
    factor: float = 2.0
    _attempt: int = 0
    _random: random.Random = attrs.field(factory=random.Random)

    def next(self) -> float:
        """Return the next delay in seconds."""
        ceiling = min(self.maximum, self.initial * self.factor**self._attempt)
        self._attempt += 1
        return self._random.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        """Start again from the initial delay (after a success)."""
        self._attempt = 0


class _GoneError(Exception):
    """The resource version is too old (410): list again."""


def api_status(exc: BaseException) -> int | None:
    """Return the HTTP status of a client ``ApiException`` (None for other errors)."""
    status = getattr(exc, "status", None)
    return status if isinstance(status, int) else None


def _key(obj: Mapping[str, Any]) -> Key:
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace") or ""), str(meta.get("name") or ""))


def _rv(obj: Mapping[str, Any]) -> str | None:
    value = (obj.get("metadata") or {}).get("resourceVersion")
    return str(value) if value is not None else None


class Reflector:
    """Keeps a handler in step with one resource (see the module docstring).

    ``call`` is a list function of the plain client taking ``watch``, ``resource_version``,
    ``allow_watch_bookmarks``, ``timeout_seconds`` and ``_preload_content``.
    """

    def __init__(
        self,
        name: str,
        call: ListCall,
        handler: ReflectorHandler,
        *,
        resync_seconds: float = 300.0,
        watch_seconds: int = 60,
        request_timeout: float = 30.0,
        backoff: Backoff | None = None,
    ) -> None:
        self.name = name
        self.call = call
        self.handler = handler
        self.resync_seconds = resync_seconds
        self.watch_seconds = watch_seconds
        self.request_timeout = request_timeout
        self.backoff = backoff or Backoff()
        self.synced = threading.Event()  #: set after the first successful list
        self.lists = 0  #: lists made (the first, relists after 410, resyncs)
        self.errors = 0  #: failed requests and dropped streams
        self.last_error: str | None = None
        self.resource_version: str | None = None
        self._store: dict[Key, Mapping[str, Any]] = {}
        self._stop = threading.Event()
        self._response: Any = None
        self._thread: threading.Thread | None = None
        self._last_list = 0.0

    # -- life cycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Run in a daemon thread."""
        self._thread = threading.Thread(target=self.run, name=f"reflector-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop: end the current watch at once and wait for the thread."""
        self._stop.set()
        response = self._response
        if response is not None:
            _abort(response)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def alive(self) -> bool:
        """Return True while the thread runs (or was never started)."""
        return self._thread is None or self._thread.is_alive() or self._stop.is_set()

    def keys(self) -> list[Key]:
        """Return the keys of the objects held, sorted."""
        return sorted(self._store)

    def run(self) -> None:
        """List and watch until :meth:`stop`."""
        while not self._stop.is_set():
            try:
                due = time.monotonic() - self._last_list >= self.resync_seconds
                if self.resource_version is None or due:
                    self._list()
                self._watch()
                self.backoff.reset()
            except _GoneError:
                logger.info("%s: resource version too old (410), listing again", self.name)
                self.resource_version = None
            except Exception as exc:
                if self._stop.is_set():
                    break
                self.errors += 1
                self.last_error = describe_error(exc)
                delay = self.backoff.next()
                logger.warning("%s: %s; retrying in %.1f s", self.name, self.last_error, delay)
                logger.debug("%s: error detail", self.name, exc_info=True)
                if api_status(exc) == 410:
                    self.resource_version = None
                self._stop.wait(delay)

    # -- internals -----------------------------------------------------------------------

    def _list(self) -> None:
        response = self.call(_preload_content=False, _request_timeout=self.request_timeout)
        try:
            data = json.loads(response.data)
        finally:
            response.release_conn()
        items = data.get("items") or []
        fresh: dict[Key, Mapping[str, Any]] = {}
        for item in items:
            if isinstance(item, Mapping):
                fresh[_key(item)] = item
        for key in list(self._store):
            if key not in fresh:
                self._deliver("DELETED", self._store.pop(key))
        for key, item in fresh.items():
            old = self._store.get(key)
            self._store[key] = item
            if old is None or _rv(old) != _rv(item) or _rv(item) is None:
                self._deliver("ADDED", item)
        self.resource_version = str((data.get("metadata") or {}).get("resourceVersion") or "")
        self.lists += 1
        self._last_list = time.monotonic()
        if not self.synced.is_set():
            logger.info("%s: listed %d", self.name, len(fresh))
        self.synced.set()

    def _watch(self) -> None:
        left = self.resync_seconds - (time.monotonic() - self._last_list)
        seconds = max(1, min(self.watch_seconds, int(left) + 1))
        try:
            response = self.call(
                watch=True,
                resource_version=self.resource_version,
                allow_watch_bookmarks=True,
                timeout_seconds=seconds,
                _preload_content=False,
                _request_timeout=(self.request_timeout, seconds + self.request_timeout),
            )
        except Exception as exc:
            if api_status(exc) == 410:
                raise _GoneError from exc
            raise
        self._response = response
        try:
            for line in _lines(response):
                if self._stop.is_set():
                    return
                self._event(json.loads(line))
        finally:
            self._response = None
            _abort(response)

    def _event(self, event: Mapping[str, Any]) -> None:
        kind = event.get("type")
        obj = event.get("object") or {}
        if kind == "ERROR":
            code = obj.get("code")
            if code == 410:
                raise _GoneError
            raise _WatchError(f"watch error {code}: {obj.get('message') or obj.get('reason')}")
        rv = _rv(obj)
        if kind in ("ADDED", "MODIFIED"):
            self._store[_key(obj)] = obj
            self._deliver(kind, obj)
        elif kind == "DELETED":
            self._store.pop(_key(obj), None)
            self._deliver(kind, obj)
        if rv:
            self.resource_version = rv  # BOOKMARK carries only this

    def _deliver(self, kind: str, obj: Mapping[str, Any]) -> None:
        try:
            if kind == "DELETED":
                self.handler.on_delete(obj)
            else:
                self.handler.on_upsert(obj)
        except Exception:
            # A bad object must never stop the watch: log it and go on.
            logger.exception("%s: handling %s %s/%s failed", self.name, kind, *_key(obj))


class _WatchError(Exception):
    """An ``ERROR`` event other than 410."""


def _lines(response: Any) -> Iterator[bytes]:
    """Yield the newline-delimited JSON lines of a watch response as they arrive."""
    buffer = b""
    if getattr(response, "chunked", False):
        chunks: Iterator[bytes] = response.read_chunked(decode_content=True)
    else:
        chunks = iter(lambda: bytes(response.read1(65536)), b"")
    for chunk in chunks:
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            if line.strip():
                yield line
    if buffer.strip():
        yield buffer


def _abort(response: Any) -> None:
    """End a response from any thread: shut its socket down so a blocked read returns."""
    for method in ("shutdown", "close", "release_conn"):
        func = getattr(response, method, None)
        if func is not None:
            with contextlib.suppress(Exception):  # best effort on the way out
                func()


def describe_error(exc: BaseException) -> str:
    """Return a one-line description of a client error (``API error 409 Conflict``)."""
    status = api_status(exc)
    if status is not None:
        reason = getattr(exc, "reason", "") or ""
        return f"API error {status} {reason}".strip()
    cause = getattr(exc, "reason", None)
    if isinstance(cause, BaseException):
        # urllib3's MaxRetryError: what failed on the last attempt says more.
        text = str(cause).rsplit("): ", 1)[-1].strip("'\")")
        return f"cannot reach the API server: {text}" if text else type(cause).__name__
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
