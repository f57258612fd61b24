"""Acknowledged means durable: a writer process killed with SIGKILL at random moments loses no
acknowledged event, duplicates none, and leaves a store that opens and accepts appends."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest

import cronica
from tests.conftest import POSTGRES_URL, drop_schema, require_postgres

ROOT = Path(__file__).resolve().parent.parent
KILLS = 4


def run_and_kill(url: str, seconds: float) -> list[uuid.UUID]:
    """Start the writer, SIGKILL it after ``seconds``; the ids it acknowledged before dying."""
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.crash_writer", url, "6"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert child.stdout is not None
    assert child.stdout.readline().strip() == "ready"
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(child.stdout or []))
    reader.start()
    time.sleep(seconds)
    child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    reader.join(timeout=30)
    child.stdout.close()
    # A line cut short by the kill was never fully acknowledged to anyone.
    return [uuid.UUID(line.strip()) for line in lines if len(line.strip()) == 36]


def check_store(url: str, acknowledged: list[uuid.UUID]) -> None:
    with cronica.connect(url) as store:
        events = store.read_all()
        ids = [event.event_id for event in events]
        assert len(ids) == len(set(ids)), "an event was stored twice"
        missing = set(acknowledged) - set(ids)
        assert not missing, f"{len(missing)} acknowledged events were lost"
        for stream in {event.aggregate_id for event in events}:
            versions = [event.version for event in store.read_stream(stream)]
            assert versions == list(range(1, len(versions) + 1))
        store.append("after-crash", [cronica.NewEvent("Recovered", {})])


def crash_repeatedly(url: str) -> None:
    rng = random.Random(7)
    acknowledged: list[uuid.UUID] = []
    for _ in range(KILLS):
        acknowledged += run_and_kill(url, rng.uniform(0.5, 1.5))
        check_store(url, acknowledged)
    assert len(acknowledged) > 100, "the writer barely wrote anything; the test proves nothing"


def test_sqlite_loses_no_acknowledged_append_on_sigkill(tmp_path: Path) -> None:
    crash_repeatedly(f"sqlite:///{tmp_path / 'crash.db'}")


def test_postgres_loses_no_acknowledged_append_on_sigkill() -> None:
    require_postgres()
    schema = f"t_crash_{uuid.uuid4().hex[:10]}"
    try:
        crash_repeatedly(f"{POSTGRES_URL}?schema={schema}")
    finally:
        drop_schema(schema)


@pytest.mark.parametrize("garbage", [b"\x00\xff" * 64, b"not sqlite at all\n" * 100])
def test_a_garbage_sqlite_file_is_a_clear_error_and_stays_untouched(
    tmp_path: Path, garbage: bytes
) -> None:
    path = tmp_path / "garbage.db"
    path.write_bytes(garbage)
    with pytest.raises(cronica.StoreError):
        cronica.connect(f"sqlite:///{path}")
    assert path.read_bytes() == garbage
