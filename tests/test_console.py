"""The web console's pages, through the application (the browser flows are in
test_console_browser.py): what each page shows, history at a version and a moment, erased data,
and authentication with the API's keys."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import httpx2 as httpx
import pytest
from fastapi.testclient import TestClient

from cronica import EventStore, NewEvent
from cronica.privacy import PREFIX
from cronica.server.auth import KeyRing, new_key
from tests.processes import Server

OWNER = "Zoë Console-Marker"


def open_account(client: TestClient, account_id: str, owner: str = OWNER) -> int:
    answer = client.post("/accounts", json={"owner": owner, "accountId": account_id})
    assert answer.status_code == 201, answer.text
    position: int = answer.json()["position"]
    return position


def deposit(client: TestClient, account_id: str, amount: str) -> int:
    answer = client.post(f"/accounts/{account_id}/deposits", json={"amount": amount})
    assert answer.status_code == 201, answer.text
    position: int = answer.json()["position"]
    return position


def text_of(html: str) -> str:
    """The page's text, tags dropped (for assertions on what people read)."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).replace("&#34;", '"')


def test_the_log_shows_the_newest_events_first_with_who_and_why(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client()
    open_account(client, "acc-1")
    client.post(
        "/accounts/acc-1/deposits",
        json={"amount": "25.00"},
        headers={"X-Actor": "teller-7", "X-Reason": "salary"},
    )
    page = client.get("/ui/log")
    assert page.status_code == 200
    rows = re.findall(r'<tr id="event-(\d+)">', page.text)
    assert len(rows) == 2 and int(rows[0]) > int(rows[1])  # newest first
    shown = text_of(page.text)
    assert "DepositMade" in shown and '"amount":"25.00"' in shown
    assert "teller-7" in shown and "salary" in shown
    assert OWNER in shown  # decrypted for people to read
    assert PREFIX not in page.text
    only = text_of(client.get("/ui/log", params={"eventType": "AccountCreated"}).text)
    assert "AccountCreated" in only and "DepositMade" not in only
    assert client.get("/ui").status_code == 200  # the console's home is the log


def test_odd_ids_get_working_links(
    store: EventStore, make_client: Callable[..., TestClient]
) -> None:
    client = make_client()
    store.append("a/b cé", [NewEvent("ThingHappened", {"x": "<b>bold</b>"})])
    page = client.get("/ui/streams").text
    [link] = re.findall(r'<a href="(/ui/streams/[^"]+)">', page)
    assert link == "/ui/streams/a%2Fb%20c%C3%A9"
    stream = client.get(link)
    assert stream.status_code == 200 and "a/b cé" in stream.text
    assert "<b>bold</b>" not in stream.text and "&lt;b&gt;bold" in stream.text  # escaped
    assert client.get("/ui/streams", params={"q": "a\ue000"}).status_code == 200


def test_streams_are_found_by_id_prefix_type_and_event_type(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client()
    for account_id in ("acc-1", "acc-2", "bcc-3"):
        open_account(client, account_id)
    deposit(client, "acc-2", "5.00")
    client.post("/streams/order-9", json={"events": [{"eventType": "OrderPlaced", "data": {}}]})

    def found(**params: str) -> list[str]:
        page = client.get("/ui/streams", params=params)
        assert page.status_code == 200
        return re.findall(r'<a href="/ui/streams/([^"?]+)">', page.text)

    assert found(q="acc") == ["acc-1", "acc-2"]
    assert found(type="BankAccount") == ["acc-1", "acc-2", "bcc-3"]
    assert found() == ["acc-1", "acc-2", "bcc-3", "order-9"]
    assert found(eventType="DepositMade") == ["acc-2"]
    assert found(eventType="OrderPlaced", q="order") == ["order-9"]
    assert found(q="zzz") == []


def test_a_stream_page_steps_through_its_history_with_each_events_change(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client()
    open_account(client, "acc-1")
    deposit(client, "acc-1", "100.00")
    client.post("/accounts/acc-1/withdrawals", json={"amount": "30.00"})
    latest = text_of(client.get("/ui/streams/acc-1").text)
    assert "State at version 3" in latest and '"70.00"' in latest
    assert "WithdrawalMade" in latest
    second = client.get("/ui/streams/acc-1", params={"version": 2}).text
    state = text_of(second.split('id="state"')[1].split("</table>")[0])
    assert '"100.00"' in state and OWNER in state
    changes = text_of(second.split('id="changes"')[1].split("</table>")[0])
    assert 'balance "0.00" "100.00"' in changes
    first = text_of(client.get("/ui/streams/acc-1", params={"version": 1}).text)
    assert "owner" in first and '"0.00"' in first
    # A moment: the state as it was then (before any event: the first version).
    events = client.get("/streams/acc-1").json()["events"]
    at = client.get("/ui/streams/acc-1", params={"at": events[1]["timestamp"]}).text
    assert "State at version 2" in text_of(at)
    early = client.get("/ui/streams/acc-1", params={"at": "2000-01-01T00:00:00Z"})
    assert "did not exist yet" in early.text and "State at version 1" in text_of(early.text)
    for wrong in ("yesterday", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"):
        odd = client.get("/ui/streams/acc-1", params={"at": wrong})
        assert odd.status_code == 200 and "not an RFC 3339 time" in odd.text
    assert client.get("/ui/streams/nope").status_code == 404
    other = client.post(
        "/streams/s-1", json={"events": [{"eventType": "ThingHappened", "data": {}}]}
    )
    assert other.status_code == 201
    assert "does not know how to rebuild" in client.get("/ui/streams/s-1").text


def test_erased_personal_data_shows_as_erased_and_never_as_ciphertext(
    store: EventStore, make_client: Callable[..., TestClient]
) -> None:
    client = make_client()
    position = open_account(client, "acc-1")
    client.post("/streams/s-1", json={"events": [
        {"eventType": "NoteTaken", "data": {"note": f"{PREFIX}fake:AAAA"}}]})  # fmt: skip
    forgotten = client.post("/subjects/acc-1/forget", json={"reason": "GDPR request"})
    assert forgotten.status_code == 200 and position
    pages = [
        client.get(path).text
        for path in ("/ui/log", "/ui/streams/acc-1", "/ui/streams/acc-1?version=1",
                     "/ui/streams/s-1")
    ]  # fmt: skip
    for html in pages:
        assert OWNER not in html and PREFIX not in html
    assert "[erased]" in pages[0] and "[erased]" in pages[1] and "[encrypted]" in pages[3]


def test_projections_show_their_lag_and_a_rebuild_can_be_asked_for(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client()
    position = open_account(client, "acc-1")
    client.get("/accounts/acc-1", params={"minPosition": position})
    page = text_of(client.get("/ui/projections").text)
    for name in ("accounts", "transactions", "active_accounts"):
        assert name in page
    for _ in range(200):  # the handlers' and the saga's consumer groups read the log
        page = text_of(client.get("/ui/projections").text)
        if "saga-Transfer" in page:
            break
        time.sleep(0.05)
    assert "notifications" in page and "saga-Transfer" in page
    asked = client.post("/ui/projections/accounts/rebuild", follow_redirects=False)
    assert asked.status_code == 303 and asked.headers["location"] == "/ui/projections"
    for _ in range(200):  # the projector takes the request up and switches generations
        listed = client.get("/projections").json()["projections"]
        if next(p for p in listed if p["name"] == "accounts")["generation"] > 1:
            break
        time.sleep(0.05)
    else:
        raise AssertionError("the rebuild asked for in the console did not happen")
    assert "generation 2" in text_of(client.get("/ui/projections").text)
    assert client.post("/ui/projections/nope/rebuild").status_code == 404


def test_transfers_show_their_steps_and_compensations(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client()
    open_account(client, "acc-1")
    deposit(client, "acc-1", "50.00")
    open_account(client, "acc-2")
    good = client.post("/transfers", json={"from": "acc-1", "to": "acc-2", "amount": "10.00"})
    bad = client.post("/transfers", json={"from": "acc-1", "to": "acc-9", "amount": "5.00"})
    done = {}
    for answer in (good, bad):
        transfer_id = answer.json()["transferId"]
        for _ in range(200):
            status = client.get(f"/transfers/{transfer_id}").json()["status"]
            if status != "pending":
                break
            time.sleep(0.05)
        done[transfer_id] = status
    assert sorted(done.values()) == ["compensated", "completed"]
    listing = text_of(client.get("/ui/transfers").text)
    assert "completed" in listing and "compensated" in listing
    compensated = next(t for t, s in done.items() if s == "compensated")
    detail = text_of(client.get(f"/ui/transfers/{compensated}").text)
    assert "debit: done, then compensated" in detail and "credit: not done" in detail
    assert "SagaCompensated" in detail
    assert client.get("/ui/transfers/nope").status_code == 404


# -- with API keys -----------------------------------------------------------------------------


def test_with_keys_the_console_asks_for_one_and_keeps_it_in_a_cookie(
    make_client: Callable[..., TestClient],
) -> None:
    reader_secret, reader = new_key("dashboard", ["read"])
    admin_secret, admin = new_key("operator", ["admin"])
    client = make_client(keys=KeyRing([reader, admin]))
    first = client.get("/ui/streams", follow_redirects=False)
    assert first.status_code == 303
    assert first.headers["location"] == "/ui/login?next=%2Fui%2Fstreams"
    deep = client.get("/ui/streams/acc-1", params={"version": 2}, follow_redirects=False)
    assert deep.headers["location"] == "/ui/login?next=%2Fui%2Fstreams%2Facc-1%3Fversion%3D2"
    assert client.get("/ui/static/console.css").status_code == 200  # assets are open
    login = client.get("/ui/login")
    assert login.status_code == 200 and "API key" in login.text
    wrong = client.post("/ui/login", data={"key": "ck_wrong", "next": "/ui/streams"})
    assert wrong.status_code == 200 and "not valid" in wrong.text
    assert client.get("/ui/streams", follow_redirects=False).status_code == 303
    signed = client.post(
        "/ui/login", data={"key": reader_secret, "next": "/ui/streams"}, follow_redirects=False
    )
    assert signed.status_code == 303 and signed.headers["location"] == "/ui/streams"
    cookie = signed.headers["set-cookie"]
    assert "httponly" in cookie.lower() and "samesite=strict" in cookie.lower()
    assert client.get("/ui/streams").status_code == 200
    # A proxy's own Authorization header does not hide the console's cookie.
    assert client.get("/ui/streams", headers={"Authorization": "Basic eDp5"}).status_code == 200
    assert "Rebuild</button>" not in client.get("/ui/projections").text  # not for a reader
    refused = client.post("/ui/projections/accounts/rebuild", follow_redirects=False)
    assert refused.status_code == 403  # the read key may not rebuild
    assert client.get("/accounts/x").status_code == 401  # the cookie is the console's only
    client.post("/ui/login", data={"key": admin_secret, "next": "/ui/projections"})
    assert "Rebuild</button>" in client.get("/ui/projections").text
    elsewhere = client.post(
        "/ui/projections/accounts/rebuild",
        headers={"Origin": "https://other.example"},
        follow_redirects=False,
    )
    assert elsewhere.status_code == 403  # a form posted from another site's page
    asked = client.post("/ui/projections/accounts/rebuild", follow_redirects=False)
    assert asked.status_code == 303
    outside = client.post("/ui/login", data={"key": admin_secret, "next": "https://evil.example/"},
                          follow_redirects=False)  # fmt: skip
    assert outside.headers["location"] == "/ui/log"  # never sent elsewhere
    client.post("/ui/logout")
    assert client.get("/ui/log", follow_redirects=False).status_code == 303


def server_with_an_account(serve: Callable[..., Server]) -> str:
    """``cronica serve`` on a memory store where ``acc-1`` is open; its base URL."""
    api: str = serve("--store", "memory://").base
    httpx.post(f"{api}/accounts", json={"owner": OWNER, "accountId": "acc-1"})
    return api


def test_the_live_log_sends_new_events_as_rows(serve: Callable[..., Server]) -> None:
    api = server_with_an_account(serve)
    with httpx.Client(timeout=10) as client:
        head = re.findall(r'data-after="(\d+)"', client.get(f"{api}/ui/log").text)[0]
        with client.stream("GET", f"{api}/ui/log/live", params={"after": head}) as live:
            httpx.post(f"{api}/accounts/acc-1/deposits", json={"amount": "7.00"})
            for line in live.iter_lines():
                if line.startswith("data: "):
                    assert "DepositMade" in line and "7.00" in line
                    assert '<tr id="event-' in line
                    break
            else:
                pytest.fail("the live log closed without sending a row")


def test_the_live_log_resumes_after_the_last_row_a_reconnecting_browser_saw(
    serve: Callable[..., Server],
) -> None:
    api = server_with_an_account(serve)
    deposits = [
        httpx.post(f"{api}/accounts/acc-1/deposits", json={"amount": f"{n}.00"}).json()
        for n in (1, 2, 3)
    ]

    def first_rows(count: int, **headers: str) -> list[tuple[int, str]]:
        """The ids and rows of the first ``count`` rows sent after position 1 (the opening)."""
        found: list[tuple[int, str]] = []
        with (
            httpx.Client(timeout=10) as client,
            client.stream(
                "GET", f"{api}/ui/log/live", params={"after": 1}, headers=headers
            ) as live,
        ):
            position = 0
            for line in live.iter_lines():
                if line.startswith("id: "):
                    position = int(line[4:])
                elif line.startswith("data: "):
                    found.append((position, line))
                    if len(found) == count:
                        return found
        pytest.fail("the live log closed early")

    everything = first_rows(3)
    assert [p for p, _ in everything] == [d["position"] for d in deposits]
    # The browser saw the first deposit's row, lost the connection, and reconnects.
    resumed = first_rows(2, **{"Last-Event-ID": str(deposits[0]["position"])})
    assert resumed == everything[1:]
    assert "2.00" in resumed[0][1] and "3.00" in resumed[1][1]
    assert first_rows(3, **{"Last-Event-ID": "not-a-position"}) == everything


def test_the_projections_page_shows_the_relays_lag(
    make_client: Callable[..., TestClient],
) -> None:
    import uuid

    import redis

    from tests.conftest import REDIS_URL, require_redis

    require_redis()
    key = f"cronica-test:{uuid.uuid4().hex}"
    try:
        client = make_client(bus=f"{REDIS_URL}?stream={key}")
        position = open_account(client, "acc-1")
        for _ in range(200):  # the relay publishes the event
            page = client.get("/ui/projections").text
            row = re.search(r"<td>redis:[^<]*</td><td class=\"num\">(\d+)</td>", page)
            if row and int(row.group(1)) >= position:
                break
            time.sleep(0.05)
        else:
            raise AssertionError(f"no relay row at position {position}: {text_of(page)}")
        assert "0 events" in text_of(page.split("Bus and relay")[1])
        for _ in range(200):  # the handlers' and the saga's groups read the stream
            groups = client.get("/ui/projections").text
            if "saga-Transfer" in groups.split('id="bus-groups"')[-1]:
                break
            time.sleep(0.05)
        shown = text_of(groups.split('id="bus-groups"')[1].split("</table>")[0])
        assert "notifications" in shown and "saga-Transfer" in shown
    finally:
        redis.Redis.from_url(REDIS_URL).delete(key)


def test_a_rebuild_under_way_shows_its_progress(
    store: EventStore, make_client: Callable[..., TestClient]
) -> None:
    from cronica.examples.bank_read_models import bank_projections
    from cronica.projections import Projector

    client = make_client(run_projector=False)  # this test moves the projector itself
    for n in range(6):
        open_account(client, f"acc-{n}")
    read_models = client.app.state.services.read_models  # type: ignore[attr-defined]
    with Projector(store, bank_projections(), read_models, batch_size=2) as projector:
        projector.run_until_caught_up()
        asked = client.post("/ui/projections/accounts/rebuild", follow_redirects=False)
        assert asked.status_code == 303
        projector.run_once()  # the rebuild starts and takes its first 2 events
        page = client.get("/ui/projections").text
        row = page.split('id="projection-accounts"')[1].split("</tr>")[0]
        assert "<progress" in row and "(2 of 6)" in text_of(row)
        assert "Rebuild</button>" in row and "disabled" in row  # not twice at once
        projector.run_until_caught_up()
        row = client.get("/ui/projections").text.split('id="projection-accounts"')[1]
        assert "generation 2" in text_of(row.split("</tr>")[0])
