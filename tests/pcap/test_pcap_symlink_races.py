"""No file operation under the capture directory follows a symlink, even one swapped in mid-call.

Issue 16 items 6, 7 and 12: `clean` deleted, and `copy` read, outside the capture directory
when a process swapped ``{dir}/{ns}`` for a symlink (``renameat2(RENAME_EXCHANGE)``) between
the check and the use; `merge` followed symlinks outright; a symlink planted during a run
aborted it. Here a separate process swaps directories (or a file) with symlinks to an
outside tree in a tight loop while the operation runs again and again: thousands of tries,
no escape (the outside tree stays intact and nothing of it is read).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import io
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from packetcapture.errors import PcapError
from packetcapture.pcap import (
    PcapReader,
    PcapWriter,
    copy_capture_files,
    merge_captures,
    remove_capture_files,
)

NS, NAME = "ns", "cap"
FILE = "pod_eth0.pcap"
SECRET = b"SECRET-OUTSIDE-" * 4
INSIDE = b"inside-packet"
#: Seconds each race runs: bounded, yet thousands of tries on this machine.
RACE_SECONDS = 2.5
MIN_TRIES = 1000

_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
HAVE_RENAMEAT2 = hasattr(_libc, "renameat2")

pytestmark = pytest.mark.skipif(
    not (HAVE_RENAMEAT2 and sys.platform == "linux"), reason="needs Linux renameat2"
)

#: The swapper: exchanges two names (a real entry and a symlink) as fast as it can.
SWAPPER = textwrap.dedent(
    """
    import ctypes, ctypes.util, os, signal, sys
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    a, b = (p.encode() for p in sys.argv[1:3])
    count = 0

    def stop(*_):
        print(count, flush=True)
        os._exit(0)

    signal.signal(signal.SIGTERM, stop)
    print("ready", flush=True)
    while True:
        if libc.renameat2(-100, a, -100, b, 2) == 0:  # AT_FDCWD, RENAME_EXCHANGE
            count += 1
    """
)


def _pcap(payload: bytes) -> bytes:
    buf = io.BytesIO()
    PcapWriter(buf).write(1_000_000_000, payload)
    return buf.getvalue()


class Swapper:
    """A process exchanging ``real`` and ``link`` (a symlink) until stopped."""

    def __init__(self, real: Path, link: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SWAPPER, str(real), str(link)], stdout=subprocess.PIPE
        )
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == b"ready"

    def stop(self) -> int:
        """Stop it; return how many exchanges it made."""
        self.proc.terminate()
        out, _ = self.proc.communicate(timeout=10)
        return int(out.strip() or 0)


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[dict[str, Path]]:
    """``cap/ns/cap/pod_eth0.pcap`` inside; ``outside/cap/pod_eth0.pcap`` (the secret)."""
    cap = tmp_path / "cap"
    (cap / NS / NAME).mkdir(parents=True)
    outside = tmp_path / "outside"
    (outside / NAME).mkdir(parents=True)
    (outside / NAME / FILE).write_bytes(_pcap(SECRET))
    (outside / NAME / "other.pcap").write_bytes(_pcap(SECRET))
    (outside / "secret.pcap").write_bytes(_pcap(SECRET))
    yield {"cap": cap, "outside": outside, "tmp": tmp_path}


def _outside_intact(outside: Path) -> bool:
    return all(
        (outside / p).is_file() and SECRET in (outside / p).read_bytes()
        for p in (f"{NAME}/{FILE}", f"{NAME}/other.pcap", "secret.pcap")
    )


def _race(
    tree: dict[str, Path], swap: tuple[Path, Path, Path], attempt: Callable[[int], str]
) -> dict[str, int]:
    """Run ``attempt`` repeatedly while ``swap`` = (real, link, target) is being exchanged.

    ``attempt`` returns an outcome name; "escaped" fails the test at once.
    """
    real, link, target = swap
    link.symlink_to(target)
    outcomes: dict[str, int] = {}
    swapper = Swapper(real, link)
    try:
        deadline = time.monotonic() + RACE_SECONDS
        i = 0
        while time.monotonic() < deadline or i < MIN_TRIES:
            outcome = attempt(i)
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
            assert outcome != "escaped", f"escaped on try {i}: {outcomes}"
            assert _outside_intact(tree["outside"]), f"outside damaged on try {i}: {outcomes}"
            i += 1
    finally:
        swaps = swapper.stop()
    outcomes["swaps"] = swaps
    assert sum(v for k, v in outcomes.items() if k != "swaps") >= MIN_TRIES
    assert swaps >= 1000, outcomes  # the swapper really raced
    return outcomes


def _refill(ns_fd: int) -> None:
    """Recreate ``{ns}/cap/pod_eth0.pcap`` through the real namespace directory's fd."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(NAME, dir_fd=ns_fd)
    try:  # never through the symlink the swapper may just have put there
        fd = os.open(NAME, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=ns_fd)
    except OSError:
        return
    try:
        out = os.open(FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644, dir_fd=fd)
        os.write(out, _pcap(INSIDE))
        os.close(out)
    finally:
        os.close(fd)


