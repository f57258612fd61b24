"""Forgetting while other processes hold keys or write: nothing of a forgotten subject opens
after the forget, in the forgetting process or any other. A second ``SubjectKeys`` on the same
database stands for another process (its own key cache)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from cronica import EventStore, InvalidInputError, NewEvent
from cronica.examples.bank import BankAccount, bank_events
from cronica.privacy import ERASED, PersonalData, SubjectForgottenError, forget
from cronica.privacy.keys import SubjectKeys
from cronica.readmodels import connect_read_models
from cronica.readmodels.sqlite import empty_wal
from cronica.repository import Repository


def open_account(store: EventStore, account_id: str = "acc-1", owner: str = "Ana") -> None:
    Repository(store, BankAccount, bank_events, snapshots=None).create(
        account_id, lambda a: a.open(owner)
    )


def elsewhere(store: EventStore, cache_seconds: float) -> PersonalData:
    """The keys as another process sees them: the same table, a cache of its own."""
    keys = SubjectKeys(store.side_database(), cache_seconds=cache_seconds)
    return PersonalData(keys, {"OwnerRenamed": ("owner",)})


def test_a_key_another_process_destroyed_opens_nothing_once_its_copy_expires(
    store: EventStore,
) -> None:
    open_account(store)
    other = elsewhere(store, cache_seconds=0.2)
    created = store.read_stream("acc-1")[0]
    assert other.decrypt(created).data["owner"] == "Ana"  # its copy of the key is cached
    forget(store, "acc-1", reason="GDPR request")
    time.sleep(0.3)
    assert other.decrypt(created).data["owner"] == ERASED  # strict decrypt asks again
    key_id = created.data["owner"].split(":")[3]
    assert other.keys.key("acc-1", key_id) is None


def test_a_reader_that_meets_the_erasure_drops_its_copy_of_the_key(store: EventStore) -> None:
    """A process that still has the key (within its cache time) writes after the forget: the
    value is sealed with a destroyed key. A reader holding that key too must not open it once
    it has seen the erasure, and the writer refuses the next write."""
    open_account(store)
    other = elsewhere(store, cache_seconds=60)
    assert other.decrypt_all(store.read_stream("acc-1"))[0].data["owner"] == "Ana"
    late = NewEvent("OwnerRenamed", {"owner": "Ana Late"})
    sealed_late = other.encrypt(late, "acc-1")  # sealing key cached before the forget
    assert sealed_late.data["owner"].startswith("cronica:pii:")
    forget(store, "acc-1", reason="GDPR request")
    store.append("acc-1", [sealed_late])  # written after the erasure, with the destroyed key
    page = other.decrypt_all(store.read_stream("acc-1"))
    assert [e.event_type for e in page] == ["AccountCreated", "PersonalDataErased", "OwnerRenamed"]
    assert page[0].data["owner"] == ERASED and page[2].data["owner"] == ERASED
    with pytest.raises(SubjectForgottenError):
        other.encrypt(NewEvent("OwnerRenamed", {"owner": "Again"}), "acc-1")


class _RacedKeys(SubjectKeys):
    """Keys whose ``forget`` lets an account be opened just before it returns: an append
    that raced the forget."""

    def __init__(self, store: EventStore) -> None:
        super().__init__(store.side_database())
        self.store = store

    def forget(self, subject_id: str, *, reason: str) -> int:
        gone = super().forget(subject_id, reason=reason)
        self.store.append("acc-1", [NewEvent("AccountCreated", {"owner": "[sealed]"})],
                          aggregate_type="BankAccount")  # fmt: skip
        return gone


def test_an_append_that_races_the_forget_still_gets_the_erasure(store: EventStore) -> None:
    erasure = forget(store, "acc-1", reason="GDPR request", keys=_RacedKeys(store))
    assert erasure.position is not None  # the stream appeared meanwhile: it was marked
    assert [e.event_type for e in store.read_stream("acc-1")] == [
        "AccountCreated",
        "PersonalDataErased",
    ]


def test_forget_refuses_a_stream_that_holds_other_subjects_data(store: EventStore) -> None:
    open_account(store, "acc-1", "Ana")
    open_account(store, "acc-2", "Bea")
    with pytest.raises(InvalidInputError, match="other subjects"):
        forget(store, "acc-1", reason="GDPR request", stream="acc-2")
    keys = store.subject_keys()
    assert keys.has_keys("acc-1") and not keys.forgotten("acc-1")
    assert [e.event_type for e in store.read_stream("acc-2")] == ["AccountCreated"]


@pytest.mark.parametrize("bad", [123, True, ["acc-1"], None, b"acc-1", "", "a\x00", "s" * 256])
def test_key_operations_refuse_what_is_not_a_subject_id(store: EventStore, bad: Any) -> None:
    open_account(store, "123")
    forget(store, "123", reason="GDPR request")
    keys = store.subject_keys()
    for operation in (keys.rotate, keys.allow_again, keys.active_key, keys.has_keys,
                      keys.forgotten, keys.forgotten_at):  # fmt: skip
        with pytest.raises(InvalidInputError):
            operation(bad)
    assert keys.forgotten("123")  # allow_again(123) did not bring "123" back
    assert not keys.has_keys("1")


def test_a_long_reader_does_not_hold_up_emptying_the_log_for_minutes(tmp_path: Path) -> None:
    db = connect_read_models(f"sqlite:///{tmp_path / 'models.db'}")
    try:
        with db.transaction() as tx:
            tx.execute("CREATE TABLE t (x TEXT)")
            tx.execute("INSERT INTO t VALUES ('secret')")
        reader = sqlite3.connect(tmp_path / "models.db", isolation_level=None)
        reader.execute("BEGIN")
        reader.execute("SELECT * FROM t").fetchall()  # holds a snapshot of the log
        with db.transaction() as tx:
            tx.execute("DELETE FROM t")
        started = time.monotonic()
        assert empty_wal(db) is False  # cannot empty it now, and says so
        assert time.monotonic() - started < 60  # about 6 s; before, 20 tries x a 30 s wait
        reader.execute("COMMIT")
        reader.close()
        assert empty_wal(db) is True
    finally:
        db.close()
