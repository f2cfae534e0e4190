"""The ``packetcapture node`` command itself, imported only when it runs."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from packetcapture.cli._node import resolve_environment
from packetcapture.cli._text import one_line
from packetcapture.errors import PacketCaptureError, ValidationError

__all__ = ["run_node"]

logger = logging.getLogger("packetcapture.node")


def _err(message: str) -> None:
    # Names from the command line are escaped: they never split the line or drive the terminal.
    print(f"packetcapture: error: {one_line(message)}", file=sys.stderr)


def run_node(args: argparse.Namespace) -> int:
    """Run the node agent until SIGTERM/SIGINT; return the exit code."""
    try:
        resolve_environment(args)
    except ValueError as exc:
        _err(str(exc))
        return 2
    if not args.node:
        _err("--node is required (or set NODE_NAME, e.g. from the downward API)")
        return 2
    # One log line per state change: the agent's info lines are shown without -v.
    package_logger = logging.getLogger("packetcapture")
    if package_logger.getEffectiveLevel() > logging.INFO:
        package_logger.setLevel(logging.INFO)
        # The watches retry with backoff and say so once per failure; urllib3's own quick
        # retries would add three lines each.
        logging.getLogger("urllib3").setLevel(logging.ERROR)

    from packetcapture.agent import NodeAgent
    from packetcapture.backends import get_backend
    from packetcapture.kube import (
        CaptureResource,
        DryRunAgent,
        KubeAgentConfig,
        KubeNodeAgent,
        load_api_client,
    )
    from packetcapture.kube._health import HealthServer
    from packetcapture.pcap import CaptureSettings

    try:
        settings = CaptureSettings(
            max_size_bytes=args.max_size_bytes,
            rotation_seconds=args.rotation_seconds,
            max_files=args.max_files,
            snaplen=args.snaplen,
            format=args.format,
        )
    except ValidationError as exc:
        _err(" | ".join(exc.lines()))
        return 2
    capture_dir = Path(args.capture_dir)
    if args.replay_dir is not None and not args.replay_dir.is_dir():
        problem = "not a directory" if args.replay_dir.exists() else "no such directory"
        _err(f"--replay-dir {args.replay_dir}: {problem}")
        return 1
    api_client = load_api_client(args.kubeconfig, args.context)  # errors: one line by main
    config = KubeAgentConfig(
        node=args.node,
        resource=CaptureResource(args.group, args.api_version, args.plural),
        interface_prefix=args.interface_prefix,
        endpoint_source=args.endpoints_from,
        status_interval=args.status_interval,
        resync_seconds=args.resync_seconds,
    )
    agent: NodeAgent | DryRunAgent
    if args.dry_run:
        agent = DryRunAgent(args.node)
    else:
        try:
            capture_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            _err(f"--capture-dir {capture_dir}: {exc.strerror or exc}")
            return 1
        if args.replay_dir is not None:
            backend = get_backend("replay", directory=args.replay_dir)
        else:
            backend = get_backend("afpacket")
        agent = NodeAgent(args.node, backend, capture_dir, settings)
    kube = KubeNodeAgent(api_client, agent, config)

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        logger.info("%s: stopping", signal.Signals(signum).name)
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    health = None
    try:
        if args.health_port is not None:
            try:
                health = HealthServer(kube.health, args.health_port)
            except OSError as exc:
                _err(f"--health-port {args.health_port}: {exc.strerror or exc}")
                kube.shutdown(timeout=0)
                return 1
            health.start()
            logger.info("health endpoint on 127.0.0.1:%d", health.port)
        if not kube.run(stop, shutdown_seconds=args.shutdown_seconds):
            print(
                "packetcapture: warning: the final status was not written before the "
                "shutdown deadline",
                file=sys.stderr,
            )
    except PacketCaptureError as exc:
        _err(str(exc))
        return 1
    finally:
        if health is not None:
            health.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        closing: Any = api_client  # the client's close() is untyped
        closing.close()
    return 0
