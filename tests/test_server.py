"""The HTTP API in process (FastAPI's test client) on every backend: the wire contract."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cronica.cloudevents import BATCH_CONTENT_TYPE, CONTENT_TYPE
from cronica.server.auth import KeyRing, new_key


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()


def log_length(client: TestClient) -> int:
    return len(client.get("/events", params={"limit": 1000}).json()["events"])


def event(event_type: str = "Happened", **data: Any) -> dict[str, Any]:
    return {"eventType": event_type, "data": data}


# -- the seed's story -------------------------------------------------------------------------


def test_the_seeds_story_juan_perez(client: TestClient) -> None:
    opened = client.post("/accounts", json={"owner": "Juan Pérez", "accountId": "juan"})
    assert opened.status_code == 201
    assert opened.json()["accountId"] == "juan"
    deposit = client.post("/accounts/juan/deposits", json={"amount": "1000.00"})
    assert deposit.status_code == 201
    assert deposit.json()["version"] == 2
    between = datetime.now(UTC)
    withdrawal = client.post("/accounts/juan/withdrawals", json={"amount": "500.00"})
    assert withdrawal.status_code == 201
    position = withdrawal.json()["position"]
    assert position > deposit.json()["position"]

    account = client.get("/accounts/juan", params={"minPosition": position})
    assert account.status_code == 200
    assert account.json() == {
        "accountId": "juan",
        "owner": "Juan Pérez",
        "balance": "500.00",
        "version": 3,
        "status": "open",
    }
    history = client.get("/accounts/juan/events").json()["events"]
    assert [e["eventType"] for e in history] == ["AccountCreated", "DepositMade", "WithdrawalMade"]
    past = client.get("/accounts/juan", params={"asOf": between.isoformat()})
    assert past.json()["balance"] == "1000.00"
    assert client.get("/accounts/juan", params={"version": 2}).json()["balance"] == "1000.00"


# -- the store API ----------------------------------------------------------------------------


def test_append_answers_versions_and_the_last_position(client: TestClient) -> None:
    answer = client.post(
        "/streams/order-1",
        json={
            "expectedVersion": "no_stream",
            "aggregateType": "Order",
            "events": [event(), event()],
        },
    )
    assert answer.status_code == 201
    body = answer.json()
    assert (body["aggregateId"], body["fromVersion"], body["toVersion"]) == ("order-1", 1, 2)
    stream = client.get("/streams/order-1").json()
    assert stream["version"] == 2
    assert body["position"] == stream["events"][-1]["position"]
    assert stream["events"][0]["aggregateType"] == "Order"


def test_retrying_the_same_event_ids_is_idempotent(client: TestClient) -> None:
    ids = [str(uuid.uuid4()), str(uuid.uuid4())]
    body = {
        "expectedVersion": 0,
        "events": [
            {"eventId": i, "eventType": "Happened", "data": {"n": n}} for n, i in enumerate(ids)
        ],
    }
    first = client.post("/streams/s", json=body)
    again = client.post("/streams/s", json=body)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert log_length(client) == 2


def test_a_wrong_expected_version_is_409_naming_expected_and_actual(client: TestClient) -> None:
    client.post("/streams/s", json={"events": [event()]})
    answer = client.post("/streams/s", json={"expectedVersion": 5, "events": [event()]})
    assert answer.status_code == 409
    assert answer.json()["error"] == "wrong_expected_version"
    assert (answer.json()["expected"], answer.json()["actual"]) == (5, 1)
    missing = client.post("/streams/t", json={"expectedVersion": "exists", "events": [event()]})
    assert missing.status_code == 409
    assert (missing.json()["expected"], missing.json()["actual"]) == ("exists", 0)
    assert log_length(client) == 1


@pytest.mark.parametrize(
    "body",
    [
        {"events": []},
        {"expectedVersion": -1, "events": [event()]},
        {"expectedVersion": "sometimes", "events": [event()]},
        # Not versions: a lax integer would read these as 1, 0 and 0 (and 0 would append).
        {"expectedVersion": True, "events": [event()]},
        {"expectedVersion": 0.0, "events": [event()]},
        {"expectedVersion": "0", "events": [event()]},
        {"events": [{"eventType": "", "data": {}}]},
        {"events": [{"eventType": "X", "data": [1, 2]}]},
        {"events": [{"eventType": "X", "data": {}, "eventId": "not-a-uuid"}]},
        {"events": [{"eventType": "X"}]},
        {"events": [event()], "unexpected": True},
        [1, 2, 3],
        "text",
    ],
)
def test_invalid_appends_are_422_and_write_nothing(client: TestClient, body: Any) -> None:
    answer = client.post("/streams/s", json=body)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"] == "invalid_input"
    assert answer.json()["message"]
    assert log_length(client) == 0


def test_garbage_bodies_are_422_not_500(client: TestClient) -> None:
    for raw in [b"{", b"\xff\xfe", b"", b"null", b'{"events": [{"eventType": "X", "data": {}}']:
        answer = client.post(
            "/streams/s", content=raw, headers={"content-type": "application/json"}
        )
        assert answer.status_code == 422, raw
    assert log_length(client) == 0


def test_garbage_command_bodies_are_422_not_400_or_500(client: TestClient) -> None:
    client.post("/accounts", json={"owner": "Ana", "accountId": "ana"})
    for raw in [b"{", b"\xff\xfe", b"", b"null", b"[]", b'"text"']:
        for path in ["/accounts", "/accounts/ana/deposits"]:
            answer = client.post(path, content=raw, headers={"content-type": "application/json"})
            assert answer.status_code == 422, (path, raw, answer.text)
            assert answer.json()["error"] == "invalid_input"
    assert log_length(client) == 1


def test_numbers_in_odd_scripts_are_refused_not_crashed_on(client: TestClient) -> None:
    client.post("/streams/s", json={"events": [event()]})
    superscript = client.post(
        "/streams/s",
        params={"expectedVersion": "²"},
        content=b'{"specversion": "1.0", "id": "x", "source": "/s", "type": "T"}',
        headers={"content-type": CONTENT_TYPE},
    )
    assert superscript.status_code == 422
    assert log_length(client) == 1


def test_odd_methods_share_one_metrics_label(client: TestClient) -> None:
    for method in ["X0QZ", "FOO", "BAR"]:
        client.request(method, "/health")
    text = client.get("/metrics").text
    assert 'method="other"' in text
    assert "X0QZ" not in text


def test_a_bad_aggregate_id_is_422(client: TestClient) -> None:
    answer = client.post("/streams/" + "x" * 256, json={"events": [event()]})
    assert answer.status_code == 422
    answer = client.post("/streams/a%01b", json={"events": [event()]})
    assert answer.status_code == 422
    assert log_length(client) == 0


def test_size_limits_are_413_and_write_nothing(make_client: Callable[..., TestClient]) -> None:
    client = make_client(max_event_bytes=1000, max_body_bytes=20_000)
    too_big_event = client.post("/streams/s", json={"events": [event(blob="x" * 2000)]})
    assert too_big_event.status_code == 413
    assert too_big_event.json()["error"] == "event_too_large"
    too_big_body = client.post("/streams/s", json={"events": [event(blob="x" * 30_000)]})
    assert too_big_body.status_code == 413
    assert too_big_body.json()["error"] == "too_large"

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit still holds
        yield b'{"events": [{"eventType": "X", "data": {"blob": "'
        for _ in range(30):
            yield b"x" * 1000
        yield b'"}}]}'

    chunked = client.post(
        "/streams/s", content=chunks(), headers={"content-type": "application/json"}
    )
    assert chunked.status_code == 413
    client.post("/accounts", json={"owner": "Ana", "accountId": "ana"})
    for path in ["/accounts", "/accounts/ana/deposits"]:  # routes with a validated body
        answer = client.post(path, content=chunks(), headers={"content-type": "application/json"})
        assert (answer.status_code, answer.json()["error"]) == (413, "too_large"), path
    assert log_length(client) == 1


def test_reading_a_stream_by_versions_direction_and_limit(client: TestClient) -> None:
    client.post("/streams/s", json={"events": [event(n=n) for n in range(1, 11)]})
    assert client.get("/streams/missing").status_code == 404
    assert client.get("/streams/missing").json()["error"] == "not_found"
    window = client.get("/streams/s", params={"fromVersion": 3, "toVersion": 5}).json()
    assert [e["version"] for e in window["events"]] == [3, 4, 5]
    assert window["version"] == 10
    newest = client.get("/streams/s", params={"direction": "backward", "limit": 2}).json()
    assert [e["version"] for e in newest["events"]] == [10, 9]
    assert client.get("/streams/s", params={"limit": -1}).status_code == 422
    assert client.get("/streams/s", params={"fromVersion": 0}).status_code == 422


def test_a_limit_over_the_maximum_is_clamped(client: TestClient) -> None:
    for _ in range(2):
        client.post("/streams/s", json={"events": [event() for _ in range(600)]})
    assert len(client.get("/streams/s", params={"limit": 10**9}).json()["events"]) == 1000
    assert len(client.get("/events", params={"limit": 5000}).json()["events"]) == 1000
    assert len(client.get("/streams/s").json()["events"]) == 100


def test_a_stream_as_of_a_past_moment(client: TestClient) -> None:
    client.post("/streams/s", json={"events": [event(n=1)]})
    between = datetime.now(UTC)
    client.post("/streams/s", json={"events": [event(n=2)]})
    past = client.get("/streams/s", params={"asOf": between.isoformat()}).json()
    assert (past["version"], len(past["events"])) == (1, 1)
    before = (between - timedelta(days=1)).isoformat()
    assert client.get("/streams/s", params={"asOf": before}).status_code == 404
    naive = client.get("/streams/s", params={"asOf": "2026-01-01T00:00:00"})
    assert naive.status_code == 422


def test_the_global_log_in_order_with_filters_and_last(client: TestClient) -> None:
    client.post("/streams/a", json={"aggregateType": "A", "events": [event("One"), event("Two")]})
    client.post("/streams/b", json={"aggregateType": "B", "events": [event("One")]})
    page = client.get("/events").json()
    positions = [e["position"] for e in page["events"]]
    assert positions == sorted(positions) and len(positions) == 3
    assert page["last"] == positions[-1]
    rest = client.get("/events", params={"after": page["last"]}).json()
    assert rest == {"events": [], "last": page["last"]}
    ones = client.get("/events", params={"eventType": "One"}).json()["events"]
    assert [e["aggregateId"] for e in ones] == ["a", "b"]
    bs = client.get("/events", params={"aggregateType": "B"}).json()["events"]
    assert [e["aggregateId"] for e in bs] == ["b"]
    assert client.get("/events", params={"after": -1}).status_code == 422


def test_the_store_api_cannot_write_into_the_banks_accounts(client: TestClient) -> None:
    position = client.post("/accounts", json={"owner": "Ana", "accountId": "ana"}).json()[
        "position"
    ]
    forged = {"events": [event("DepositMade", amount="abc")]}
    into_account = client.post("/streams/ana", json=forged)
    assert (into_account.status_code, into_account.json()["error"]) == (409, "owned_by_service")
    as_account = client.post("/streams/new", json={**forged, "aggregateType": "BankAccount"})
    assert as_account.status_code == 409
    # The same event type in a stream of another kind: the bank's projections pass it over.
    elsewhere = client.post("/streams/other", json=forged)
    assert elsewhere.status_code == 201
    after = elsewhere.json()["position"]
    assert client.get("/accounts/ana", params={"minPosition": after}).status_code == 200
    states = {p["state"] for p in client.get("/projections").json()["projections"]}
    assert "failed" not in states
    assert client.post("/accounts/ana/deposits", json={"amount": "1.00"}).status_code == 201
    assert position < after


def test_appends_record_who_sent_them(make_client: Callable[..., TestClient]) -> None:
    open_client = make_client()
    open_client.post("/streams/a", json={"events": [event()]}, headers={"X-Actor": "etl-job"})
    open_client.post("/streams/a", json={"events": [{**event(), "metadata": {"actor": "me"}}]})
    open_client.post("/streams/a", json={"events": [event()]})
    actors = [e["metadata"]["actor"] for e in open_client.get("/streams/a").json()["events"]]
    assert actors == ["etl-job", "me", "anonymous"]
    secret, key = new_key("importer", ["write"])
    keyed = make_client(keys=KeyRing([key]))
    claims = {"events": [{**event(), "metadata": {"actor": "someone-else"}}]}
    auth = {"Authorization": f"Bearer {secret}"}
    assert keyed.post("/streams/b", json=claims, headers=auth).status_code == 201
    [stored] = keyed.get("/streams/b", headers=auth).json()["events"]
    assert stored["metadata"]["actor"] == "importer"


def test_cloudevents_in_and_out(client: TestClient) -> None:
    one = {
        "specversion": "1.0",
        "id": "order-42-created",
        "source": "/shop",
        "type": "OrderPlaced",
        "data": {"total": "10.00"},
    }
    first = client.post(
        "/streams/order-42", content=_json(one), headers={"content-type": CONTENT_TYPE}
    )
    assert first.status_code == 201, first.text
    again = client.post(
        "/streams/order-42", content=_json(one), headers={"content-type": CONTENT_TYPE}
    )
    assert again.json() == first.json()  # the producer's retry is idempotent
    batch = [
        {**one, "id": "order-42-paid", "type": "OrderPaid"},
        {**one, "id": "order-42-shipped", "type": "OrderShipped"},
    ]
    answer = client.post(
        "/streams/order-42",
        content=_json(batch),
        headers={"content-type": BATCH_CONTENT_TYPE},
        params={"expectedVersion": "1"},
    )
    assert answer.status_code == 201
    assert answer.json()["toVersion"] == 3
    out = client.get("/streams/order-42", headers={"accept": BATCH_CONTENT_TYPE})
    assert out.headers["content-type"].startswith(BATCH_CONTENT_TYPE)
    cloud = out.json()
    assert [c["type"] for c in cloud] == ["OrderPlaced", "OrderPaid", "OrderShipped"]
    assert all(c["specversion"] == "1.0" and c["subject"] == "order-42" for c in cloud)
    bad = client.post(
        "/streams/order-42",
        content=_json({"specversion": "0.3", "id": "x", "source": "/s", "type": "T"}),
        headers={"content-type": CONTENT_TYPE},
    )
    assert bad.status_code == 422
    log = client.get("/events", headers={"accept": BATCH_CONTENT_TYPE}).json()
    assert len(log) == 3


def test_cloudevents_in_binary_mode(client: TestClient) -> None:
    headers = {
        "ce-specversion": "1.0",
        "ce-id": "evt-1",
        "ce-source": "/sensors/7",
        "ce-type": "TemperatureRead",
        "ce-sensorzone": "north",
        "content-type": "application/json",
    }
    first = client.post("/streams/sensor-7", content=b'{"celsius": 21.5}', headers=headers)
    assert first.status_code == 201, first.text
    again = client.post("/streams/sensor-7", content=b'{"celsius": 21.5}', headers=headers)
    assert again.json() == first.json()
    [stored] = client.get("/streams/sensor-7").json()["events"]
    assert (stored["eventType"], stored["data"]) == ("TemperatureRead", {"celsius": 21.5})
    assert stored["metadata"]["sensorzone"] == "north"
    assert stored["metadata"]["source"] == "/sensors/7"
    missing_type = {k: v for k, v in headers.items() if k != "ce-type"}
    assert client.post("/streams/s", content=b"{}", headers=missing_type).status_code == 422


def _json(value: Any) -> bytes:
    import orjson

    return orjson.dumps(value)


# -- the bank ---------------------------------------------------------------------------------


def test_bank_commands_guard_their_rules_and_write_nothing_when_refused(
    client: TestClient,
) -> None:
    client.post("/accounts", json={"owner": "Ana", "accountId": "ana"})
    client.post("/accounts/ana/deposits", json={"amount": "100.00"})
    before = log_length(client)
    refusals = [
        ("/accounts/ana/withdrawals", {"amount": "100.01"}, 422, "insufficient_funds"),
        ("/accounts/ana/deposits", {"amount": "0"}, 422, "invalid_amount"),
        ("/accounts/ana/deposits", {"amount": "-5.00"}, 422, "invalid_input"),
        ("/accounts/ana/deposits", {"amount": "1.005"}, 422, "invalid_input"),
        ("/accounts/ana/deposits", {"amount": 1.5}, 422, "invalid_input"),
        ("/accounts/ana/deposits", {"amount": "1e3"}, 422, "invalid_input"),
        ("/accounts/ana/deposits", {}, 422, "invalid_input"),
        ("/accounts/nobody/deposits", {"amount": "1.00"}, 404, "not_found"),
        ("/accounts", {"owner": "Ana again", "accountId": "ana"}, 409, "already_exists"),
        ("/accounts", {"owner": ""}, 422, "invalid_input"),
    ]
    for path, body, status, code in refusals:
        answer = client.post(path, json=body)
        assert (answer.status_code, answer.json()["error"]) == (status, code), (path, body)
    assert log_length(client) == before
    assert client.post("/accounts/ana/deposits", json={"amount": 7}).status_code == 201


def test_concurrent_commands_on_one_account_all_succeed(client: TestClient) -> None:
    client.post("/accounts", json={"owner": "Ana", "accountId": "ana"})
    answers: list[int] = []

    def deposit_ten() -> None:
        for _ in range(10):
            answers.append(
                client.post("/accounts/ana/deposits", json={"amount": "1.00"}).status_code
            )

    threads = [threading.Thread(target=deposit_ten) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == [201] * 80
    assert client.get("/accounts/ana", params={"version": 81}).json()["balance"] == "80.00"


def test_the_bank_answers_404_for_what_is_not_an_account(client: TestClient) -> None:
    client.post("/streams/order-1", json={"aggregateType": "Order", "events": [event()]})
    for path in ["/accounts/order-1/deposits", "/accounts/order-1/withdrawals"]:
        answer = client.post(path, json={"amount": "1.00"})
        assert (answer.status_code, answer.json()["error"]) == (404, "not_found"), path
    assert client.get("/accounts/order-1", params={"version": 1}).status_code == 404
    client.post("/accounts", json={"owner": "Ana", "accountId": "ana"})
    assert client.get("/accounts/ana", params={"version": 1}).status_code == 200
    beyond = client.get("/accounts/ana", params={"version": 2})
    assert (beyond.status_code, beyond.json()["error"]) == (404, "not_found")
    slash = client.post("/accounts", json={"owner": "Ana", "accountId": "a/b"})
    assert slash.status_code == 422


def test_expected_version_in_the_query_string_of_a_json_append(client: TestClient) -> None:
    body = {"events": [event()]}
    assert client.post("/streams/s", json=body, params={"expectedVersion": "0"}).status_code == 201
    stale = client.post("/streams/s", json=body, params={"expectedVersion": "0"})
    assert stale.status_code == 409
    both = client.post(
        "/streams/s", json={**body, "expectedVersion": 1}, params={"expectedVersion": "3"}
    )
    assert both.status_code == 422
    assert log_length(client) == 1


@pytest.mark.parametrize("version", ["2", 2.0, 0, True])
def test_a_schema_version_that_is_not_a_whole_number_is_422(
    client: TestClient, version: object
) -> None:
    """Stored, it read as version 1 and its upcasters ran on data already past them."""
    body = {"events": [{**event(), "metadata": {"schemaVersion": version}}]}
    answer = client.post("/streams/s", json=body)
    assert answer.status_code == 422 and answer.json()["error"] == "invalid_input"
    assert log_length(client) == 0


def test_a_new_account_gets_an_id_when_none_is_given(client: TestClient) -> None:
    answer = client.post("/accounts", json={"owner": "Eva"})
    assert answer.status_code == 201
    account_id = answer.json()["accountId"]
    got = client.get(f"/accounts/{account_id}", params={"minPosition": answer.json()["position"]})
    assert got.json()["owner"] == "Eva"


def test_transactions_and_active_accounts_come_from_the_read_models(client: TestClient) -> None:
    for name in ["a", "b", "c", "d"]:
        client.post("/accounts", json={"owner": name.upper(), "accountId": name})
    for name in ["a", "c", "d"]:
        client.post(f"/accounts/{name}/deposits", json={"amount": "10.00"})
    last = client.post("/accounts/a/withdrawals", json={"amount": "2.50"}).json()["position"]
    wait = {"minPosition": last}
    page = client.get("/accounts/a/transactions", params=wait).json()
    assert "next" not in page  # the last page leaves the cursor out (not null)
    moves = page["transactions"]
    assert [(m["type"], m["direction"], m["amount"]) for m in moves] == [
        ("deposit", "in", "10.00"),
        ("withdrawal", "out", "2.50"),
    ]
    assert all(m["timestamp"].endswith("Z") for m in moves)
    first = client.get("/accounts", params={"active": "true", "limit": 2, **wait}).json()
    assert [a["accountId"] for a in first["accounts"]] == ["a", "c"]
    assert first["accounts"][0]["balance"] == "7.50"
    second = client.get("/accounts", params={"active": "true", "after": first["next"]}).json()
    assert [a["accountId"] for a in second["accounts"]] == ["d"]
    assert "next" not in second
    everyone = client.get("/accounts", params=wait).json()["accounts"]
    assert [a["accountId"] for a in everyone] == ["a", "b", "c", "d"]
    assert client.get("/accounts/nobody/transactions").status_code == 404


def test_the_audit_trail_says_who_what_when_and_why(client: TestClient) -> None:
    client.post(
        "/accounts",
        json={"owner": "Ana", "accountId": "ana"},
        headers={"X-Actor": "clerk-7", "X-Reason": "walk-in customer"},
    )
    client.post("/accounts/ana/deposits", json={"amount": "5.00"}, headers={"X-Actor": "atm-3"})
    trail = client.get("/accounts/ana/events").json()["events"]
    assert [(e["eventType"], e["actor"], e["reason"]) for e in trail] == [
        ("AccountCreated", "clerk-7", "walk-in customer"),
        ("DepositMade", "atm-3", None),
    ]
    assert all(e["timestamp"] and e["commandId"] for e in trail)
    assert trail[1]["data"] == {"amount": "5.00"}
    assert client.get("/accounts/nobody/events").status_code == 404
    # minPosition works on every bank query; the audit trail reads the store, never behind.
    last = trail[-1]["position"]
    assert client.get("/accounts/ana/events", params={"minPosition": last}).status_code == 200
    past = client.get("/accounts/ana/events", params={"minPosition": last + 10**6})
    assert past.status_code == 422


def test_min_position_not_reached_in_time_is_503_and_past_the_log_is_422(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(min_position_timeout=0.2, run_projector=False)
    position = client.post("/accounts", json={"owner": "Ana", "accountId": "ana"}).json()[
        "position"
    ]
    behind = client.get("/accounts/ana", params={"minPosition": position})
    assert behind.status_code == 503  # no projector runs
    assert behind.json()["error"] == "read_model_behind"
    assert behind.headers["retry-after"] == "1"
    beyond = client.get("/accounts/ana", params={"minPosition": position + 10**6})
    assert beyond.status_code == 422
    assert "beyond the end of the log" in beyond.json()["message"]


def test_without_min_position_a_query_may_not_see_the_write_yet_but_never_fails(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(run_projector=False, min_position_timeout=0.2)
    created = client.post("/accounts", json={"owner": "Ana", "accountId": "ana"})
    assert created.status_code == 201
    assert client.get("/accounts/ana").status_code == 404  # no projector ran
    assert client.get("/accounts/ana", params={"version": 1}).json()["owner"] == "Ana"


def test_the_seeds_event_handlers_run_in_the_service(client: TestClient) -> None:
    client.post("/accounts", json={"owner": "Ana", "accountId": "ana"})
    client.post("/accounts/ana/deposits", json={"amount": "5000.00"})
    client.post("/accounts/ana/withdrawals", json={"amount": "1200.00"})
    db = client.app.state.services.read_models  # type: ignore[attr-defined]
    deadline = time.monotonic() + 10
    while len(db.query("SELECT * FROM audit_log")) < 3:
        assert time.monotonic() < deadline, "the handlers did not run"
        time.sleep(0.02)
    while not db.query("SELECT * FROM notifications"):
        assert time.monotonic() < deadline, "no notification"
        time.sleep(0.02)
    assert db.query("SELECT account_id, message FROM notifications") == [
        ("ana", "1200.00 was withdrawn")
    ]


# -- operations -------------------------------------------------------------------------------


def test_projections_status_and_rebuild(client: TestClient) -> None:
    position = client.post("/accounts", json={"owner": "Ana", "accountId": "ana"}).json()[
        "position"
    ]
    client.get("/accounts/ana", params={"minPosition": position})
    listing = client.get("/projections").json()
    names = [p["name"] for p in listing["projections"]]
    assert names == ["accounts", "active_accounts", "transactions"]
    assert all(p["status"] == p["state"] for p in listing["projections"])  # DESIGN's name
    assert listing["head"] >= position
    assert all(p["lag"] >= 0 and p["state"] for p in listing["projections"])
    assert client.post("/projections/accounts/rebuild").status_code == 202
    assert client.post("/projections/nope/rebuild").status_code == 404


def test_health_and_metrics(client: TestClient) -> None:
    client.post("/accounts", json={"owner": "Ana", "accountId": "ana"})
    health = client.get("/health")
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
    text = client.get("/metrics").text
    assert 'cronica_http_requests_total{method="POST",route="/accounts",status="201"} 1.0' in text
    assert 'cronica_projection_lag_events{projection="accounts"}' in text
    assert "cronica_store_head_position" in text


def test_errors_are_json_everywhere(client: TestClient) -> None:
    missing = client.get("/no/such/route")
    assert (missing.status_code, missing.json()["error"]) == (404, "not_found")
    wrong_method = client.delete("/accounts")
    assert (wrong_method.status_code, wrong_method.json()["error"]) == (405, "method_not_allowed")


def test_no_cors_unless_configured(make_client: Callable[..., TestClient]) -> None:
    preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"}
    closed = make_client()
    assert (
        "access-control-allow-origin" not in closed.options("/accounts", headers=preflight).headers
    )
    opened = make_client(cors_origins=("https://app.example",))
    allowed = opened.options("/accounts", headers=preflight)
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"


# -- API keys ---------------------------------------------------------------------------------


def test_api_keys_guard_every_route_with_scopes(make_client: Callable[..., TestClient]) -> None:
    reader_secret, reader = new_key("dashboard", ["read"])
    writer_secret, writer = new_key("teller-app", ["write"])
    admin_secret, admin = new_key("ops", ["admin"])
    client = make_client(keys=KeyRing([reader, writer, admin]))

    def auth(secret: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {secret}"}

    body = {"owner": "Ana", "accountId": "ana"}
    assert client.post("/accounts", json=body).status_code == 401
    assert client.post("/accounts", json=body, headers=auth("ck_wrong")).status_code == 401
    assert client.post("/accounts", json=body, headers=auth(reader_secret)).status_code == 403
    assert client.get("/events", headers=auth(admin_secret)).json()["events"] == []
    made = client.post("/accounts", json=body, headers=auth(writer_secret))
    assert made.status_code == 201
    trail = client.get("/accounts/ana/events", headers=auth(reader_secret)).json()["events"]
    assert trail[0]["actor"] == "teller-app"  # the key's name, whatever X-Actor says
    assert client.get("/projections").status_code == 401
    assert (
        client.post("/projections/accounts/rebuild", headers=auth(writer_secret)).status_code == 403
    )
    assert (
        client.post("/projections/accounts/rebuild", headers=auth(admin_secret)).status_code == 202
    )
    assert client.get("/health").status_code == 200  # load balancers probe without keys
    garbage = client.post("/accounts", content=b"{", headers={"content-type": "application/json"})
    assert garbage.status_code == 401  # the key is checked before the body is read
    assert client.get("/openapi.json").status_code == 200
