"""The resource types the emulator serves, with the per-type rules the real API server applies."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

#: Fields every resource can be selected on (the API server's default field set).
META_FIELDS = frozenset({"metadata.name", "metadata.namespace"})

#: Pod fields the real API server accepts in a fieldSelector.
POD_FIELDS = META_FIELDS | {
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "spec.hostNetwork",
    "status.phase",
    "status.podIP",
    "status.nominatedNodeName",
}


@dataclasses.dataclass(frozen=True)
class ResourceType:
    """One served resource: where it lives in the URL space and how writes treat it.

    ``store`` names the storage it reads and writes: two types with the same store (the same
    PacketCaptures served as ``projectcalico.org/v3`` and ``crd.projectcalico.org/v1``) are one
    set of objects seen under two API versions.
    """

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    status_subresource: bool = True
    generation: bool = True
    builtin: bool = False
    field_labels: frozenset[str] = META_FIELDS
    delete_returns_object: bool = False
    store: str = ""
    #: Server-side apply: list fields (dotted paths) merged by these keys; other lists are atomic.
    list_map_keys: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)

    @property
    def api_version(self) -> str:
        """``v1`` for the core group, ``group/version`` otherwise."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_resource(self) -> str:
        """``pods`` or ``packetcaptures.projectcalico.org``, as Status messages name it."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def store_key(self) -> str:
        """The storage this type reads and writes."""
        return self.store or f"{self.group}/{self.plural}"


def default_resources() -> list[ResourceType]:
    """The resources an emulator serves unless told otherwise."""
    return [
        ResourceType(
            "",
            "v1",
            "namespaces",
            "Namespace",
            namespaced=False,
            generation=False,
            builtin=True,
            field_labels=META_FIELDS | {"status.phase"},
        ),
        ResourceType(
            "",
            "v1",
            "pods",
            "Pod",
            builtin=True,
            field_labels=POD_FIELDS,
            delete_returns_object=True,
        ),
        ResourceType(
            "",
            "v1",
            "serviceaccounts",
            "ServiceAccount",
            status_subresource=False,
            generation=False,
            builtin=True,
            delete_returns_object=True,
        ),
        ResourceType(
            "",
            "v1",
            "nodes",
            "Node",
            namespaced=False,
            generation=False,
            builtin=True,
            field_labels=META_FIELDS | {"spec.unschedulable"},
        ),
        ResourceType(
            "",
            "v1",
            "configmaps",
            "ConfigMap",
            status_subresource=False,
            generation=False,
            builtin=True,
        ),
        ResourceType("apps", "v1", "daemonsets", "DaemonSet", builtin=True),
        ResourceType("projectcalico.org", "v3", "packetcaptures", "PacketCapture"),
        ResourceType(
            "projectcalico.org",
            "v3",
            "workloadendpoints",
            "WorkloadEndpoint",
            status_subresource=False,
        ),
    ]
