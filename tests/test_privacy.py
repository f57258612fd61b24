"""Per-subject keys and field-level encryption (crypto-shredding): keys apart from the events,
wrapped by a master key, rotated without rewriting history, destroyed for good on forget, on
SQLite (no copy left in the file or its WAL) and PostgreSQL (none in a dump)."""

from __future__ import annotations

import base64
import secrets
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import cronica
from cronica import EventStore, InvalidEventDataError, InvalidInputError, NewEvent
from cronica.privacy import (
    ERASED,
    MASTER_KEY_VARIABLE,
    PREFIX,
    PersonalData,
    SubjectForgottenError,
    SubjectKeys,
)
from cronica.readmodels import read_models_for
from cronica.readmodels.base import ReadModelDatabase
from tests.conftest import require_postgres


@pytest.fixture
def db(store: EventStore) -> Iterator[ReadModelDatabase]:
    with read_models_for(store) as database:
        yield database


def personal(keys: SubjectKeys) -> PersonalData:
    return PersonalData(keys, {"CustomerRegistered": ("name", "address")})


def registered(name: str, address: object = None) -> NewEvent:
    data: dict[str, object] = {"name": name, "tier": "gold"}
    if address is not None:
        data["address"] = address
    return NewEvent("CustomerRegistered", data)


# -- keys -----------------------------------------------------------------------------------------


def test_a_subject_keeps_one_key_until_rotated_and_old_keys_still_decrypt(
    store: EventStore, db: ReadModelDatabase
) -> None:
    keys = SubjectKeys(db)
    cipher = personal(keys)
    first_id, first_key = keys.active_key("c-1")
    assert keys.active_key("c-1") == (first_id, first_key)
    store.append("c-1", [cipher.encrypt(registered("Ana Gómez"), "c-1")])
    second_id = keys.rotate("c-1")
    assert second_id != first_id and keys.active_key("c-1")[0] == second_id
    store.append("c-1", [cipher.encrypt(registered("Ana G."), "c-1")])
    names = [cipher.decrypt(e).data["name"] for e in store.read_stream("c-1")]
    assert names == ["Ana Gómez", "Ana G."]  # the history was not rewritten
    stored = [e.data["name"] for e in store.read_stream("c-1")]
    assert stored[0].startswith(f"{PREFIX}{first_id}:")
    assert stored[1].startswith(f"{PREFIX}{second_id}:")


def test_forgetting_destroys_every_key_and_erases_all_the_subjects_data(
    store: EventStore, db: ReadModelDatabase
) -> None:
    keys = SubjectKeys(db)
    cipher = personal(keys)
    store.append("c-1", [cipher.encrypt(registered("Ana", {"city": "Lima"}), "c-1")])
    keys.rotate("c-1")
    store.append("c-1", [cipher.encrypt(registered("Ana"), "c-1")])
    store.append("c-2", [cipher.encrypt(registered("Juan"), "c-2")])
    assert keys.forget("c-1", reason="GDPR request") == 2
    first, second = (cipher.decrypt(e).data for e in store.read_stream("c-1"))
    assert first == {"name": ERASED, "tier": "gold", "address": ERASED}
    assert second == {"name": ERASED, "tier": "gold"}
    assert cipher.decrypt(store.read_stream("c-2")[0]).data["name"] == "Juan"
    # Another process (its own key store) sees the subject forgotten too.
    key_id = store.read_stream("c-1")[0].data["name"].removeprefix(PREFIX).split(":")[0]
    assert SubjectKeys(db).key("c-1", key_id) is None


