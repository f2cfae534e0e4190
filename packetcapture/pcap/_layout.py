"""Calico's file layout, safe names, and opening capture directories without escaping them.

Layout: ``{capture_dir}/{namespace}/{capture_name}/`` holds, per endpoint interface, the
active file ``{pod}_{interface}.pcap`` and rotated files
``{pod}_{interface}-{unix microseconds}.pcap``. Every name is built from validated parts; a
part that could escape the directory is refused with :class:`PcapError`. The capture
directory itself may be a symlink (an administrator's choice), but the namespace and
capture-name directories below it and the files in them are opened with ``O_NOFOLLOW``
relative to the parent's descriptor, so a planted symlink cannot redirect writes.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path
from typing import IO, NamedTuple

from packetcapture.errors import PcapError
from packetcapture.pcap._settings import CaptureSettings
from packetcapture.validation import MAX_BASE_NAME_BYTES, file_base_problems, path_part_problem

__all__ = [
    "MAX_BASE_NAME_BYTES",
    "CaptureFileName",
    "active_name",
    "base_name",
    "capture_directory",
    "check_free_space",
    "open_capture_dir",
    "open_namespace_dir",
    "open_regular_file",
    "open_subdir",
    "parse_file_name",
    "rotated_name",
    "validate_part",
]

SUFFIX = ".pcap"


def validate_part(value: object, what: str) -> str:
    """Check one path component (namespace, capture, pod, interface or node name).

    Raises :class:`PcapError` with the message of
    :func:`packetcapture.validation.path_part_problem` (the one rule, which ``validate``
    applies too): anything that is not a non-empty string, contains ``/``, NUL or another
    control character, is ``.`` or ``..``, is not UTF-8 encodable, or is longer than 253
    bytes.
    """
    message = path_part_problem(value, what)
    if message is not None:
        raise PcapError(message)
    assert isinstance(value, str)
    return value


def capture_directory(capture_dir: str | os.PathLike[str], namespace: str, name: str) -> Path:
    """Return ``{capture_dir}/{namespace}/{name}`` after validating both names.

    Pure: touches no file. Raises :class:`PcapError` for an unsafe name.
    """
    validate_part(namespace, "namespace")
    validate_part(name, "capture")
    return Path(capture_dir) / namespace / name


def base_name(pod: str, interface: str) -> str:
    """Return ``{pod}_{interface}``, the stem of an endpoint interface's files.

    Besides :func:`validate_part`'s checks, the pod name must not contain ``_`` (so a file
    name splits back unambiguously; Kubernetes pod names never do), the interface name must
    not end in ``-<digits>`` (it would read as a rotated file), and the whole stem must fit
    in :data:`MAX_BASE_NAME_BYTES` bytes. Raises :class:`PcapError` otherwise.
    """
    problems = file_base_problems(pod, interface)
    if problems:
        raise PcapError(problems[0][1])
    return f"{pod}_{interface}"


def active_name(base: str) -> str:
    """Return the active file name ``{base}.pcap``."""
    return base + SUFFIX


def rotated_name(base: str, unix_us: int) -> str:
    """Return the rotated file name ``{base}-{unix_us}.pcap``."""
    if unix_us < 0:
        raise ValueError("rotation time must not be before the epoch")
    return f"{base}-{unix_us}{SUFFIX}"


class CaptureFileName(NamedTuple):
    """A capture file name split into parts; ``rotated_us`` is None for an active file."""

    pod: str
    interface: str
    rotated_us: int | None

    @property
    def base(self) -> str:
        """``{pod}_{interface}``."""
        return f"{self.pod}_{self.interface}"


def parse_file_name(name: str) -> CaptureFileName | None:
    """Split a capture file name into pod, interface and rotation time.

    Returns None for names that are not ``{pod}_{interface}[-{us}].pcap``.
    """
    # String methods, not regular expressions (compiled at every start), giving what
    # ``^(?P<base>.+)-(?P<us>\d+)\.pcap$``, else ``^(?P<base>.+)\.pcap$``, did: ``.`` is no
    # newline, ``$`` may stand before a final one. A test checks both against these.
    stem = name[:-1] if name.endswith("\n") else name
    if "\n" in stem or not stem.endswith(SUFFIX):
        return None
    stem = stem[: -len(SUFFIX)]
    rotated: int | None = None
    head, dash, digits = stem.rpartition("-")
    if head and dash and digits.isdecimal():
        stem, rotated = head, int(digits)
    pod, sep, iface = stem.partition("_")
    if not sep or not pod or not iface:
        return None
    return CaptureFileName(pod, iface, rotated)


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


def _open_child_dir(parent_fd: int, part: str, create: bool, shown: str) -> int:
    flags = _DIR_FLAGS | os.O_NOFOLLOW
    try:
        return os.open(part, flags, dir_fd=parent_fd)
    except FileNotFoundError:
        if not create:
            raise
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise PcapError(
                "is a symlink or not a directory; refusing to use it", path=shown
            ) from exc
        raise PcapError(f"cannot open directory: {exc.strerror}", path=shown) from exc
    try:
        os.mkdir(part, 0o755, dir_fd=parent_fd)
    except FileExistsError:
        pass  # created concurrently; the open below checks what it is
    except OSError as exc:
        raise PcapError(f"cannot create directory: {exc.strerror}", path=shown) from exc
    try:
        fd = os.open(part, flags, dir_fd=parent_fd)
    except OSError as exc:
        raise PcapError("is a symlink or not a directory; refusing to use it", path=shown) from exc
    with contextlib.suppress(OSError):
        os.fchmod(fd, 0o755)  # the umask may have narrowed mkdir's mode
    return fd


def open_capture_dir(
    capture_dir: str | os.PathLike[str], namespace: str, name: str, *, create: bool = False
) -> int:
    """Open ``{capture_dir}/{namespace}/{name}`` and return a directory descriptor.

    The namespace and capture directories are opened with ``O_NOFOLLOW`` relative to their
    parent, so neither may be a symlink. With ``create`` missing directories are made
    (mode 0755). Raises :class:`PcapError` (``FileNotFoundError`` when missing and not
    ``create``). The caller closes the descriptor.
    """
    target = capture_directory(capture_dir, namespace, name)
    root_path = os.fspath(capture_dir)
    if create:
        try:
            os.makedirs(root_path, mode=0o755, exist_ok=True)
        except OSError as exc:
            raise PcapError(f"cannot create directory: {exc.strerror}", path=root_path) from exc
    try:
        root = os.open(root_path, _DIR_FLAGS)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise PcapError(f"cannot open directory: {exc.strerror}", path=root_path) from exc
    try:
        ns_fd = _open_child_dir(root, namespace, create, str(target.parent))
    finally:
        os.close(root)
    try:
        return _open_child_dir(ns_fd, name, create, str(target))
    finally:
        os.close(ns_fd)


def open_namespace_dir(capture_dir: str | os.PathLike[str], namespace: str) -> int:
    """Open ``{capture_dir}/{namespace}`` (never a symlink) and return its descriptor.

    For removing a capture directory by name relative to it. Raises as
    :func:`open_capture_dir`; the caller closes the descriptor.
    """
    validate_part(namespace, "namespace")
    root_path = os.fspath(capture_dir)
    try:
        root = os.open(root_path, _DIR_FLAGS)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise PcapError(f"cannot open directory: {exc.strerror}", path=root_path) from exc
    try:
        return _open_child_dir(root, namespace, False, str(Path(capture_dir) / namespace))
    finally:
        os.close(root)


def open_subdir(dir_fd: int, name: str, shown: str) -> int:
    """Open directory ``name`` relative to ``dir_fd`` without following a symlink.

    Raises :class:`PcapError` when it is a symlink or not a directory,
    ``FileNotFoundError`` when it is missing.
    """
    return _open_child_dir(dir_fd, name, False, shown)


def open_regular_file(dir_fd: int, name: str, shown: str) -> IO[bytes]:
    """Open regular file ``name`` relative to ``dir_fd`` for reading, never through a symlink.

    ``O_NOFOLLOW`` refuses a symlink, ``O_NONBLOCK`` keeps a planted FIFO from blocking, and
    the open file must be a regular file. The file object's ``name`` is ``shown``, so
    messages name the file. Raises :class:`PcapError`.
    """

    def opener(_: str, flags: int) -> int:
        return os.open(
            name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd
        )

    try:
        f = open(shown, "rb", opener=opener)  # noqa: SIM115  (the caller closes it)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise PcapError("is a symlink; refusing to read it", path=shown) from exc
        raise PcapError(f"cannot open: {exc.strerror}", path=shown) from exc
    if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
        f.close()
        raise PcapError("is not a regular file; refusing to read it", path=shown)
    return f


def check_free_space(capture_dir: str | os.PathLike[str], settings: CaptureSettings) -> int:
    """Refuse to start a capture when the disk is nearly full, as Felix does.

    Returns the free bytes (for an unprivileged user) on the file system holding
    ``capture_dir`` (or its nearest existing parent). Raises :class:`PcapError`
    ("no space left for capture") when free <= ``(max_files + 1) * max_size_bytes``.
    """
    path = Path(capture_dir).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        st = os.statvfs(path)
    except OSError as exc:
        raise PcapError(f"cannot check free space: {exc.strerror}", path=str(path)) from exc
    free = st.f_bavail * st.f_frsize
    need = settings.free_space_needed
    if free <= need:
        raise PcapError(
            f"no space left for capture ({free} bytes free, more than {need} needed)",
            path=os.fspath(capture_dir),
        )
    return free
