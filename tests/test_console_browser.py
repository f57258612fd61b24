"""The console in a real browser: Playwright driving Debian's Chromium through the main flows
(open an account through the API, find it in the console, step through its history, watch the
live log, rebuild a projection, sign in with a key). Each page's screenshot is saved under
``tests/screenshots/`` (not committed) for people to look at."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from tests.processes import CLI, Server

CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(__file__).parent / "screenshots"


def _chromium() -> str:
    if os.path.exists(CHROMIUM):
        return CHROMIUM
    found = shutil.which("chromium")
    if found:
        return found
    message = "Debian's Chromium is not installed (make test installs it: apt-get install chromium)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    executable = _chromium()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, headless=True)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    opened.set_default_timeout(10_000)
    yield opened
    context.close()


def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_find_an_account_and_step_through_its_history(
    serve: Callable[..., Server], page: Any
) -> None:
    api = serve("--store", "sqlite:///console.db").base
    httpx.post(f"{api}/accounts", json={"owner": "Juan Pérez", "accountId": "acc_12345"})
    httpx.post(f"{api}/accounts", json={"owner": "Ana García", "accountId": "acc_777"})
    for amount in ("1000.00", "250.00"):
        httpx.post(f"{api}/accounts/acc_12345/deposits", json={"amount": amount},
                   headers={"X-Actor": "teller-3", "X-Reason": "salary"})  # fmt: skip
    httpx.post(f"{api}/accounts/acc_12345/withdrawals", json={"amount": "500.00"})

    page.goto(f"{api}/ui/streams")
    shot(page, "streams")
    page.fill("#search-id", "acc_1")
    page.click("text=Search")
    links = page.locator("table.streams a")
    assert links.all_inner_texts() == ["acc_12345"]
    shot(page, "streams-search")
    links.first.click()
    page.wait_for_url(re.compile(r"/ui/streams/acc_12345"))
    assert page.inner_text("#state-version") == "4"
    assert "750.00" in page.inner_text("#state")
    assert "Juan Pérez" in page.inner_text("#state")
    shot(page, "stream")

    page.click("#step-back")  # before the withdrawal
    page.wait_for_url(re.compile(r"version=3"))
    assert "1250.00" in page.inner_text("#state")
    changes = page.inner_text("#changes")
    assert "1000.00" in changes and "1250.00" in changes  # what the second deposit changed
    shot(page, "stream-version-3")

    page.locator("#history").fill("1")  # the slider, to the start
    page.locator("#history").dispatch_event("change")
    page.wait_for_url(re.compile(r"version=1"))
    assert "0.00" in page.inner_text("#state")
    assert "teller-3" in page.inner_text("table.events")
    shot(page, "stream-version-1")


def test_the_log_shows_new_events_as_they_are_committed(
    serve: Callable[..., Server], page: Any
) -> None:
    api = serve("--store", "sqlite:///console.db").base
    httpx.post(f"{api}/accounts", json={"owner": "Eva", "accountId": "acc-1"})
    page.goto(f"{api}/ui/log")
    page.wait_for_selector("#live-state:text('live')")
    rows_before = page.locator("#log tbody tr").count()
    httpx.post(f"{api}/accounts/acc-1/deposits", json={"amount": "42.00"})
    page.wait_for_selector("#log tbody tr.fresh")
    assert page.locator("#log tbody tr").count() == rows_before + 1
    assert "42.00" in page.locator("#log tbody tr").first.inner_text()
    shot(page, "log")


def test_rebuild_a_projection_and_see_it_switch(serve: Callable[..., Server], page: Any) -> None:
    api = serve("--store", "sqlite:///console.db").base
    for n in range(20):
        httpx.post(f"{api}/accounts", json={"owner": f"Owner {n}", "accountId": f"acc-{n}"})
    page.goto(f"{api}/ui/projections")
    row = page.locator("#projection-accounts")
    assert "generation 1" in row.inner_text()
    shot(page, "projections")
    row.locator("text=Rebuild").click()
    page.wait_for_url(re.compile(r"/ui/projections$"))
    # The page refreshes itself: the projection switches to its new generation.
    page.wait_for_selector("#projection-accounts:has-text('generation 2')", timeout=20_000)
    assert "live" in page.locator("#projection-accounts").inner_text()
    shot(page, "projections-rebuilt")


def test_transfers_and_erased_data_in_the_browser(serve: Callable[..., Server], page: Any) -> None:
    api = serve("--store", "sqlite:///console.db").base
    httpx.post(f"{api}/accounts", json={"owner": "Juan Pérez", "accountId": "acc-1"})
    httpx.post(f"{api}/accounts/acc-1/deposits", json={"amount": "100.00"})
    httpx.post(f"{api}/accounts", json={"owner": "Ana", "accountId": "acc-2"})
    sent = httpx.post(f"{api}/transfers", json={"from": "acc-1", "to": "nobody", "amount": "5"})
    transfer_id = sent.json()["transferId"]
    for _ in range(100):
        if httpx.get(f"{api}/transfers/{transfer_id}").json()["status"] != "pending":
            break
    page.goto(f"{api}/ui/transfers")
    assert "compensated" in page.inner_text("table.sagas")
    shot(page, "transfers")
    page.click(f"text={transfer_id}")
    page.wait_for_selector("text=debit: done, then compensated")
    shot(page, "transfer")
    httpx.post(f"{api}/subjects/acc-1/forget", json={"reason": "GDPR request"})
    page.goto(f"{api}/ui/streams/acc-1?version=1")
    assert "[erased]" in page.inner_text("#state")
    assert "Juan" not in page.content() and "cronica:pii" not in page.content()
    shot(page, "stream-erased")


def test_signing_in_with_an_api_key(
    serve: Callable[..., Server], page: Any, tmp_path: Path
) -> None:
    import subprocess

    keys = tmp_path / "keys.json"
    made = subprocess.run(
        [*CLI, "keys", "create", "operator", "--scope", "admin", "--file", str(keys)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    secret = re.findall(r"ck_[A-Za-z0-9_-]+", made.stdout)[0]
    api = serve("--store", "memory://", "--api-keys", str(keys)).base
    page.goto(f"{api}/ui/projections")
    page.wait_for_url(re.compile(r"/ui/login"))
    shot(page, "login")
    page.fill("input[name=key]", "ck_not-a-key")
    page.click("button:text('Sign in')")
    page.wait_for_selector("#login-failed")
    page.fill("input[name=key]", secret)
    page.click("button:text('Sign in')")
    page.wait_for_url(re.compile(r"/ui/projections$"))
    assert page.locator("#projection-accounts").count() == 1
