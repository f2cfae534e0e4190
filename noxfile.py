"""Developer tasks: `nox` runs tests, lint and typecheck; `nox -s bench` runs benchmarks."""

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.default_venv_backend = "venv"


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite (root-only tests skip unless run as root)."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """Check style with ruff."""
    session.install("ruff")
    session.run("ruff", "check", "packetcapture", "tests", "bench", "examples", "noxfile.py")
    session.run("ruff", "format", "--check", "packetcapture")


@nox.session
def typecheck(session: nox.Session) -> None:
    """Type-check the package with mypy --strict."""
    session.install("-e", ".[dev]")
    session.run("mypy", "packetcapture")


@nox.session
def docs(session: nox.Session) -> None:
    """Check that generated files are current (state diagram, selector tables); run examples."""
    session.install("-e", ".[test]")
    session.run("python", "scripts/render_state_diagram.py", "--check")
    session.run("python", "-m", "packetcapture.selector._generate", "--check")
    session.run("pytest", "tests/test_docs.py", "tests/schedule/test_schedule_docs.py")


@nox.session(default=False)
def bench(session: nox.Session) -> None:
    """Run every benchmark in bench/ and print their tables."""
    session.install("-e", ".[test]")
    for script in sorted(__import__("pathlib").Path("bench").glob("bench_*.py")):
        session.run("python", str(script))