def test_a_forgotten_subject_gets_no_new_key_unless_allowed_again(
    store: EventStore, db: ReadModelDatabase
) -> None:
    keys = SubjectKeys(db)
    cipher = personal(keys)
    store.append("c-1", [cipher.encrypt(registered("Ana"), "c-1")])
    keys.forget("c-1", reason="GDPR request")
    with pytest.raises(SubjectForgottenError):
        cipher.encrypt(registered("Ana"), "c-1")
    with pytest.raises(SubjectForgottenError):
        keys.rotate("c-1")
    keys.allow_again("c-1")  # the explicit decision: she came back
    store.append("c-1", [cipher.encrypt(registered("Ana"), "c-1")])
    old, new = (cipher.decrypt(e).data["name"] for e in store.read_stream("c-1"))
    assert (old, new) == (ERASED, "Ana")


def test_forgetting_needs_a_reason(db: ReadModelDatabase) -> None:
    with pytest.raises(InvalidInputError):
        SubjectKeys(db).forget("c-1", reason=" ")


def test_processes_racing_to_make_a_subjects_key_agree_on_one(db: ReadModelDatabase) -> None:
    seen: list[tuple[str, bytes]] = []
    keys = [SubjectKeys(db) for _ in range(6)]

    def make(k: SubjectKeys) -> None:
        seen.append(k.active_key("c-1"))

    threads = [threading.Thread(target=make, args=(k,)) for k in keys]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(seen)) == 1
    assert db.query("SELECT COUNT(*) FROM cronica_subject_keys")[0][0] == 1


