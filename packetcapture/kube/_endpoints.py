"""WorkloadEndpoints from Pods, as Calico's Kubernetes datastore derives them (pure, no I/O).

A pod on this node becomes one :class:`~packetcapture.model.WorkloadEndpoint`: its labels
plus the namespace's labels as ``pcns.<key>`` and the service account's labels as
``pcsa.<key>`` (the implicit ``projectcalico.org/namespace``, ``…/orchestrator`` and
``…/serviceaccount`` labels come from the endpoint's spec), and the host-side interface
``<prefix>`` + the first 11 hex digits of sha1(``"<namespace>.<pod>"``). Host-network pods,
pods of other nodes, pods without an IP and finished pods have no endpoint.

:class:`PodEndpoints` keeps the pods, namespaces and service accounts seen and says which
endpoints changed after each event, so label changes on a namespace or service account
re-evaluate every pod they apply to.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from packetcapture.model import ObjectMeta, WorkloadEndpoint, WorkloadEndpointSpec

__all__ = [
    "NAMESPACE_LABEL_PREFIX",
    "SERVICE_ACCOUNT_LABEL_PREFIX",
    "EndpointChanges",
    "PodEndpoints",
    "endpoint_from_pod",
    "interface_name",
    "workload_endpoint_name",
]

#: libcalico-go's conversion prefixes for inherited labels.
NAMESPACE_LABEL_PREFIX = "pcns."
SERVICE_ACCOUNT_LABEL_PREFIX = "pcsa."
_FINISHED_PHASES = frozenset({"Succeeded", "Failed"})

Key = tuple[str, str]


def interface_name(namespace: str, pod: str, prefix: str = "cali") -> str:
    """Return the host-side interface Calico's CNI plugin gives a pod.

    ``prefix`` + the first 11 hex digits of sha1(``"<namespace>.<pod>"``), as
    ``echo -n "$ns.$pod" | sha1sum | cut -c1-11`` prints them.
    """
    digest = hashlib.sha1(f"{namespace}.{pod}".encode(), usedforsecurity=False).hexdigest()
    return prefix + digest[:11]


def workload_endpoint_name(node: str, pod: str, endpoint: str = "eth0") -> str:
    """Return the WorkloadEndpoint name Calico derives (``node-k8s-pod-eth0``, dashes doubled)."""
    parts = (node, "k8s", pod, endpoint)
    return "-".join(p.replace("-", "--") for p in parts)


def _labels(value: object) -> dict[str, str]:
    """Return a label map as strings; anything else (a null, a list) is no labels."""
    if not isinstance(value, Mapping):
        return {}
    return {str(k): "" if v is None else str(v) for k, v in value.items()}


def _pod_ips(status: Mapping[str, Any]) -> tuple[str, ...]:
    ips: list[str] = []
    for item in status.get("podIPs") or ():
        if isinstance(item, Mapping) and item.get("ip"):
            ips.append(str(item["ip"]))
    if not ips and status.get("podIP"):
        ips.append(str(status["podIP"]))
    return tuple(f"{ip}/128" if ":" in ip else f"{ip}/32" for ip in ips)


def endpoint_from_pod(
    pod: Mapping[str, Any],
    node: str,
    *,
    namespace_labels: Mapping[str, str] | None = None,
    service_account_labels: Mapping[str, str] | None = None,
    prefix: str = "cali",
) -> WorkloadEndpoint | None:
    """Return the WorkloadEndpoint of a pod (a dict as the API sends it), or ``None``.

    ``None`` for a pod of another node, a host-network pod, a pod without an IP yet, a
    finished (``Succeeded``/``Failed``) pod and one being deleted with no IP left.
    """
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    name = str(meta.get("name") or "")
    namespace = str(meta.get("namespace") or "default")
    if not name or spec.get("nodeName") != node or spec.get("hostNetwork"):
        return None
    if status.get("phase") in _FINISHED_PHASES:
        return None
    ips = _pod_ips(status)
    if not ips:
        return None
    labels = _labels(meta.get("labels"))
    for key, value in (namespace_labels or {}).items():
        labels[NAMESPACE_LABEL_PREFIX + key] = value
    for key, value in (service_account_labels or {}).items():
        labels[SERVICE_ACCOUNT_LABEL_PREFIX + key] = value
    account = str(spec.get("serviceAccountName") or spec.get("serviceAccount") or "")
    return WorkloadEndpoint(
        metadata=ObjectMeta(
            name=workload_endpoint_name(node, name), namespace=namespace, labels=labels
        ),
        spec=WorkloadEndpointSpec(
            node=node,
            orchestrator="k8s",
            workload="",
            pod=name,
            endpoint="eth0",
            interface_name=interface_name(namespace, name, prefix),
            ip_networks=ips,
            profiles=(f"kns.{namespace}",) + ((f"ksa.{namespace}.{account}",) if account else ()),
            service_account_name=account,
        ),
    )


@attrs.frozen
class EndpointChanges:
    """What changed after an event: endpoints to add or update, and keys to delete."""

    upserted: tuple[WorkloadEndpoint, ...] = ()
    deleted: tuple[Key, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.upserted or self.deleted)


class PodEndpoints:
    """The endpoints of this node from the pods, namespaces and service accounts seen.

    Feed it objects as the API sends them (dicts); each method returns the
    :class:`EndpointChanges` to apply to the agent. Not thread-safe: callers lock.
    """

    def __init__(self, node: str, prefix: str = "cali") -> None:
        self.node = node
        self.prefix = prefix
        self._pods: dict[Key, Mapping[str, Any]] = {}  # pod key -> pod
        self._namespaces: dict[str, dict[str, str]] = {}
        self._accounts: dict[Key, dict[str, str]] = {}
        self._endpoints: dict[Key, WorkloadEndpoint] = {}  # pod key -> its endpoint

    def endpoints(self) -> list[WorkloadEndpoint]:
        """Return the current endpoints, sorted by pod."""
        return [self._endpoints[k] for k in sorted(self._endpoints)]

    # -- pods ----------------------------------------------------------------------------

    def upsert_pod(self, pod: Mapping[str, Any]) -> EndpointChanges:
        """Add or update a pod."""
        key = _key(pod)
        if key is None:
            return EndpointChanges()
        self._pods[key] = pod
        return self._evaluate([key])

    def delete_pod(self, pod: Mapping[str, Any]) -> EndpointChanges:
        """Forget a pod: its endpoint goes."""
        key = _key(pod)
        if key is None:
            return EndpointChanges()
        self._pods.pop(key, None)
        return self._evaluate([key])

    # -- namespaces and service accounts -------------------------------------------------

    def upsert_namespace(self, namespace: Mapping[str, Any]) -> EndpointChanges:
        """Add or update a namespace: its pods are re-evaluated when its labels changed."""
        meta = namespace.get("metadata") or {}
        name = str(meta.get("name") or "")
        labels = _labels(meta.get("labels"))
        if not name or self._namespaces.get(name) == labels:
            return EndpointChanges()
        self._namespaces[name] = labels
        return self._evaluate(k for k in self._pods if k[0] == name)

    def delete_namespace(self, namespace: Mapping[str, Any]) -> EndpointChanges:
        """Forget a namespace: its pods lose their ``pcns.*`` labels (they go too, soon)."""
        name = str((namespace.get("metadata") or {}).get("name") or "")
        if self._namespaces.pop(name, None) is None:
            return EndpointChanges()
        return self._evaluate(k for k in self._pods if k[0] == name)

    def upsert_service_account(self, account: Mapping[str, Any]) -> EndpointChanges:
        """Add or update a service account: pods running as it are re-evaluated."""
        key = _key(account)
        if key is None:
            return EndpointChanges()
        labels = _labels((account.get("metadata") or {}).get("labels"))
        if self._accounts.get(key) == labels:
            return EndpointChanges()
        self._accounts[key] = labels
        return self._evaluate(self._pods_of_account(key))

    def delete_service_account(self, account: Mapping[str, Any]) -> EndpointChanges:
        """Forget a service account: pods running as it lose their ``pcsa.*`` labels."""
        key = _key(account)
        if key is None or self._accounts.pop(key, None) is None:
            return EndpointChanges()
        return self._evaluate(self._pods_of_account(key))

    # -- internals -----------------------------------------------------------------------

    def _pods_of_account(self, key: Key) -> list[Key]:
        namespace, name = key
        return [
            k for k, pod in self._pods.items() if k[0] == namespace and _account_of(pod) == name
        ]

    def _evaluate(self, keys: Iterable[Key]) -> EndpointChanges:
        upserted: list[WorkloadEndpoint] = []
        deleted: list[Key] = []
        for key in list(keys):
            pod = self._pods.get(key)
            new = None
            if pod is not None:
                account = _account_of(pod)
                new = endpoint_from_pod(
                    pod,
                    self.node,
                    namespace_labels=self._namespaces.get(key[0]),
                    service_account_labels=self._accounts.get((key[0], account))
                    if account
                    else None,
                    prefix=self.prefix,
                )
            old = self._endpoints.get(key)
            if new is None:
                if old is not None:
                    del self._endpoints[key]
                    deleted.append(old.key)
            elif new != old:
                self._endpoints[key] = new
                upserted.append(new)
        return EndpointChanges(tuple(upserted), tuple(deleted))


def _key(obj: Mapping[str, Any]) -> Key | None:
    meta = obj.get("metadata") or {}
    name = meta.get("name")
    if not name:
        return None
    return (str(meta.get("namespace") or "default"), str(name))


def _account_of(pod: Mapping[str, Any]) -> str:
    spec = pod.get("spec") or {}
    return str(spec.get("serviceAccountName") or spec.get("serviceAccount") or "")
