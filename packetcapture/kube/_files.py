"""A capture's files off the cluster's nodes, as ``calicoctl captured-packets copy | clean`` do.

For every node in the capture's ``status.files``, the agent pod on that node (label
:data:`AGENT_LABEL_SELECTOR`, ``fieldSelector=spec.nodeName=NODE``) is asked, over exec,
for ``tar cf - -C DIRECTORY NAMESPACE/NAME`` (what ``kubectl cp`` does); the tar stream is
unpacked as it arrives, keeping only regular ``.pcap`` files of that directory (no path
escapes, links or devices), each size checked against its tar header, into ``DEST/NODE/``:
one directory per node, the layout ``packetcapture copy`` gives and ``merge`` reads.

``clean`` runs ``rm -rf DIRECTORY/NAMESPACE/NAME`` on each node, then empties that node's
``fileNames`` through the status subresource (a ``resourceVersion``-guarded update retried on
``409 Conflict``). Like Calico's download API it refuses unless every entry is ``Finished``.
"""

from __future__ import annotations

import logging
import os
import posixpath
import tarfile
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs

from packetcapture._defaults import DEFAULT_CAPTURE_DIR
from packetcapture.errors import PacketCaptureError
from packetcapture.kube._client import CaptureResource
from packetcapture.kube._exec import ChunkReader, PodExec
from packetcapture.pcap._layout import SUFFIX

__all__ = [
    "AGENT_LABEL_SELECTOR",
    "DEFAULT_AGENT_NAMESPACE",
    "CaptureNotFoundError",
    "CleanRefusedError",
    "NodeOutcome",
    "clean_capture_files",
    "copy_capture_files",
    "find_agent_pod",
    "follow_capture",
    "read_capture",
    "stream_capture",
]

log = logging.getLogger(__name__)

#: The label of the node agent pods (deploy/daemonset.yaml).
AGENT_LABEL_SELECTOR = "app.kubernetes.io/name=packetcapture-node"
#: The namespace the DaemonSet runs in (deploy/namespace.yaml).
DEFAULT_AGENT_NAMESPACE = "packetcapture-system"
_CONFLICT_RETRIES = 10


class CaptureNotFoundError(PacketCaptureError):
    """The PacketCapture does not exist on the cluster."""


class CleanRefusedError(PacketCaptureError):
    """``clean`` refused: some node's capture is not ``Finished`` (use force)."""


