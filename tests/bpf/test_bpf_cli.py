"""``packetcapture compile``."""

from __future__ import annotations

import subprocess
import sys

from packetcapture.bpf import compile_filters, pcap_expression
from packetcapture.cli import main
from packetcapture.model import PacketCaptureRule

DOC = """apiVersion: projectcalico.org/v3
kind: PacketCapture
metadata: {name: web, namespace: default}
spec:
  selector: all()
  filters:
  - protocol: TCP
    ports: [80, "8000:8080"]
"""
RULES = [PacketCaptureRule("TCP", [80, "8000:8080"])]


def test_formats(tmp_path, capsys):
    path = tmp_path / "cap.yaml"
    path.write_text(DOC)
    for flag, fmt in (("-d", "d"), ("-dd", "dd"), ("-ddd", "ddd")):
        assert main(["compile", str(path), flag]) == 0
        assert capsys.readouterr().out == compile_filters(RULES).disassemble(fmt)
    assert main(["compile", str(path), "--linktype", "113"]) == 0
    assert capsys.readouterr().out == compile_filters(RULES, linktype=113).disassemble()
    assert main(["compile", str(path), "--expression"]) == 0
    assert capsys.readouterr().out == pcap_expression(RULES) + "\n"


def test_errors(tmp_path, capsys):
    path = tmp_path / "cap.yaml"
    path.write_text(DOC)
    assert main(["compile", str(path), "--linktype", "999"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "link type" in err
    assert main(["compile", str(tmp_path / "missing.yaml")]) == 1
    assert "cannot read" in capsys.readouterr().err


def test_subprocess(tmp_path):
    path = tmp_path / "cap.yaml"
    path.write_text(DOC)
    out = subprocess.run(
        [sys.executable, "-m", "packetcapture", "compile", str(path), "-ddd"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out == compile_filters(RULES).disassemble("ddd")
