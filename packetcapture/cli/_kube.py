"""``packetcapture get | describe | stream | follow``, and ``copy``/``clean --kubernetes``.

``get`` and ``describe`` show captures on a cluster like ``kubectl get``/``describe`` do, with
each node's state and files; ``stream`` relays one node's live capture as pcap on stdout
(``| wireshark -k -i -``) by running ``follow`` in that node's agent pod. ``copy`` and
``clean`` (in ``_files``) call :func:`run_kube_copy` / :func:`run_kube_clean` here when given
``--kubernetes NAMESPACE/NAME``.
"""

from __future__ import annotations

import argparse
import sys

from packetcapture._defaults import DEFAULT_CAPTURE_DIR
from packetcapture.cli._run import _positive_int as positive_int
from packetcapture.cli._text import one_line, usage_error

# typing.TYPE_CHECKING without importing typing (~3 ms at start-up); type checkers know it.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from packetcapture.kube._client import CaptureResource
    from packetcapture.kube._files import NodeOutcome

__all__ = ["kube_args", "register", "run_kube_clean", "run_kube_copy"]

_AGENT_NAMESPACE = "packetcapture-system"  # packetcapture.kube._files.DEFAULT_AGENT_NAMESPACE


def kube_args(parser: argparse.ArgumentParser, *, agent: bool = True) -> None:
    """Add the cluster options: --kubeconfig, --context, the resource and agent namespace."""
    parser.add_argument(
        "--kubeconfig", metavar="FILE", help="kubeconfig (default: $KUBECONFIG, ~/.kube/config)"
    )
    parser.add_argument("--context", help="kubeconfig context (default: the current one)")
    # The same names and defaults as `packetcapture node`'s.
    parser.add_argument(
        "--group",
        default="projectcalico.org",
        help="API group of PacketCaptures (default: %(default)s; crd.projectcalico.org for "
        "Calico's v1 CRD)",
    )
    parser.add_argument(
        "--version",
        dest="api_version",
        default="v3",
        metavar="VERSION",
        help="API version of PacketCaptures (default: %(default)s)",
    )
    parser.add_argument(
        "--plural", default="packetcaptures", help="their resource name (default: %(default)s)"
    )
    if agent:
        parser.add_argument(
            "--agent-namespace",
            default=_AGENT_NAMESPACE,
            metavar="NS",
            help="namespace of the node agent pods (default: %(default)s)",
        )