@attrs.frozen
class NodeOutcome:
    """What happened on one node: ``files`` copied or removed, or ``error``."""

    node: str
    files: tuple[str, ...] = ()
    error: str | None = None
    warnings: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when this node succeeded."""
        return self.error is None


def _api_error(exc: Any) -> str:
    import json

    try:
        return str(json.loads(exc.body)["message"])
    except (TypeError, ValueError, KeyError):
        return f"{exc.status} {exc.reason}"


def read_capture(
    api_client: Any, namespace: str, name: str, resource: CaptureResource | None = None
) -> dict[str, Any]:
    """Return the PacketCapture as a dict; :class:`CaptureNotFoundError` if there is none."""
    from kubernetes import client as k8s_client
    from kubernetes.client.exceptions import ApiException

    res = resource or CaptureResource()
    api: Any = k8s_client.CustomObjectsApi(api_client)
    try:
        obj: dict[str, Any] = api.get_namespaced_custom_object(
            res.group, res.version, namespace, res.plural, name
        )
    except ApiException as exc:
        if exc.status == 404:
            raise CaptureNotFoundError(
                f"packetcapture {namespace}/{name} not found ({res.api_version})"
            ) from exc
        raise PacketCaptureError(
            f"cannot read packetcapture {namespace}/{name}: {_api_error(exc)}"
        ) from exc
    return obj


def status_entries(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """Return the ``status.files`` entries of a capture object that name a node."""
    files = ((obj.get("status") or {}).get("files")) or []
    return [e for e in files if isinstance(e, dict) and isinstance(e.get("node"), str)]


def find_agent_pod(api_client: Any, node: str, agent_namespace: str) -> str:
    """Return the name of the running agent pod on ``node``, or raise naming what was looked for."""
    from kubernetes import client as k8s_client
    from kubernetes.client.exceptions import ApiException

    core: Any = k8s_client.CoreV1Api(api_client)
    try:
        pods = core.list_namespaced_pod(
            agent_namespace,
            label_selector=AGENT_LABEL_SELECTOR,
            field_selector=f"spec.nodeName={node}",
        )
    except ApiException as exc:
        raise PacketCaptureError(
            f"cannot list agent pods in namespace {agent_namespace}: {_api_error(exc)}"
        ) from exc
    running = [p for p in pods.items if (p.status and p.status.phase) == "Running"]
    if not running:
        raise PacketCaptureError(
            f"no running agent pod ({AGENT_LABEL_SELECTOR}) on node {node} in namespace "
            f"{agent_namespace}"
        )
    return str(sorted(p.metadata.name for p in running if p.metadata)[0])


def _node_dir_name(node: str) -> str:
    # The node name comes from the status, written by whoever may write it: it must be
    # one path component before it names a directory here.
    if not node or node in (".", "..") or "/" in node or "\0" in node:
        raise PacketCaptureError(f"node name {node!r} cannot name a directory")
    return node


def _directory(entry: dict[str, Any]) -> str:
    directory = entry.get("directory") or DEFAULT_CAPTURE_DIR
    if not isinstance(directory, str) or not posixpath.isabs(directory):
        raise PacketCaptureError(f"status directory {directory!r} is not an absolute path")
    return posixpath.normpath(directory)


def _safe_member(member: tarfile.TarInfo, prefix: str) -> str | None:
    """Return the name of a tar member to keep, None for one to skip; raise for a hostile one.

    Kept: regular ``.pcap`` files directly under ``prefix``. Skipped: the prefix directories,
    hidden files (the agent's ``.status-NODE.yaml``, a writer's temporary file) and other
    names. Refused: any path outside ``prefix``, links and devices.
    """
    name = member.name.rstrip("/")
    if name in (prefix, prefix.split("/", maxsplit=1)[0]) and member.isdir():
        return None
    if member.name.startswith("/") or ".." in name.split("/"):
        raise PacketCaptureError(f"unsafe path {member.name!r} in the tar stream (refused)")
    head, _, base = name.rpartition("/")
    if head != prefix:
        if name.startswith(prefix + "/"):
            return None  # something in a subdirectory: not a capture file
        raise PacketCaptureError(f"unexpected entry {member.name!r} in the tar stream")
    if member.issym() or member.islnk() or member.isdev() or member.isfifo():
        raise PacketCaptureError(f"{member.name!r} is a link or a device (refused)")
    if not member.isreg() or base.startswith(".") or not base.endswith(SUFFIX):
        return None
    return base


def _write_member(tar: tarfile.TarFile, member: tarfile.TarInfo, dest: Path, base: str) -> None:
    source = tar.extractfile(member)
    assert source is not None  # a regular file
    fd, tmp = tempfile.mkstemp(prefix=".pcap-copy-", dir=dest)
    written = 0
    try:
        with os.fdopen(fd, "wb") as out:
            while chunk := source.read(1 << 20):
                out.write(chunk)
                written += len(chunk)
        if written != member.size:
            raise PacketCaptureError(
                f"{base}: got {written} bytes, the tar header says {member.size}"
            )
        os.chmod(tmp, 0o644)
        os.utime(tmp, (member.mtime, member.mtime))
        os.replace(tmp, dest / base)  # replaces a planted symlink instead of following it
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _copy_node(
    api_client: Any,
    entry: dict[str, Any],
    namespace: str,
    name: str,
    *,
    dest: Path,
    agent_namespace: str,
) -> NodeOutcome:
    node = entry["node"]
    try:
        node_dir = dest / _node_dir_name(node)
        directory = _directory(entry)
        pod = find_agent_pod(api_client, node, agent_namespace)
        prefix = f"{namespace}/{name}"
        expected = {f for f in entry.get("fileNames") or [] if isinstance(f, str)}
        node_dir.mkdir(parents=True, exist_ok=True)
        copied: list[str] = []
        warnings: list[str] = []
        command = ["tar", "-c", "-f", "-", "-C", directory, prefix]
        with PodExec(api_client, agent_namespace, pod, command) as run:
            try:
                with tarfile.open(fileobj=ChunkReader(iter(run)), mode="r|") as tar:
                    for member in tar:
                        base = _safe_member(member, prefix)
                        if base is None:
                            continue
                        _write_member(tar, member, node_dir, base)
                        copied.append(base)
            except tarfile.TarError as exc:
                for _ in run:  # let the command finish, for its exit status and stderr
                    pass
                detail = run.result.describe() if run.result else ""
                raise PacketCaptureError(
                    f"bad tar stream from pod {pod}: {exc}" + (f" ({detail})" if detail else "")
                ) from exc
            for _ in run:
                pass
        result = run.result
        if result is not None and not result.ok:
            # GNU tar exits 1 when a file grew while it was read (the active file of a
            # running capture): what it sent is a whole prefix of the file, so keep it.
            if result.exit_code == 1 and copied and "changed as we read it" in result.stderr:
                warnings.append(f"{node}: a file grew while it was copied (capture running)")
            else:
                raise PacketCaptureError(f"tar in pod {pod} failed: {result.describe()}")
        missing = sorted(expected - set(copied))
        if missing:
            raise PacketCaptureError(
                f"{len(missing)} file(s) in the status were not found on the node: "
                + ", ".join(missing)
            )
        extra = sorted(set(copied) - expected)
        if extra:
            warnings.append(f"{node}: {len(extra)} file(s) not yet in the status: {extra[0]}…")
        return NodeOutcome(node, tuple(sorted(copied)), warnings=tuple(warnings))
    except (PacketCaptureError, OSError) as exc:
        return NodeOutcome(node, error=str(exc))


def copy_capture_files(
    api_client: Any,
    namespace: str,
    name: str,
    dest: str | os.PathLike[str],
    *,
    agent_namespace: str = DEFAULT_AGENT_NAMESPACE,
    resource: CaptureResource | None = None,
) -> list[NodeOutcome]:
    """Copy a capture's files from every node in its status into ``dest/NODE/``.

    Returns one :class:`NodeOutcome` per node (those that failed carry ``error``). Raises
    :class:`CaptureNotFoundError` when the capture does not exist.
    """
    obj = read_capture(api_client, namespace, name, resource)
    dest_path = Path(dest)
    return [
        _copy_node(
            api_client, entry, namespace, name, dest=dest_path, agent_namespace=agent_namespace
        )
        for entry in status_entries(obj)
    ]


def not_finished(entries: Sequence[dict[str, Any]]) -> list[str]:
    """Why ``clean`` must refuse: one reason per entry whose state is not Finished."""
    reasons = []
    for entry in entries:
        state = entry.get("state")
        if state is None:
            reasons.append(f"node {entry['node']}: capture state cannot be determined")
        elif state != "Finished":
            reasons.append(f"node {entry['node']}: capture state is {state}, not Finished")
    return reasons


def _empty_file_names(
    api_client: Any, namespace: str, name: str, nodes: set[str], resource: CaptureResource
) -> None:
    """Set ``fileNames: []`` for ``nodes`` in status, guarded by resourceVersion, 409 retried."""
    from kubernetes import client as k8s_client
    from kubernetes.client.exceptions import ApiException

    api: Any = k8s_client.CustomObjectsApi(api_client)
    for _attempt in range(_CONFLICT_RETRIES):
        obj = read_capture(api_client, namespace, name, resource)
        changed = False
        for entry in status_entries(obj):
            if entry["node"] in nodes and entry.get("fileNames"):
                entry["fileNames"] = []
                changed = True
        if not changed:
            return
        try:
            # The body carries metadata.resourceVersion: a write since our read gives 409.
            api.replace_namespaced_custom_object_status(
                resource.group, resource.version, namespace, resource.plural, name, obj
            )
            return
        except ApiException as exc:
            if exc.status == 409:
                log.debug("status of %s/%s changed meanwhile; re-reading", namespace, name)
                continue
            if exc.status == 404:
                return  # deleted meanwhile: nothing left to update
            raise PacketCaptureError(
                f"cannot update the status of {namespace}/{name}: {_api_error(exc)}"
            ) from exc
    raise PacketCaptureError(
        f"cannot update the status of {namespace}/{name}: still conflicting after "
        f"{_CONFLICT_RETRIES} attempts"
    )


def _clean_node(
    api_client: Any, entry: dict[str, Any], namespace: str, name: str, agent_namespace: str
) -> NodeOutcome:
    node = entry["node"]
    try:
        directory = _directory(entry)
        pod = find_agent_pod(api_client, node, agent_namespace)
        target = posixpath.join(directory, namespace, name)
        with PodExec(api_client, agent_namespace, pod, ["rm", "-rf", "--", target]) as run:
            _, result = run.run()
        if not result.ok:
            raise PacketCaptureError(f"rm in pod {pod} failed: {result.describe()}")
        files = tuple(f for f in entry.get("fileNames") or [] if isinstance(f, str))
        return NodeOutcome(node, files)
    except (PacketCaptureError, OSError) as exc:
        return NodeOutcome(node, error=str(exc))


def clean_capture_files(
    api_client: Any,
    namespace: str,
    name: str,
    *,
    force: bool = False,
    agent_namespace: str = DEFAULT_AGENT_NAMESPACE,
    resource: CaptureResource | None = None,
    on_node: Callable[[NodeOutcome], None] | None = None,
) -> list[NodeOutcome]:
    """Remove a capture's files on every node in its status and empty their ``fileNames``.

    Refuses with :class:`CleanRefusedError` unless every entry is ``Finished`` (or ``force``).
    Only nodes whose files were removed get ``fileNames: []``.
    """
    res = resource or CaptureResource()
    obj = read_capture(api_client, namespace, name, res)
    entries = status_entries(obj)
    reasons = not_finished(entries)
    if reasons and not force:
        raise CleanRefusedError(
            f"refusing to clean {namespace}/{name}: " + "; ".join(reasons) + " (use --force)"
        )
    outcomes = []
    for entry in entries:
        outcome = _clean_node(api_client, entry, namespace, name, agent_namespace)
        outcomes.append(outcome)
        if on_node is not None:
            on_node(outcome)
    cleaned = {o.node for o in outcomes if o.ok}
    if cleaned:
        _empty_file_names(api_client, namespace, name, cleaned, res)
    return outcomes


# -- live pcap: `follow` on the node, `stream` from the user's machine ------------------------


def _active_files(directory: Path, interface: str | None) -> list[str]:
    from packetcapture.pcap import parse_file_name

    found = []
    for fname in sorted(os.listdir(directory)):
        parsed = parse_file_name(fname)
        if parsed is None or parsed.rotated_us is not None:
            continue
        if interface is None or interface in (parsed.interface, f"{parsed.pod}_{parsed.interface}"):
            found.append(fname)
    return found


def _pcap_header_info(header: bytes) -> tuple[str, int]:
    """Byte order and link type of a classic pcap header; raises for anything else."""
    import struct

    from packetcapture.errors import PcapError
    from packetcapture.pcap._format import MAGIC_MICRO, MAGIC_NANO

    for order in ("<", ">"):
        (magic,) = struct.unpack(order + "I", header[:4])
        if magic in (MAGIC_MICRO, MAGIC_NANO):
            return order, struct.unpack(order + "I", header[20:24])[0]
    raise PcapError("not a classic pcap file (follow reads pcap, not pcapng)")


def follow_capture(
    capture_dir: str | os.PathLike[str],
    namespace: str,
    name: str,
    out: Any,
    *,
    interface: str | None = None,
    count: int | None = None,
    poll_seconds: float = 0.2,
    should_stop: Callable[[], bool] = lambda: False,
) -> int:
    """Write one interface's capture as a pcap stream to ``out``, following rotations.

    Starts at the beginning of the active file, then hands on every whole record as the
    writer adds it; when the writer rotates (the active name then names a new file) the old
    file is read to its end and the new one continues the stream without its header. Ends
    after ``count`` packets, when the capture directory is removed, or when ``should_stop``
    says so. Returns the number of packets written.
    """
    import struct
    import time

    from packetcapture.pcap import capture_directory
    from packetcapture.pcap._format import PCAP_HEADER_LEN, PCAP_RECORD_HEADER_LEN

    directory = capture_directory(capture_dir, namespace, name)
    if not directory.is_dir():
        raise PacketCaptureError(f"no capture {namespace}/{name} in {capture_dir}")
    while True:  # wait for the first packet (WaitingForTraffic: no file yet)
        names = _active_files(directory, interface)
        if len(names) > 1:
            raise PacketCaptureError(
                f"{namespace}/{name} captures {len(names)} interfaces here: choose one with "
                "--interface (" + ", ".join(n.removesuffix(SUFFIX) for n in names) + ")"
            )
        if names and (directory / names[0]).stat().st_size >= PCAP_HEADER_LEN:
            break
        if should_stop() or not directory.is_dir():
            return 0
        time.sleep(poll_seconds)
    path = directory / names[0]
    current = open(path, "rb")  # noqa: SIM115 - swapped at each rotation
    try:
        header = current.read(PCAP_HEADER_LEN)
        order, _linktype = _pcap_header_info(header)
        record = struct.Struct(order + "IIII")
        out.write(header)
        out.flush()
        written = 0
        pending = b""
        while count is None or written < count:
            data = current.read(1 << 16)
            if data:
                pending += data
                chunks = []
                while len(pending) >= PCAP_RECORD_HEADER_LEN:
                    caplen = record.unpack_from(pending)[2]
                    end = PCAP_RECORD_HEADER_LEN + caplen
                    if len(pending) < end:
                        break
                    chunks.append(pending[:end])
                    pending = pending[end:]
                    written += 1
                    if count is not None and written >= count:
                        break
                if chunks:
                    out.write(b"".join(chunks))
                    out.flush()
                continue
            # At the end of what was written: has the writer moved on to a new file?
            try:
                st = path.stat()
            except FileNotFoundError:
                st = None
            if st is not None and st.st_ino != os.fstat(current.fileno()).st_ino:
                nxt = open(path, "rb")  # noqa: SIM115
                if len(nxt.read(PCAP_HEADER_LEN)) < PCAP_HEADER_LEN:
                    nxt.close()  # the new file's header is not written yet
                else:
                    current.close()
                    current, pending = nxt, b""
                    continue
            if should_stop() or not directory.is_dir():
                break
            time.sleep(poll_seconds)
        return written
    finally:
        current.close()


def stream_capture(
    api_client: Any,
    namespace: str,
    name: str,
    out: Any,
    *,
    node: str | None = None,
    interface: str | None = None,
    count: int | None = None,
    agent_namespace: str = DEFAULT_AGENT_NAMESPACE,
    resource: CaptureResource | None = None,
) -> str:
    """Relay one node's live capture as pcap to ``out`` (``packetcapture follow`` over exec).

    ``node`` may be omitted when one node only reports the capture. Returns the node name;
    raises :class:`PacketCaptureError` when the follow command fails.
    """
    obj = read_capture(api_client, namespace, name, resource)
    entries = status_entries(obj)
    nodes = [e["node"] for e in entries]
    if node is None:
        if len(nodes) != 1:
            raise PacketCaptureError(
                f"{namespace}/{name} is reported by {len(nodes)} node(s)"
                + (f" ({', '.join(nodes)})" if nodes else "")
                + ": choose one with --node"
            )
        node = nodes[0]
    entry = next((e for e in entries if e["node"] == node), {"node": node})
    directory = _directory(entry)
    pod = find_agent_pod(api_client, node, agent_namespace)
    command = ["packetcapture", "follow", "--capture-dir", directory, f"{namespace}/{name}"]
    if interface:
        command += ["--interface", interface]
    if count is not None:
        command += ["--count", str(count)]
    with PodExec(api_client, agent_namespace, pod, command, poll_seconds=0.2) as run:
        for chunk in run:
            out.write(chunk)
            out.flush()
    result = run.result
    if result is not None and not result.ok:
        raise PacketCaptureError(f"follow in pod {pod} on node {node}: {result.describe()}")
    return node
