"""Run packetcapture on a Kubernetes cluster (the ``packetcapture[kubernetes]`` extra).

The node agent (:class:`KubeNodeAgent`, ``packetcapture node``) watches PacketCaptures and
this node's Pods, feeds a :class:`packetcapture.agent.NodeAgent`, and writes this node's
entry of each capture's ``status.files``. The cluster side of the CLI (``copy``/``clean
--kubernetes``, ``stream``, ``get``, ``describe``) is here too: :func:`copy_capture_files`,
:func:`clean_capture_files`, :func:`stream_capture`, :func:`describe_capture`. Names are
imported on first use, and the ``kubernetes`` client package only when a client is made:
importing this package needs neither. See ``docs/kubernetes.md``.
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
    from packetcapture.kube._describe import (
        capture_table,
        describe_capture,
        list_captures,
        node_rows,
    )
    from packetcapture.kube._endpoints import (
        EndpointChanges,
        PodEndpoints,
        endpoint_from_pod,
        interface_name,
        workload_endpoint_name,
    )
    from packetcapture.kube._exec import (
        ExecError,
        ExecResult,
        PodExec,
    )
    from packetcapture.kube._files import (
        AGENT_LABEL_SELECTOR,
        DEFAULT_AGENT_NAMESPACE,
        CaptureNotFoundError,
        CleanRefusedError,
        NodeOutcome,
        clean_capture_files,
        copy_capture_files,
        find_agent_pod,
        follow_capture,
        read_capture,
        stream_capture,
    )
    from packetcapture.kube._reflector import Backoff, Reflector
    from packetcapture.kube._status import StatusWriter, entry_to_dict, merge_entry

__all__ = [
    "AGENT_LABEL_SELECTOR",
    "Backoff",
    "CaptureNotFoundError",
    "CaptureResource",
    "CleanRefusedError",
    "DEFAULT_AGENT_NAMESPACE",
    "DryRunAgent",
    "EndpointChanges",
    "ExecError",
    "ExecResult",
    "KubeAgentConfig",
    "KubeNodeAgent",
    "KubernetesUnavailableError",
    "NodeOutcome",
    "PodEndpoints",
    "PodExec",
    "Reflector",
    "StatusWriter",
    "capture_from_object",
    "capture_table",
    "clean_capture_files",
    "copy_capture_files",
    "describe_capture",
    "endpoint_from_pod",
    "entry_to_dict",
    "find_agent_pod",
    "follow_capture",
    "interface_name",
    "list_captures",
    "load_api_client",
    "merge_entry",
    "node_rows",
    "read_capture",
    "require_kubernetes",
    "stream_capture",
    "workload_endpoint_name",
]

_MODULE_OF = {
    "AGENT_LABEL_SELECTOR": "_files",
    "Backoff": "_reflector",
    "CaptureNotFoundError": "_files",
    "CaptureResource": "_client",
    "CleanRefusedError": "_files",
    "DEFAULT_AGENT_NAMESPACE": "_files",
    "DryRunAgent": "_agent",
    "EndpointChanges": "_endpoints",
    "ExecError": "_exec",
    "ExecResult": "_exec",
    "KubeAgentConfig": "_agent",
    "KubeNodeAgent": "_agent",
    "KubernetesUnavailableError": "_client",
    "NodeOutcome": "_files",
    "PodEndpoints": "_endpoints",
    "PodExec": "_exec",
    "Reflector": "_reflector",
    "StatusWriter": "_status",
    "capture_from_object": "_agent",
    "capture_table": "_describe",
    "clean_capture_files": "_files",
    "copy_capture_files": "_files",
    "describe_capture": "_describe",
    "endpoint_from_pod": "_endpoints",
    "entry_to_dict": "_status",
    "find_agent_pod": "_files",
    "follow_capture": "_files",
    "interface_name": "_endpoints",
    "list_captures": "_describe",
    "load_api_client": "_client",
    "merge_entry": "_status",
    "node_rows": "_describe",
    "read_capture": "_files",
    "require_kubernetes": "_client",
    "stream_capture": "_files",
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
