"""``packetcapture node``: the node agent of a cluster (the DaemonSet's entry point).

This module only builds the parser; the command imports :mod:`packetcapture.kube` (and the
``kubernetes`` client) when it runs.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from packetcapture._defaults import DEFAULT_CAPTURE_DIR, DEFAULT_SNAPLEN
from packetcapture.cli._run import _positive_float, _positive_int, snaplen

# typing.TYPE_CHECKING without importing typing (start-up); type checkers know the name.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

__all__ = ["ENVIRONMENT", "register", "resolve_environment"]


def _format(text: str) -> str:
    if text not in ("pcap", "pcapng"):
        raise argparse.ArgumentTypeError(f"must be pcap or pcapng, not {text!r}")
    return text


def _port(text: str) -> int:
    value = _positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"must be at most 65535, got {value}")
    return value


def _text(text: str) -> str:
    if not text:
        raise argparse.ArgumentTypeError("must not be empty")
    return text


#: Flags that fall back to an environment variable (a ConfigMap's keys, via ``envFrom``):
#: ``dest -> (variable, parse, default)``. A flag given on the command line wins.
ENVIRONMENT: dict[str, tuple[str, Callable[[str], Any], Any]] = {
    "node": ("NODE_NAME", _text, None),
    "capture_dir": ("PACKETCAPTURE_CAPTURE_DIR", _text, DEFAULT_CAPTURE_DIR),
    "max_size_bytes": ("PACKETCAPTURE_MAX_SIZE_BYTES", _positive_int, 10_000_000),
    "rotation_seconds": ("PACKETCAPTURE_ROTATION_SECONDS", _positive_int, 3600),
    "max_files": ("PACKETCAPTURE_MAX_FILES", _positive_int, 2),
    "snaplen": ("PACKETCAPTURE_SNAPLEN", snaplen, DEFAULT_SNAPLEN),
    "format": ("PACKETCAPTURE_FORMAT", _format, "pcap"),
    "interface_prefix": ("PACKETCAPTURE_INTERFACE_PREFIX", _text, "cali"),
    "status_interval": ("PACKETCAPTURE_STATUS_INTERVAL", _positive_float, 2.0),
    "resync_seconds": ("PACKETCAPTURE_RESYNC_SECONDS", _positive_float, 300.0),
    "health_port": ("PACKETCAPTURE_HEALTH_PORT", _port, None),
}


def run_node(args: argparse.Namespace) -> int:
    """Run ``packetcapture node`` (see :func:`packetcapture.cli._node_impl.run_node`)."""
    from packetcapture.cli._node_impl import run_node

    return run_node(args)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``node`` subcommand."""
    node = subparsers.add_parser(
        "node",
        help="run the node agent of a Kubernetes cluster (the DaemonSet's command)",
        description=(
            "Watch PacketCaptures and this node's pods on the cluster, capture the selected "
            "pods' interfaces into CAPTURE_DIR/NAMESPACE/NAME/, and write this node's entry "
            "of each capture's status.files. Runs until SIGTERM or Ctrl-C, then stops every "
            "capture, flushes the files and writes the final status. Needs "
            "pip install 'packetcapture[kubernetes]'. Settings marked [env X] fall back to "
            "the environment variable X."
        ),
    )
    node.add_argument("--node", help="this node's name (pods' spec.nodeName) [env NODE_NAME]")
    node.add_argument(
        "--capture-dir",
        metavar="DIR",
        help=f"files go to DIR/NAMESPACE/NAME/ (default: {DEFAULT_CAPTURE_DIR}) "
        "[env PACKETCAPTURE_CAPTURE_DIR]",
    )
    node.add_argument(
        "--kubeconfig",
        metavar="FILE",
        help="kubeconfig file (default: $KUBECONFIG, else the in-cluster service account)",
    )
    node.add_argument("--context", help="kubeconfig context (default: the current one)")
    node.add_argument(
        "--group",
        default="projectcalico.org",
        help="API group of PacketCaptures (default: %(default)s; crd.projectcalico.org for "
        "clusters that keep them as Calico's v1 CRD)",
    )
    node.add_argument(
        "--version",
        dest="api_version",
        default="v3",
        metavar="VERSION",
        help="API version of PacketCaptures (default: %(default)s; v1 with crd.projectcalico.org)",
    )
    node.add_argument(
        "--plural",
        default="packetcaptures",
        help="resource name of PacketCaptures (default: %(default)s)",
    )
    node.add_argument(
        "--interface-prefix",
        type=_text,
        metavar="PREFIX",
        help="host-side interface prefix of pods, as Felix's FELIX_INTERFACEPREFIX "
        "(default: cali) [env PACKETCAPTURE_INTERFACE_PREFIX]",
    )
    node.add_argument(
        "--endpoints-from",
        choices=("pods", "workloadendpoints", "auto"),
        default="pods",
        help="derive endpoints from Pods, read Calico's projectcalico.org/v3 "
        "WorkloadEndpoints, or auto: those when served, else Pods (default: %(default)s)",
    )
    node.add_argument(
        "--max-size-bytes",
        type=_positive_int,
        metavar="N",
        help="rotate a file before it passes N bytes (default: 10000000) "
        "[env PACKETCAPTURE_MAX_SIZE_BYTES]",
    )
    node.add_argument(
        "--rotation-seconds",
        type=_positive_int,
        metavar="N",
        help="rotate a file holding packets after N seconds (default: 3600) "
        "[env PACKETCAPTURE_ROTATION_SECONDS]",
    )
    node.add_argument(
        "--max-files",
        type=_positive_int,
        metavar="N",
        help="rotated files kept per interface (default: 2) [env PACKETCAPTURE_MAX_FILES]",
    )
    node.add_argument(
        "--snaplen",
        type=snaplen,
        metavar="N",
        help=f"bytes kept of each packet (default: {DEFAULT_SNAPLEN}) [env PACKETCAPTURE_SNAPLEN]",
    )
    node.add_argument(
        "--format",
        type=_format,
        metavar="{pcap,pcapng}",
        help="file format (default: pcap) [env PACKETCAPTURE_FORMAT]",
    )
    node.add_argument(
        "--status-interval",
        type=_positive_float,
        metavar="S",
        help="write a capture's status at most every S seconds (default: 2) "
        "[env PACKETCAPTURE_STATUS_INTERVAL]",
    )
    node.add_argument(
        "--resync-seconds",
        type=_positive_float,
        metavar="S",
        help="list everything again every S seconds (default: 300) "
        "[env PACKETCAPTURE_RESYNC_SECONDS]",
    )
    node.add_argument(
        "--health-port",
        type=_port,
        metavar="PORT",
        help="serve /healthz, /livez and /readyz on 127.0.0.1:PORT (default: none) "
        "[env PACKETCAPTURE_HEALTH_PORT]",
    )
    node.add_argument(
        "--dry-run",
        action="store_true",
        help="watch and log what would be captured; capture nothing, write no status",
    )
    node.add_argument(
        "--replay-dir",
        type=Path,
        metavar="DIR",
        help="replay DIR/IFACE.pcap as each interface instead of capturing live (tests, demos)",
    )
    node.add_argument(
        "--shutdown-seconds",
        type=_positive_float,
        default=20.0,
        metavar="S",
        help="on SIGTERM, wait up to S seconds for the final status (default: %(default)s; "
        "keep it below the pod's terminationGracePeriodSeconds)",
    )
    node.set_defaults(func=run_node)


def resolve_environment(args: argparse.Namespace, environ: dict[str, str] | None = None) -> None:
    """Fill the flags not given from their environment variables, else their defaults.

    Raises ``ValueError`` naming the variable when one holds a bad value.
    """
    env = os.environ if environ is None else environ
    for dest, (variable, parse, default) in ENVIRONMENT.items():
        if getattr(args, dest, None) is not None:
            continue
        raw = env.get(variable)
        if raw is None or raw == "":
            setattr(args, dest, default)
            continue
        try:
            setattr(args, dest, parse(raw))
        except argparse.ArgumentTypeError as exc:
            raise ValueError(f"{variable}={raw!r}: {exc}") from None