def test_clean_never_deletes_outside_while_the_namespace_is_swapped(
    tree: dict[str, Path],
) -> None:
    """Reproduces 16.6: shutil.rmtree by path deleted the symlink's target (14 of 300)."""
    cap, outside = tree["cap"], tree["outside"]
    ns_fd = os.open(cap / NS, os.O_RDONLY | os.O_DIRECTORY)

    def attempt(_: int) -> str:
        _refill(ns_fd)
        try:
            removed = remove_capture_files(cap, NS, NAME)
        except PcapError:
            return "refused"
        return "removed" if removed else "nothing"

    try:
        _race(tree, (cap / NS, cap / "ns-link", outside), attempt)
    finally:
        os.close(ns_fd)


def test_clean_never_deletes_outside_while_the_capture_directory_is_swapped(
    tree: dict[str, Path],
) -> None:
    cap, outside = tree["cap"], tree["outside"]
    ns_fd = os.open(cap / NS, os.O_RDONLY | os.O_DIRECTORY)
    spare = cap / NS / "spare"

    def attempt(_: int) -> str:
        # The real capture directory is at NAME or at the link's name: refill whichever.
        _refill(ns_fd)
        try:
            removed = remove_capture_files(cap, NS, NAME)
        except PcapError:
            return "refused"
        return "removed" if removed else "nothing"

    try:
        _race(tree, (cap / NS / NAME, spare, outside / NAME), attempt)
    finally:
        os.close(ns_fd)


@pytest.mark.parametrize("swapped", ["namespace", "capture", "file"])
def test_copy_never_reads_outside(tree: dict[str, Path], swapped: str) -> None:
    """Reproduces 16.7: copy opened listed files by path (/etc/shadow copied, 34 of 150)."""
    cap, outside, dest = tree["cap"], tree["outside"], tree["tmp"] / "dest"
    dest.mkdir()
    (cap / NS / NAME / FILE).write_bytes(_pcap(INSIDE))
    swap = {
        "namespace": (cap / NS, cap / "ns-link", outside),
        "capture": (cap / NS / NAME, cap / NS / "cap-link", outside / NAME),
        "file": (cap / NS / NAME / FILE, cap / NS / NAME / "x.pcap", outside / "secret.pcap"),
    }[swapped]

    def attempt(_: int) -> str:
        try:
            copied = copy_capture_files(cap, NS, NAME, dest)
        except PcapError:
            return "refused"
        for name in copied:
            if SECRET in (dest / name).read_bytes():
                return "escaped"
            (dest / name).unlink()
        return "copied" if copied else "nothing"

    _race(tree, swap, attempt)


def test_merge_never_reads_outside_while_swapped(tree: dict[str, Path]) -> None:
    cap, outside = tree["cap"], tree["outside"]
    (cap / NS / NAME / FILE).write_bytes(_pcap(INSIDE))

    def attempt(_: int) -> str:
        out = io.BytesIO()
        try:
            merge_captures([cap], NS, NAME, out)
        except PcapError:
            return "refused"
        return "escaped" if SECRET in out.getvalue() else "merged"

    _race(tree, (cap / NS, cap / "ns-link", outside), attempt)


def test_merge_refuses_a_symlinked_namespace_or_capture_directory(tree: dict[str, Path]) -> None:
    """Reproduces 16.7: `ln -s /elsewhere {dir}/{ns}` was followed, no race needed."""
    cap, outside = tree["cap"], tree["outside"]
    (cap / NS / NAME).rmdir()
    (cap / NS).rmdir()
    (cap / NS).symlink_to(outside)
    with pytest.raises(PcapError, match="symlink"):
        merge_captures([cap], NS, NAME, io.BytesIO())
    (cap / NS).unlink()
    (cap / NS).mkdir()
    (cap / NS / NAME).symlink_to(outside / NAME)
    with pytest.raises(PcapError, match="symlink"):
        merge_captures([cap], NS, NAME, io.BytesIO())
    # A symlinked file inside is skipped, as in every listing.
    (cap / NS / NAME).unlink()
    (cap / NS / NAME).mkdir()
    (cap / NS / NAME / FILE).write_bytes(_pcap(INSIDE))
    (cap / NS / NAME / "x_eth1.pcap").symlink_to(outside / "secret.pcap")
    out = io.BytesIO()
    result = merge_captures([cap], NS, NAME, out)
    assert result.files == 1 and SECRET not in out.getvalue()
    out.seek(0)
    assert [data for _, data, _ in PcapReader(out)] == [INSIDE]


def test_clean_removes_symlinks_and_nested_directories_without_following(
    tree: dict[str, Path],
) -> None:
    cap, outside = tree["cap"], tree["outside"]
    d = cap / NS / NAME
    (d / FILE).write_bytes(_pcap(INSIDE))
    (d / "link.pcap").symlink_to(outside / "secret.pcap")
    (d / "dirlink").symlink_to(outside)
    (d / "sub" / "deeper").mkdir(parents=True)
    (d / "sub" / "deeper" / "f").write_bytes(b"x")
    (d / "sub" / "out").symlink_to(outside / NAME)
    removed = remove_capture_files(cap, NS, NAME)
    assert removed == sorted([FILE, "link.pcap", "dirlink", "sub"])
    assert not d.exists() and (cap / NS).is_dir() and _outside_intact(outside)
