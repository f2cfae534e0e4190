"""Listing and removing a capture's files, for status reports and the CLI."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from packetcapture.errors import PcapError
from packetcapture.model import PacketCaptureFile
from packetcapture.pcap._layout import (
    SUFFIX,
    capture_directory,
    open_capture_dir,
    open_namespace_dir,
    open_regular_file,
    open_subdir,
    parse_file_name,
    validate_part,
)

__all__ = [
    "capture_file_names",
    "copy_capture_files",
    "find_capture_namespaces",
    "list_capture_files",
    "remove_capture_files",
]


def _regular_pcaps(dir_fd: int) -> list[str]:
    out = []
    for name in os.listdir(dir_fd):
        if not name.endswith(SUFFIX) or name.startswith("."):
            continue
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            continue
        if stat.S_ISREG(st.st_mode):
            out.append(name)
    return out


def capture_file_names(capture_dir: str | os.PathLike[str], namespace: str, name: str) -> list[str]:
    """Return the ``.pcap`` files of a capture, sorted in byte order ([] if none).

    Only regular files count (no symlinks, directories or hidden files).
    """
    try:
        fd = open_capture_dir(capture_dir, namespace, name)
    except FileNotFoundError:
        return []
    try:
        names = _regular_pcaps(fd)
    except OSError as exc:
        raise PcapError(
            f"cannot list: {exc.strerror}",
            path=str(capture_directory(capture_dir, namespace, name)),
        ) from exc
    finally:
        os.close(fd)
    # Code-point order of str equals byte order of its UTF-8 encoding (Go's sort.Strings).
    return sorted(names)


def list_capture_files(
    capture_dir: str | os.PathLike[str], namespace: str, name: str, node: str
) -> PacketCaptureFile:
    """Return this node's status entry for a capture: its files, sorted in byte order.

    ``directory`` is ``capture_dir`` as Calico reports it (without ``{namespace}/{name}``);
    ``state`` is left None for the caller to set.
    """
    return PacketCaptureFile(
        directory=os.fspath(capture_dir),
        file_names=capture_file_names(capture_dir, namespace, name),
        node=node,
        state=None,
    )


def remove_capture_files(
    capture_dir: str | os.PathLike[str],
    namespace: str,
    name: str,
    *,
    pod: str | None = None,
    interface: str | None = None,
) -> list[str]:
    """Delete a capture's files and return the names deleted (sorted).

    Without ``pod`` the whole ``{capture_dir}/{namespace}/{name}`` directory goes (as
    ``rm -r``; symlinks inside are removed, never followed). With ``pod`` only that pod's
    files go, and with ``interface`` too only that endpoint interface's. A missing
    directory deletes nothing.
    """
    if interface is not None and pod is None:
        raise ValueError("interface needs pod")
    if pod is not None:
        validate_part(pod, "pod")
    if interface is not None:
        validate_part(interface, "interface")
    target = capture_directory(capture_dir, namespace, name)
    try:
        ns_fd = open_namespace_dir(capture_dir, namespace)
    except FileNotFoundError:
        return []
    try:
        fd = open_subdir(ns_fd, name, str(target))
    except FileNotFoundError:
        os.close(ns_fd)
        return []
    except BaseException:
        os.close(ns_fd)
        raise
    try:
        if pod is None:
            # The whole directory, through descriptors only: nothing is resolved by path
            # again, so swapping a directory for a symlink meanwhile redirects nothing.
            removed = sorted(os.listdir(fd))
            _empty_directory(fd, str(target))
            os.rmdir(name, dir_fd=ns_fd)
            return removed
        removed = []
        for fname in _regular_pcaps(fd):
            parsed = parse_file_name(fname)
            if parsed is None or parsed.pod != pod:
                continue
            if interface is not None and parsed.interface != interface:
                continue
            os.unlink(fname, dir_fd=fd)
            removed.append(fname)
        return sorted(removed)
    except OSError as exc:
        raise PcapError(f"cannot delete: {exc.strerror}", path=str(target)) from exc
    finally:
        os.close(fd)
        os.close(ns_fd)


#: Deepest directory nesting :func:`_empty_directory` descends (capture directories hold
#: files only; anything deeper was planted).
_MAX_REMOVE_DEPTH = 16


def _empty_directory(fd: int, shown: str, depth: int = 0) -> None:
    """Delete everything in the directory open as ``fd``, like ``rm -r`` of its contents.

    Each entry is unlinked relative to ``fd`` (a symlink goes, its target stays); one that
    is a directory is opened with ``O_NOFOLLOW`` relative to ``fd``, emptied the same way
    and removed. No path is ever resolved again.
    """
    if depth > _MAX_REMOVE_DEPTH:
        raise PcapError(f"directories nest deeper than {_MAX_REMOVE_DEPTH} levels", path=shown)
    for entry in os.listdir(fd):
        try:
            os.unlink(entry, dir_fd=fd)
            continue
        except FileNotFoundError:
            continue
        except IsADirectoryError:
            pass
        try:
            sub = open_subdir(fd, entry, f"{shown}/{entry}")
        except FileNotFoundError:
            continue
        try:
            _empty_directory(sub, f"{shown}/{entry}", depth + 1)
        finally:
            os.close(sub)
        os.rmdir(entry, dir_fd=fd)


def copy_capture_files(
    capture_dir: str | os.PathLike[str],
    namespace: str,
    name: str,
    dest: str | os.PathLike[str],
) -> list[str]:
    """Copy a capture's ``.pcap`` files into directory ``dest``; return the names (sorted).

    Each file is opened relative to the capture directory's descriptor with ``O_NOFOLLOW``
    and must be a regular file, so a symlink planted or swapped in meanwhile is never read
    through. Each copy is written to a temporary file in ``dest`` and renamed over the
    destination name (a symlink there is replaced, not followed); the mode and times are
    kept. Raises :class:`PcapError`.
    """
    import shutil
    import tempfile

    target = capture_directory(capture_dir, namespace, name)
    try:
        fd = open_capture_dir(capture_dir, namespace, name)
    except FileNotFoundError:
        return []
    dest_dir = Path(dest)
    copied: list[str] = []
    try:
        for fname in sorted(_regular_pcaps(fd)):
            try:
                src = open_regular_file(fd, fname, str(target / fname))
            except PcapError as exc:
                if isinstance(exc.__cause__, FileNotFoundError):
                    continue  # deleted since the listing (retention of a running capture)
                raise
            with src:
                st = os.fstat(src.fileno())
                out_fd, tmp = tempfile.mkstemp(prefix=".pcap-copy-", dir=dest_dir)
                try:
                    with os.fdopen(out_fd, "wb") as out:
                        shutil.copyfileobj(src, out, 1 << 20)
                        os.fchmod(out.fileno(), stat.S_IMODE(st.st_mode))
                    os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
                    os.replace(tmp, dest_dir / fname)
                except BaseException:
                    Path(tmp).unlink(missing_ok=True)
                    raise
            copied.append(fname)
    except OSError as exc:
        raise PcapError(f"cannot copy: {exc.strerror}", path=exc.filename or str(target)) from exc
    finally:
        os.close(fd)
    return copied


def find_capture_namespaces(capture_dir: str | os.PathLike[str], name: str) -> list[str]:
    """Return the namespaces under ``capture_dir`` holding a capture called ``name``.

    Like ``calicoctl captured-packets --all-namespaces``, which looks for
    ``{capture_dir}/*/{name}`` directories. Symlinked directories are skipped.
    """
    validate_part(name, "capture")
    root = os.fspath(capture_dir)
    try:
        root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise PcapError(f"cannot list: {exc.strerror}", path=root) from exc
    found = []
    try:
        for ns in sorted(os.listdir(root_fd)):
            try:
                ns_fd = open_subdir(root_fd, ns, f"{root}/{ns}")
            except (OSError, PcapError):
                continue  # a symlink, a file, or gone
            try:
                st = os.stat(name, dir_fd=ns_fd, follow_symlinks=False)
            except OSError:
                continue
            finally:
                os.close(ns_fd)
            if stat.S_ISDIR(st.st_mode):
                found.append(ns)
    except OSError as exc:
        raise PcapError(f"cannot list: {exc.strerror}", path=root) from exc
    finally:
        os.close(root_fd)
    return found
