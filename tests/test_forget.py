"""Forgetting a data subject end to end (seed 1.7.4): the bank's owner is encrypted in the store,
in snapshots and on the bus; forgetting destroys the key, records ``PersonalDataErased``, makes
the read models drop the owner, and afterwards the plaintext is nowhere in the database (the
SQLite file and its WAL; a dump of the PostgreSQL schema), while balances replay unchanged."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import pydantic
import pytest
import redis
from fastapi.testclient import TestClient
from pydantic import Field, StringConstraints
from pydantic.alias_generators import to_camel

import cronica
from cronica import EventStore, InvalidEventDataError, InvalidInputError, RecordedEvent
from cronica.aggregates import Aggregate
from cronica.event_types import PERSONAL, DomainEvent, EventRegistry
from cronica.examples.bank import BankAccount, bank_events
from cronica.examples.bank_read_models import bank_projections
from cronica.migration import migrate_store
from cronica.privacy import (
    ERASED,
    ERASURE_EVENT,
    PREFIX,
    PersonalData,
    SubjectForgottenError,
    forget,
)
from cronica.projections import Projector
from cronica.relay import Relay
from cronica.repository import Repository
from tests.conftest import POSTGRES_URL, REDIS_URL, require_redis

NAME = "Zoë Forget-Marker-4e1b"
"""The owner to forget: distinctive enough to look for in raw bytes."""
KEPT = "Bruno Keep-Marker-88aa"
"""Another account's owner, who is not forgotten: the scans must still find them."""


def plaintext_places(store: EventStore, tmp_path: Path, text: str) -> list[str]:
    """Where ``text`` occurs in the store's database: the SQLite files (main, WAL, shared
    memory) or a data dump of the PostgreSQL schema."""
    needle = text.encode()
    if store.backend_name == "sqlite":
        files = [p for p in tmp_path.iterdir() if p.name.startswith("events.db")]
        assert files, "no database files to scan"
        return [p.name for p in files if needle in p.read_bytes()]
    if store.backend_name == "postgresql":
        schema = getattr(store, "schema")  # noqa: B009
        dump = subprocess.run(
            ["pg_dump", "--data-only", "--schema", schema, POSTGRES_URL],
            capture_output=True,
            check=True,
        ).stdout
        return ["pg_dump"] if needle in dump else []
    return []


def open_account(client: TestClient, owner: str) -> tuple[str, int]:
    answer = client.post("/accounts", json={"owner": owner})
    assert answer.status_code == 201, answer.text
    return answer.json()["accountId"], answer.json()["position"]


def deposit(client: TestClient, account_id: str, amount: str) -> int:
    answer = client.post(f"/accounts/{account_id}/deposits", json={"amount": amount})
    assert answer.status_code == 201, answer.text
    position: int = answer.json()["position"]
    return position


# -- the bank service ------------------------------------------------------------------------------


