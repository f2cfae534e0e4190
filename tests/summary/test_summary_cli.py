"""``packetcapture summary``: files, capture directories, node copies, merged pcapng,
``--json``/``--top``/``--filter-like-capture``, and broken or hostile files."""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from summary_build import T0, eth, frames, udp

from packetcapture.cli import main
from packetcapture.pcap import RotatingWriter, count_packets, merge_captures
from tests.conftest import REPO

TRAFFIC = REPO / "examples" / "traffic"
TROUBLE = TRAFFIC / "cali1a2b3c4d5e6.pcap"


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["summary", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_text_tables_of_the_bundled_traffic(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, str(TRAFFIC))
    assert (code, err) == (0, "")
    assert out.startswith("Totals: 143 packets")  # 4 files of 27, one of 35
    lines = out.splitlines()
    refused = next(line for line in lines if "refused" in line)
    assert refused.split()[:3] == ["10.244.1.10:40003", "10.244.2.20:80", "refused"]
    assert any(
        "NXDOMAIN" in line and "db.sample-namespace.svc.cluster.local" in line for line in lines
    )
    assert any("port unreachable" in line for line in lines)
    header = next(line for line in lines if line.startswith("PROTO"))
    first_row = lines[lines.index(header) + 1]
    # Aligned: each column starts where its heading does.
    assert first_row.index("[") == header.index("A ")


def test_json_keys_and_top(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, str(TROUBLE), "--json", "--top", "2")
    doc = json.loads(out)
    assert code == 0 and set(doc) == {"flows", "tcp_issues", "dns", "icmp_errors", "totals"}
    assert len(doc["flows"]) == 2 and doc["totals"]["flows"] == 10
    assert doc["flows"][0]["bytes_ab"] + doc["flows"][0]["bytes_ba"] == 671
    (issue,) = doc["tcp_issues"]
    assert (issue["handshake"], issue["resets"]) == ("refused", 1)
    rcodes = {(q["name"], q["rcode"]) for q in doc["dns"]}
    assert ("db.sample-namespace.svc.cluster.local", "NXDOMAIN") in rcodes
    assert doc["icmp_errors"][0]["reason"] == "port unreachable"


def test_filter_like_capture(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(
        capsys,
        str(TROUBLE),
        "--json",
        "--filter-like-capture",
        str(REPO / "examples" / "sample-capture.yaml"),
    )
    doc = json.loads(out)
    # What the README's capture keeps of this file: its TCP port 80 packets.
    assert code == 0 and doc["totals"]["packets"] == 18 and doc["totals"]["filtered_out"] == 17
    assert {(f["proto"], f["b"].rpartition(":")[2]) for f in doc["flows"]} == {("tcp", "80")}


def test_bad_filter_capture_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: Nope\n")
    code, out, err = cli(capsys, str(TROUBLE), "--filter-like-capture", str(bad))
    assert code == 1 and out == "" and len(err.splitlines()) == 1
    assert err.startswith(f"packetcapture: error: {bad}")


def write_node(root: Path, node_offset: int) -> None:
    """A capture directory with rotated and active files for two endpoints."""
    for pod, iface in (("web-0", "cali1"), ("db-0", "cali2")):
        w = RotatingWriter(root, "prod", "cap", pod=pod, interface=iface, node="n")
        for i, (ts, data, wire) in enumerate(
            frames([eth(udp("10.0.0.1", "10.0.0.2", 1000 + node_offset, 2000)) for _ in range(5)])
        ):
            w.write(ts, data, wire, now=T0 / 1e9 + i)
            if i == 2:
                w.rotate(T0 / 1e9 + i)
        w.close()


def test_capture_directory_and_node_copies(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    write_node(tmp_path / "node1", 0)
    write_node(tmp_path / "node2", 1)
    code, out, err = cli(capsys, str(tmp_path / "node1" / "prod" / "cap"), "--json")
    doc = json.loads(out)
    assert (code, err) == (0, "")
    assert doc["totals"]["packets"] == 10 and doc["totals"]["endpoints"] == [
        "db-0/cali2",
        "web-0/cali1",
    ]
    assert {f["endpoint"]: f["packets_ab"] for f in doc["flows"]} == {
        "db-0/cali2": 5,
        "web-0/cali1": 5,
    }
    code, out, err = cli(capsys, str(tmp_path), "--json")
    doc = json.loads(out)
    assert doc["totals"]["packets"] == 20 and len(doc["flows"]) == 4
    assert (
        sorted(doc["totals"]["endpoints"])
        == ["db-0/cali2@cap", "db-0/cali2@cap", "web-0/cali1@cap", "web-0/cali1@cap"]
        or len(set(doc["totals"]["endpoints"])) == 4
    )


def test_merged_pcapng_names_endpoints(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    write_node(tmp_path / "node1", 0)
    merged = tmp_path / "m.pcapng"
    with merged.open("wb") as f:
        merge_captures([tmp_path / "node1"], "prod", "cap", f, nodes=["node-1"])
    code, out, _ = cli(capsys, str(merged), "--json")
    doc = json.loads(out)
    assert code == 0 and doc["totals"]["endpoints"] == ["db-0/cali2@node-1", "web-0/cali1@node-1"]


def test_missing_path_and_empty_directory(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = cli(capsys, str(tmp_path / "nope.pcap"))
    assert (
        code == 1
        and err == f"packetcapture: error: {tmp_path / 'nope.pcap'}: no such file or directory\n"
    )
    code, _, err = cli(capsys, str(tmp_path))
    assert code == 1 and err == f"packetcapture: error: no capture files in {tmp_path}\n"


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda good: good + b"\x00" * 7, "truncated record header"),
        (
            lambda good: good + good[24 : 24 + 16][:8] + b"\xff\xff\xff\x7f" * 2,
            "exceeds the maximum",
        ),
        (lambda good: good[:-10], "truncated record data"),
    ],
    ids=["torn header", "huge record", "torn data"],
)
def test_broken_file_is_one_line_after_the_good_packets(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    damage,
    message: str,  # type: ignore[no-untyped-def]
) -> None:
    good = TROUBLE.read_bytes()
    path = tmp_path / "broken.pcap"
    path.write_bytes(damage(good))
    code, out, err = cli(capsys, str(path), "--json")
    assert code == 1
    (line,) = err.splitlines()
    assert line.startswith(f"packetcapture: error: {path} at byte ") and message in line
    assert json.loads(out)["totals"]["packets"] == count_packets(path) > 0


def test_not_a_capture_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "x.pcap"
    path.write_bytes(b"hello world, no pcap here")
    code, out, err = cli(capsys, str(path), str(TROUBLE))
    assert (
        code == 1
        and err
        == f"packetcapture: error: {path} at byte 0: not a pcap or pcapng file (magic 68656c6c)\n"
    )
    assert out.startswith("Totals: 35 packets")  # the good file is still summarised


def _check_hostile(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    out_buf, err_buf = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out_buf), contextlib.redirect_stderr(err_buf):
        code = main(["summary", str(path), "--json"])
    out, err = out_buf.getvalue(), err_buf.getvalue()
    assert code in (0, 1), err
    assert "Traceback" not in err
    for line in err.splitlines():
        assert line.startswith(f"packetcapture: error: {path}"), line
    assert (code == 1) == bool(err)
    assert json.loads(out)["totals"]["packets"] == count_packets(path)


@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=400))
def test_fuzz_random_bytes(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "f.pcap"
    _check_hostile(path, data)


@settings(max_examples=200, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), which=st.sampled_from(["pcap", "pcapng"]))
def test_fuzz_mutated_real_files(
    tmp_path_factory: pytest.TempPathFactory,
    seed: int,
    which: str,
) -> None:
    rnd = random.Random(seed)
    good = TROUBLE.read_bytes()
    if which == "pcapng":
        from packetcapture.pcap import PcapReader, PcapWriter

        buf = io.BytesIO()
        w = PcapWriter(buf, format="pcapng")
        with PcapReader(TROUBLE) as r:
            w.write_many(list(r))
        good = buf.getvalue()
    data = bytearray(good)
    for _ in range(rnd.randint(1, 8)):
        what = rnd.random()
        pos = rnd.randrange(len(data))
        if what < 0.6:
            data[pos] = rnd.randrange(256)
        elif what < 0.8:
            del data[pos : pos + rnd.randint(1, 40)]
        else:
            data[pos:pos] = os.urandom(rnd.randint(1, 40))
    path = tmp_path_factory.mktemp("mut") / f"m.{which}"
    _check_hostile(path, bytes(data[: rnd.randint(0, len(data))] if rnd.random() < 0.3 else data))


