"""The node agent on a cluster: API watches in, a :class:`NodeAgent` in the middle, status out.

::

    API server ──watch──▶ Reflectors ──▶ KubeNodeAgent ──▶ NodeAgent ──▶ pcap files
      ▲                   (captures,      (pods → endpoints,   (selectors,     │
      │                    pods, ns, sa)   invalid → Error)     schedules)     │
      └──── PUT …/status (RV precondition, 409 → retry) ◀── StatusWriter ◀─────┘

:class:`KubeNodeAgent` feeds PacketCaptures and this node's endpoints (from Pods, or from
Calico's WorkloadEndpoints when asked) to the agent, and hands each status change of this
node to the :class:`~packetcapture.kube.StatusWriter`. An invalid PacketCapture (one Calico's
API would refuse) never reaches the agent: it gets an ``Error`` entry, a log line and an
Event carrying the reason.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Literal

import attrs

from packetcapture.agent import NodeAgent, effective_selector
from packetcapture.errors import PacketCaptureError, ValidationError
from packetcapture.kube._client import CaptureResource, require_kubernetes
from packetcapture.kube._endpoints import EndpointChanges, PodEndpoints
from packetcapture.kube._reflector import Reflector, api_status
from packetcapture.kube._status import StatusWriter
from packetcapture.model import (
    CaptureState,
    PacketCapture,
    PacketCaptureFile,
    PacketCaptureStatus,
    WorkloadEndpoint,
)
from packetcapture.pcap import list_capture_files
from packetcapture.selector import SelectorIndex
from packetcapture.serde import from_dict
from packetcapture.validation import validate

__all__ = ["DryRunAgent", "KubeAgentConfig", "KubeNodeAgent", "capture_from_object"]

logger = logging.getLogger(__name__)

Key = tuple[str, str]
EndpointSource = Literal["pods", "workloadendpoints", "auto"]


@attrs.frozen
class KubeAgentConfig:
    """How a :class:`KubeNodeAgent` talks to the cluster.

    ``node`` is this node's name (pods' ``spec.nodeName``, the status entry's ``node``).
    ``resource`` says where PacketCaptures are served. ``interface_prefix`` is Felix's
    ``FELIX_INTERFACEPREFIX``. ``endpoint_source`` picks Pods, Calico's
    ``projectcalico.org/v3`` WorkloadEndpoints, or ``auto`` (WorkloadEndpoints when that API
    is served, else Pods). ``status_interval`` is the least time between two status writes
    of one capture; ``resync_seconds`` the period of full relists; ``watch_seconds`` the
    length of one watch request.
    """

    node: str
    resource: CaptureResource = attrs.field(factory=CaptureResource)
    interface_prefix: str = "cali"
    endpoint_source: EndpointSource = "pods"
    status_interval: float = 2.0
    resync_seconds: float = 300.0
    watch_seconds: int = 60
    request_timeout: float = 30.0


def capture_from_object(obj: Mapping[str, Any]) -> PacketCapture:
    """Return the PacketCapture of an API object, validated as Calico's API server would.

    Its ``status`` (written by every node) is not read, and ``crd.projectcalico.org/v1``
    objects are read as ``projectcalico.org/v3``. Raises :class:`ValidationError`.
    """
    data = {
        "apiVersion": "projectcalico.org/v3",
        "kind": "PacketCapture",
        "metadata": obj.get("metadata") or {},
        "spec": obj.get("spec") if obj.get("spec") is not None else {},
    }
    capture = from_dict(data)
    if not isinstance(capture, PacketCapture):  # pragma: no cover - kind forced above
        raise ValidationError([("kind", "not a PacketCapture")])
    validate(capture)
    return capture


class DryRunAgent:
    """Stands in for :class:`NodeAgent` under ``--dry-run``: logs what it would capture.

    Captures' selectors are matched against the endpoints as the agent would; nothing is
    opened, written or reported.
    """

    def __init__(self, node_name: str) -> None:
        self.node_name = node_name
        self._lock = threading.RLock()
        self._captures: dict[Key, PacketCapture] = {}
        self._endpoints: dict[Key, WorkloadEndpoint] = {}
        self._index: SelectorIndex[Key, Key] = SelectorIndex(
            on_match_started=self._started, on_match_stopped=self._stopped
        )
        self._wake = threading.Event()

    def apply(self, capture: PacketCapture) -> None:
        """Add or update a capture (validated)."""
        validate(capture)
        with self._lock:
            if capture.key not in self._captures:
                logger.info("dry run: capture %s/%s applied", *capture.key)
            self._captures[capture.key] = capture
            scoped = effective_selector(capture.spec.selector, capture.namespace)
            self._index.update_selector(capture.key, scoped)

    def delete(self, namespace: str, name: str, clean_files: bool = True) -> None:
        """Forget a capture."""
        with self._lock:
            if self._captures.pop((namespace, name), None) is not None:
                self._index.delete_selector((namespace, name))
                logger.info("dry run: capture %s/%s deleted", namespace, name)

    def upsert_endpoint(self, endpoint: WorkloadEndpoint) -> None:
        """Add or update an endpoint of this node."""
        with self._lock:
            if endpoint.spec.node and endpoint.spec.node != self.node_name:
                self.delete_endpoint(*endpoint.key)
                return
            self._endpoints[endpoint.key] = endpoint
            self._index.update_labels(endpoint.key, endpoint.selector_labels())

    def delete_endpoint(self, namespace: str, name: str) -> None:
        """Forget an endpoint."""
        with self._lock:
            if self._endpoints.pop((namespace, name), None) is not None:
                self._index.delete_labels((namespace, name))

    def matches(self, namespace: str, name: str) -> list[WorkloadEndpoint]:
        """Return the endpoints a capture would capture."""
        with self._lock:
            keys = self._index.matches((namespace, name))
            return [self._endpoints[k] for k in sorted(keys) if k in self._endpoints]

    def step(self, timeout: float | None = 1.0) -> None:
        """Wait (there is nothing to pump)."""
        self._wake.wait(timeout)

    def details(self, namespace: str, name: str) -> None:
        """No details: nothing runs."""
        return None

    def close(self) -> None:
        """Nothing to close."""
        self._wake.set()

    def _started(self, capture: Key, endpoint: Key) -> None:
        wep = self._endpoints.get(endpoint)
        iface = wep.spec.interface_name if wep else "?"
        pod = wep.pod_name if wep else endpoint[1]
        logger.info("dry run: capture %s/%s would capture pod %s (%s)", *capture, pod, iface)

    def _stopped(self, capture: Key, endpoint: Key) -> None:
        logger.info("dry run: capture %s/%s would stop capturing %s/%s", *capture, *endpoint)


class _Inputs:
    """Counts reflector threads waiting to feed the agent, so the loop lets them in."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.waiting = 0

    def __enter__(self) -> None:
        with self._lock:
            self.waiting += 1

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self.waiting -= 1