def test_forgetting_an_account_holder_erases_the_owner_everywhere(
    store: EventStore, make_client: Callable[..., TestClient], tmp_path: Path
) -> None:
    client = make_client()
    account, _ = open_account(client, NAME)
    kept, _ = open_account(client, KEPT)
    for _ in range(100):  # past BankAccount.snapshot_every: a snapshot is taken
        last = deposit(client, account, "1.00")
    last = deposit(client, kept, "7.00")
    before = client.get(f"/accounts/{account}", params={"minPosition": last}).json()
    assert (before["owner"], before["balance"]) == (NAME, "100.00")
    accounts = Repository(store, BankAccount, bank_events)
    assert accounts.stored_snapshot(account) is not None
    assert NAME not in str(store.read_stream(account)[0].data)  # the store holds ciphertext
    if store.backend_name != "memory":  # the scan can see it: the read models hold it now
        assert plaintext_places(store, tmp_path, NAME)

    answer = client.post(f"/subjects/{account}/forget", json={"reason": "GDPR art. 17 request"})
    assert answer.status_code == 200, answer.text
    erasure = answer.json()
    assert (erasure["subjectId"], erasure["keysDestroyed"], erasure["fields"]) == (
        account,
        1,
        ["owner"],
    )
    assert erasure["readModelsUpdated"] is True

    after = client.get(f"/accounts/{account}", params={"minPosition": erasure["position"]})
    assert (after.json()["owner"], after.json()["balance"]) == (ERASED, "100.00")
    listed = client.get("/accounts", params={"active": "true"}).json()["accounts"]
    assert {a["accountId"]: a["owner"] for a in listed} == {account: ERASED, kept: KEPT}
    then = client.get(f"/accounts/{account}", params={"version": 1}).json()
    assert then["owner"] == ERASED
    stream = client.get(f"/streams/{account}").json()["events"]
    assert stream[0]["data"] == {"owner": ERASED}
    newest = client.get(f"/streams/{account}", params={"direction": "backward", "limit": 1})
    [erased] = newest.json()["events"]
    assert erased["eventType"] == ERASURE_EVENT
    assert erased["data"] == {
        "subjectId": account,
        "fields": ["owner"],
        "reason": "GDPR art. 17 request",
    }
    trail = client.get(f"/accounts/{account}/events").json()["events"]
    assert trail[0]["data"] == {"owner": ERASED}
    assert NAME not in client.get("/events", params={"limit": 1000}).text
    assert accounts.load(account).balance == 100  # the events still replay
    assert accounts.stored_snapshot(account) is None  # dropped
    assert store.snapshot_store().load(account) is None

    assert plaintext_places(store, tmp_path, NAME) == []
    if store.backend_name != "memory":
        assert plaintext_places(store, tmp_path, KEPT)  # only the forgotten one is gone

    again = client.post(f"/subjects/{account}/forget", json={"reason": "asked twice"})
    assert again.status_code == 200
    assert (again.json()["keysDestroyed"], again.json()["position"]) == (0, erasure["position"])
    erasures = [e for e in store.read_stream(account) if e.event_type == ERASURE_EVENT]
    assert len(erasures) == 1


def test_personal_data_for_a_forgotten_subject_is_refused_over_http_with_409(
    store: EventStore, make_client: Callable[..., TestClient]
) -> None:
    client = make_client()
    forget(store, "acc-9", reason="GDPR request, before the account was opened")
    answer = client.post("/accounts", json={"owner": NAME, "accountId": "acc-9"})
    assert answer.status_code == 409, answer.text
    assert answer.json()["error"] == "subject_forgotten"
    assert store.read_stream("acc-9") == []


def test_a_past_read_model_shows_the_owner_decrypted(store: EventStore) -> None:
    from cronica.examples.bank_read_models import AccountsProjection
    from cronica.projections import projection_as_of

    accounts = Repository(store, BankAccount, bank_events)
    position = accounts.create("acc-1", lambda a: a.open(NAME)).position
    with projection_as_of(store, AccountsProjection(), position=position) as past:
        assert past.query("SELECT owner FROM accounts") == [(NAME,)]


def test_forgetting_over_http_refuses_bad_requests_and_writes_nothing(
    store: EventStore, make_client: Callable[..., TestClient]
) -> None:
    client = make_client()
    account, opened = open_account(client, NAME)
    head = store.head_position()
    assert client.post("/subjects/nobody/forget", json={"reason": "x"}).status_code == 404
    bodies: list[Any] = [{}, {"reason": ""}, {"reason": "x" * 501}, {"reason": 3}, []]
    for body in bodies:
        answer = client.post(f"/subjects/{account}/forget", json=body)
        assert answer.status_code == 422, (body, answer.text)
    assert store.head_position() == head
    read = client.get(f"/accounts/{account}", params={"minPosition": opened})
    assert read.json()["owner"] == NAME


# -- the library -----------------------------------------------------------------------------------


def test_balances_replay_and_a_rebuilt_read_model_shows_the_placeholder(
    store: EventStore,
) -> None:
    accounts = Repository(store, BankAccount, bank_events)
    accounts.create("acc-1", lambda a: a.open(NAME))
    accounts.execute("acc-1", lambda a: a.deposit("30.00"))
    accounts.execute("acc-1", lambda a: a.withdraw("12.50"))
    forget(store, "acc-1", reason="GDPR request")
    with Projector(store, bank_projections()) as projector:  # built from zero, after the fact
        projector.run_until_caught_up()
        rows = projector.read_models.query("SELECT owner, balance_cents FROM accounts")
    assert rows == [(ERASED, 1750)]
    loaded = accounts.load("acc-1")
    assert (loaded.owner, str(loaded.balance)) == (ERASED, "17.50")


