"""packetcapture._lazylog: loggers that import logging only when a record needs it.

Each check of the not-yet-loaded case runs in a fresh interpreter (this one has logging).
"""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from packetcapture._lazylog import get_logger
from tests.conftest import REPO

EXAMPLES = REPO / "examples"


def _fresh(code: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    return done


def test_records_below_the_default_level_do_not_load_logging() -> None:
    done = _fresh(
        "import sys\n"
        "from packetcapture._lazylog import get_logger\n"
        "log = get_logger('packetcapture.x')\n"
        "log.info('not %s', 'shown')\n"
        "log.debug('nor this')\n"
        "print('logging' in sys.modules)\n"
        "log.warning('shown %d', 1)\n"  # what logging itself prints when unconfigured
        "print('logging' in sys.modules)\n"
    )
    assert done.stdout.split() == ["False", "True"]
    assert done.stderr == "shown 1\n"


def test_a_pending_configuration_runs_once_before_the_first_record() -> None:
    done = _fresh(
        "import sys\n"
        "from packetcapture._lazylog import configure_on_first_use, get_logger\n"
        "def configure():\n"
        "    import logging\n"
        "    print('configured')\n"
        "    logging.basicConfig(level=logging.INFO, format='%(levelname)s %(name)s %(message)s',"
        " stream=sys.stdout)\n"
        "configure_on_first_use(20, configure)\n"
        "log = get_logger('packetcapture.x')\n"
        "log.debug('below the level set')\n"
        "print('logging' in sys.modules)\n"
        "log.info('one')\n"
        "log.info('two')\n"
    )
    assert done.stdout.splitlines() == [
        "False",
        "configured",
        "INFO packetcapture.x one",
        "INFO packetcapture.x two",
    ]


def test_logging_already_loaded_configures_at_once() -> None:
    done = _fresh(
        "import logging\n"
        "from packetcapture._lazylog import configure_on_first_use\n"
        "configure_on_first_use(30, lambda: print('configured'))\n"
        "print('after')\n"
    )
    assert done.stdout.splitlines() == ["configured", "after"]


def test_a_record_is_the_real_logger_s_and_names_its_caller(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = get_logger("packetcapture.lazy-test")
    with caplog.at_level(logging.DEBUG, logger="packetcapture.lazy-test"):
        log.debug("at %s", "debug")
        line = sys._getframe().f_lineno - 1
        log.warning("at warning")
    first, second = caplog.records
    assert (first.name, first.levelno, first.getMessage()) == (
        "packetcapture.lazy-test",
        logging.DEBUG,
        "at debug",
    )
    assert (first.funcName, first.lineno, first.pathname) == (
        "test_a_record_is_the_real_logger_s_and_names_its_caller",
        line,
        __file__,
    )
    assert second.levelno == logging.WARNING
    assert log.isEnabledFor(logging.INFO) is logging.getLogger(log.name).isEnabledFor(logging.INFO)


def test_a_warning_of_run_as_the_program_is_in_the_cli_s_form(tmp_path: Path) -> None:
    # `run` sets its logging up when the first record comes: a torn replay file's warning.
    data = (EXAMPLES / "traffic" / "cali1a2b3c4d5e6.pcap").read_bytes()
    last = 24  # the classic pcap header; then records of 16 bytes + incl_len
    while last + 16 + int.from_bytes(data[last + 8 : last + 12], "little") < len(data):
        last += 16 + int.from_bytes(data[last + 8 : last + 12], "little")
    torn = tmp_path / "torn.pcap"
    torn.write_bytes(data[:-5])
    sample, endpoints = EXAMPLES / "sample-capture.yaml", EXAMPLES / "endpoints.yaml"
    argv = ["run", str(sample), "--endpoints", str(endpoints), "--node", "node-1"]
    argv += ["--replay", f"cali1a2b3c4d5e6={torn}", "--capture-dir", str(tmp_path / "out")]
    done = subprocess.run(
        [sys.executable, "-m", "packetcapture", *argv], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    warning = [line for line in done.stderr.splitlines() if "torn record" in line]
    assert warning == [
        f"packetcapture: warning: {torn} ends in a torn record at byte {last}; "
        "its whole packets were replayed"
    ], done.stderr