class _Handler:
    """Routes one reflector's events to two methods."""

    def __init__(
        self,
        upsert: Callable[[Mapping[str, Any]], None],
        delete: Callable[[Mapping[str, Any]], None],
        inputs: _Inputs,
    ) -> None:
        self._upsert = upsert
        self._delete = delete
        self._inputs = inputs

    def on_upsert(self, obj: Mapping[str, Any]) -> None:
        """Hand an added or changed object on."""
        with self._inputs:
            self._upsert(obj)

    def on_delete(self, obj: Mapping[str, Any]) -> None:
        """Hand a deleted object on."""
        with self._inputs:
            self._delete(obj)


class KubeNodeAgent:
    """Runs a node agent against the cluster (see the module docstring).

    ``api_client`` is a ``kubernetes.client.ApiClient`` (see
    :func:`~packetcapture.kube.load_api_client`). ``agent`` is the :class:`NodeAgent` that
    captures, or a :class:`DryRunAgent`. Call :meth:`run` with a stop event (or
    :meth:`start`, then :meth:`shutdown`).
    """

    def __init__(
        self,
        api_client: Any,
        agent: NodeAgent | DryRunAgent,
        config: KubeAgentConfig,
    ) -> None:
        k8s = require_kubernetes()
        self.config = config
        self.agent = agent
        self.dry_run = isinstance(agent, DryRunAgent)
        self.core = k8s.client.CoreV1Api(api_client)
        self.custom = k8s.client.CustomObjectsApi(api_client)
        self.status_writer = StatusWriter(
            self.custom,
            config.resource,
            config.node,
            interval=config.status_interval,
            request_timeout=config.request_timeout,
        )
        self.status_writer.core_api = self.core
        self.pods = PodEndpoints(config.node, config.interface_prefix)
        self._lock = threading.RLock()
        self._invalid: dict[Key, str] = {}  # capture -> the reason it was refused
        self._applied: dict[Key, object] = {}  # capture -> the spec applied
        self._inputs = _Inputs()
        self._reported_errors: dict[Key, str] = {}
        self._heartbeat = time.monotonic()
        self._started = False
        self._closed = False
        if isinstance(agent, NodeAgent):
            agent.on_status_change = self._on_status_change
        self.endpoint_source: str = config.endpoint_source
        self.reflectors: list[Reflector] = []

    # -- life cycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Pick the endpoint source and start the watches and the status writer."""
        if self.config.endpoint_source == "auto":
            self.endpoint_source = self._probe_workload_endpoints()
        self.reflectors = self._make_reflectors()
        if not self.dry_run:
            self.status_writer.start()
        for reflector in self.reflectors:
            reflector.start()
        self._started = True
        logger.info(
            "node agent for %s started (captures: %s, endpoints from %s%s)",
            self.config.node,
            self.config.resource.api_version,
            self.endpoint_source,
            ", dry run" if self.dry_run else "",
        )

    def run(
        self, stop: threading.Event, *, step_seconds: float = 0.5, shutdown_seconds: float = 20.0
    ) -> bool:
        """Start, run the capture loop until ``stop`` is set, then :meth:`shutdown`.

        Returns what :meth:`shutdown` returns (True when the final status was written).
        """
        self.start()
        try:
            while not stop.is_set():
                try:
                    self.agent.step(timeout=step_seconds)
                except PacketCaptureError as exc:
                    logger.error("capture loop: %s", exc)
                    stop.wait(step_seconds)
                self.heartbeat()
                if self._inputs.waiting:
                    # The loop holds the agent's lock for most of its time and would take
                    # it straight back: let a waiting watch thread in first.
                    time.sleep(0.0005)
        finally:
            written = self.shutdown(timeout=shutdown_seconds)
        return written

    def heartbeat(self) -> None:
        """Note that the capture loop turned (liveness)."""
        self._heartbeat = time.monotonic()

    def shutdown(self, timeout: float = 20.0) -> bool:
        """Stop watching, stop every capture (files flushed) and write the final status.

        Returns True when every status entry was written within ``timeout`` seconds.
        """
        if self._closed:
            return True
        self._closed = True
        for reflector in self.reflectors:
            reflector.stop(timeout=2.0)
        self.agent.close()  # Finished entries reach the writer through the callback
        if self.dry_run:
            return True
        written = self.status_writer.stop(timeout=timeout)
        logger.info("node agent for %s stopped", self.config.node)
        return written

    def ready(self) -> bool:
        """Return True once every watched resource has been listed."""
        return self._started and all(r.synced.is_set() for r in self.reflectors)

    def live(self, stale_after: float = 60.0) -> bool:
        """Return True while every thread runs and the capture loop turns."""
        if not self._started:
            return True
        if self._closed:
            return False
        threads_ok = all(r.alive() for r in self.reflectors) and self.status_writer.alive()
        return threads_ok and time.monotonic() - self._heartbeat < stale_after

    def health(self) -> dict[str, Any]:
        """Return a summary for the health endpoint and logs."""
        return {
            "node": self.config.node,
            "live": self.live(),
            "ready": self.ready(),
            "watches": {
                r.name: {
                    "synced": r.synced.is_set(),
                    "lists": r.lists,
                    "errors": r.errors,
                    "lastError": r.last_error,
                }
                for r in self.reflectors
            },
            "statusWrites": self.status_writer.writes,
            "statusConflicts": self.status_writer.conflicts,
            "statusPending": self.status_writer.pending(),
        }

    # -- watches ---------------------------------------------------------------------------

    def _make_reflectors(self) -> list[Reflector]:
        cfg = self.config
        res = cfg.resource
        options = {
            "resync_seconds": cfg.resync_seconds,
            "watch_seconds": cfg.watch_seconds,
            "request_timeout": cfg.request_timeout,
        }
        captures = Reflector(
            res.plural,
            functools.partial(
                self.custom.list_cluster_custom_object, res.group, res.version, res.plural
            ),
            _Handler(self._capture_upserted, self._capture_deleted, self._inputs),
            **options,  # type: ignore[arg-type]
        )
        if self.endpoint_source == "workloadendpoints":
            weps = Reflector(
                "workloadendpoints",
                functools.partial(
                    self.custom.list_cluster_custom_object,
                    "projectcalico.org",
                    "v3",
                    "workloadendpoints",
                ),
                _Handler(self._wep_upserted, self._wep_deleted, self._inputs),
                **options,  # type: ignore[arg-type]
            )
            return [captures, weps]
        pods = Reflector(
            "pods",
            functools.partial(
                self.core.list_pod_for_all_namespaces, field_selector=f"spec.nodeName={cfg.node}"
            ),
            _Handler(
                self._with(self.pods.upsert_pod), self._with(self.pods.delete_pod), self._inputs
            ),
            **options,  # type: ignore[arg-type]
        )
        namespaces = Reflector(
            "namespaces",
            self.core.list_namespace,
            _Handler(
                self._with(self.pods.upsert_namespace),
                self._with(self.pods.delete_namespace),
                self._inputs,
            ),
            **options,  # type: ignore[arg-type]
        )
        accounts = Reflector(
            "serviceaccounts",
            self.core.list_service_account_for_all_namespaces,
            _Handler(
                self._with(self.pods.upsert_service_account),
                self._with(self.pods.delete_service_account),
                self._inputs,
            ),
            **options,  # type: ignore[arg-type]
        )
        # Namespaces and service accounts first, so the first pods carry their labels.
        return [namespaces, accounts, pods, captures]

    def _probe_workload_endpoints(self) -> str:
        try:
            self.custom.list_cluster_custom_object(
                "projectcalico.org",
                "v3",
                "workloadendpoints",
                limit=1,
                _preload_content=False,
                _request_timeout=self.config.request_timeout,
            ).release_conn()
        except Exception as exc:
            if api_status(exc) in (404, 403):
                return "pods"
            raise
        return "workloadendpoints"

    # -- endpoints -------------------------------------------------------------------------

    def _with(
        self, method: Callable[[Mapping[str, Any]], EndpointChanges]
    ) -> Callable[[Mapping[str, Any]], None]:
        def handle(obj: Mapping[str, Any]) -> None:
            with self._lock:
                changes = method(obj)
                self._apply_endpoints(changes)

        return handle

    def _apply_endpoints(self, changes: EndpointChanges) -> None:
        for key in changes.deleted:
            self.agent.delete_endpoint(*key)
        for endpoint in changes.upserted:
            self.agent.upsert_endpoint(endpoint)

    def _wep_upserted(self, obj: Mapping[str, Any]) -> None:
        try:
            wep = from_dict(
                {
                    "apiVersion": "projectcalico.org/v3",
                    "kind": "WorkloadEndpoint",
                    "metadata": obj.get("metadata") or {},
                    "spec": obj.get("spec") or {},
                }
            )
        except ValidationError as exc:
            meta = obj.get("metadata") or {}
            logger.warning(
                "workloadendpoint %s/%s ignored: %s",
                meta.get("namespace"),
                meta.get("name"),
                " | ".join(exc.lines()),
            )
            return
        if isinstance(wep, WorkloadEndpoint):
            with self._lock:
                self.agent.upsert_endpoint(wep)

    def _wep_deleted(self, obj: Mapping[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        with self._lock:
            self.agent.delete_endpoint(str(meta.get("namespace") or ""), str(meta.get("name")))

    # -- captures --------------------------------------------------------------------------

    def _capture_upserted(self, obj: Mapping[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        key = (str(meta.get("namespace") or "default"), str(meta.get("name") or ""))
        spec = obj.get("spec")
        if key in self._applied and self._applied[key] == spec:
            return  # a status write (ours or another node's) or a metadata change: no news
        try:
            capture = capture_from_object(obj)
            with self._lock:
                self.agent.apply(capture)
                self._applied[key] = spec
                if self._invalid.pop(key, None) is not None:
                    logger.info("capture %s/%s is valid again", *key)
        except ValidationError as exc:
            self._refuse(key, " | ".join(exc.lines()))
        except PacketCaptureError as exc:
            self._refuse(key, str(exc))

    def _refuse(self, key: Key, reason: str) -> None:
        """Stop an invalid capture here (files kept); report Error with the reason."""
        with self._lock:
            self._applied.pop(key, None)
            self.agent.delete(*key, clean_files=False)
            if self._invalid.get(key) != reason:
                logger.warning("capture %s/%s is invalid: %s", *key, reason)
            self._invalid[key] = reason
        if self.dry_run:
            return
        agent = self.agent
        assert isinstance(agent, NodeAgent)
        listed = list_capture_files(agent.capture_dir, *key, self.config.node)
        entry = attrs.evolve(listed, state=CaptureState.ERROR)
        self.status_writer.submit(*key, entry)
        self._report_error(key, f"invalid PacketCapture: {reason}", log=False)

    def _capture_deleted(self, obj: Mapping[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        key = (str(meta.get("namespace") or "default"), str(meta.get("name") or ""))
        with self._lock:
            self._applied.pop(key, None)
            self._invalid.pop(key, None)
            self._reported_errors.pop(key, None)
            self.agent.delete(*key, clean_files=True)
        self.status_writer.forget(*key)

    # -- status ----------------------------------------------------------------------------

    def _on_status_change(self, namespace: str, name: str, status: PacketCaptureStatus) -> None:
        entry: PacketCaptureFile = status.files[0]
        self.status_writer.submit(namespace, name, entry)
        key = (namespace, name)
        if entry.state is CaptureState.ERROR and isinstance(self.agent, NodeAgent):
            details = self.agent.details(namespace, name)
            reasons = "; ".join(
                f"{i.interface} ({i.pod}): {i.error}" for i in details.interfaces if i.error
            )
            self._report_error(key, reasons or "capture failed")
        else:
            self._reported_errors.pop(key, None)

    def _report_error(self, key: Key, reason: str, *, log: bool = True) -> None:
        """Log the reason of an Error state and post it as an Event on the capture, once."""
        if self._reported_errors.get(key) == reason:
            return
        self._reported_errors[key] = reason
        if log:
            logger.warning("capture %s/%s on %s: Error: %s", *key, self.config.node, reason)
        self.status_writer.post_event(*key, reason)
