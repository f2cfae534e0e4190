"""``packetcapture copy | clean | merge``."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from packetcapture.cli import main
from packetcapture.pcap import CaptureSettings, PcapReader, RotatingWriter

T0 = 1_700_000_000.0
TS0 = 1_700_000_000_000_000_000


def populate(capdir: Path, ns: str = "ns", node: str = "n1", offset: int = 0) -> int:
    """Two endpoint interfaces with rotated files; returns the packets written."""
    total = 0
    for k, (pod, iface) in enumerate([("a", "cali1"), ("b", "cali2")]):
        s = CaptureSettings(max_size_bytes=1000, max_files=100)
        with RotatingWriter(capdir, ns, "cap", pod, iface, settings=s, node=node) as w:
            for i in range(20):
                w.write(
                    TS0 + (i * 10 + k * 3 + offset) * 1000,
                    bytes(12) + b"\x88\xb5" + bytes(60),
                    74,
                    T0 + i,
                )
            total += w.packets_written
    return total


def test_copy_and_clean(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cap = tmp_path / "pcap"
    populate(cap)
    populate(cap, ns="other")
    files = sorted(p.name for p in (cap / "ns" / "cap").iterdir())
    assert (
        main(
            ["copy", "cap", "-n", "ns", "--capture-dir", str(cap), "--dest", str(tmp_path / "out")]
        )
        == 0
    )
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == files
    assert "copied" in capsys.readouterr().out
    assert (
        main(["copy", "cap", "-a", "--capture-dir", str(cap), "--dest", str(tmp_path / "all")]) == 0
    )
    assert sorted(p.name for p in (tmp_path / "all").iterdir()) == ["ns", "other"]
    assert main(["clean", "cap", "-n", "ns", "--capture-dir", str(cap)]) == 0
    assert not (cap / "ns" / "cap").exists() and (cap / "other" / "cap").exists()
    capsys.readouterr()
    assert main(["clean", "cap", "-n", "ns", "--capture-dir", str(cap)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no files for capture ns/cap" in err
    assert main(["clean", "cap", "-a", "--capture-dir", str(cap)]) == 0
    assert not (cap / "other" / "cap").exists()
    assert main(["copy", "cap", "-a", "--capture-dir", str(cap)]) == 1
    with pytest.raises(SystemExit) as info:
        main(["copy", "cap", "-n", "x", "-a"])
    assert info.value.code == 2


def test_copy_refuses_unsafe_names(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["copy", "..", "-n", "ns", "--capture-dir", str(tmp_path)]) == 1
    assert main(["clean", "x", "-n", "../..", "--capture-dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and all(line.startswith("packetcapture: error:") for line in err)


def test_merge_nodes_and_interfaces(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], tool: Callable[[str], str]
) -> None:
    n1 = tmp_path / "n1"
    populate(n1)
    # The second node's files were copied out flat (packetcapture copy).
    populate(tmp_path / "n2src", node="n2", offset=1)
    assert (
        main(
            [
                "copy",
                "cap",
                "-n",
                "ns",
                "--capture-dir",
                str(tmp_path / "n2src"),
                "--dest",
                str(tmp_path / "n2"),
            ]
        )
        == 0
    )
    out = tmp_path / "all.pcapng"
    code = main(
        [
            "merge",
            "cap",
            "-n",
            "ns",
            "--capture-dir",
            str(n1),
            "--capture-dir",
            str(tmp_path / "n2"),
            "--node",
            "node-1",
            "--node",
            "node-2",
            "-o",
            str(out),
        ]
    )
    assert code == 0
    assert "merged 80 packet(s)" in capsys.readouterr().out
    with PcapReader(out) as r:
        recs = list(r.records())
        descs = [i.description for i in r.interfaces]
    assert len(recs) == 80
    assert [x.timestamp_ns for x in recs] == sorted(x.timestamp_ns for x in recs)
    assert sorted(descs) == sorted(  # type: ignore[type-var]
        f"endpoint=ns/{p} interface={i} node={n} capture=ns/cap"
        for p, i in [("a", "cali1"), ("b", "cali2")]
        for n in ("node-1", "node-2")
    )
    # Each interface's packets come from one endpoint and node.
    assert {x.interface_id for x in recs} == {0, 1, 2, 3}
    tshark = tool("tshark")
    lines = subprocess.run(
        [tshark, "-r", str(out), "-T", "fields", "-e", "frame.interface_description"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert len(lines) == 80 and len(set(lines)) == 4
    # The output exists: refuse without --force.
    assert main(["merge", "cap", "-n", "ns", "--capture-dir", str(n1), "-o", str(out)]) == 1
    assert main(["merge", "cap", "-n", "ns", "--capture-dir", str(n1), "-o", str(out), "-f"]) == 0
    assert (
        main(["merge", "nope", "-n", "ns", "--capture-dir", str(n1), "-o", str(tmp_path / "x")])
        == 1
    )
    assert (
        main(["merge", "cap", "--capture-dir", str(n1), "--node", "a", "--node", "b", "-o", "-"])
        == 2
    )


def test_merge_keeps_whole_packets_of_a_torn_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    populate(tmp_path)
    active = tmp_path / "ns" / "cap" / "a_cali1.pcap"
    active.write_bytes(active.read_bytes()[:-7])
    out = tmp_path / "m.pcapng"
    assert main(["merge", "cap", "-n", "ns", "--capture-dir", str(tmp_path), "-o", str(out)]) == 0
    captured = capsys.readouterr()
    assert "torn record" in captured.err and "merged 39 packet(s)" in captured.out


def test_cli_subprocess(tmp_path: Path) -> None:
    populate(tmp_path)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "packetcapture",
            "merge",
            "cap",
            "-n",
            "ns",
            "--capture-dir",
            str(tmp_path),
            "-o",
            "-",
        ],
        capture_output=True,
        check=True,
    )
    assert proc.stdout[:4] == b"\x0a\x0d\x0d\x0a" and b"merged 40 packet(s)" in proc.stderr
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "packetcapture",
            "clean",
            "cap",
            "-n",
            "none",
            "--capture-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
