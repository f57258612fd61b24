"""Helpers for tests that run ``cronica serve`` and ``cronica worker`` as real processes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx2 as httpx

from tests.conftest import POSTGRES_URL, require_postgres

CLI = [sys.executable, "-m", "cronica"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Server:
    """``cronica serve`` in a subprocess, on a port of its own."""

    def __init__(self, *args: str, cwd: Path, env: dict[str, str | None] | None = None) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = cwd / f"server-{self.port}.log"
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [*CLI, "serve", "--port", str(self.port), "--log-level", "warning", *args],
                cwd=cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=environment(env),
            )
        self.wait_until_up()

    def wait_until_up(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the server exited: {self.log.read_text()}")
            try:
                if httpx.get(f"{self.base}/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise AssertionError(f"the server did not come up: {self.log.read_text()}")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout=30)


def environment(changes: dict[str, str | None] | None) -> dict[str, str]:
    """This process's environment with ``changes`` (None removes a variable)."""
    env = dict(os.environ)
    for name, value in (changes or {}).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def store_url_for(backend: str, tmp_path: Path, pg_schema_factory: Callable[[], str]) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'bank.db'}"
    require_postgres()
    return f"{POSTGRES_URL}?schema={pg_schema_factory()}"
