"""A node agent driven by a Kubernetes watch: the way felix runs captures, in ~100 lines.

Run one copy per node (a DaemonSet with hostNetwork, privileged or CAP_NET_RAW, the node
name from the downward API, and the host's capture directory mounted):

    NODE_NAME=node-1 python examples/kubernetes_controller.py --capture-dir /var/log/calico/pcap

It watches PacketCaptures and this node's WorkloadEndpoints through Calico's API server
(`projectcalico.org/v3`), feeds them to a NodeAgent that captures live, and patches each
capture's status with this node's entry, merged with the other nodes' entries.

Needs the `kubernetes` client (`pip install kubernetes`); packetcapture does not depend on it.
The event handling (`handle_event`) is plain Python and is unit-tested without a cluster.
"""

from __future__ import annotations

import argparse
import logging
import os
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
        # The API server validated it already; a mismatch is logged, not fatal.
        log.warning("ignoring %s %s/%s: %s", kind, namespace, name, err)
        return
    if isinstance(resource, pc.PacketCapture):
        agent.apply(resource)
    else:
        agent.upsert_endpoint(resource)


def patch_status(api: Any, namespace: str, name: str, mine: pc.PacketCaptureStatus) -> None:
    """Merge this node's entry into the capture's status and patch the status subresource."""
    current = api.get_namespaced_custom_object(GROUP, VERSION, namespace, "packetcaptures", name)
    theirs = pc.from_dict(current).status or pc.PacketCaptureStatus()
    merged = merge_status([theirs, mine])
    body = {"status": pc.to_dict(pc.PacketCapture(status=merged))["status"]}
    api.patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, "packetcaptures", name, body
    )


def watch(api: Any, agent: NodeAgent, plural: str, stop: threading.Event) -> None:
    """Feed every event of one resource type to the agent until ``stop`` is set."""
    from kubernetes import watch as k8s_watch

    while not stop.is_set():
        stream = k8s_watch.Watch().stream(
            api.list_cluster_custom_object, GROUP, VERSION, plural, timeout_seconds=60
        )
        for event in stream:
            handle_event(agent, event)
            if stop.is_set():
                break


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
    # Imported only now, so that --help works without the optional client installed.
    try:
        from kubernetes import client, config
    except ImportError:
        sys.exit("this example needs the kubernetes package: pip install kubernetes")
    logging.basicConfig(level=logging.INFO)
    if "KUBERNETES_SERVICE_HOST" in os.environ:
        config.load_incluster_config()
    else:
        config.load_kube_config()
    api = client.CustomObjectsApi()

    def on_status(namespace: str, name: str, status: pc.PacketCaptureStatus) -> None:
        try:
            patch_status(api, namespace, name, status)
        except Exception as exc:  # the next change patches again; felix retries likewise
            log.warning("status of %s/%s not patched: %s", namespace, name, exc)

    stop = threading.Event()
    agent = NodeAgent(
        args.node, get_backend("afpacket"), args.capture_dir, on_status_change=on_status
    )
    threads = [
        threading.Thread(target=watch, args=(api, agent, "packetcaptures", stop), daemon=True),
        # Every node's endpoints arrive; the agent keeps only its own (spec.node).
        threading.Thread(target=watch, args=(api, agent, "workloadendpoints", stop), daemon=True),
    ]
    for thread in threads:
        thread.start()
    try:
        agent.run(stop)  # the one I/O loop; watch threads call apply/upsert concurrently
    except KeyboardInterrupt:
        stop.set()
    finally:
        agent.close()


if __name__ == "__main__":
    main()