def test_a_repository_elsewhere_drops_the_state_it_kept_when_it_meets_the_erasure(
    store: EventStore,
) -> None:
    # Customer does not handle PersonalDataErased itself: only the repository's re-read can
    # turn what it kept into the placeholder.
    here = Repository(store, Customer, events, snapshot_every=2)
    elsewhere = Repository(store, Customer, events, snapshot_every=2)  # another process
    here.create("cust-1", lambda c: c.register("ana@example.com"))
    here.execute("cust-1", lambda c: c.change_email("ana@work.example"))  # a sealed snapshot
    assert elsewhere.load("cust-1").email == "ana@work.example"  # kept in its memory now
    forget(store, "cust-1", reason="GDPR request")
    assert elsewhere.load("cust-1").email == ERASED
    assert elsewhere.load("cust-1", version=2).email == ERASED


def test_an_interrupted_forget_is_completed_by_running_it_again(store: EventStore) -> None:
    accounts = Repository(store, BankAccount, bank_events)
    accounts.create("acc-1", lambda a: a.open(NAME))
    # The keys were destroyed, then the process died before the erasure event was appended.
    store.subject_keys().forget("acc-1", reason="GDPR request")
    assert [e.event_type for e in store.read_stream("acc-1")] == ["AccountCreated"]
    done = forget(store, "acc-1", reason="GDPR request")
    assert (done.keys_destroyed, done.fields) == (0, ("owner",))
    assert [e.event_type for e in store.read_stream("acc-1")] == ["AccountCreated", ERASURE_EVENT]
    forget(store, "acc-1", reason="GDPR request, again")
    assert len(store.read_stream("acc-1")) == 2


def test_forget_checks_its_arguments_and_writes_nothing(store: EventStore) -> None:
    accounts = Repository(store, BankAccount, bank_events)
    accounts.create("acc-1", lambda a: a.open(NAME))
    for subject, reason in (("", "why"), ("acc-1", ""), ("acc-1", "  "), ("acc-1", "x" * 501)):
        with pytest.raises(InvalidInputError):
            forget(store, subject, reason=reason)
    assert len(store.read_stream("acc-1")) == 1
    assert accounts.load("acc-1").owner == NAME


events = EventRegistry()


@events.register
class CustomerRegistered(DomainEvent):
    email: Annotated[str, PERSONAL]
    tier: str


@events.register
class EmailChanged(DomainEvent):
    email: Annotated[str | None, PERSONAL]


class Customer(Aggregate):
    email: str | None = None

    def register(self, email: str) -> None:
        self.record(CustomerRegistered(email=email, tier="gold"))

    def change_email(self, email: str | None) -> None:
        self.record(EmailChanged(email=email))

    def apply(self, event: object) -> None:
        if isinstance(event, CustomerRegistered | EmailChanged):
            self.email = event.email


def test_a_forgotten_subject_gets_no_new_key_without_an_explicit_decision(
    store: EventStore,
) -> None:
    customers = Repository(store, Customer, events)
    customers.create("cust-1", lambda c: c.register("ana@example.com"))
    forget(store, "cust-1", reason="GDPR request")  # no PersonalDataErased in Customer's events
    assert customers.load("cust-1").email == ERASED
    head = store.head_position()
    with pytest.raises(SubjectForgottenError):
        customers.execute("cust-1", lambda c: c.change_email("ana@new.example"))
    assert store.head_position() == head  # nothing written
    customers.execute("cust-1", lambda c: c.change_email(None))  # no personal data: fine
    store.subject_keys().allow_again("cust-1")  # the person came back: a decision in code
    customers.execute("cust-1", lambda c: c.change_email("ana@new.example"))
    opened = customers.personal_data.decrypt_all(store.read_stream("cust-1"))
    emails = [e.data.get("email") for e in opened if e.event_type != ERASURE_EVENT]
    assert emails == [ERASED, None, "ana@new.example"]  # what was forgotten stays so


