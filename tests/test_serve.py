"""``cronica serve`` and ``cronica worker`` as real processes: start-up, the seed's story over
HTTP, following the log, draining on SIGTERM, losing nothing acknowledged on SIGKILL."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
import redis

import cronica
from cronica.projections import Catalog
from cronica.readmodels import read_models_for
from tests.conftest import REDIS_URL, require_redis
from tests.processes import CLI, Server, free_port, store_url_for


def test_serve_with_no_arguments_tells_the_seeds_story_on_cronica_db(
    serve: Callable[..., Server], tmp_path: Path
) -> None:
    server = serve(env={"CRONICA_STORE": None, "CRONICA_READ_MODELS": None})
    with httpx.Client(base_url=server.base) as http:
        made = http.post("/accounts", json={"owner": "Juan Pérez", "accountId": "juan"})
        assert made.status_code == 201
        http.post("/accounts/juan/deposits", json={"amount": "1000.00"})
        withdrawal = http.post("/accounts/juan/withdrawals", json={"amount": "500.00"}).json()
        account = http.get("/accounts/juan", params={"minPosition": withdrawal["position"]})
        assert account.json()["balance"] == "500.00"
        assert len(http.get("/accounts/juan/events").json()["events"]) == 3
    assert server.stop() == 0
    assert (tmp_path / "cronica.db").exists()
    with cronica.connect(f"sqlite:///{tmp_path / 'cronica.db'}") as store:
        assert store.stream_info("juan").version == 3


def worker_processes(parent: int) -> set[int]:
    """The API processes ``uvicorn --workers`` spawned under ``parent`` (not its helpers, such
    as multiprocessing's resource tracker)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            command = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
        if ppid == parent and b"spawn_main" in command:
            found.add(int(stat.parent.name))
    return found


def runner_pids(http: httpx.Client) -> set[int]:
    """The processes holding the projections' leases (runner ids are ``host:pid:suffix``)."""
    projections = http.get("/projections").json()["projections"]
    return {int(p["runner"].split(":")[1]) for p in projections if p["runner"]}


def test_several_api_processes_share_the_port_and_one_projector(
    serve: Callable[..., Server], tmp_path: Path
) -> None:
    server = serve("--store", f"sqlite:///{tmp_path / 'workers.db'}", "--workers", "2")
    workers = worker_processes(server.process.pid)
    assert len(workers) == 2
    # A connection per request, so that both processes get to accept some.
    fresh = httpx.Limits(max_keepalive_connections=0)
    with httpx.Client(base_url=server.base, limits=fresh) as http:
        for i in range(20):
            made = http.post("/accounts", json={"owner": "O", "accountId": f"acc-{i}"})
            assert made.status_code == 201
        last = made.json()["position"]
        page = http.get("/accounts", params={"minPosition": last, "limit": 100}).json()
        assert len(page["accounts"]) == 20
        runners = runner_pids(http)
        assert len(runners) == 1 and runners <= workers  # one process holds the leases
        # The projecting process dies: the API goes on, and another process projects.
        (dead,) = runners
        os.kill(dead, signal.SIGKILL)
        deadline = time.monotonic() + 30
        position, attempts = None, 0
        while True:
            assert time.monotonic() < deadline, "no other process took over the projections"
            try:
                if position is None:  # a new id each time: a lost answer may hide a write
                    attempts += 1
                    after = f"after-{attempts}"
                    made = http.post("/accounts", json={"owner": "O", "accountId": after})
                    assert made.status_code == 201, made.text
                    position = made.json()["position"]
                query = {"minPosition": position, "limit": 100}
                page = http.get("/accounts", params=query)
                if page.status_code == 200 and runner_pids(http) - {dead}:
                    break
            except httpx.TransportError:
                pass  # a connection the dead process had accepted
            time.sleep(0.2)
        assert dead not in runner_pids(http)
        ids = {a["accountId"] for a in page.json()["accounts"]}
        assert after in ids and len(ids) >= 21
    assert server.stop() == 0


def test_serve_refuses_another_address_without_api_keys(tmp_path: Path) -> None:
    done = subprocess.run(
        [*CLI, "serve", "--host", "0.0.0.0", "--port", str(free_port())],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.startswith("error: listening on 0.0.0.0 needs API keys")
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "cronica.db").exists()


def test_a_port_in_use_is_one_line_of_error(serve: Callable[..., Server], tmp_path: Path) -> None:
    running = serve("--store", f"sqlite:///{tmp_path / 'a.db'}")
    done = subprocess.run(
        [*CLI, "serve", "--port", str(running.port), "--store", f"sqlite:///{tmp_path / 'b.db'}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"error: cannot listen on 127.0.0.1:{running.port}: Address already in use"
    ]


def test_serve_with_api_keys_on_all_addresses(serve: Callable[..., Server], tmp_path: Path) -> None:
    created = subprocess.run(
        [*CLI, "keys", "create", "teller", "--scope", "write", "--file", "keys.json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    secret = created.stdout.strip()
    assert secret.startswith("ck_") and secret not in (tmp_path / "keys.json").read_text()
    server = serve("--host", "0.0.0.0", "--api-keys", "keys.json")
    with httpx.Client(base_url=server.base) as http:
        body = {"owner": "Ana", "accountId": "ana"}
        assert http.post("/accounts", json=body).status_code == 401
        auth = {"Authorization": f"Bearer {secret}"}
        assert http.post("/accounts", json=body, headers=auth).status_code == 201


def test_the_live_log_streams_events_as_they_commit(
    serve: Callable[..., Server], tmp_path: Path
) -> None:
    server = serve("--store", f"sqlite:///{tmp_path / 'live.db'}")
    received: list[str] = []
    connected = threading.Event()

    def follow() -> None:
        with (
            httpx.Client(base_url=server.base, timeout=30) as http,
            http.stream("GET", "/events/live", params={"after": 0}) as stream,
        ):
            assert stream.headers["content-type"].startswith("text/event-stream")
            for line in stream.iter_lines():
                connected.set()
                if line.startswith("data: "):
                    received.append(line)
                    if len(received) == 3:
                        return

    follower = threading.Thread(target=follow)
    follower.start()
    assert connected.wait(10)
    with httpx.Client(base_url=server.base) as http:
        http.post("/streams/s", json={"events": [{"eventType": "One", "data": {}}]})
        http.post("/streams/s", json={"events": [{"eventType": "Two", "data": {}}] * 2})
    follower.join(timeout=20)
    assert not follower.is_alive()
    assert [cronica.RecordedEvent.from_json(r[6:]).version for r in received] == [1, 2, 3]


class Load:
    """Threads posting deposits to the server; what it acknowledged."""

    def __init__(self, base: str, accounts: list[str], threads: int = 8) -> None:
        self.acknowledged: list[tuple[str, int, int]] = []  # account, version, position
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [
            threading.Thread(target=self._run, args=(base, accounts, seed))
            for seed in range(threads)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def _run(self, base: str, accounts: list[str], seed: int) -> None:
        rng = random.Random(seed)
        with httpx.Client(base_url=base, timeout=10) as http:
            while not self._stop.is_set():
                account = rng.choice(accounts)
                try:
                    answer = http.post(f"/accounts/{account}/deposits", json={"amount": "1.00"})
                except httpx.TransportError:
                    continue  # the server is gone: not acknowledged
                if answer.status_code == 201:
                    body = answer.json()
                    with self._lock:
                        self.acknowledged.append((account, body["version"], body["position"]))
                elif answer.status_code != 503:
                    self.errors.append(f"{answer.status_code} {answer.text}")


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_sigkill_under_load_loses_nothing_acknowledged(
    backend: str,
    serve: Callable[..., Server],
    tmp_path: Path,
    pg_schema_factory: Callable[[], str],
) -> None:
    url = store_url_for(backend, tmp_path, pg_schema_factory)
    accounts = [f"acc-{i}" for i in range(20)]
    acknowledged: list[tuple[str, int, int]] = []
    for round_ in range(3):
        server = serve("--store", url)
        if round_ == 0:
            with httpx.Client(base_url=server.base) as http:
                for account in accounts:
                    assert (
                        http.post(
                            "/accounts", json={"owner": "O", "accountId": account}
                        ).status_code
                        == 201
                    )
        load = Load(server.base, accounts)
        load.start()
        # Until a fair amount was acknowledged (slow on a busy machine), then a random moment
        # more: the kill lands in the middle of the load.
        deadline = time.monotonic() + 60
        while len(load.acknowledged) <= 20 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(random.uniform(0.0, 1.0))
        server.stop(signal.SIGKILL)
        load.stop()
        assert not load.errors, load.errors[:3]
        assert len(load.acknowledged) > 20
        acknowledged += load.acknowledged
    with cronica.connect(url) as store:
        for account in accounts:
            events = store.read_stream(account)
            assert [e.version for e in events] == list(range(1, len(events) + 1))
        stored = {
            (e.aggregate_id, e.version): e
            for e in store.read_all()
            if e.event_type == "DepositMade"
        }
    for account, version, position in acknowledged:
        event = stored.get((account, version))
        assert event is not None, f"acknowledged {account} v{version} is missing"
        assert event.position == position
    positions = [p for _, _, p in acknowledged]
    assert len(positions) == len(set(positions))  # each acknowledgement is its own event


def test_sigterm_lets_requests_in_flight_finish(
    serve: Callable[..., Server], tmp_path: Path
) -> None:
    server = serve("--store", f"sqlite:///{tmp_path / 'drain.db'}")
    with httpx.Client(base_url=server.base) as http:
        http.post("/accounts", json={"owner": "O", "accountId": "a"})
    load = Load(server.base, ["a"], threads=4)
    load.start()
    time.sleep(0.5)
    assert server.stop(signal.SIGTERM) == 0
    load.stop()
    assert not load.errors, load.errors[:3]
    with cronica.connect(f"sqlite:///{tmp_path / 'drain.db'}") as store:
        versions = {e.version for e in store.read_stream("a")}
    assert {version for _, version, _ in load.acknowledged} <= versions


def test_api_and_worker_as_separate_processes(
    serve: Callable[..., Server], tmp_path: Path, pg_schema_factory: Callable[[], str]
) -> None:
    url = store_url_for("postgresql", tmp_path, pg_schema_factory)
    api = serve("--store", url, "--no-projector")
    worker = subprocess.Popen(
        [*CLI, "worker", "--store", url], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        with httpx.Client(base_url=api.base, timeout=30) as http:
            made = http.post("/accounts", json={"owner": "Ana", "accountId": "ana"}).json()
            account = http.get("/accounts/ana", params={"minPosition": made["position"]})
            assert account.status_code == 200, account.text
            runners = {p["runner"] for p in http.get("/projections").json()["projections"]}
            assert len(runners) == 1 and str(worker.pid) in runners.pop()
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0


@pytest.fixture
def redis_stream() -> Iterator[tuple[str, Any]]:
    """A fresh Redis stream key and a client; the stream is deleted after the test."""
    require_redis()
    key = f"cronica-test:{uuid.uuid4().hex}"
    client: Any = redis.Redis.from_url(REDIS_URL)
    try:
        yield key, client
    finally:
        client.delete(key)


def serve_with_redis_bus(serve: Callable[..., Server], tmp_path: Path, key: str) -> Server:
    return serve(
        "--store", f"sqlite:///{tmp_path / 'bus.db'}", "--bus", f"{REDIS_URL}?stream={key}"
    )


def test_serve_with_a_bus_relays_every_event_to_redis(
    serve: Callable[..., Server], tmp_path: Path, redis_stream: tuple[str, Any]
) -> None:
    key, client = redis_stream
    server = serve_with_redis_bus(serve, tmp_path, key)
    with httpx.Client(base_url=server.base) as http:
        http.post("/accounts", json={"owner": "Ana", "accountId": "ana"})
        last = http.post("/accounts/ana/deposits", json={"amount": "5.00"}).json()["position"]
        deadline = time.monotonic() + 20
        while client.xlen(key) < 2:
            assert time.monotonic() < deadline, "the relay did not publish"
            time.sleep(0.05)
        assert "cronica_relay_lag_events" in http.get("/metrics").text
        # The seed's handlers consume the stream in their consumer groups.
        while len(client.xinfo_groups(key)) < 3 or any(
            g["lag"] != 0 or g["pending"] != 0 for g in client.xinfo_groups(key)
        ):
            assert time.monotonic() < deadline, "the handlers did not consume the stream"
            time.sleep(0.05)
    [_, (entry_id, fields)] = client.xrange(key)
    assert entry_id == f"{last}-0".encode()
    assert fields[b"eventType"] == b"DepositMade"
    assert server.stop() == 0
    status = subprocess.run(
        [*CLI, "status", "--store", f"sqlite:///{tmp_path / 'bus.db'}", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    [relay] = json.loads(status.stdout)["relays"]
    assert (relay["name"], relay["position"], relay["lag_events"]) == (f"redis:{key}", last, 0)


def test_a_worker_with_a_bus_runs_the_projections_and_the_relay(
    tmp_path: Path, pg_schema_factory: Callable[[], str]
) -> None:
    require_redis()
    url = store_url_for("postgresql", tmp_path, pg_schema_factory)
    key = f"cronica-test:{uuid.uuid4().hex}"
    client: Any = redis.Redis.from_url(REDIS_URL)
    with cronica.connect(url) as store:
        position = store.append(
            "acc-1",
            [cronica.NewEvent("AccountCreated", {"owner": "O"})],
            aggregate_type="BankAccount",
        ).position
    worker = subprocess.Popen(
        [*CLI, "worker", "--store", url, "--bus", f"{REDIS_URL}?stream={key}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while client.xlen(key) < 1:
            assert time.monotonic() < deadline, "the worker's relay did not publish"
            time.sleep(0.05)
        with cronica.connect(url) as store, read_models_for(store) as db:
            assert Catalog(db).wait_for(position, 30, ["accounts"])
    finally:
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
        client.delete(key)


def test_with_a_redis_bus_the_transfer_saga_consumes_the_stream(
    serve: Callable[..., Server], tmp_path: Path, redis_stream: tuple[str, Any]
) -> None:
    key, client = redis_stream
    server = serve_with_redis_bus(serve, tmp_path, key)
    with httpx.Client(base_url=server.base) as http:
        for account_id in ("ana", "juan"):
            http.post("/accounts", json={"owner": "O", "accountId": account_id})
        http.post("/accounts/ana/deposits", json={"amount": "10.00"})
        transfer = http.post("/transfers", json={"from": "ana", "to": "juan", "amount": "4"})
        transfer_id = transfer.json()["transferId"]
        deadline = time.monotonic() + 20
        while http.get(f"/transfers/{transfer_id}").json()["status"] == "pending":
            assert time.monotonic() < deadline, "the saga did not run"
            time.sleep(0.05)
        assert http.get(f"/transfers/{transfer_id}").json()["status"] == "completed"
    groups = {g["name"].decode() for g in client.xinfo_groups(key)}
    assert "saga-Transfer" in groups


def test_the_api_processes_end_when_serve_is_killed(
    serve: Callable[..., Server], tmp_path: Path
) -> None:
    """Killed, ``serve --workers 2`` cannot stop its workers: they were left serving the port,
    orphaned, until someone found them."""
    server = serve("--store", f"sqlite:///{tmp_path / 'workers.db'}", "--workers", "2")
    workers = worker_processes(server.process.pid)
    assert len(workers) == 2
    server.process.send_signal(signal.SIGKILL)
    server.process.wait(timeout=10)
    deadline = time.monotonic() + 15
    while any(alive(pid) for pid in workers):
        assert time.monotonic() < deadline, "the API processes outlived serve"
        time.sleep(0.1)
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{server.base}/health", timeout=2)


def alive(pid: int) -> bool:
    """Whether the process runs (a zombie waiting to be reaped does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"
