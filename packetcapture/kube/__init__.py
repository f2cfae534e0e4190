"""Run packetcapture on a Kubernetes cluster (the ``packetcapture[kubernetes]`` extra).

The node agent (:class:`KubeNodeAgent`, ``packetcapture node``) watches PacketCaptures and
this node's Pods, feeds a :class:`packetcapture.agent.NodeAgent`, and writes this node's
entry of each capture's ``status.files``. Names are imported on first use, and the
``kubernetes`` client package only when a client is made: importing this package needs
neither. See ``docs/kubernetes.md``.
"""

from __future__ import annotations

import importlib as _importlib

TYPE_CHECKING = False
if TYPE_CHECKING:
    from packetcapture.kube._agent import (
        DryRunAgent,
        KubeAgentConfig,
        KubeNodeAgent,
        capture_from_object,
    )
    from packetcapture.kube._client import (
        CaptureResource,
        KubernetesUnavailableError,
        load_api_client,
        require_kubernetes,
    )
    from packetcapture.kube._endpoints import (
        EndpointChanges,
        PodEndpoints,
        endpoint_from_pod,
        interface_name,
        workload_endpoint_name,
    )
    from packetcapture.kube._reflector import Backoff, Reflector
    from packetcapture.kube._status import StatusWriter, entry_to_dict, merge_entry

__all__ = [
    "Backoff",
    "CaptureResource",
    "DryRunAgent",
    "EndpointChanges",
    "KubeAgentConfig",
    "KubeNodeAgent",
    "KubernetesUnavailableError",
    "PodEndpoints",
    "Reflector",
    "StatusWriter",
    "capture_from_object",
    "endpoint_from_pod",
    "entry_to_dict",
    "interface_name",
    "load_api_client",
    "merge_entry",
    "require_kubernetes",
    "workload_endpoint_name",
]

_MODULE_OF = {
    "Backoff": "_reflector",
    "CaptureResource": "_client",
    "DryRunAgent": "_agent",
    "EndpointChanges": "_endpoints",
    "KubeAgentConfig": "_agent",
    "KubeNodeAgent": "_agent",
    "KubernetesUnavailableError": "_client",
    "PodEndpoints": "_endpoints",
    "Reflector": "_reflector",
    "StatusWriter": "_status",
    "capture_from_object": "_agent",
    "endpoint_from_pod": "_endpoints",
    "entry_to_dict": "_status",
    "interface_name": "_endpoints",
    "load_api_client": "_client",
    "merge_entry": "_status",
    "require_kubernetes": "_client",
    "workload_endpoint_name": "_endpoints",
}

if not TYPE_CHECKING:

    def __getattr__(name: str) -> object:
        """Import a public name on first access and keep it."""
        module = _MODULE_OF.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(_importlib.import_module(f"{__name__}.{module}"), name)
        globals()[name] = value
        return value

    def __dir__() -> list[str]:
        """List the public names too, although they are imported on first use."""
        return sorted(set(globals()) | set(__all__))


del TYPE_CHECKING