def _target(value: str) -> tuple[str, str]:
    ns, sep, name = value.partition("/")
    if not sep or not ns or not name or "/" in name:
        raise argparse.ArgumentTypeError(f"expected NAMESPACE/NAME, got {value!r}")
    return ns, name


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``get``, ``describe``, ``stream`` and ``follow`` subcommands."""
    get = subparsers.add_parser(
        "get",
        help="list captures on the cluster with each one's nodes, states and files",
        description=(
            "List PacketCaptures on the cluster like `kubectl get`: selector, the nodes "
            "reporting it, their states, the number of files, age. NAMESPACE/NAME shows one."
        ),
    )
    get.add_argument("target", nargs="?", type=_target, metavar="NAMESPACE/NAME")
    where = get.add_mutually_exclusive_group()
    where.add_argument("-n", "--namespace", help="only this namespace (default: default)")
    where.add_argument("-A", "--all-namespaces", action="store_true", help="every namespace")
    get.add_argument(
        "-o", "--output", choices=("table", "yaml", "json"), default="table", help="format"
    )
    kube_args(get, agent=False)
    get.set_defaults(func=run_get)

    describe = subparsers.add_parser(
        "describe",
        help="show one capture on the cluster: spec, and per node state, files, packets, drops",
        description=(
            "Show NAMESPACE/NAME like `kubectl describe`: its spec, then for each node in its "
            "status the state, the files, and packets and drops when the status carries them "
            "('unknown' otherwise)."
        ),
    )
    describe.add_argument("target", type=_target, metavar="NAMESPACE/NAME")
    describe.add_argument(
        "-o", "--output", choices=("text", "yaml", "json"), default="text", help="format"
    )
    kube_args(describe, agent=False)
    describe.set_defaults(func=run_describe)

    stream = subparsers.add_parser(
        "stream",
        help="live pcap on stdout from one node's capture (| wireshark -k -i -)",
        description=(
            "Write one node's capture of NAMESPACE/NAME to standard output as a pcap stream "
            "while it runs, following file rotations: `packetcapture stream --kubernetes "
            "ns/name | wireshark -k -i -`. Runs `packetcapture follow` in the agent pod."
        ),
    )
    stream.add_argument(
        "--kubernetes", required=True, type=_target, metavar="NAMESPACE/NAME", dest="target"
    )
    stream.add_argument("--node", help="the node (needed when several nodes report it)")
    _follow_args(stream)
    kube_args(stream)
    stream.set_defaults(func=run_stream)

    follow = subparsers.add_parser(
        "follow",
        help="write one interface's capture files as a live pcap stream (what stream runs)",
        description=(
            "Write the active capture file of NAMESPACE/NAME in CAPTURE_DIR to standard output "
            "as one pcap stream, then, when standard output is a pipe, every packet as it is "
            "written, across rotations; ends after --count packets, when the capture's "
            "directory is removed or the pipe's reader goes away."
        ),
    )
    follow.add_argument("target", type=_target, metavar="NAMESPACE/NAME")
    follow.add_argument(
        "--capture-dir", default=DEFAULT_CAPTURE_DIR, help=f"default {DEFAULT_CAPTURE_DIR}"
    )
    _follow_args(follow)
    follow.set_defaults(func=run_follow)


def _follow_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--interface", metavar="IFACE", help="the interface (needed when it captures several)"
    )
    parser.add_argument("--count", type=positive_int, metavar="N", help="stop after N packets")


def _err(message: str) -> None:
    print(f"packetcapture: error: {one_line(message)}", file=sys.stderr)


def _warn(message: str) -> None:
    print(f"packetcapture: warning: {one_line(message)}", file=sys.stderr)


def _client(args: argparse.Namespace) -> tuple[Any, CaptureResource]:
    from packetcapture.kube._client import CaptureResource, load_api_client

    resource = CaptureResource(args.group, args.api_version, args.plural)
    return load_api_client(args.kubeconfig, args.context), resource


def _dump(obj: object, fmt: str) -> None:
    if fmt == "json":
        import json

        print(json.dumps(obj, indent=2, sort_keys=False))
    else:
        import yaml

        print(yaml.safe_dump(obj, sort_keys=False, default_flow_style=False), end="")


def run_get(args: argparse.Namespace) -> int:
    """List captures (or one) with their per-node states."""
    import datetime as dt

    from packetcapture.kube._describe import capture_table, list_captures
    from packetcapture.kube._files import read_capture

    client, resource = _client(args)
    try:
        if args.target is not None:
            if args.namespace or args.all_namespaces:
                return usage_error("get", "NAMESPACE/NAME names the namespace: no -n/-A with it")
            objs = [read_capture(client, args.target[0], args.target[1], resource)]
        else:
            namespace = None if args.all_namespaces else (args.namespace or "default")
            objs = list_captures(client, namespace, resource)
    finally:
        client.close()
    if args.output != "table":
        if args.target is not None:
            _dump(objs[0], args.output)
        else:
            _dump({"apiVersion": "v1", "kind": "List", "items": objs}, args.output)
        return 0
    if not objs:
        ns = args.namespace or "default"
        where = "any namespace" if args.all_namespaces else f"namespace {ns}"
        print(f"No packetcaptures found in {where}.", file=sys.stderr)
        return 0
    now = dt.datetime.now(dt.UTC)
    print(capture_table(objs, all_namespaces=bool(args.all_namespaces), now=now))
    return 0


def run_describe(args: argparse.Namespace) -> int:
    """Describe one capture with its nodes."""
    import datetime as dt

    from packetcapture.kube._describe import describe_capture
    from packetcapture.kube._files import read_capture

    client, resource = _client(args)
    try:
        obj = read_capture(client, args.target[0], args.target[1], resource)
    finally:
        client.close()
    if args.output != "text":
        _dump(obj, args.output)
        return 0
    print(describe_capture(obj, now=dt.datetime.now(dt.UTC)))
    return 0


def run_stream(args: argparse.Namespace) -> int:
    """Relay a node's live capture to stdout."""
    from packetcapture.kube._files import stream_capture

    client, resource = _client(args)
    try:
        node = stream_capture(
            client,
            args.target[0],
            args.target[1],
            sys.stdout.buffer,
            node=args.node,
            interface=args.interface,
            count=args.count,
            agent_namespace=args.agent_namespace,
            resource=resource,
        )
    except BrokenPipeError:  # the reader (wireshark, head) went away: a normal end
        return 0
    finally:
        client.close()
    print(one_line(f"stream from node {node} ended"), file=sys.stderr)
    return 0