def test_a_master_key_wraps_the_stored_keys(
    store: EventStore, db: ReadModelDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    master = secrets.token_bytes(32)
    keys = SubjectKeys(db, master_key=master)
    key_id, key = keys.active_key("c-1")
    [(stored, wrapped)] = db.query("SELECT key_data, wrapped FROM cronica_subject_keys")
    assert wrapped == 1 and base64.b64decode(stored) != key and key not in base64.b64decode(stored)
    # The master key from the environment opens them; another one does not.
    monkeypatch.setenv(MASTER_KEY_VARIABLE, base64.b64encode(master).decode())
    assert SubjectKeys(db).key("c-1", key_id) == key
    with pytest.raises(InvalidInputError, match="does not open"):
        SubjectKeys(db, master_key=secrets.token_bytes(32)).key("c-1", key_id)
    monkeypatch.delenv(MASTER_KEY_VARIABLE)
    with pytest.raises(InvalidInputError, match="wrapped"):
        SubjectKeys(db).key("c-1", key_id)
    for bad in ("not base64!", base64.b64encode(b"short").decode()):
        monkeypatch.setenv(MASTER_KEY_VARIABLE, bad)
        with pytest.raises(InvalidInputError, match=MASTER_KEY_VARIABLE):
            SubjectKeys(db)


# -- the cipher -----------------------------------------------------------------------------------


def test_only_declared_fields_are_encrypted_and_any_json_value_round_trips(
    store: EventStore, db: ReadModelDatabase
) -> None:
    cipher = personal(SubjectKeys(db))
    address = {"street": "Av. Larco 1", "city": "Lima", "floor": 3}
    event = cipher.encrypt(registered("Ana", address), "c-1")
    assert event.data["tier"] == "gold"
    assert "Ana" not in str(event.data) and "Larco" not in str(event.data)
    store.append("c-1", [event, cipher.encrypt(NewEvent("TierChanged", {"tier": "x"}), "c-1")])
    first, second = store.read_stream("c-1")
    assert cipher.decrypt(first).data == {"name": "Ana", "tier": "gold", "address": address}
    assert "subjectId" not in second.metadata  # nothing personal: left as it is
    assert cipher.decrypt(second) == second


def test_a_ciphertext_opens_only_in_its_own_event_and_field(
    store: EventStore, db: ReadModelDatabase
) -> None:
    cipher = personal(SubjectKeys(db))
    sealed = cipher.encrypt(registered("Ana", "Lima"), "c-1")
    moved = NewEvent(
        "CustomerRegistered",
        {"name": sealed.data["address"], "tier": "gold"},  # the address, as the name
        sealed.metadata,
    )
    other_event = NewEvent("CustomerRegistered", dict(sealed.data), sealed.metadata)
    tampered = dict(sealed.data)
    tampered["name"] = (
        tampered["name"][:-6]
        + ("A" if tampered["name"][-6] != "A" else "B")
        + (tampered["name"][-5:])
    )
    store.append("c-1", [moved, other_event, NewEvent("CustomerRegistered", tampered,
                                                      sealed.metadata)])  # fmt: skip
    stored = store.read_stream("c-1")
    for recorded in stored:
        with pytest.raises(InvalidEventDataError):
            cipher.decrypt(recorded)
    # A reader of pages (projector, API) does not stop there: such values stay as stored.
    assert [e.data for e in cipher.decrypt_all(stored)] == [e.data for e in stored]


def test_text_that_only_looks_encrypted_does_not_stop_a_projector(store: EventStore) -> None:
    from cronica.examples.bank_read_models import bank_projections
    from cronica.projections import Projector

    fake = f"{PREFIX}k:AAAA"
    store.append(
        "acc-1", [NewEvent("AccountCreated", {"owner": fake})], aggregate_type="BankAccount"
    )
    store.append(
        "acc-2", [NewEvent("AccountCreated", {"owner": "Eva"})], aggregate_type="BankAccount"
    )
    with Projector(store, bank_projections()) as projector:
        projector.run_until_caught_up()
        rows = projector.read_models.query("SELECT account_id, owner FROM accounts")
    assert sorted(rows) == [("acc-1", fake), ("acc-2", "Eva")]


# -- nothing left behind ---------------------------------------------------------------------------


def test_on_sqlite_no_copy_of_a_forgotten_key_or_the_plaintext_is_left_in_the_files(
    tmp_path: Path,
) -> None:
    path = tmp_path / "crm.db"
    with cronica.connect(f"sqlite:///{path}") as store, read_models_for(store) as db:
        keys = SubjectKeys(db)
        cipher = personal(keys)
        name = "Zoë Plaintext-Marker-7f3a"
        store.append("c-1", [cipher.encrypt(registered(name, "Calle Secreta 42"), "c-1")])
        for n in range(50):  # other subjects' keys around it
            keys.active_key(f"c-other-{n}")
        [(stored_key,)] = db.query(
            "SELECT key_data FROM cronica_subject_keys WHERE subject_id = 'c-1'"
        )
        raw_key = base64.b64decode(stored_key)
        db.query("PRAGMA wal_checkpoint(TRUNCATE)")  # the key has been in the main file a while
        keys.forget("c-1", reason="GDPR request")
        files = [p for p in tmp_path.iterdir() if p.name.startswith("crm.db")]
        assert files, "no database files to scan"
        for file in files:
            content = file.read_bytes()
            for secret in (name.encode(), b"Calle Secreta", stored_key.encode(), raw_key):
                assert secret not in content, f"{secret!r} found in {file.name}"
        assert cipher.decrypt(store.read_stream("c-1")[0]).data["name"] == ERASED


def test_on_postgresql_a_dump_holds_no_forgotten_key_and_no_plaintext(
    pg_schema: str,
) -> None:
    from tests.conftest import POSTGRES_URL

    require_postgres()
    with (
        cronica.connect(f"{POSTGRES_URL}?schema={pg_schema}") as store,
        read_models_for(store) as db,
    ):
        keys = SubjectKeys(db)
        cipher = personal(keys)
        name = "Zoë Plaintext-Marker-9c1d"
        store.append("c-1", [cipher.encrypt(registered(name), "c-1")])
        [(stored_key,)] = db.query("SELECT key_data FROM cronica_subject_keys")
        keys.forget("c-1", reason="GDPR request")
    dump = subprocess.run(
        ["pg_dump", "--data-only", "--schema", pg_schema, POSTGRES_URL],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "cronica_subject_keys" in dump and "c-1" in dump  # the events are there
    assert stored_key not in dump
    assert name not in dump and "Plaintext-Marker" not in dump