def test_a_personal_field_must_accept_the_placeholder() -> None:
    registry = EventRegistry()

    class AgeRecorded(DomainEvent):
        age: Annotated[int, PERSONAL]

    class EmailVerified(DomainEvent):  # a pattern the placeholder breaks: unloadable later
        email: Annotated[str, PERSONAL, StringConstraints(pattern=".+@.+")]

    for cls in (AgeRecorded, EmailVerified):
        with pytest.raises(InvalidInputError, match="must accept the text"):
            registry.register(cls)
        assert cls.__name__ not in registry


def test_personal_fields_are_found_under_the_names_they_are_stored_with() -> None:
    registry = EventRegistry()

    @registry.register
    class MailChanged(DomainEvent):
        # Stored as "mail", read back from "mail" (a serialization alias alone would write
        # events that no longer decode: encoding refuses those).
        email_address: Annotated[str, PERSONAL] = Field(alias="mail")

    @registry.register
    @pydantic.dataclasses.dataclass(config=pydantic.ConfigDict(alias_generator=to_camel))
    class NameChanged:
        full_name: Annotated[str, PERSONAL]

    assert registry.personal_fields() == {"MailChanged": ("mail",), "NameChanged": ("fullName",)}
    store = cronica.connect("memory://")
    cipher = PersonalData(store.subject_keys(), registry.personal_fields())
    event = registry.to_new_event(MailChanged(email_address="ana@example.com"))
    assert event.data["mail"] == "ana@example.com"
    assert cipher.encrypt(event, "c-1", complete=True).data["mail"].startswith(PREFIX)
    wrong = PersonalData(store.subject_keys(), {"MailChanged": ("emailAddress",)})
    with pytest.raises(InvalidEventDataError, match="not in its data"):
        wrong.encrypt(event, "c-1", complete=True)  # never stored in clear by mistake


def test_a_migrated_store_reads_its_personal_data_and_keeps_the_forgotten_forgotten(
    tmp_path: Path,
) -> None:
    with (
        cronica.connect(f"sqlite:///{tmp_path / 'old.db'}") as old,
        cronica.connect(f"sqlite:///{tmp_path / 'new.db'}") as new,
    ):
        accounts = Repository(old, BankAccount, bank_events)
        accounts.create("acc-1", lambda a: a.open(NAME))
        accounts.create("acc-2", lambda a: a.open(KEPT))
        forget(old, "acc-1", reason="GDPR request")
        migrate_store(old, new, source_name="old")
        copied = Repository(new, BankAccount, bank_events)
        assert copied.load("acc-2").owner == KEPT
        assert copied.load("acc-1").owner == ERASED
        assert new.subject_keys().forgotten("acc-1")
        assert NAME not in str([e.data for e in new.read_all()])
        # Forgotten at the source after the copy: copying the keys again forgets it here too.
        forget(old, "acc-2", reason="GDPR request")
        old.subject_keys().copy_to(new.subject_keys())
        assert Repository(new, BankAccount, bank_events).load("acc-2").owner == ERASED


# -- what leaves the store -------------------------------------------------------------------------


def test_the_bus_carries_ciphertext_and_forgetting_reaches_its_copies(store: EventStore) -> None:
    require_redis()
    from cronica.bus.redis_streams import RedisStreamsBus

    key = f"cronica-test:{uuid.uuid4().hex}"
    accounts = Repository(store, BankAccount, bank_events)
    accounts.create("acc-1", lambda a: a.open(NAME))
    try:
        with RedisStreamsBus(REDIS_URL, stream=key) as bus, Relay(store, bus) as relay:
            relay.run_until_caught_up()
        raw: Any = redis.Redis.from_url(REDIS_URL).xrange(key)
        assert raw and all(NAME.encode() not in v for _, f in raw for v in f.values())
        envelope = RecordedEvent.from_json(raw[0][1][b"envelope"])
        assert envelope.data["owner"].startswith(PREFIX)
        reader = PersonalData(store.subject_keys())  # a consumer with access to the keys
        assert reader.decrypt(envelope).data["owner"] == NAME
        forget(store, "acc-1", reason="GDPR request")
        assert reader.decrypt(envelope).data["owner"] == ERASED  # the bus's copy too
    finally:
        redis.Redis.from_url(REDIS_URL).delete(key)
