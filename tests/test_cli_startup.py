"""``cronica serve`` and ``cronica worker`` refuse what would stop them in one ``error:`` line,
exit 1 and nothing made, and start anyway when only the bus is away (they retry it). Before:
a traceback and exit 3 for a store out of reach, exit 0 when ``--workers`` processes failed to
start, N separate stores for ``memory://`` with ``--workers N``, the store file made before a
bad ``--bus`` was refused, and no start at all with Redis away."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.processes import CLI, Server, environment, free_port


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], cwd=cwd, capture_output=True, text=True, env=environment(None),
        timeout=60, check=False,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("args", "message"),
    [(["serve", "--store", "bogus", "--workers", "2"], "not a store URL"),
     (["serve", "--store", "memory://", "--workers", "2"], "memory:// would be one per process"),
     (["serve", "--store", "postgresql://postgres@127.0.0.1:1/test"], "connection failed"),
     (["serve", "--store", "sqlite:///s.db", "--bus", "bogus://x"], "unknown bus URL"),
     (["worker", "--store", "sqlite:///s.db", "--bus", "bogus://x"], "unknown bus URL"),
     (["serve", "--store", "sqlite:///s.db", "--read-models", "nope"], "read-model")],
)  # fmt: skip
def test_what_would_stop_the_service_is_one_line_and_makes_nothing(
    tmp_path: Path, args: list[str], message: str
) -> None:
    done = (
        run(*args, "--port", str(free_port()), cwd=tmp_path)
        if args[0] == "serve"
        else (run(*args, cwd=tmp_path))
    )
    assert done.returncode == 1, done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert not (tmp_path / "s.db").exists() or args[-2] == "--read-models"


def test_a_module_that_fails_to_import_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "broken_upcasters.py").write_text("raise RuntimeError('not today')\n")
    (tmp_path / "bad_syntax.py").write_text("def (:\n")
    for spec in ("broken_upcasters:upcasters", "bad_syntax:upcasters"):
        done = run("read", "acc-1", "--upcasters", spec, "--store", "memory://", cwd=tmp_path)
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
        assert done.stderr.startswith("error: --upcasters: importing"), done.stderr


def test_the_service_starts_with_redis_away_and_stops_cleanly(tmp_path: Path) -> None:
    """The README's promise: the store keeps taking writes while Redis is away."""
    away = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    server = Server("--bus", away, cwd=tmp_path)
    try:
        assert server.process.poll() is None
    finally:
        assert server.stop() == 0
    worker = subprocess.Popen(
        [*CLI, "worker", "--store", f"sqlite:///{tmp_path / 'w.db'}", "--bus", away],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env=environment(None),
    )  # fmt: skip
    time.sleep(3)
    assert worker.poll() is None, "the worker did not stay up with Redis away"
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0


def test_key_files_that_cannot_be_read_or_written_are_one_line(tmp_path: Path) -> None:
    """A directory or a missing folder was a traceback; ``{}`` was listed as no keys."""
    (tmp_path / "a-dir").mkdir()
    (tmp_path / "object.json").write_text("{}")
    for args in (["keys", "list", "--file", "a-dir"], ["keys", "list", "--file", "object.json"],
                 ["keys", "create", "bob", "--file", "missing/k.json"]):  # fmt: skip
        done = run(*args, cwd=tmp_path)
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
        assert done.stderr.startswith("error: API key file"), done.stderr
    made = run("keys", "create", "bob", "--scope", "read", "--file", "k.json", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "k.json").stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize(
    "args",
    [["archive"], ["archive", "--idle-days", "1", "--before", "2024-01-01T00:00:00Z"],
     ["archive", "--before", "garbage"], ["archive", "--idle-days", "0", "--dir", "/dev/null"],
     ["forget", "ana", "--reason", "x" * 501], ["forget", "ana", "--reason", "  "],
     ["forget", "bad\x01id", "--reason", "GDPR"], ["status", "--read-models", "bogus"]],
)  # fmt: skip
def test_bad_flags_are_refused_before_the_default_store_is_made(
    tmp_path: Path, args: list[str]
) -> None:
    done = run(*args, cwd=tmp_path)
    assert done.returncode in (1, 2) and "Traceback" not in done.stderr, done.stderr
    assert list(tmp_path.iterdir()) == []  # no cronica.db (nor its archive folder)


def test_a_stop_with_a_live_log_open_is_quick_and_quiet(tmp_path: Path) -> None:
    """An open /events/live held SIGTERM for uvicorn's 10 s grace, then a traceback."""
    import threading

    import httpx2 as httpx

    server = Server(cwd=tmp_path)
    opened = threading.Event()

    def follow() -> None:
        try:
            with httpx.stream("GET", f"{server.base}/events/live", timeout=30) as response:
                for _ in response.iter_bytes():
                    opened.set()
        except httpx.TransportError:
            pass

    reader = threading.Thread(target=follow, daemon=True)
    reader.start()
    assert opened.wait(10)
    started = time.monotonic()
    assert server.stop() == 0
    assert time.monotonic() - started < 9  # uvicorn's grace is 10 s
    reader.join(10)
    log = server.log.read_text()
    assert "Traceback" not in log and "timeout graceful shutdown exceeded" not in log, log
