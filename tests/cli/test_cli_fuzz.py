"""Fuzz the command line: whatever the argv and input files, no traceback, one clear line.

The contract (project guide): bad input always gets a clear error that names the field or
position, never a traceback. Each subcommand's argv is built from its real argparse flags
(introspected from :func:`packetcapture.cli.build_parser`), with values drawn from hostile
strings, numbers and times, and from files made for the purpose: empty, binary, truncated,
deeply nested, a directory, an example with one field mutated, broken pcap files and
capture directories with broken status files. ``run`` always replays (never ``--live``) for
at most ``--duration 0.2`` seconds into a temporary capture directory.

Checked for every call: only SystemExit escapes ``main``; the exit code is 0, 1 or 2; no
traceback or exception repr in the output; no control character on stderr (names holding
one, or bytes that are not UTF-8, are shown escaped); and on failure stderr holds one
``packetcapture...`` line per problem, or a documented form (validate's ``FILE: ...``, the
selector error's source and caret lines, run's state and counter lines).

Every path a command may write (capture directories, ``copy -d``, ``merge -o``,
``--status-file``) stays under the test's workspace, and the working directory is a
workspace directory too, so a random relative path lands there. The regression tests at
the end pin each bug the fuzz found.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import datetime as dt
import io
import itertools
import json
import os
import re
import shutil
import struct
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from packetcapture.cli import build_parser, main
from packetcapture.cli._text import one_line
from tests.conftest import REPO

EXAMPLES = REPO / "examples"
TRAFFIC = EXAMPLES / "traffic"
IFACES = sorted(p.stem for p in TRAFFIC.glob("*.pcap"))
TARGET = ("sample-namespace", "sample-capture")
PCAP_NAME = "sample-app-7d4b9c-x2k8p_cali1a2b3c4d5e6.pcap"

# --- tokens resolved against the workspace when an example runs -------------------------


@dataclass(frozen=True)
class WsPath:
    """A file or directory prepared in the workspace (relative name)."""

    name: str


@dataclass(frozen=True)
class Fresh:
    """A new path per example: ``dir`` (empty directory), ``path`` (nothing there yet), or
    ``copy:<template>`` (a fresh copy of a prepared capture directory)."""

    kind: str


@dataclass(frozen=True)
class Under:
    """Random text made a path under the working directory (never absolute, never ``..``)."""

    text: str


@dataclass(frozen=True)
class Mutant:
    """An example file with one field replaced, deleted or added next to it."""

    source: str
    path: tuple[str | int, ...]
    op: str
    value: Any
    as_json: bool


@dataclass(frozen=True)
class Joined:
    """``prefix + token`` (``IFACE=FILE`` for ``--replay``)."""

    prefix: str
    part: Any


Token = str | WsPath | Fresh | Under | Mutant | Joined


# --- hostile values -----------------------------------------------------------------------

# Any character argv can hold: no NUL, and of the surrogates only those standing for the
# bytes of a name that is not UTF-8 (os.fsdecode's surrogateescape).
_CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00") | st.characters(
    min_codepoint=0xDC80, max_codepoint=0xDCFF
)
_CONTROL = st.characters(min_codepoint=1, max_codepoint=31) | st.sampled_from(
    "\x7f\x85\u2028\u2029\u200b\u200e\ufeff"
)
TEXT = st.one_of(
    st.sampled_from(
        ["", "-", "--", "-x", "--nope", "=", "a=b", "/", ".", "..", "~", " ", "null", "[]", "{}"]
    ),
    st.text(_CHARS, max_size=20),
    st.text(_CONTROL, min_size=1, max_size=6),
    st.builds(lambda s, n: s * n, st.text(_CHARS, min_size=1, max_size=3), st.integers(200, 3000)),
)
NUMBERS = st.one_of(
    st.sampled_from(
        [
            "0",
            "-1",
            "-0",
            "1",
            str(2**31),
            str(2**32),
            str(2**63),
            str(2**64),
            str(-(2**64)),
            "1" + "0" * 400,
            "1e309",
            "-1e309",
            "nan",
            "inf",
            "-inf",
            "1e-320",
            "0.0",
            "0x10",
            "1_000",
            " 5 ",
            "\u0663",  # ARABIC-INDIC DIGIT THREE: int() accepts it
            "1.5",
            "",
        ]
    ),
    st.integers(-(2**70), 2**70).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)
TIMES = st.sampled_from(
    [
        "2021-13-45T25:61:61Z",
        "0000-00-00T00:00:00Z",
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
        "9999-12-31T23:59:59-23:59",
        "0001-01-01T00:00:00+23:59",
        "10000-01-01T00:00:00Z",
        "2021-08-26T12:00:00",
        "2021-08-26T12:00:00+99:99",
        "2021-08-26T12:00:00.9999999999999999999Z",
        "2021-02-30T00:00:00Z",
        "now",
        "",
    ]
)
ANY_VALUE = st.one_of(TEXT, NUMBERS, TIMES)

SCALARS: st.SearchStrategy[Any] = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(),
    TEXT,
    TIMES,
    st.datetimes(),
    st.datetimes(timezones=st.just(dt.UTC)),
)
VALUES: st.SearchStrategy[Any] = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=6,
) | st.integers(60, 300).map(lambda n: json.loads("[" * n + "]" * n))


# --- files ----------------------------------------------------------------------------------

_SAMPLE = (EXAMPLES / "sample-capture.yaml").read_bytes()


def _pcap_header(snaplen: int = 262144, linktype: int = 1, magic: int = 0xA1B2C3D4) -> bytes:
    return struct.pack("<IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)


def _record(data: bytes, incl: int | None = None, orig: int | None = None) -> bytes:
    n = len(data)
    return (
        struct.pack("<IIII", 1, 0, n if incl is None else incl, n if orig is None else orig) + data
    )


_GOOD_PCAP = (TRAFFIC / f"{IFACES[0]}.pcap").read_bytes()
BAD_PCAPS = {
    "empty": b"",
    "garbage": bytes(range(256)) * 8,
    "truncated": _GOOD_PCAP[:100],
    "header-only": _pcap_header(),
    "short-header": _pcap_header()[:10],
    "bad-magic": _pcap_header(magic=0xDEADBEEF) + _record(b"x" * 60),
    "zero-snaplen": _pcap_header(snaplen=0) + _record(b"x" * 60),
    "huge-snaplen": _pcap_header(snaplen=0xFFFFFFFF) + _record(b"x" * 60, incl=0xFFFFFFF0),
    "huge-record": _pcap_header() + _record(b"x" * 60, incl=0x7FFFFFFF),
    "odd-linktype": _pcap_header(linktype=147) + _record(b"x" * 60),
    "linktype-max": _pcap_header(linktype=0xFFFF) + _record(b"\x00" * 14),
    "runt-frames": _pcap_header() + _record(b"") + _record(b"\x08") + _record(b"\x00" * 13),
    "orig-smaller": _pcap_header() + _record(b"x" * 60, orig=1),
    "pcapng-garbage": b"\x0a\x0d\x0d\x0a" + b"\xff" * 40,
    "pcapng-huge-block": b"\x0a\x0d\x0d\x0a" + struct.pack("<I", 0xFFFFFFF0) + b"\x4d\x3c\x2b\x1a",
}
HOSTILE_FILES = {
    "empty.yaml": b"",
    "binary.yaml": bytes(range(256)) * 4,
    "truncated.yaml": _SAMPLE[: len(_SAMPLE) * 2 // 3],
    "cut-quote.yaml": _SAMPLE.replace(b'"sample-app"', b'"sample-app'),
    "huge-numbers.yaml": _SAMPLE.replace(b"- 80", b"- " + b"9" * 400)
    .replace(b"TCP", str(2**64).encode())
    .replace(b"spec:", b"spec:\n  startTime: 1e400"),
    "deep-list.yaml": b"[" * 20000,
    "deep-closed.yaml": b"[" * 5000 + b"]" * 5000,
    "deep-map.yaml": b"".join(b"  " * i + b"a:\n" for i in range(300)),
    "deep-flow-map.yaml": b"{a: " * 3000 + b"1" + b"}" * 3000,
    "alias-bomb.yaml": b"a: &a ['x','x','x','x','x','x','x','x','x']\n"
    + b"".join(
        f"{c}: &{c} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]\n".encode()
        for p, c in itertools.pairwise("abcdefghij")
    ),
    "python-tag.yaml": b"!!python/object/apply:os.system ['true']\n",
    "tabs.yaml": b"apiVersion:\tprojectcalico.org/v3\n\tkind: PacketCapture\n",
    "utf16.yaml": _SAMPLE.decode().encode("utf-16"),
    "latin1.yaml": _SAMPLE.replace(b"sample-app", "s\u00e4mple".encode("latin-1")),
    "bom.yaml": b"\xef\xbb\xbf" + _SAMPLE,
    "nul.yaml": _SAMPLE.replace(b"spec:", b"spec:\x00"),
    "only-comment.yaml": b"# nothing\n",
    "empty-docs.yaml": b"---\n---\n...\n",
    "scalar.yaml": b"42\n",
    "list-of-junk.yaml": b"- null\n- 1\n- [a]\n- {kind: PacketCapture}\n",
    "no-kind.yaml": b"apiVersion: projectcalico.org/v3\nmetadata: {name: a}\n",
    "kind-list-junk.yaml": b"kind: PacketCaptureList\nitems: 7\n",
    "kind-list-bad-items.yaml": b"kind: WorkloadEndpointList\nitems: [1, [2], {kind: X}]\n",
    "duplicate-keys.yaml": _SAMPLE + b"\nspec: {selector: all()}\n",
    "bad.json": b'{"kind": "PacketCapture", "spec": ',
    "nan.json": b'{"apiVersion": "projectcalico.org/v3", "kind": "PacketCapture",'
    b' "metadata": {"name": NaN}}',
    "long-line.yaml": b"a: " + b"x" * 2_000_000 + b"\n",
    "timestamps.yaml": _SAMPLE.replace(
        b"spec:", b"spec:\n  startTime: 2021-08-26 12:00:00\n  endTime: 2021-08-26"
    ),
    "not-utf8-name.yaml": _SAMPLE.replace(b"sample-capture", b"\xff\xfe"),
    "garbage.pcap": BAD_PCAPS["garbage"],
    # Valid, with hostile names: not UTF-8 (b"\xff\xfe"), a newline, an escape sequence.
    "\udcff\udcfe.yaml": _SAMPLE,
    "new\nline.yaml": _SAMPLE,
    "\x1b[2J.yaml": _SAMPLE,
}

EXAMPLE_FILES = [
    "sample-capture.yaml",
    "sample-capture-scheduled.yaml",
    "capture-with-filters.yaml",
    "endpoints.yaml",
]
EXAMPLE_DOCS = {
    name: list(yaml.safe_load_all((EXAMPLES / name).read_text())) for name in EXAMPLE_FILES
}


def _paths(obj: Any, prefix: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    yield prefix
    if isinstance(obj, dict):
        for key, value in obj.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            yield from _paths(value, (*prefix, i))


EXAMPLE_PATHS = {
    name: [(i, *p) for i, doc in enumerate(docs) for p in _paths(doc)]
    for name, docs in EXAMPLE_DOCS.items()
}


CAPTURE_EXAMPLES = EXAMPLE_FILES[:3]


def mutants(sources: list[str]) -> st.SearchStrategy[Mutant]:
    """One of ``sources`` with one field set to a hostile value, deleted, or added next to."""

    @st.composite
    def draw_mutant(draw: st.DrawFn) -> Mutant:
        source = draw(st.sampled_from(sources))
        path = draw(st.sampled_from(EXAMPLE_PATHS[source]))
        op = draw(st.sampled_from(["set", "set", "set", "delete", "add"]))
        return Mutant(source, path, op, draw(VALUES), draw(st.booleans()))

    return draw_mutant()


def _write_mutant(m: Mutant, target: Path) -> Path:
    docs = copy.deepcopy(EXAMPLE_DOCS[m.source])
    *parents, last = m.path
    holder: Any = docs
    for part in parents:
        holder = holder[part]
    if m.op == "set":
        holder[last] = m.value
    elif m.op == "delete":
        del holder[last]
    elif isinstance(holder[last], dict):
        holder[last]["x" + str(m.value)[:20]] = m.value
    else:
        holder[last] = [holder[last], m.value]
    if m.as_json and len(docs) == 1:
        target.write_text(json.dumps(docs[0], default=str))
    else:
        target.write_text(yaml.safe_dump_all(docs, allow_unicode=True))
    return target


def weighted(*choices: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """One of the strategies, each ``weight`` times in ``sum(weights)``.

    (``st.one_of`` gives each distinct strategy an equal share, whatever is repeated.)
    """
    table = [strategy for weight, strategy in choices for _ in range(weight)]
    return st.integers(0, len(table) - 1).flatmap(table.__getitem__)


def mostly(valid: st.SearchStrategy[Any], hostile: st.SearchStrategy[Any]) -> Any:
    """``valid`` nine times in ten: with several flags, most examples still get past
    argparse into the command itself."""
    return weighted((9, valid), (1, hostile))


# Files any command that reads a resource file may be given, whatever it expects.
BROKEN_RESOURCE = st.one_of(
    st.sampled_from(sorted(HOSTILE_FILES)).map(lambda n: WsPath(f"files/{n}")),
    st.sampled_from(["adir", "noread.yaml", "missing.yaml", "files/empty.yaml/child"]).map(WsPath),
    st.sampled_from([str(EXAMPLES / n) for n in EXAMPLE_FILES]),
    st.just("-"),
    TEXT.map(Under),
)


ODD_NAMES = st.sampled_from(["\udcff\udcfe.yaml", "new\nline.yaml", "\x1b[2J.yaml"]).map(
    lambda n: WsPath(f"files/{n}")
)


def resource(sources: list[str]) -> Any:
    """A resource file argument: mostly ``sources`` as they are or with one field mutated."""
    valid = st.sampled_from([str(EXAMPLES / n) for n in sources])
    return weighted((3, valid), (2, mutants(sources)), (1, BROKEN_RESOURCE), (1, ODD_NAMES))


PCAP = mostly(
    st.sampled_from([str(p) for p in sorted(TRAFFIC.glob("*.pcap"))]),
    st.one_of(
        st.sampled_from(sorted(BAD_PCAPS)).map(lambda n: WsPath(f"pcaps/{n}.pcap")),
        st.sampled_from(["adir", "missing.pcap"]).map(WsPath),
        BROKEN_RESOURCE,
    ),
)
REPLAY_DIR = weighted(
    (4, st.just(str(TRAFFIC))),
    (
        4,
        st.sampled_from([*sorted(BAD_PCAPS), "iface-is-dir", "no-files"]).map(
            lambda n: WsPath(f"replay/{n}")
        ),
    ),
    (1, st.sampled_from(["files/empty.yaml", "missing-dir"]).map(WsPath)),
    (1, TEXT.map(Under)),
)
CAPTURE_TEMPLATES = [
    "good",
    "two-nodes",
    "status-garbage",
    "status-binary",
    "status-deep",
    "status-unknown-state",
    "status-names-not-list",
    "status-is-dir",
    "status-symlink",
    "pcap-garbage",
    "pcap-truncated",
    "pcap-is-dir",
    "capture-is-file",
    "capture-is-symlink",
    "odd-names",
]
CAPTURE_DIR = mostly(
    st.sampled_from(CAPTURE_TEMPLATES).map(lambda n: WsPath(f"captures/{n}")),
    st.one_of(
        st.sampled_from(["files/empty.yaml", "missing-dir", "adir"]).map(WsPath),
        TEXT.map(Under),
    ),
)
# What a command may write into: always fresh, or a path under the workspace.
WRITE_DIR = mostly(
    st.one_of(
        st.sampled_from([Fresh("dir"), Fresh("path"), Fresh("odd-dir"), Fresh("odd-path")]),
        st.sampled_from(CAPTURE_TEMPLATES).map(lambda n: Fresh(f"copy:{n}")),
        st.sampled_from(CAPTURE_TEMPLATES).map(lambda n: Fresh(f"odd-copy:{n}")),
    ),
    st.one_of(
        st.sampled_from(["files/empty.yaml", "files/empty.yaml/child"]).map(WsPath),
        TEXT.map(Under),
    ),
)
CLEAN_DIR = weighted(
    (4, st.sampled_from(CAPTURE_TEMPLATES).map(lambda n: Fresh(f"copy:{n}"))),
    (2, st.sampled_from(CAPTURE_TEMPLATES).map(lambda n: Fresh(f"odd-copy:{n}"))),
    (1, WRITE_DIR),
)
WRITE_FILE = mostly(
    st.sampled_from([Fresh("path"), Fresh("odd-path")]),
    st.one_of(
        st.just(Fresh("dir")),
        st.sampled_from(["files/empty.yaml/child", "adir", "missing-dir/x/y"]).map(WsPath),
        TEXT.map(Under),
    ),
)
NAMESPACE = mostly(st.sampled_from([TARGET[0], "other-namespace", "default"]), TEXT)
NAME = mostly(st.sampled_from([TARGET[1], "web-and-dns"]), TEXT)
NODE = mostly(st.sampled_from(["node-1", "node-2"]), TEXT)
SELECTOR = mostly(
    st.sampled_from(
        [
            "all()",
            "k8s-app == 'sample-app'",
            "app in {'a', 'b'} && !has(canary)",
            "a == 'b' )",
            "((((",
            "has(",
            "a in {",
            "a == '\u00e9\u200b'",
            "a == '\udcff\n'",
            "a == '\x0b\x1b[2J'",
            "global()",
            "!" * 300 + "has(a)",
            "(" * 300 + "has(a)" + ")" * 300,
            " || ".join(["has(a)"] * 200),
        ]
    ),
    TEXT,
)
LABELS = st.one_of(
    st.lists(st.tuples(TEXT, TEXT), max_size=3).map(lambda kv: ",".join(f"{k}={v}" for k, v in kv)),
    TEXT,
)
REPLAY = mostly(
    st.builds(Joined, st.sampled_from(IFACES).map(lambda i: i + "="), PCAP),
    st.one_of(st.builds(Joined, TEXT.map(lambda i: i + "="), PCAP), TEXT),
)
MERGE_NODES = mostly(st.lists(NODE, min_size=1, max_size=3).map(",".join), TEXT)
COUNT = mostly(st.sampled_from(["1", "2", "5", "100", "1000", "10000000"]), NUMBERS)

# Values per argparse dest; any other dest gets random text, numbers or times.
VALUES_BY_DEST: dict[str, Any] = {
    "capture": resource(CAPTURE_EXAMPLES),
    "endpoints": resource(["endpoints.yaml"]),
    "files": resource(EXAMPLE_FILES),
    "expr": SELECTOR,
    "labels": LABELS,
    "namespace": NAMESPACE,
    "name": NAME,
    "node": NODE,
    "target": mostly(
        st.just("/".join(TARGET)), st.one_of(st.builds("{}/{}".format, NAMESPACE, NAME), TEXT)
    ),
    "replay": REPLAY,
    "replay_dir": REPLAY_DIR,
    # summary's files and directories: kept inside the workspace, as a bare word like "/"
    # would walk the whole machine (other tests' pcaps included).
    "paths": st.one_of(PCAP, CAPTURE_DIR),
    "status_file": WRITE_FILE,
    "dest": WRITE_DIR,
    "output": st.one_of(WRITE_FILE, st.just("-"), st.just(WsPath("merge-exists.pcapng"))),
    "format": mostly(st.sampled_from(["pcap", "pcapng"]), TEXT),
    "progress": mostly(st.sampled_from(["auto", "never"]), TEXT),
    "linktype": mostly(st.sampled_from(["1", "113", "276", "101", "12", "14"]), NUMBERS),
    "snaplen": COUNT,
    "count": COUNT,
    "max_size_bytes": COUNT,
    "max_files": COUNT,
    "rotation_seconds": COUNT,
    "speed": mostly(st.sampled_from(["1", "1000", "1e-300", "1e300"]), NUMBERS),
}
# Per command: dest -> values, where the command's meaning needs more than the default.
OVERRIDES: dict[str, dict[str, Any]] = {
    "status": {"capture_dir": CAPTURE_DIR},
    "copy": {"capture_dir": CAPTURE_DIR},
    "merge": {
        "capture_dir": st.lists(CAPTURE_DIR, min_size=1, max_size=3),
        "node": MERGE_NODES,
    },
    # clean deletes: only fresh copies or paths under the workspace.
    "clean": {"capture_dir": CLEAN_DIR},
    "run": {"capture_dir": WRITE_DIR},
}
# Optional flags given nearly always, as without them the command has little to work on.
WANTED = {
    "run": {"replay", "replay_dir"},
    "copy": {"namespace", "capture_dir"},
    "clean": {"namespace", "capture_dir"},
    "merge": {"namespace", "capture_dir"},
    "selector": {"labels", "endpoints"},
}
# Flags always given: without --capture-dir, run would write under the system's
# /var/log/calico/pcap (CI runs as root).
ALWAYS = {"run": {"capture_dir"}}
# `run` flags never fuzzed: it always replays for a bounded time (set in `argvs`).
RUN_FIXED = {"duration", "live", "promiscuous"}


def _command_parsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    raise AssertionError("no subcommands")


TOP_LEVEL = "(top level)"
COMMANDS = sorted(_command_parsers())


@st.composite
def argvs(draw: st.DrawFn, command: str) -> list[Any]:
    """argv for ``command`` from its parser's own flags, positionals and a little junk.

    Mostly well-formed (required flags given, one flag of a mutually exclusive group) so
    that most examples reach the command itself; sometimes not, for argparse's errors.
    """
    if command == TOP_LEVEL:
        # No valid subcommand, or a read-only one with junk (never one that writes or
        # deletes: with junk they would use the default capture directory).
        words = st.sampled_from(["validate", "selector", "compile", "-v", "-vv", "--version", "-h"])
        return draw(st.lists(weighted((1, words), (1, TEXT)), max_size=4))
    sub = _command_parsers()[command]
    overrides = OVERRIDES.get(command, {})
    # One flag per mutually exclusive group, the others left out (mostly).
    # (Hypothesis leans to small integers: a rare case is a middle value, not 0.)
    left_out: list[argparse.Action] = []
    for group in sub._mutually_exclusive_groups:
        members = [a for a in group._group_actions if a.dest not in RUN_FIXED]
        keep = draw(st.sampled_from(members))
        if draw(st.integers(0, 9)) != 5:
            left_out += [m for m in members if m is not keep]
    options: list[list[Any]] = []
    positionals: list[list[Any]] = []
    for action in sub._actions:
        if action.dest in ("help", "sub_verbose") or action in left_out:
            continue
        if command == "run" and action.dest in RUN_FIXED:
            continue
        values = overrides.get(action.dest, VALUES_BY_DEST.get(action.dest, ANY_VALUE))
        if not action.option_strings:
            many = action.nargs in ("+", "*")
            count = draw(st.integers(1, 3)) if many else 1
            if draw(st.integers(0, 29)) == 13:
                count = 0  # a missing positional: a usage error
            positionals.append([draw(values) for _ in range(count)])
            continue
        wanted = action.required or action.dest in WANTED.get(command, ())
        always = action.dest in ALWAYS.get(command, ())
        if draw(st.integers(0, 19)) >= (19 if wanted else 8) and not always:
            continue
        flag = draw(st.sampled_from(action.option_strings))
        if action.nargs == 0:
            options.append([flag])
            continue
        appends = isinstance(action, argparse._AppendAction | argparse._ExtendAction)
        for _ in range(draw(st.integers(1, 2)) if appends else 1):
            value = draw(values)
            options.append([flag, *value] if isinstance(value, list) else [flag, value])
    junk = draw(st.lists(TEXT.filter(lambda t: not t.startswith("--")), max_size=1))
    if draw(st.integers(0, 9)) != 5:
        junk = []
    order = draw(st.permutations([*options, *positionals, *([j] for j in junk)]))
    head: list[Any] = [command]
    if command == "run":
        head += ["--duration", draw(st.sampled_from(["0.2", "0.05"]))]
    if draw(st.integers(0, 9)) == 5:
        head.insert(0, "-v")
    return head + [token for group in order for token in group]


# --- the workspace ---------------------------------------------------------------------------


def _make_capture_dir(root: Path, variant: str) -> None:
    """A capture directory as `run` leaves it, then broken as ``variant`` says."""
    cap = root.joinpath(*TARGET)
    cap.mkdir(parents=True)
    (cap / PCAP_NAME).write_bytes(_GOOD_PCAP)
    (cap / ".status-node-1.yaml").write_text(
        f"directory: {root}\nfileNames:\n- {PCAP_NAME}\nnode: node-1\nstate: Finished\n"
    )
    status = cap / ".status-node-1.yaml"
    if variant == "two-nodes":
        (cap / ".status-node-2.yaml").write_text("state: Capturing\nfileNames: []\n")
        (cap / "api-5c9f6d-lw3nt_calia9b8c7d6e5f.pcap").write_bytes(_GOOD_PCAP)
    elif variant == "status-garbage":
        status.write_text("state: [unclosed\n")
    elif variant == "status-binary":
        status.write_bytes(bytes(range(256)))
    elif variant == "status-deep":
        status.write_text("[" * 5000)
    elif variant == "status-unknown-state":
        status.write_text("state: {a: 1}\n")
    elif variant == "status-names-not-list":
        status.write_text("state: Finished\nfileNames: 7\n")
    elif variant == "status-is-dir":
        status.unlink()
        status.mkdir()
    elif variant == "status-symlink":
        status.unlink()
        status.symlink_to(root.parent.parent / "files" / "binary.yaml")
    elif variant == "pcap-garbage":
        (cap / PCAP_NAME).write_bytes(BAD_PCAPS["garbage"])
    elif variant == "pcap-truncated":
        (cap / PCAP_NAME).write_bytes(_GOOD_PCAP[:-7])
    elif variant == "pcap-is-dir":
        (cap / PCAP_NAME).unlink()
        (cap / PCAP_NAME).mkdir()
    elif variant == "capture-is-file":
        shutil.rmtree(cap)
        cap.write_bytes(b"not a directory")
    elif variant == "capture-is-symlink":
        # Points at a directory outside: nothing there may ever be removed.
        shutil.rmtree(cap)
        cap.symlink_to(root.parent.parent / "victim")
    elif variant == "odd-names":
        for odd in ("x_y-.pcap", "_.pcap", "a_b-99999999999999999999999.pcap", "a_b.pcapng"):
            (cap / odd).write_bytes(b"")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ws = tmp_path_factory.mktemp("fuzz")
    (ws / "cwd").mkdir()
    (ws / "adir").mkdir()
    (ws / "fresh").mkdir()
    (ws / "victim").mkdir()
    (ws / "victim" / "sentinel").write_text("must survive")
    (ws / "merge-exists.pcapng").write_bytes(b"old")
    files = ws / "files"
    files.mkdir()
    for name, data in HOSTILE_FILES.items():
        (files / name).write_bytes(data)
    if os.geteuid() != 0:  # root reads it anyway: only meaningful for other users
        noread = ws / "noread.yaml"
        noread.write_bytes(_SAMPLE)
        noread.chmod(0)
    pcaps = ws / "pcaps"
    pcaps.mkdir()
    for name, data in BAD_PCAPS.items():
        (pcaps / f"{name}.pcap").write_bytes(data)
        # A replay directory where every interface's file is this broken one.
        rdir = ws / "replay" / name
        rdir.mkdir(parents=True)
        for iface in IFACES:
            (rdir / f"{iface}.pcap").write_bytes(data)
    (ws / "replay" / "no-files").mkdir()
    for iface in IFACES:
        (ws / "replay" / "iface-is-dir" / f"{iface}.pcap").mkdir(parents=True)
    for variant in CAPTURE_TEMPLATES:
        _make_capture_dir(ws / "captures" / variant, variant)
    return ws


class _Resolver:
    """Turns tokens into argv strings, making fresh paths and mutated files as needed."""

    def __init__(self, ws: Path, counter: Iterator[int]) -> None:
        self.ws = ws
        self.counter = counter

    def __call__(self, token: Token) -> str:
        ws = self.ws
        if isinstance(token, str):
            return token
        if isinstance(token, WsPath):
            return str(ws / token.name)
        if isinstance(token, Under):
            parts = [p for p in token.text.split("/") if p not in ("", ".", "..")]
            return str(ws.joinpath("cwd", *parts)) if parts else str(ws / "cwd")
        if isinstance(token, Joined):
            return token.prefix + self(token.part)
        n = next(self.counter)
        # A fresh name that is not UTF-8 and holds a newline and an escape sequence.
        n_name = f"{n}\udcff\n\x1b[2J" if isinstance(token, Fresh) and "odd" in token.kind else n
        if isinstance(token, Mutant):
            suffix = ".json" if token.as_json else ".yaml"
            return str(_write_mutant(token, ws / "fresh" / f"mutant-{n}{suffix}"))
        assert isinstance(token, Fresh)
        path = ws / "fresh" / f"{token.kind.replace(':', '-')}-{n_name}"
        if token.kind in ("dir", "odd-dir"):
            path.mkdir()
        elif token.kind.startswith(("copy:", "odd-copy:")):
            template = token.kind.split(":", 1)[1]
            shutil.copytree(ws / "captures" / template, path, symlinks=True)
        return str(path)


# --- the checks ------------------------------------------------------------------------------

# Documented stderr lines of `run` that do not start with "packetcapture": a state change
# ("<time> ns/name on node: State (N files)") and the final per-interface counters.
_RUN_STATE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ .+ on .*: \w+ \(\d+ files?\)$")
# The counters, then why the interface stopped, if it did: "(end of capture files)".
_RUN_COUNTERS = re.compile(r".*: \d+ packets, \d+ bytes, \d+ dropped, \d+ filtered( \(.+\))?$")
_CONTROL_CHARS = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")
_SELECTOR_ERROR = re.compile(r"^packetcapture selector: .* \(column \d+\)$")
_EXC_REPR = re.compile(
    r"\b[A-Z]\w*(?:Error|Exception|Warning)\(|^\s*[A-Z]\w*(?:Error|Exception):", re.M
)


def check_output(argv: list[str], code: object, out: str, err: str) -> None:
    """Assert the contract for one CLI call (``code`` is main's return or SystemExit's)."""
    shown = f"argv={argv!r}\nexit={code!r}\nstdout={out[-2000:]!r}\nstderr={err[-3000:]!r}"
    assert code in (0, 1, 2), shown
    for text in (out, err):
        assert "Traceback" not in text, shown
        assert 'File "' not in text, shown
        assert not _EXC_REPR.search(text), shown
    # Names from argv or files never split a line or drive the terminal, success or not;
    # standard output is data for `merge -o -` (a pcapng) and `selector` (the expression).
    command = next((a for a in argv if not a.startswith("-")), "")
    assert not _CONTROL_CHARS.search(err), f"control character on stderr\n{shown}"
    if command not in ("merge", "selector"):
        # (tabs are fine there: `compile -d` aligns with them, as tcpdump -d does)
        assert not _CONTROL_CHARS.search(out.replace("\t", " ")), f"control char\n{shown}"
    if code == 0:
        return
    if code == 2 and err.startswith("usage: packetcapture [-h]"):
        # No subcommand at all: the top-level help, as most command-line tools do.
        assert not set(argv) & set(COMMANDS), shown
        return
    # Documented lines that start with a file's name: validate's `FILE: path: message` (on
    # stdout) and `FILE: cannot read: reason`, selector's endpoints file problems.
    files: list[str] = []
    if command == "validate":
        files = [one_line(f) for f in argv[argv.index("validate") + 1 :]]
    elif command == "selector":
        files = [one_line(v) for f, v in itertools.pairwise(argv) if f == "--endpoints"]
    if command == "validate" and code == 1:
        # Documented: validate prints `FILE: path: message` per problem on stdout.
        assert out.strip() or err.strip(), shown
        for line in out.splitlines():
            assert any(line.startswith(f"{f}: ") for f in files), shown
    else:
        assert err.strip(), f"exit {code} with nothing on stderr\n{shown}"
    lines = err.split("\n")
    if lines[-1] == "":
        lines.pop()
    caret_lines = 0
    for line in lines:
        if caret_lines:
            # `packetcapture selector: <reason> (column N)`, then the source and a caret.
            assert line.startswith("    "), shown
            caret_lines -= 1
            continue
        if command == "selector" and code == 1 and _SELECTOR_ERROR.match(line):
            caret_lines = 2
            continue
        if line.startswith("packetcapture"):
            continue
        if any(line.startswith(f"{f}: ") for f in files):
            continue  # validate's documented `FILE: cannot read: <reason>`
        if command == "run" and (_RUN_STATE.match(line) or _RUN_COUNTERS.match(line)):
            continue
        raise AssertionError(f"stderr line {line!r} is not a packetcapture message\n{shown}")
    assert caret_lines == 0, f"selector error without its caret\n{shown}"


def call(
    argv: list[str], capsys: pytest.CaptureFixture[bytes], stdin: bytes = b""
) -> tuple[object, str, str]:
    """Run ``main(argv)`` in-process with ``stdin``; fail on any exception but SystemExit."""
    capsys.readouterr()
    saved = sys.stdin
    sys.stdin = io.TextIOWrapper(io.BytesIO(stdin))
    try:
        code: object = main(argv)
    except SystemExit as exc:
        code = exc.code
    except BaseException as exc:  # any other exception breaks the contract
        pytest.fail(f"{type(exc).__name__}: {exc}\nargv={argv!r}", pytrace=True)
    finally:
        sys.stdin = saved
    # Bytes: `merge -o -` writes a pcapng to standard output.
    out, err = capsys.readouterr()
    return code, out.decode(errors="replace"), err.decode(errors="replace")


STDIN = st.one_of(
    st.sampled_from([(EXAMPLES / n).read_bytes() for n in EXAMPLE_FILES]),
    st.sampled_from(sorted(HOSTILE_FILES)).map(HOSTILE_FILES.__getitem__),
    st.binary(max_size=64),
)
_COUNTER = itertools.count()


def fuzz_once(
    ws: Path, capsys: pytest.CaptureFixture[bytes], tokens: list[Any], stdin: bytes
) -> None:
    resolve = _Resolver(ws, _COUNTER)
    argv = [resolve(t) for t in tokens]
    with contextlib.chdir(ws / "cwd"):
        code, out, err = call(argv, capsys, stdin)
    check_output(argv, code, out, err)
    # Nothing outside the capture directories given may be removed through a symlink.
    assert (ws / "victim" / "sentinel").is_file(), argv
    assert (ws / "captures" / "good").joinpath(*TARGET, PCAP_NAME).is_file(), argv


# Examples per command in the default run: `run` starts an agent each time, so fewer.
BUDGET = {"run": 150}
DEFAULT_EXAMPLES = 120


def _fuzz_test(command: str, examples: int) -> Any:
    @settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
        ],
    )
    @given(tokens=argvs(command), stdin=STDIN)
    def inner(
        workspace: Path, capsysbinary: pytest.CaptureFixture[bytes], tokens: list[Any], stdin: bytes
    ) -> None:
        fuzz_once(workspace, capsysbinary, tokens, stdin)

    return inner


@pytest.mark.parametrize("command", [TOP_LEVEL, *COMMANDS])
def test_cli_fuzz(
    command: str, workspace: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    """A short fuzz of every subcommand (the default run)."""
    _fuzz_test(command, BUDGET.get(command, DEFAULT_EXAMPLES))(workspace, capsysbinary)


@pytest.mark.slow
@pytest.mark.parametrize("command", [TOP_LEVEL, *COMMANDS])
def test_cli_fuzz_heavy(
    command: str, workspace: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    """A longer fuzz of every subcommand (CI's slow run)."""
    _fuzz_test(command, 2 * BUDGET.get(command, DEFAULT_EXAMPLES))(workspace, capsysbinary)


def test_every_command_is_fuzzed() -> None:
    """A new subcommand is picked up by the introspection above (no list to update)."""
    assert {
        "validate",
        "selector",
        "compile",
        "run",
        "status",
        "plan",
        "copy",
        "clean",
        "merge",
    } <= set(COMMANDS)


# --- regression tests for what the fuzz found ------------------------------------------------


def _main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[object, str, str]:
    try:
        code: object = main(argv)
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("argv", "shown"),
    [
        (["validate", "missing\n.yaml"], "missing\\n.yaml: cannot read"),
        (["node", "--node", "n", "--replay-dir", "gone\x1f"], "gone\\x1f: no such directory"),
        (["compile", "missing\n.yaml"], "missing\\n.yaml: cannot read"),
        (["selector", "all()", "--endpoints", "missing\n.yaml"], "missing\\n.yaml: cannot read"),
        (["plan", "missing\n.yaml", "--endpoints", "x"], "missing\\n.yaml: cannot read"),
        (["copy", "\n", "--capture-dir", "."], "capture name '\\n'"),
        (["merge", "x", "--capture-dir", "d\x1b[2J", "-o", "out"], "d\\x1b[2J"),
        (["status", "--capture-dir", ".", "--node", "n", "a\u2028/b"], "a\\u2028"),
        (["compile", "c.yaml", "--nope", "\n"], "unrecognized arguments: --nope \\n"),
        (
            ["run", "c", "--endpoints", "e", "--node", "n", "--capture-dir", "d", "--live", "\r"],
            "\\r",
        ),
    ],
)
def test_names_with_control_characters_stay_on_one_line(
    argv: list[str], shown: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Found by the fuzz: a newline (or escape sequence) in a name split the error line."""
    with contextlib.chdir(tmp_path):
        code, out, err = _main(argv, capsys)
    assert code in (1, 2)
    assert err.count("\n") == 1, err
    assert err.startswith("packetcapture" if argv[0] != "validate" else shown), err
    assert shown in err
    check_output(argv, code, out, err)


def test_selector_error_shows_control_characters_as_spaces(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The source line under a selector error keeps its column, without raw controls."""
    code, _, err = _main(["selector", "a == \x0b\x1b[2J"], capsys)
    assert code == 1
    assert err.splitlines() == [
        "packetcapture selector: expected identifier (column 6)",
        "    a ==   [2J",
        "         ^",
    ]


def test_deeply_nested_status_file_is_one_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Found by the fuzz: a status file nesting 5000 levels raised RecursionError."""
    directory = tmp_path.joinpath(*TARGET)
    directory.mkdir(parents=True)
    (directory / ".status-node-1.yaml").write_text("[" * 5000)
    argv = ["status", "--capture-dir", str(tmp_path), "--node", "node-1", "/".join(TARGET)]
    code, out, err = _main(argv, capsys)
    assert code == 0
    assert err.startswith("packetcapture: warning: ") and err.count("\n") == 1
    assert "unreadable status" in err and "nest" in err
    assert yaml.safe_load(out)["status"]["files"][0]["node"] == "node-1"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["compile", "c.yaml", "--snaplen", "0"], "argument --snaplen: must be at least 1, got 0"),
        (
            ["compile", "c.yaml", "--snaplen", str(2**32)],
            "argument --snaplen: must be at most 4294967295, got 4294967296",
        ),
        (
            ["plan", "c.yaml", "--endpoints", "e", "--max-size-bytes", "1" + "0" * 400],
            "argument --max-size-bytes: must be at most 9223372036854775807, got 1000",
        ),
        (
            ["plan", "c.yaml", "--endpoints", "e", "--max-files", str(2**63)],
            "argument --max-files: must be at most 9223372036854775807",
        ),
    ],
)
def test_numbers_out_of_range_name_the_flag(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """compile --snaplen 0 blamed CAPTURE.yaml; plan with a huge size raised OverflowError."""
    code, _, err = _main(argv, capsys)
    assert code == 2
    assert err.startswith(f"packetcapture {argv[0]}: error: {message}") and err.count("\n") == 1


RUN = [
    "run",
    str(EXAMPLES / "sample-capture.yaml"),
    "--endpoints",
    str(EXAMPLES / "endpoints.yaml"),
]
RUN += ["--node", "node-1"]


def test_run_refuses_a_snaplen_too_large_before_capturing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It used to start, leave a Finished status with no file, then fail."""
    out_dir = tmp_path / "c"
    argv = [
        *RUN,
        "--replay-dir",
        str(TRAFFIC),
        "--capture-dir",
        str(out_dir),
        "--snaplen",
        str(2**32),
    ]
    code, _, err = _main(argv, capsys)
    assert code == 2 and "argument --snaplen: must be at most 4294967295" in err
    assert not out_dir.exists()


def test_replay_sources_of_the_wrong_kind(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A directory given as a replay file (or a file as --replay-dir) is not 'no such' one."""
    base = [*RUN, "--capture-dir", str(tmp_path / "c")]
    code, _, err = _main([*base, "--replay", f"{IFACES[0]}={TRAFFIC}"], capsys)
    assert code == 1 and err.rstrip().endswith(f"{TRAFFIC}: not a file")
    pcap = str(TRAFFIC / f"{IFACES[0]}.pcap")
    code, _, err = _main([*base, "--replay-dir", pcap], capsys)
    assert code == 1 and err == f"packetcapture: error: --replay-dir {pcap}: not a directory\n"


def test_names_that_are_not_utf8_in_a_strict_locale(tmp_path: Path) -> None:
    """Found by the fuzz: a name that is not UTF-8 raised UnicodeEncodeError on print.

    Outside Python's UTF-8 mode (e.g. LANG=en_US.UTF-8) standard output is strict; this
    forces it. The name is printed escaped in messages (``\\xff``), as bytes elsewhere.
    """
    import subprocess

    (tmp_path / os.fsdecode(b"\xff.yaml")).write_bytes(_SAMPLE)
    captures = tmp_path / "captures"
    _make_capture_dir(captures, "good")
    env = {**os.environ, "PYTHONIOENCODING": "utf-8:strict", "PYTHONUTF8": "0"}
    cli = [sys.executable, "-m", "packetcapture"]
    cases = [
        ([b"validate", b"\xff.yaml"], 0, b"\\xff.yaml: ok (1 capture, 0 endpoints)\n"),
        ([b"selector", b"a == '\xfe'"], 0, b"a == \"\xfe\"\n"),
        ([b"copy", b"sample-capture", b"-n", b"sample-namespace", b"--capture-dir", b"captures",
          b"-d", b"\xfd"], 0, b"copied 1 file(s) of sample-namespace/sample-capture to \\xfd\n"),
    ]  # fmt: skip
    for argv, code, expected in cases:
        done = subprocess.run(
            [*cli, *argv], cwd=tmp_path, env=env, capture_output=True, timeout=60, check=False
        )
        assert (done.returncode, done.stdout) == (code, expected), done.stderr
        assert b"Traceback" not in done.stderr
    assert (tmp_path / os.fsdecode(b"\xfd") / PCAP_NAME).is_file()