@pytest.mark.parametrize("order", ["<", ">"])
def test_kernel_drops_from_pcapng_statistics(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, order: str
) -> None:
    from summary_build import write_pcapng

    pkts = frames([eth(udp("10.0.0.1", "10.0.0.2", 1, 2))] * 3)
    # Two statistics blocks: the counters are totals, the last one counts.
    write_pcapng(tmp_path / "a.pcapng", pkts, order=order, drops=(4, 9))
    write_pcapng(tmp_path / "b.pcapng", pkts, order=order)
    _, out, _ = cli(capsys, str(tmp_path / "b.pcapng"), "--json")
    assert json.loads(out)["totals"]["drops"] is None  # nothing recorded: unknown
    _, out, _ = cli(capsys, str(tmp_path), "--json")
    doc = json.loads(out)
    assert doc["totals"]["drops"] == 9 and doc["totals"]["packets"] == 6


def test_names_from_paths_stay_on_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # The same endpoint's file in two directories: each is told apart by its directory's
    # name, which here holds a line break and a terminal escape (found by the CLI fuzz).
    odd = tmp_path / "odd\n\x1b[2J"
    for where in (tmp_path / "plain", odd):
        where.mkdir()
        (where / TROUBLE.name).write_bytes(TROUBLE.read_bytes())
    code, out, err = cli(capsys, str(tmp_path / "plain"), str(odd))
    assert (code, err) == (0, "")
    assert "\x1b" not in out
    assert any(line.rstrip().endswith("@odd\\n\\x1b[2J") for line in out.splitlines()), out
