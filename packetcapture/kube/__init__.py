"""Run packetcapture on a Kubernetes cluster (the ``packetcapture[kubernetes]`` extra).

The node agent watches PacketCaptures and this node's Pods, feeds a
:class:`packetcapture.agent.NodeAgent`, and writes this node's entry of each capture's
``status.files``. The ``kubernetes`` client package is imported lazily: importing this package
does not need it. See ``docs/kubernetes.md``.
"""

from __future__ import annotations

from packetcapture.kube._client import (
    CaptureResource,
    KubernetesUnavailableError,
    load_api_client,
    require_kubernetes,
)

__all__ = [
    "CaptureResource",
    "KubernetesUnavailableError",
    "load_api_client",
    "require_kubernetes",
]
