"""Running a command in a pod (``kubectl exec``) with its output streamed as it arrives.

The ``kubernetes`` client's WebSocket exec (``v4.channel.k8s.io``: channel 1 stdout, 2 stderr,
3 the final ``Status``) is used in binary mode; stdout chunks are handed out as they come,
so a ``tar`` of gigabytes never sits in memory.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator, Sequence
from typing import Any

import attrs

from packetcapture.errors import PacketCaptureError

__all__ = ["ExecError", "ExecResult", "PodExec"]

log = logging.getLogger(__name__)

_STDOUT, _STDERR, _STATUS = 1, 2, 3
_STDERR_KEEP = 64 * 1024  # keep the start of stderr for messages; a chatty command is cut


class ExecError(PacketCaptureError):
    """The exec could not be started (no such pod, forbidden, connection refused...)."""


@attrs.frozen
class ExecResult:
    """How an exec ended: ``exit_code`` 0 on success, ``None`` when no status came back."""

    exit_code: int | None
    stderr: str
    message: str

    @property
    def ok(self) -> bool:
        """True when the command exited 0."""
        return self.exit_code == 0

    def describe(self) -> str:
        """One line for an error message: the exit status and the start of stderr."""
        first = self.stderr.strip().splitlines()[:3]
        what = (
            f"exit code {self.exit_code}"
            if self.exit_code is not None
            else "no exit status (connection lost)"
        )
        if self.message and self.exit_code is None:
            what += f": {self.message}"
        return what + (f": {' | '.join(first)}" if first else "")


def _parse_status(raw: bytes) -> tuple[int | None, str]:
    if not raw:
        return None, ""
    try:
        status = json.loads(raw)
    except ValueError:
        return None, raw.decode("utf-8", "replace")
    if status.get("status") == "Success":
        return 0, ""
    message = str(status.get("message", ""))
    for cause in (status.get("details") or {}).get("causes") or []:
        if cause.get("reason") == "ExitCode":
            try:
                return int(cause.get("message")), message
            except (TypeError, ValueError):
                break
    return None, message


class PodExec:
    """One command running in a pod: iterate for stdout chunks, then read :attr:`result`.

    ``with PodExec(api_client, ns, pod, ["tar", "cf", "-", ...]) as run:`` then
    ``for chunk in run: ...``. Closing early (a consumer that stops reading) closes the
    WebSocket, which ends the command on a real kubelet.
    """

    def __init__(
        self,
        api_client: Any,
        namespace: str,
        pod: str,
        command: Sequence[str],
        *,
        container: str | None = None,
        poll_seconds: float = 1.0,
    ) -> None:
        from kubernetes import client as k8s_client
        from kubernetes.client.exceptions import ApiException
        from kubernetes.stream import stream, ws_client

        self.pod = pod
        self._poll = poll_seconds
        self._stderr = bytearray()
        self._status = b""
        self.result: ExecResult | None = None
        kwargs: dict[str, Any] = {
            "command": list(command),
            "stdout": True,
            "stderr": True,
            "stdin": False,
            "tty": False,
            "_preload_content": False,
            "binary": True,
        }
        if container:
            kwargs["container"] = container
        core: Any = k8s_client.CoreV1Api(api_client)
        try:
            self._ws = stream(core.connect_get_namespaced_pod_exec, pod, namespace, **kwargs)
        except ApiException as exc:
            raise ExecError(
                f"cannot exec in pod {namespace}/{pod}: {exc.reason or exc.status}"
            ) from exc
        # The client keeps a copy of every stdout byte for read_all(); we never call it,
        # and a copied capture must not be held in memory twice.
        if isinstance(getattr(self._ws, "_all", None), io.BytesIO):
            self._ws._all = ws_client._IgnoredIO()

    def __enter__(self) -> PodExec:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _take(self) -> bytes:
        ws = self._ws
        out: bytes = ws.read_channel(_STDOUT) or b""
        err = ws.read_channel(_STDERR) or b""
        if err and len(self._stderr) < _STDERR_KEEP:
            self._stderr += err[: _STDERR_KEEP - len(self._stderr)]
        self._status += ws.read_channel(_STATUS) or b""
        return out

    def __iter__(self) -> Iterator[bytes]:
        ws = self._ws
        try:
            while ws.is_open():
                ws.update(timeout=self._poll)
                chunk = self._take()
                if chunk:
                    yield chunk
            chunk = self._take()
            if chunk:
                yield chunk
        except (OSError, ValueError) as exc:  # the socket failed under us
            self._finish(f"connection lost: {exc}")
            return
        except Exception as exc:
            # websocket-client raises its own exception types for a dropped connection.
            if type(exc).__module__.startswith("websocket"):
                self._finish(f"connection lost: {exc}")
                return
            raise
        self._finish("")

    def _finish(self, lost: str) -> None:
        code, message = _parse_status(self._status)
        self.result = ExecResult(
            exit_code=code,
            stderr=self._stderr.decode("utf-8", "replace"),
            message=message or lost,
        )
        self.close()

    def run(self) -> tuple[bytes, ExecResult]:
        """Run to the end and return all of stdout with the result (small outputs only)."""
        out = b"".join(self)
        assert self.result is not None
        return out, self.result

    def close(self) -> None:
        """Close the WebSocket (idempotent)."""
        try:
            self._ws.close()
            # websocket-client's close() does nothing once the server has closed the
            # connection, leaving the socket open: shut it down ourselves.
            sock = getattr(self._ws, "sock", None)
            if sock is not None and hasattr(sock, "shutdown"):
                sock.shutdown()
        except Exception:  # closing a dead socket: nothing to do
            log.debug("closing exec socket", exc_info=True)


class ChunkReader(io.RawIOBase):
    """A read-only binary stream over an iterator of byte chunks (for ``tarfile`` ``r|``)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buf = b""

    def readable(self) -> bool:
        """Return True: the stream is readable."""
        return True

    def readinto(self, b: Any) -> int:
        """Fill ``b`` from the next chunks; 0 at the end."""
        while not self._buf:
            try:
                self._buf = next(self._chunks)
            except StopIteration:
                return 0
        n = min(len(b), len(self._buf))
        b[:n] = self._buf[:n]
        self._buf = self._buf[n:]
        return n
