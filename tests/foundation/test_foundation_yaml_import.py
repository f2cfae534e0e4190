"""packetcapture._yaml: PyYAML imported without compiling its patterns until each is used.

Each check runs in a fresh interpreter (this one imported PyYAML long ago).
"""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO

EXAMPLES = REPO / "examples"


def _fresh(code: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=False
    )
    assert done.returncode in (0, 1), done.stderr
    return done.stdout + done.stderr


def test_the_reader_pattern_is_compiled_when_first_used_and_reads_as_before() -> None:
    out = _fresh(
        "import re\n"
        "compile_ = re.compile\n"
        "from packetcapture._yaml import import_yaml\n"
        "yaml = import_yaml()\n"
        "assert re.compile is compile_  # put back\n"
        "lazy = yaml.reader.Reader.NON_PRINTABLE\n"
        "assert not isinstance(lazy, re.Pattern) and lazy._compiled is None\n"
        "source = open(yaml.reader.__file__, encoding='utf-8').read()\n"
        "line = next(l for l in source.splitlines() if 'NON_PRINTABLE = re.compile(' in l)\n"
        "written = eval(line.split('re.compile(', 1)[1].rsplit(')', 1)[0])\n"
        "assert lazy.pattern == written, (lazy.pattern, written)  # yaml's own, exactly\n"
        "assert yaml.load('a: b\\u00e9', Loader=yaml.SafeLoader) == {'a': 'b\\u00e9'}\n"
        "try:\n"
        "    yaml.load('a: \\x07', Loader=yaml.SafeLoader)\n"
        "except yaml.reader.ReaderError as exc:\n"
        "    print('refused', exc.character)\n"
        "assert isinstance(lazy._compiled, re.Pattern)\n"
        "assert re.compile('[a-]+').fullmatch('a-')  # other patterns as usual\n"
    )
    assert out == "refused 7\n"


def test_yaml_imported_already_is_left_as_it_is() -> None:
    out = _fresh(
        "import re, yaml\n"
        "from packetcapture._yaml import import_yaml\n"
        "assert import_yaml() is yaml\n"
        "print(isinstance(yaml.reader.Reader.NON_PRINTABLE, re.Pattern))\n"
    )
    assert out == "True\n"


# Scalars of every implicit type, an explicit timestamp, and what PyYAML refuses.
_CORPUS = (
    "import sys, yaml\n"
    "docs = ['a: yes\\nb: 0x1F\\nc: 1_000\\nd: 1.5e+3\\ne: .inf\\nf: ~\\ng: 2001-12-14\\n'\n"
    "        'h: 2001-12-14 21:59:43.10 -5\\n'\n"
    "        'k: !!timestamp 2002-12-14\\nl: 10:20\\n',\n"
    "        'a: \\x07', 'a: [1, 2', '\\u00e9: [b, ~, true, \"x\"]']\n"
    "for doc in docs:\n"
    "    for loader in (yaml.SafeLoader, yaml.FullLoader, yaml.CSafeLoader):\n"
    "        try:\n"
    "            print(repr(yaml.load(doc, Loader=loader)))\n"
    "        except yaml.YAMLError as exc:\n"
    "            print(type(exc).__name__, exc)\n"
    "for value in ['yes', '0x1F', '1_0', '1.5', '2001-12-14', '~', '<<', '=', 'a', '10:20', 7]:\n"
    "    print(yaml.safe_dump({'v': value, 'l': [value]}), end='')\n"
)


def test_yaml_reads_and_writes_as_when_imported_plainly() -> None:
    lazy = _fresh("from packetcapture._yaml import import_yaml\nimport_yaml()\n" + _CORPUS)
    plain = _fresh(_CORPUS)
    assert "ReaderError" in plain and "datetime.date(2001, 12, 14)" in plain
    assert lazy == plain


def test_validate_and_run_never_compile_it(tmp_path: object) -> None:
    code = (
        "import atexit, sys\n"
        "def show():\n"
        "    import yaml\n"
        "    print('compiled', yaml.reader.Reader.NON_PRINTABLE._compiled is not None)\n"
        "atexit.register(show)\n"
        "from packetcapture.cli import main\n"
        "sys.exit(main())\n"
    )
    sample, endpoints = EXAMPLES / "sample-capture.yaml", EXAMPLES / "endpoints.yaml"
    run = ["run", str(sample), "--endpoints", str(endpoints), "--node", "node-1"]
    run += ["--replay-dir", str(EXAMPLES / "traffic"), "--capture-dir", f"{tmp_path}/c"]
    for argv in (["validate", "-q", str(sample)], run):
        assert "compiled False" in _fresh(code, *argv).splitlines(), argv
