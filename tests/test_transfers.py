"""Transfers over HTTP (a saga): accepted with 202, readable at once, completed, failed or
compensated by the runner; the money in all accounts never changes because of transfers."""

from __future__ import annotations

import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from fastapi.testclient import TestClient

from cronica import EventStore
from cronica.examples.bank import BankAccount, bank_events
from cronica.repository import Repository


def open_account(client: TestClient, account_id: str, deposit: str | None = None) -> None:
    assert client.post("/accounts", json={"owner": "O", "accountId": account_id}).status_code == 201
    if deposit is not None:
        answer = client.post(f"/accounts/{account_id}/deposits", json={"amount": deposit})
        assert answer.status_code == 201


def finished(client: TestClient, transfer_id: str, timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        body: dict[str, Any] = client.get(f"/transfers/{transfer_id}").json()
        if body["status"] != "pending":
            return body
        assert time.monotonic() < deadline, f"transfer {transfer_id} still pending: {body}"
        time.sleep(0.02)


def balance(store: EventStore, account_id: str) -> Decimal:
    return Repository(store, BankAccount, bank_events).load(account_id).balance


def test_a_transfer_is_accepted_readable_at_once_and_completed(
    make_client: Callable[..., TestClient], store: EventStore
) -> None:
    client = make_client()
    open_account(client, "ana", "100.00")
    open_account(client, "juan")
    accepted = client.post("/transfers", json={"from": "ana", "to": "juan", "amount": "30.00"})
    assert accepted.status_code == 202
    transfer_id = accepted.json()["transferId"]
    right_after = client.get(f"/transfers/{transfer_id}")
    assert right_after.status_code == 200
    assert right_after.json()["status"] in ("pending", "completed")
    done = finished(client, transfer_id)
    assert (done["status"], done["from"], done["to"], done["amount"]) == (
        "completed", "ana", "juan", "30.00"
    )  # fmt: skip
    assert (balance(store, "ana"), balance(store, "juan")) == (Decimal("70.00"), Decimal("30.00"))
    # The read models show the movement as a transfer on both sides.
    last = store.head_position()
    moves = client.get("/accounts/juan/transactions", params={"minPosition": last}).json()
    assert [(t["type"], t["amount"]) for t in moves["transactions"]] == [("transfer", "30.00")]


def test_without_a_runner_the_transfer_stays_pending_and_reads_so(
    make_client: Callable[..., TestClient], store: EventStore
) -> None:
    client = make_client(run_projector=False)  # an API process: the worker moves the money
    open_account(client, "ana", "100.00")
    open_account(client, "juan")
    accepted = client.post("/transfers", json={"from": "ana", "to": "juan", "amount": "30.00"})
    body = client.get(f"/transfers/{accepted.json()['transferId']}").json()
    assert (body["status"], body["reason"], body["version"]) == ("pending", None, 1)
    assert balance(store, "ana") == Decimal("100.00")


def test_a_target_that_cannot_receive_gets_the_money_refunded(
    make_client: Callable[..., TestClient], store: EventStore
) -> None:
    client = make_client()
    open_account(client, "ana", "100.00")
    open_account(client, "closed")
    assert client.post("/accounts/closed/deposits", json={"amount": "1.00"}).status_code == 201
    assert client.post("/accounts/closed/withdrawals", json={"amount": "1.00"}).status_code == 201
    services = client.app.state.services  # type: ignore[attr-defined]
    services.accounts.execute("closed", lambda a: a.close())
    for target in ("nobody", "closed"):
        accepted = client.post("/transfers", json={"from": "ana", "to": target, "amount": "40"})
        done = finished(client, accepted.json()["transferId"])
        assert done["status"] == "compensated", done
        assert "credit" in done["reason"]
    assert balance(store, "ana") == Decimal("100.00")
    history = [e.event_type for e in store.read_stream("ana")]
    assert history[-4:] == ["TransferSent", "TransferRefunded"] * 2


def test_a_source_that_cannot_pay_fails_the_transfer_and_moves_nothing(
    make_client: Callable[..., TestClient], store: EventStore
) -> None:
    client = make_client()
    open_account(client, "ana", "10.00")
    open_account(client, "juan")
    for source in ("ana", "nobody"):
        accepted = client.post("/transfers", json={"from": source, "to": "juan", "amount": "50"})
        done = finished(client, accepted.json()["transferId"])
        assert done["status"] == "failed", done
        assert done["reason"].startswith("debit: ")
    assert (balance(store, "ana"), balance(store, "juan")) == (Decimal("10.00"), Decimal("0.00"))


def test_bad_transfers_are_422_and_start_nothing(
    make_client: Callable[..., TestClient], store: EventStore
) -> None:
    client = make_client(run_projector=False)
    before = store.head_position()
    for body, code in [
        ({"from": "a", "to": "a", "amount": "1.00"}, "same_account"),
        ({"from": "a", "to": "b", "amount": "0.00"}, "invalid_amount"),
        ({"from": "a", "to": "b", "amount": "-1"}, "invalid_input"),
        ({"from": "a", "to": "b", "amount": "1.001"}, "invalid_input"),
        ({"from": "a/b", "to": "b", "amount": "1"}, "invalid_input"),
        ({"from": "a", "amount": "1"}, "invalid_input"),
        ({"from": "a", "to": "b", "amount": "1", "extra": 1}, "invalid_input"),
    ]:
        answer = client.post("/transfers", json=body)
        assert (answer.status_code, answer.json()["error"]) == (422, code), (body, answer.text)
    assert client.post("/transfers", content=b"\xff{garbage").status_code == 422
    assert store.head_position() == before


def test_a_transfer_id_makes_the_request_safe_to_retry(
    make_client: Callable[..., TestClient], store: EventStore
) -> None:
    client = make_client(run_projector=False)
    body = {"from": "ana", "to": "juan", "amount": "5.00", "transferId": "tr-1"}
    first = client.post("/transfers", json=body)
    again = client.post("/transfers", json=body)
    assert first.status_code == again.status_code == 202
    assert (
        first.json() == again.json() == {"transferId": "tr-1", "position": first.json()["position"]}
    )
    other = client.post("/transfers", json={**body, "amount": "6.00"})
    assert (other.status_code, other.json()["error"]) == (409, "already_exists")
    open_account(client, "acc-x")
    clash = client.post("/transfers", json={**body, "transferId": "acc-x"})
    assert (clash.status_code, clash.json()["error"]) == (409, "already_exists")
    assert len(store.read_stream("tr-1")) == 1


def test_unknown_transfers_are_404(make_client: Callable[..., TestClient]) -> None:
    client = make_client(run_projector=False)
    open_account(client, "ana")
    for transfer_id in ("tr-none", "ana"):  # an account is no transfer
        answer = client.get(f"/transfers/{transfer_id}")
        assert (answer.status_code, answer.json()["error"]) == (404, "not_found")


def test_the_store_api_may_not_write_a_transfers_stream(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(run_projector=False)
    client.post("/transfers", json={"from": "a", "to": "b", "amount": "1", "transferId": "tr-9"})
    forged = client.post(
        "/streams/tr-9", json={"events": [{"eventType": "SagaCompleted", "data": {}}]}
    )
    assert (forged.status_code, forged.json()["error"]) == (409, "owned_by_service")


def test_many_transfers_in_flight_keep_the_total(
    make_client: Callable[..., TestClient], store: EventStore
) -> None:
    client = make_client()
    accounts = [f"acc-{i}" for i in range(6)]
    for account_id in accounts:
        open_account(client, account_id, "100.00")
    open_account(client, "gone")
    client.app.state.services.accounts.execute("gone", lambda a: a.close())  # type: ignore[attr-defined]
    ids = []
    for n in range(60):  # some overdraw, some go to a closed or unknown account
        source = accounts[n % 6]
        target = ("gone", "nowhere", *accounts)[(n * 7) % 8]
        if target == source:
            continue
        answer = client.post(
            "/transfers", json={"from": source, "to": target, "amount": str(30 + (n * 17) % 60)}
        )
        ids.append(answer.json()["transferId"])
    outcomes = {finished(client, transfer_id)["status"] for transfer_id in ids}
    assert outcomes == {"completed", "failed", "compensated"}
    total = sum(balance(store, account_id) for account_id in [*accounts, "gone"])
    assert total == Decimal("600.00")
