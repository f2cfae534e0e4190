"""Embedding the node agent in your own Kubernetes process (the real one is `packetcapture node`).

For a cluster, run the shipped agent: `packetcapture node` (the DaemonSet in `deploy/`), built
on `packetcapture.kube` — list+watch with resume, 410 relists, backoff, status writes that
never lose another node's entry. See docs/kubernetes.md. This example shows the same agent
embedded in a process of your own, in a few lines:

    NODE_NAME=node-1 python examples/kubernetes_controller.py --capture-dir /var/log/calico/pcap

and, below it, `handle_event` / `patch_status`: how a watch event and a status change map onto
the `NodeAgent` API, for controllers written another way (plain Python, unit-tested without a
cluster in tests/agent/test_agent_embedding.py).

Needs the `kubernetes` client (`pip install 'packetcapture[kubernetes]'`).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from typing import Any

import packetcapture as pc
from packetcapture.agent import NodeAgent, merge_status
from packetcapture.backends import get_backend

GROUP, VERSION = "projectcalico.org", "v3"
log = logging.getLogger("capture-controller")


def handle_event(agent: NodeAgent, event: dict[str, Any]) -> None:
    """Apply one watch event (ADDED / MODIFIED / DELETED) of a capture or an endpoint."""
    obj = event["object"]
    kind = obj.get("kind")
    meta = obj.get("metadata", {})
    namespace, name = meta.get("namespace", "default"), meta.get("name", "")
    try:
        if event["type"] == "DELETED":
            if kind == "PacketCapture":
                agent.delete(namespace, name, clean_files=True)
            elif kind == "WorkloadEndpoint":
                agent.delete_endpoint(namespace, name)
            return
        resource = pc.from_dict(obj)
    except pc.ValidationError as err:
        # Calico's API would have refused it: logged, never fatal.
        log.warning("ignoring %s %s/%s: %s", kind, namespace, name, err)
        return
    if isinstance(resource, pc.PacketCapture):
        agent.apply(resource)
    else:
        agent.upsert_endpoint(resource)


def patch_status(api: Any, namespace: str, name: str, mine: pc.PacketCaptureStatus) -> None:
    """Merge this node's entry into the capture's status and patch the status subresource.

    The patch carries the resourceVersion just read, so the API server refuses it (409) if
    another node wrote in between; the caller reads again and retries. (A patch without it
    is last-writer-wins and loses other nodes' entries. `packetcapture.kube.StatusWriter`
    does this with retries, coalescing and rate limits.)
    """
    current = api.get_namespaced_custom_object(GROUP, VERSION, namespace, "packetcaptures", name)
    theirs = pc.from_dict(current).status or pc.PacketCaptureStatus()
    merged = merge_status([theirs, mine])
    body: dict[str, Any] = {"status": pc.to_dict(pc.PacketCapture(status=merged))["status"]}
    version = current.get("metadata", {}).get("resourceVersion")
    if version:
        body["metadata"] = {"resourceVersion": version}
    api.patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, "packetcaptures", name, body
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--node",
        default=os.environ.get("NODE_NAME", ""),
        help="this node's name (default: $NODE_NAME)",
    )
    parser.add_argument(
        "--capture-dir",
        default="/var/log/calico/pcap",
        help="where capture files go (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    # Checked only now, so that --help works without the optional client installed.
    try:
        import kubernetes  # noqa: F401
    except ImportError:
        sys.exit("this example needs the kubernetes package: pip install kubernetes")
    from packetcapture.kube import KubeAgentConfig, KubeNodeAgent, load_api_client

    logging.basicConfig(level=logging.INFO)
    agent = NodeAgent(args.node, get_backend("afpacket"), args.capture_dir)
    kube = KubeNodeAgent(load_api_client(), agent, KubeAgentConfig(node=args.node))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        kube.run(stop)  # watches, captures, writes status; final status on the way out
    except KeyboardInterrupt:
        stop.set()


if __name__ == "__main__":
    main()
