"""Connecting to the Kubernetes API: the client and the PacketCapture resource coordinates.

The official ``kubernetes`` client is imported only inside these functions, so the core package
(and ``packetcapture --help``) works without it.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, cast

import attrs

from packetcapture.errors import PacketCaptureError

if TYPE_CHECKING:
    import kubernetes.client

__all__ = ["CaptureResource", "KubernetesUnavailableError", "load_api_client", "require_kubernetes"]

_INSTALL_HINT = "install it with: pip install 'packetcapture[kubernetes]'"


class KubernetesUnavailableError(PacketCaptureError):
    """The ``kubernetes`` client package is missing, or no cluster configuration was found."""


def require_kubernetes() -> Any:
    """Import and return the ``kubernetes`` package, or raise a readable error."""
    try:
        import kubernetes
        import kubernetes.client
        import kubernetes.config
    except ImportError as exc:
        raise KubernetesUnavailableError(
            f"the kubernetes client package is not installed; {_INSTALL_HINT}"
        ) from exc
    return kubernetes


@attrs.frozen
class CaptureResource:
    """Where PacketCaptures live in the API: ``/apis/{group}/{version}/.../{plural}``.

    The default is the ``projectcalico.org/v3`` resource Calico publishes; clusters that store
    them as CRDs behind Calico's API server use ``crd.projectcalico.org`` / ``v1``.
    """

    group: str = "projectcalico.org"
    version: str = "v3"
    plural: str = "packetcaptures"

    @property
    def api_version(self) -> str:
        """The ``apiVersion`` of objects of this resource (``projectcalico.org/v3``)."""
        return f"{self.group}/{self.version}"


def load_api_client(
    kubeconfig: str | None = None, context: str | None = None
) -> kubernetes.client.ApiClient:
    """Return an API client for the cluster.

    Configuration comes from ``kubeconfig`` when given, else from ``$KUBECONFIG`` (first file
    of the list), else from the in-cluster service account (a pod of the DaemonSet), else from
    ``~/.kube/config``. ``context`` picks a kubeconfig context. Raises
    :class:`KubernetesUnavailableError` (a :class:`PacketCaptureError`) naming what was tried.
    """
    k8s = require_kubernetes()
    client: Any = k8s.client
    config: Any = k8s.config

    path = kubeconfig
    if path is None:
        env = os.environ.get("KUBECONFIG", "")
        path = next((p for p in env.split(os.pathsep) if p), None)
    try:
        if path is not None:
            if not os.path.exists(path):
                raise KubernetesUnavailableError(f"kubeconfig {path}: no such file")
            return cast(
                "kubernetes.client.ApiClient",
                config.new_client_from_config(config_file=path, context=context),
            )
        if os.environ.get("KUBERNETES_SERVICE_HOST") and context is None:
            configuration = client.Configuration()
            config.load_incluster_config(client_configuration=configuration)
            return cast("kubernetes.client.ApiClient", client.ApiClient(configuration))
        default = os.path.expanduser("~/.kube/config")
        if os.path.exists(default):
            return cast(
                "kubernetes.client.ApiClient",
                config.new_client_from_config(config_file=default, context=context),
            )
    except KubernetesUnavailableError:
        raise
    except Exception as exc:  # the loader raises many kinds on a malformed file
        where = path or "in-cluster configuration"
        raise KubernetesUnavailableError(
            f"{where}: cannot load cluster configuration: {exc}"
        ) from exc
    raise KubernetesUnavailableError(
        "no cluster configuration: give --kubeconfig, set KUBECONFIG, or run in a pod "
        "(in-cluster service account)"
    )