def run_follow(args: argparse.Namespace) -> int:
    """Follow a capture's active file on this node."""
    from packetcapture.kube._files import follow_capture

    try:
        follow_capture(
            args.capture_dir,
            args.target[0],
            args.target[1],
            sys.stdout.buffer,
            interface=args.interface,
            count=args.count,
            # Follow only into a pipe (exec, `| tcpdump -r -`); into a terminal or a file,
            # write what is there and end, as `tcpdump -r` does.
            should_stop=_reader_gone if _stdout_is_pipe() else lambda: True,
        )
    except BrokenPipeError:
        return 0
    return 0


def _stdout_is_pipe() -> bool:
    import os
    import stat

    try:
        mode = os.fstat(sys.stdout.fileno()).st_mode
    except (OSError, ValueError, AttributeError):
        return False  # replaced by an object without a descriptor (tests, embedding)
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


def _reader_gone() -> bool:
    """Tell whether nobody reads our stdout any more (a pipe whose reader closed: POLLERR/POLLHUP).

    Over exec, the stream's client going away closes the pipe; without this check an idle
    `follow` would wait for packets forever in the pod.
    """
    import select

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), 0)  # errors and hang-ups are always reported
        return bool(poller.poll(0))
    except (OSError, ValueError, AttributeError):
        return False


def run_kube_copy(args: argparse.Namespace) -> int:
    """``copy --kubernetes NS/NAME``: every node's files into DEST/NODE/."""
    from packetcapture.kube._files import copy_capture_files

    namespace, name = args.kubernetes
    client, resource = _client(args)
    try:
        outcomes = copy_capture_files(
            client,
            namespace,
            name,
            args.dest,
            agent_namespace=args.agent_namespace,
            resource=resource,
        )
    finally:
        client.close()
    if not outcomes:
        _err(f"{namespace}/{name}: no node reports files in its status (nothing to copy)")
        return 1
    for o in outcomes:
        for w in o.warnings:
            _warn(w)
        if o.ok:
            print(one_line(f"copied {len(o.files)} file(s) from node {o.node} to {args.dest}"))
    return _summary(outcomes, "copied")


def run_kube_clean(args: argparse.Namespace) -> int:
    """``clean --kubernetes NS/NAME``: remove the files on every node, empty fileNames."""
    from packetcapture.kube._files import clean_capture_files

    namespace, name = args.kubernetes
    client, resource = _client(args)
    try:
        outcomes = clean_capture_files(
            client,
            namespace,
            name,
            force=args.force,
            agent_namespace=args.agent_namespace,
            resource=resource,
        )
    finally:
        client.close()
    if not outcomes:
        print(one_line(f"{namespace}/{name}: no node reports files (nothing to clean)"))
        return 0
    for o in outcomes:
        if o.ok:
            print(one_line(f"removed {len(o.files)} file(s) of {namespace}/{name} on {o.node}"))
    return _summary(outcomes, "cleaned")


def _summary(outcomes: list[NodeOutcome], what: str) -> int:
    failed = [o for o in outcomes if not o.ok]
    if not failed:
        return 0
    detail = "; ".join(f"node {o.node}: {o.error}" for o in failed)
    done = len(outcomes) - len(failed)
    prefix = f"partial: {what} {done} of {len(outcomes)} node(s); " if done else ""
    _err(prefix + detail)
    return 1
