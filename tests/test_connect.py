"""Store URLs and what an unreachable backend looks like to the caller."""

from __future__ import annotations

from pathlib import Path

import pytest

import cronica
from cronica import (
    InvalidInputError,
    InvalidURLError,
    MemoryEventStore,
    NewEvent,
    SQLiteEventStore,
    StoreUnavailableError,
    connect,
    connect_read_models,
)
from tests.conftest import POSTGRES_URL, drop_schema, require_postgres


def test_memory_url() -> None:
    assert isinstance(connect("memory://"), MemoryEventStore)


def test_sqlite_relative_and_absolute_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with connect("sqlite:///relative.db") as store:
        assert isinstance(store, SQLiteEventStore)
        store.append("s", [NewEvent("A", {})])
    assert (tmp_path / "relative.db").exists()
    absolute = tmp_path / "sub" / "abs.db"
    absolute.parent.mkdir()
    with connect(f"sqlite:///{absolute}") as store:
        assert isinstance(store, SQLiteEventStore)
        assert store.path == absolute
    with connect(f"sqlite:///{absolute}?synchronous=normal") as store:
        assert store.read_all() == []


def test_postgres_url_with_schema() -> None:
    require_postgres()
    schema = "t_connect_url"
    try:
        with connect(f"{POSTGRES_URL}?schema={schema}&application_name=cronica-test") as store:
            store.append("s", [NewEvent("A", {})])
            assert store.schema == schema  # type: ignore[attr-defined]
            assert len(store.read_all()) == 1
    finally:
        drop_schema(schema)


@pytest.mark.parametrize("schema", ["MixedCase", "drop table", "1st", ""])
def test_a_schema_postgres_would_not_find_again_is_refused(schema: str) -> None:
    require_postgres()
    with pytest.raises(InvalidInputError, match="lower-case identifier"):
        connect(f"{POSTGRES_URL}?schema={schema}")
    with pytest.raises(InvalidInputError, match="lower-case identifier"):
        connect_read_models(f"{POSTGRES_URL}?schema={schema}")


@pytest.mark.parametrize(
    "url",
    [
        "nope",
        "redis://localhost",
        "sqlite://",
        "sqlite:///",
        "sqlite:///:memory:",
        "sqlite:///x.db?foo=1",
        "sqlite:///x.db?synchronous=off",
        "",
    ],
)
def test_bad_urls_are_refused_clearly(url: str) -> None:
    with pytest.raises(InvalidURLError):
        connect(url)


def test_unreachable_postgres_is_a_store_unavailable_error() -> None:
    with pytest.raises(StoreUnavailableError):
        connect("postgresql://postgres@127.0.0.1:1/test", connect_timeout=2)


def test_unopenable_sqlite_file_is_a_store_unavailable_error(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailableError):
        connect(f"sqlite:///{tmp_path}/missing-dir/x.db")


def test_a_closed_store_refuses_work(tmp_path: Path) -> None:
    store = connect(f"sqlite:///{tmp_path}/c.db")
    store.close()
    with pytest.raises(cronica.StoreError):
        store.append("s", [NewEvent("A", {})])
    with pytest.raises(cronica.StoreError):
        store.read_all()
