"""Exec handlers for the emulator: run a pod's command as a local subprocess.

:class:`LocalExec` maps paths inside the "container" to host directories, rewrites argv
elements that name those paths, refuses commands outside an allow list (no shells), and streams
stdout/stderr as the process produces them, so ``tar``, ``rm``, ``find`` and a following
``packetcapture`` command behave as they would in the agent's container.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

Writer = Callable[[bytes], None]
ExecHandler = Callable[[str, str, "str | None", list[str], "bytes | None", Writer, Writer], int]

#: Commands LocalExec runs (by base name) besides those given in ``commands``. No shells.
DEFAULT_ALLOWED = frozenset({"tar", "rm", "find", "ls", "stat", "cat", "mkdir", "du", "test"})

#: Exit codes a container runtime reports for a refused or missing executable.
EXIT_NOT_EXECUTABLE = 126
EXIT_NOT_FOUND = 127


class LocalExec:
    """Run exec commands locally with container-path rewriting (see the module docstring).

    ``pod_roots`` maps ``(namespace, pod)`` to ``{container_path: host_path}``; a pod not listed
    gets no rewriting. ``commands`` maps a command name to the argv prefix that runs it here
    (e.g. ``{"packetcapture": [sys.executable, "-m", "packetcapture"]}``).
    """

    def __init__(
        self,
        pod_roots: Mapping[tuple[str, str], Mapping[str, Path | str]] | None = None,
        commands: Mapping[str, Sequence[str]] | None = None,
        *,
        allowed: frozenset[str] = DEFAULT_ALLOWED,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.pod_roots = {
            key: {c.rstrip("/") or "/": Path(h) for c, h in roots.items()}
            for key, roots in (pod_roots or {}).items()
        }
        self.commands = {name: list(argv) for name, argv in (commands or {}).items()}
        self.allowed = allowed
        self.env = dict(env) if env is not None else None
        #: Every argv run, after rewriting: ``(namespace, pod, argv)``.
        self.calls: list[tuple[str, str, list[str]]] = []

    def _rewrite(self, roots: Mapping[str, Path], arg: str) -> str:
        prefix = ""
        value = arg
        if arg.startswith("-") and "=" in arg:
            prefix, value = arg.split("=", 1)
            prefix += "="
        for container, host in sorted(roots.items(), key=lambda kv: -len(kv[0])):
            if value == container or value.startswith(container + "/"):
                return prefix + str(host) + value[len(container) :]
        return arg

    def _unrewrite(self, roots: Mapping[str, Path], data: bytes) -> bytes:
        for container, host in sorted(roots.items(), key=lambda kv: -len(str(kv[1]))):
            data = data.replace(str(host).encode(), container.encode())
        return data

    def __call__(
        self,
        namespace: str,
        pod: str,
        container: str | None,
        argv: list[str],
        stdin: bytes | None,
        write_stdout: Writer,
        write_stderr: Writer,
    ) -> int:
        """Run ``argv`` for the pod; the signature of an emulator exec handler."""
        if not argv:
            write_stderr(b"LocalExec: empty command\n")
            return EXIT_NOT_EXECUTABLE
        name = os.path.basename(argv[0])
        roots = self.pod_roots.get((namespace, pod), {})
        args = [self._rewrite(roots, a) for a in argv[1:]]
        if name in self.commands:
            real = [*self.commands[name], *args]
        elif name in self.allowed:
            path = shutil.which(name)
            if path is None:
                write_stderr(f"LocalExec: {name}: executable file not found\n".encode())
                return EXIT_NOT_FOUND
            real = [path, *args]
            if name == "tar":
                # Member names as the container would write them (tar drops the leading "/").
                # Appended: old-style "tar cf - PATH" must keep its bundled options first.
                at = real.index("--") if "--" in real else len(real)
                real[at:at] = [
                    f"--transform=s|^{str(host).lstrip('/')}|{c.lstrip('/')}|"
                    for c, host in roots.items()
                ]
        else:
            write_stderr(f"LocalExec: command {name!r} is not allowed\n".encode())
            return EXIT_NOT_EXECUTABLE
        self.calls.append((namespace, pod, real))
        buffered = name in ("find", "ls", "stat", "du")  # their output names host paths
        proc = subprocess.Popen(
            real,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=self.env,
        )
        broken = threading.Event()

        def pump(stream: object, write: Writer) -> None:
            chunks: list[bytes] = []
            fd = stream.fileno()  # type: ignore[attr-defined]
            while True:
                data = os.read(fd, 65536)
                if not data:
                    break
                if buffered:
                    chunks.append(data)
                    continue
                try:
                    write(data)
                except Exception:
                    # The client went away: stop the command like a closed exec session does.
                    broken.set()
                    proc.kill()
            if buffered and chunks:
                try:
                    write(self._unrewrite(roots, b"".join(chunks)))
                except Exception:
                    broken.set()

        threads = [
            threading.Thread(target=pump, args=(proc.stdout, write_stdout), daemon=True),
            threading.Thread(target=pump, args=(proc.stderr, write_stderr), daemon=True),
        ]
        for thread in threads:
            thread.start()
        if stdin is not None and proc.stdin is not None:
            try:
                proc.stdin.write(stdin)
                proc.stdin.close()
            except OSError:
                pass
        code = proc.wait()
        for thread in threads:
            thread.join()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
        return code
