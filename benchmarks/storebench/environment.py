"""What the figures depend on: the machine, the versions, and the durability in force."""

from __future__ import annotations

import os
import platform
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import psycopg

import cronica
from storebench.impl_raw import open_sqlite

_PG_SETTINGS = ("fsync", "synchronous_commit", "full_page_writes", "wal_sync_method")
_REPO = Path(__file__).resolve().parents[2]


def machine() -> dict[str, Any]:
    """Cores, CPU model and memory, as the OS reports them."""
    return {
        "nproc": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gib": _memory_gib(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "load_average_before": load_average(),
    }


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages: the machine is shared, so noise is worth recording."""
    try:
        return [round(value, 2) for value in os.getloadavg()]
    except OSError:
        return []


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def filesystem_of(path: Path) -> str:
    """The filesystem type holding ``path`` (the longest mount point above it in /proc/mounts)."""
    best, fs_type = "", "unknown"
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return fs_type
    resolved = str(path.resolve())
    for line in mounts:
        fields = line.split()
        if len(fields) < 3:
            continue
        mount_point = fields[1]
        inside = resolved == mount_point or resolved.startswith(mount_point.rstrip("/") + "/")
        if inside and len(mount_point) > len(best):
            best, fs_type = mount_point, fields[2]
    return fs_type


def versions() -> dict[str, str]:
    """Library and server versions, and the cronica commit the figures belong to."""
    found = {"sqlite": sqlite3.sqlite_version}
    for package in ("cronica", "eventsourcing", "psycopg", "psycopg-binary", "orjson"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "not installed"
    imported_from = Path(cronica.__file__).resolve().parent
    found["cronica_imported_from"] = str(imported_from)
    found["repository_commit"] = _git("rev-parse", "--short", "HEAD")
    if imported_from.is_relative_to(_REPO):
        modified = _git("status", "--porcelain", "src")
        found["cronica_src_modified"] = "yes" if modified else "no"
    else:
        found["cronica_src_modified"] = "unknown: cronica is not imported from this repository"
    return found


def _git(*args: str) -> str:
    try:
        done = subprocess.run(
            ["git", *args], cwd=_REPO, capture_output=True, text=True, check=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip()


def postgres_settings(conninfo: str) -> dict[str, str]:
    """The server's version and durability settings (what every session gets by default)."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT name, setting FROM pg_settings WHERE name = ANY(%s)",
            ([*_PG_SETTINGS, "server_version"],),
        ).fetchall()
    return {str(name): str(setting) for name, setting in rows}


def check_postgres_durable(settings: dict[str, str]) -> None:
    """Refuse to benchmark a server that does not flush commits."""
    if settings.get("fsync") != "on" or settings.get("synchronous_commit") != "on":
        raise SystemExit(
            f"PostgreSQL must run with fsync=on and synchronous_commit=on, not {settings}"
        )


def sqlite_defaults(directory: Path) -> dict[str, str]:
    """What a fresh connection of this SQLite library uses, and the filesystem of the files."""
    probe = directory / "probe.db"
    try:
        conn = open_sqlite(probe)
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        synchronous = conn.execute("PRAGMA synchronous").fetchone()[0]
        conn.close()
        fresh = sqlite3.connect(probe)
        default = fresh.execute("PRAGMA synchronous").fetchone()[0]
        fresh.close()
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{probe}{suffix}").unlink(missing_ok=True)
    names = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
    return {
        "journal_mode": str(mode),
        "synchronous": names.get(synchronous, str(synchronous)),
        "library_default_synchronous": names.get(default, str(default)),
        "directory": str(directory),
        "filesystem": filesystem_of(directory),
    }


def conditions(
    *, quick: bool, runs: int, sizes: dict[str, Any], backend: str, postgres: str, tmp_dir: Path
) -> dict[str, Any]:
    """The conditions of a benchmark run, checked before any figure is taken (PostgreSQL must
    be durable); shared by the store and write-model benchmarks."""
    info: dict[str, Any] = {
        "command": " ".join(["python", *sys.argv]),
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "mode": "quick" if quick else "full",
        "runs": runs,
        "sizes": sizes,
        "machine": machine(),
        "versions": versions(),
        "durability": {"sqlite": sqlite_defaults(tmp_dir)},
    }
    if backend in ("postgresql", "all"):
        settings = postgres_settings(postgres)
        check_postgres_durable(settings)
        info["durability"]["postgresql"] = settings
    return info
