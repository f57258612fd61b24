"""The ``cronica`` command line, run in-process with Typer's runner on SQLite files in tmp_path."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.main import get_command
from typer.testing import CliRunner, Result

import cronica
from cronica import _demo, cli
from cronica.cli import app
from cronica.events import RecordedEvent, format_timestamp
from cronica.readmodels import read_models_for
from cronica.store.sqlite_schema import SCHEMA_VERSION

README = Path(__file__).resolve().parent.parent / "README.md"

# Wide enough that tables never fold the values the tests look for; no colour codes.
runner = CliRunner(
    env={"COLUMNS": "200", "CRONICA_STORE": None, "FORCE_COLOR": None, "TTY_COMPATIBLE": None}
)


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'events.db'}"


def run(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
    return runner.invoke(app, list(args), input=input, env=env)


def ok(*args: str, input: str | None = None) -> Result:
    result = run(*args, input=input)
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    return result


def json_lines(result: Result) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stdout.splitlines()]


def error_line(result: Result) -> str:
    """The one ``error:`` line of a failed command (exit 1, nothing on stdout, no traceback)."""
    assert result.exit_code == 1, (result.stdout, result.stderr, result.exception)
    assert isinstance(result.exception, SystemExit)
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ")
    return lines[0]


def usage_error(result: Result) -> str:
    assert result.exit_code == 2, (result.stdout, result.stderr, result.exception)
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    return " ".join(result.stderr.split())


def stored(url: str) -> list[RecordedEvent]:
    with cronica.connect(url) as store:
        return store.read_all()


def seed(url: str, *events: tuple[str, str, str]) -> None:
    """Append (aggregate id, event type, aggregate type) triples through the library."""
    with cronica.connect(url) as store:
        for aggregate_id, event_type, aggregate_type in events:
            store.append(
                aggregate_id, [cronica.NewEvent(event_type, {"n": 1})], "any", aggregate_type
            )


# -- version and help --------------------------------------------------------------------------


def test_version() -> None:
    assert ok("--version").stdout.strip() == f"cronica {cronica.__version__}"


def test_python_dash_m_runs_the_cli() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "cronica", "--version"], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == f"cronica {cronica.__version__}"


def test_every_command_has_help_and_is_in_the_readme() -> None:
    group = get_command(app)
    assert isinstance(group, typer.core.TyperGroup)
    readme = README.read_text(encoding="utf-8")
    assert group.commands, "the CLI has no commands"
    commands: list[tuple[str, Any]] = []
    for name, command in group.commands.items():
        commands.append((name, command))
        if isinstance(command, typer.core.TyperGroup):
            commands.extend((f"{name} {sub}", c) for sub, c in command.commands.items())
    for name, command in commands:
        assert command.help, f"cronica {name} has no help text"
        assert command.short_help, f"cronica {name} has no summary in the command list"
        shown = " ".join(ok(*name.split(), "--help").stdout.split())
        assert " ".join(command.help.split()[:6]) in shown
        assert f"cronica {name}" in readme, f"README.md does not document `cronica {name}`"


def test_commands_are_the_library_verbs() -> None:
    group = get_command(app)
    assert isinstance(group, typer.core.TyperGroup)
    assert set(group.commands) == {
        "init", "append", "read", "streams", "status", "demo", "migrate", "projections",
        "serve", "worker", "keys", "rebuild", "snapshot", "forget", "archive", "restore",
    }  # fmt: skip
    projections = group.commands["projections"]
    assert isinstance(projections, typer.core.TyperGroup)
    assert set(projections.commands) == {"run", "status", "rebuild", "skip", "retry", "history"}


# -- init --------------------------------------------------------------------------------------


def test_init_creates_the_schema_and_prints_backend_and_version(url: str, tmp_path: Path) -> None:
    result = ok("init", "--store", url)
    assert "sqlite" in result.stdout
    assert f"schema version {SCHEMA_VERSION}" in result.stdout
    assert (tmp_path / "events.db").exists()
    [report] = json_lines(ok("init", "--store", url, "--json"))  # again: idempotent
    assert report == {"store": url, "backend": "sqlite", "schemaVersion": SCHEMA_VERSION}


def test_default_store_is_cronica_db_in_the_current_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    ok("init")
    assert (tmp_path / "cronica.db").exists()


def test_store_url_from_the_environment(url: str) -> None:
    result = run("append", "acc-1", "AccountCreated", env={"CRONICA_STORE": url})
    assert result.exit_code == 0, result.stderr
    assert [e.event_type for e in stored(url)] == ["AccountCreated"]


# -- append ------------------------------------------------------------------------------------


def test_append_one_event(url: str) -> None:
    result = ok(
        "append",
        "acc_12345",
        "AccountCreated",
        '{"owner": "Juan Pérez"}',
        "--metadata",
        '{"actor": "teller-7"}',
        "--aggregate-type",
        "Account",
        "--expected-version",
        "no_stream",
        "--store",
        url,
        "--json",
    )
    [event] = stored(url)
    assert json_lines(result) == [
        {"aggregateId": "acc_12345", "fromVersion": 1, "toVersion": 1, "position": event.position}
    ]
    assert (event.event_type, event.aggregate_type) == ("AccountCreated", "Account")
    assert event.data == {"owner": "Juan Pérez"}
    assert event.metadata == {"actor": "teller-7"}


def test_append_prints_versions_and_position(url: str) -> None:
    ok("append", "acc-1", "AccountCreated", "--store", url)
    result = ok("append", "acc-1", "DepositMade", '{"amount": "1.00"}', "--store", url)
    position = stored(url)[-1].position
    assert result.stdout.strip() == f"appended to acc-1: versions 2 to 2, position {position}"


def test_append_without_data_stores_an_empty_object(url: str) -> None:
    ok("append", "acc-1", "AccountClosed", "--store", url)
    assert stored(url)[0].data == {}


@pytest.mark.parametrize("expected", ["any", "no_stream", "no-stream", "0"])
def test_append_to_a_new_stream_with_each_expectation(url: str, expected: str) -> None:
    ok("append", "acc-1", "AccountCreated", "--expected-version", expected, "--store", url)
    assert len(stored(url)) == 1


def test_append_at_the_current_version(url: str) -> None:
    ok("append", "acc-1", "AccountCreated", "--store", url)
    ok("append", "acc-1", "DepositMade", "--expected-version", "1", "--store", url)
    ok("append", "acc-1", "DepositMade", "--expected-version", "exists", "--store", url)
    assert [e.version for e in stored(url)] == [1, 2, 3]


def test_append_retried_with_the_same_event_id_writes_once(url: str) -> None:
    args = ["append", "acc-1", "AccountCreated", "--store", url, "--json"]
    event_id = "6f1c2a4e-8d5b-4f0e-9a7c-3b2d1e0f9a8b"
    first = ok(*args, "--event-id", event_id)
    again = ok(*args, "--event-id", event_id)
    assert json_lines(first) == json_lines(again)
    assert [str(e.event_id) for e in stored(url)] == [event_id]


def test_wrong_expected_version_names_expected_and_actual(url: str) -> None:
    ok("append", "acc-1", "AccountCreated", "--store", url)
    result = run("append", "acc-1", "DepositMade", "--expected-version", "5", "--store", url)
    line = error_line(result)
    assert "expected version 5" in line
    assert "actual version 1" in line
    assert len(stored(url)) == 1


def test_no_stream_on_an_existing_stream_is_refused(url: str) -> None:
    ok("append", "acc-1", "AccountCreated", "--store", url)
    result = run(
        "append", "acc-1", "AccountCreated", "--expected-version", "no_stream", "--store", url
    )
    assert "expected version no_stream, actual version 1" in error_line(result)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ("{bad", "DATA_JSON is not valid JSON"),
        ("[1, 2]", "DATA_JSON must be a JSON object, not an array"),
        ('"text"', "DATA_JSON must be a JSON object, not a string"),
        ("42", "DATA_JSON must be a JSON object, not a number"),
        ('{"amount": NaN}', "NaN is not valid JSON"),
        ("", "DATA_JSON is not valid JSON"),
    ],
)
def test_bad_json_data_is_refused_and_nothing_written(url: str, data: str, message: str) -> None:
    ok("append", "acc-1", "AccountCreated", "--store", url)
    result = run("append", "acc-1", "DepositMade", data, "--store", url)
    assert message in error_line(result)
    assert len(stored(url)) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["DepositMade", "--metadata", "{bad"], "--metadata is not valid JSON"),
        (["DepositMade", "--metadata", "[]"], "--metadata must be a JSON object"),
        (["DepositMade", "--expected-version", "soon"], "expected version must be"),
        (["DepositMade", "--expected-version", "-1"], "expected version must be >= 0"),
        (["DepositMade", "--event-id", "not-a-uuid"], "event id must be a UUID"),
        ([""], "event type"),
        (["DepositMade", "--aggregate-type", "Other"], "has aggregate type 'Account'"),
    ],
)
def test_bad_append_options_are_refused_and_nothing_written(
    url: str, args: list[str], message: str
) -> None:
    ok("append", "acc-1", "AccountCreated", "--aggregate-type", "Account", "--store", url)
    result = run("append", "acc-1", *args, "--store", url)
    assert message in error_line(result)
    assert len(stored(url)) == 1


def test_bad_aggregate_id_is_refused(url: str) -> None:
    assert "aggregate id" in error_line(run("append", "", "AccountCreated", "--store", url))


FILE_EVENTS = [
    {"eventType": "AccountCreated", "data": {"owner": "Juan Pérez"}},
    {
        "eventType": "DepositMade",
        "data": {"amount": "1000.00"},
        "metadata": {"reason": "salary", "actor": "juan"},
        "eventId": "0b7c6a1e-2d3f-4a5b-8c9d-0e1f2a3b4c5d",
    },
    {"eventType": "WithdrawalMade", "data": {"amount": "500.00"}},
]


def test_append_a_file_of_events(url: str, tmp_path: Path) -> None:
    path = tmp_path / "events.json"
    path.write_text(json.dumps(FILE_EVENTS), encoding="utf-8")
    result = ok(
        "append",
        "acc-1",
        "--file",
        str(path),
        "--metadata",
        '{"actor": "import", "batch": "b1"}',
        "--store",
        url,
        "--json",
    )
    events = stored(url)
    assert json_lines(result) == [
        {"aggregateId": "acc-1", "fromVersion": 1, "toVersion": 3, "position": events[-1].position}
    ]
    assert [e.event_type for e in events] == ["AccountCreated", "DepositMade", "WithdrawalMade"]
    assert events[1].data == {"amount": "1000.00"}
    assert str(events[1].event_id) == FILE_EVENTS[1]["eventId"]
    # --metadata goes to every event; an event's own keys win.
    assert events[0].metadata == {"actor": "import", "batch": "b1"}
    assert events[1].metadata == {"actor": "juan", "batch": "b1", "reason": "salary"}


def test_append_a_file_from_stdin(url: str) -> None:
    result = ok("append", "acc-1", "--file", "-", "--store", url, input=json.dumps(FILE_EVENTS))
    assert "versions 1 to 3" in result.stdout
    assert len(stored(url)) == 3


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{bad", "--file is not valid JSON"),
        ('{"eventType": "A"}', "--file must hold a JSON array of events, not"),
        ("[]", "at least one event"),
        ('[{"eventType": "A"}, 3]', "event 1 of --file must be a JSON object"),
        ('[{"eventType": "A", "dat": {}}]', "unknown keys dat"),
        ('[{"data": {}}]', "event 0 of --file has no eventType"),
        ('[{"eventType": "A", "metadata": []}]', "metadata must be a JSON object"),
        ('[{"eventType": "A"}, {"eventType": "B", "data": [1]}]', "event 1 of --file"),
        ('[{"eventType": "A", "eventId": "x"}]', "event id must be a UUID"),
    ],
)
def test_a_bad_file_writes_nothing(url: str, tmp_path: Path, content: str, message: str) -> None:
    ok("init", "--store", url)
    path = tmp_path / "events.json"
    path.write_text(content, encoding="utf-8")
    result = run("append", "acc-1", "--file", str(path), "--store", url)
    assert message in error_line(result)
    assert stored(url) == []


def test_a_missing_file_is_an_error(url: str, tmp_path: Path) -> None:
    result = run("append", "acc-1", "--file", str(tmp_path / "missing.json"), "--store", url)
    assert "cannot read" in error_line(result)


@pytest.mark.parametrize(
    "args",
    [
        ["append", "acc-1"],
        ["append", "acc-1", "A", "--file", "-"],
        ["append", "acc-1", "--file", "-", "--event-id", "6f1c2a4e-8d5b-4f0e-9a7c-3b2d1e0f9a8b"],
        ["append"],
        ["append", "acc-1", "A", "--no-such-option"],
        ["read", "--from-version", "2"],
        ["read", "--as-of", "2025-01-01T00:00:00Z"],
        ["read", "--backward"],
        ["read", "acc-1", "--after", "3"],
        ["read", "acc-1", "--event-type", "A"],
        ["read", "acc-1", "--follow"],
        ["read", "--interval", "2"],
        ["read", "--limit", "-1"],
        ["streams", "--limit", "many"],
    ],
)
def test_usage_errors_exit_2(url: str, args: list[str]) -> None:
    usage_error(run(*args, "--store", url))
    assert not Path(url.removeprefix("sqlite:///")).exists()


# -- store URLs --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("store", "message"),
    [
        ("foo://bar", "unknown store scheme 'foo'"),
        ("cronica.db", "not a store URL"),
        ("sqlite://relative.db", "SQLite URLs are"),
        ("sqlite:///x.db?mode=fast", "unknown SQLite URL parameter"),
    ],
)
def test_a_store_url_that_cannot_be_understood_is_an_error(store: str, message: str) -> None:
    assert message in error_line(run("status", "--store", store))


def test_a_store_that_cannot_be_opened_is_an_error(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'no' / 'such' / 'folder.db'}"
    assert "SQLite" in error_line(run("status", "--store", store))


def test_a_file_that_is_not_a_database_is_an_error(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database, just some text " * 100)
    assert error_line(run("read", "--store", f"sqlite:///{garbage}"))


def test_passwords_are_not_printed() -> None:
    assert cli._redacted("postgresql://u:secret@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert cli._redacted("sqlite:///cronica.db") == "sqlite:///cronica.db"


# -- read --------------------------------------------------------------------------------------


def test_read_a_stream_as_json_lines(url: str) -> None:
    seed(url, ("acc-1", "AccountCreated", "Account"), ("acc-2", "AccountCreated", "Account"))
    seed(url, ("acc-1", "DepositMade", "Account"), ("acc-1", "WithdrawalMade", "Account"))
    lines = json_lines(ok("read", "acc-1", "--store", url, "--json"))
    expected = [e.to_dict() for e in stored(url) if e.aggregate_id == "acc-1"]
    assert lines == expected
    assert [line["version"] for line in lines] == [1, 2, 3]
    assert set(lines[0]) == {
        "eventId",
        "eventType",
        "aggregateId",
        "aggregateType",
        "version",
        "position",
        "timestamp",
        "data",
        "metadata",
    }


def test_read_a_stream_range_backward_and_limit(url: str) -> None:
    seed(url, *[("acc-1", f"Event{n}", "") for n in range(1, 6)])
    ranged = json_lines(
        ok("read", "acc-1", "--from-version", "2", "--to-version", "3", "--store", url, "--json")
    )
    assert [e["version"] for e in ranged] == [2, 3]
    newest = json_lines(ok("read", "acc-1", "--backward", "--limit", "2", "--store", url, "--json"))
    assert [e["version"] for e in newest] == [5, 4]


def test_read_a_stream_as_of_a_moment(url: str) -> None:
    seed(url, ("acc-1", "AccountCreated", ""))
    moment = stored(url)[0].timestamp
    time.sleep(0.01)
    seed(url, ("acc-1", "DepositMade", ""))
    then = json_lines(
        ok("read", "acc-1", "--as-of", format_timestamp(moment), "--store", url, "--json")
    )
    assert [e["eventType"] for e in then] == ["AccountCreated"]
    offset = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")
    assert json_lines(ok("read", "acc-1", "--as-of", offset, "--store", url, "--json")) == then


def test_a_bad_as_of_is_an_error(url: str) -> None:
    assert "RFC 3339" in error_line(run("read", "acc-1", "--as-of", "yesterday", "--store", url))


def test_read_the_global_log_with_filters(url: str) -> None:
    seed(
        url,
        ("acc-1", "AccountCreated", "Account"),
        ("ord-1", "OrderPlaced", "Order"),
        ("acc-1", "DepositMade", "Account"),
        ("ord-1", "OrderShipped", "Order"),
        ("acc-2", "AccountCreated", "Account"),
    )
    everything = json_lines(ok("read", "--store", url, "--json"))
    assert everything == [e.to_dict() for e in stored(url)]
    positions = [e["position"] for e in everything]
    assert positions == sorted(positions)

    after = json_lines(
        ok("read", "--after", str(positions[1]), "--limit", "2", "--store", url, "--json")
    )
    assert [e["position"] for e in after] == positions[2:4]

    by_type = json_lines(
        ok(
            "read",
            *("--event-type", "AccountCreated", "--event-type", "OrderShipped"),
            *("--store", url, "--json"),
        )
    )
    assert [e["eventType"] for e in by_type] == ["AccountCreated", "OrderShipped", "AccountCreated"]

    orders = json_lines(ok("read", "--aggregate-type", "Order", "--store", url, "--json"))
    assert [e["aggregateId"] for e in orders] == ["ord-1", "ord-1"]


def test_read_pages_through_a_long_log(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "PAGE_SIZE", 2)
    seed(url, *[("acc-1", f"Event{n}", "") for n in range(1, 6)])
    assert len(json_lines(ok("read", "--store", url, "--json"))) == 5
    assert len(json_lines(ok("read", "--limit", "3", "--store", url, "--json"))) == 3
    table = ok("read", "--store", url).stdout
    assert all(f"Event{n}" in table for n in range(1, 6))


def test_read_prints_a_table(url: str) -> None:
    with cronica.connect(url) as store:
        store.append(
            "acc-1",
            [cronica.NewEvent("DepositMade", {"amount": "[bold]1000.00"}, {"actor": "teller-7"})],
        )
    for args in (["read", "acc-1"], ["read"]):
        table = ok(*args, "--store", url).stdout
        assert "DepositMade" in table
        assert '{"amount": "[bold]1000.00"}' in table  # shown as written, not as markup
        assert '{"actor": "teller-7"}' in table
    assert "acc-1" in ok("read", "--store", url).stdout


def test_read_nothing(url: str) -> None:
    assert "no events" in ok("read", "acc-1", "--store", url).stdout
    assert "no events" in ok("read", "--store", url).stdout
    assert ok("read", "--store", url, "--json").stdout == ""


def test_follow_prints_new_events_until_ctrl_c(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    seed(url, ("acc-1", "AccountCreated", ""))
    pauses: list[float] = []

    def sleep(seconds: float) -> None:
        pauses.append(seconds)
        if len(pauses) == 1:
            seed(url, ("acc-1", "DepositMade", ""))  # another process appends meanwhile
        else:
            raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_sleep", sleep)
    result = ok("read", "--follow", "--store", url, "--json")
    assert [e["eventType"] for e in json_lines(result)] == ["AccountCreated", "DepositMade"]
    assert pauses == [cli.DEFAULT_INTERVAL, cli.DEFAULT_INTERVAL]


def test_follow_as_lines_with_filters_and_interval(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(url, ("acc-1", "AccountCreated", ""), ("acc-1", "Noise", ""))
    pauses: list[float] = []

    def sleep(seconds: float) -> None:
        pauses.append(seconds)
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_sleep", sleep)
    result = ok(
        "read", "--follow", "--interval", "0.25", "--event-type", "AccountCreated", "--store", url
    )
    assert "AccountCreated" in result.stdout
    assert "Noise" not in result.stdout
    assert pauses == [0.25]


def test_follow_stops_after_limit_events(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    seed(url, ("acc-1", "AccountCreated", ""))
    monkeypatch.setattr(cli, "_sleep", lambda _: seed(url, ("acc-1", "DepositMade", "")))
    result = ok("read", "--follow", "--limit", "2", "--store", url, "--json")
    assert [e["eventType"] for e in json_lines(result)] == ["AccountCreated", "DepositMade"]


# -- streams and status ------------------------------------------------------------------------


def test_streams(url: str) -> None:
    seed(
        url,
        ("acc-1", "AccountCreated", "Account"),
        ("acc-1", "DepositMade", "Account"),
        ("acc-2", "AccountCreated", "Account"),
        ("ord-1", "OrderPlaced", "Order"),
    )
    lines = json_lines(ok("streams", "--store", url, "--json"))
    assert [(s["aggregateId"], s["aggregateType"], s["version"]) for s in lines] == [
        ("acc-1", "Account", 2),
        ("acc-2", "Account", 1),
        ("ord-1", "Order", 1),
    ]
    assert set(lines[0]) == {"aggregateId", "aggregateType", "version", "created", "updated"}
    assert lines[0]["created"] <= lines[0]["updated"]

    orders = json_lines(ok("streams", "--aggregate-type", "Order", "--store", url, "--json"))
    assert [s["aggregateId"] for s in orders] == ["ord-1"]
    first = json_lines(ok("streams", "--limit", "2", "--store", url, "--json"))
    rest = json_lines(ok("streams", "--after", "acc-2", "--store", url, "--json"))
    assert [s["aggregateId"] for s in first + rest] == ["acc-1", "acc-2", "ord-1"]

    table = ok("streams", "--limit", "2", "--store", url).stdout
    assert "acc-1" in table
    assert "Account" in table
    assert "next page: --after acc-2" in table
    assert "no streams" in ok("streams", "--after", "zzz", "--store", url).stdout


def test_status(url: str) -> None:
    seed(url, ("acc-1", "AccountCreated", ""), ("acc-1", "DepositMade", ""), ("acc-2", "A", ""))
    head = stored(url)[-1].position
    [report] = json_lines(ok("status", "--store", url, "--json"))
    assert report == {
        "backend": "sqlite",
        "schemaVersion": SCHEMA_VERSION,
        "streams": 2,
        "events": 3,
        "headPosition": head,
        "readablePosition": head,
        "waitingOn": [],
        "projections": [],
        "relays": [],
    }
    table = ok("status", "--store", url).stdout
    assert f"readable position  {head}" in table
    assert "sqlite" in table


def test_status_shows_the_projections_and_their_lag(url: str) -> None:
    ok("demo", "--store", url, "--accounts", "0")
    ok("projections", "run", "--store", url, "--until-caught-up")
    seed(url, ("acc-9", "AccountCreated", ""))
    [report] = json_lines(ok("status", "--store", url, "--json"))
    lags = {p["name"]: p["lag_events"] for p in report["projections"]}
    assert lags == {"accounts": 1, "active_accounts": 1, "transactions": 1}
    table = ok("status", "--store", url).stdout
    assert "active_accounts" in table and "stopped" in table  # no projector runs now


def test_rebuild_waits_for_the_new_generation_with_progress(url: str) -> None:
    ok("demo", "--store", url, "--accounts", "200", "--months", "1")
    ok("projections", "run", "--store", url, "--until-caught-up")
    runner = subprocess.Popen(
        [sys.executable, "-m", "cronica", "projections", "run", "--store", url],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        done = run("rebuild", "accounts", "--wait", "--reason", "test", "--store", url)
        assert done.exit_code == 0, done.output
        assert "accounts: generation 2 is live" in done.stdout
    finally:
        runner.send_signal(signal.SIGTERM)
        runner.wait(timeout=30)
    with cronica.connect(url) as store, read_models_for(store) as db:
        assert db.query("SELECT count(*) FROM accounts") == [(201,)]


def test_snapshot_named_aggregates_or_all(url: str) -> None:
    ok("demo", "--store", url, "--accounts", "30", "--months", "1")
    one = ok("snapshot", "acc_12345", "--store", url).stdout
    assert "acc_12345: snapshot at version 3" in one
    every = json_lines(ok("snapshot", "--all", "--store", url, "--json"))
    assert len(every) == 31
    with cronica.connect(url) as store:
        saved = store.snapshot_store().load("acc-00001")
        assert saved is not None and saved.version == store.stream_info("acc-00001").version
    assert error_line(run("snapshot", "--store", url)).startswith("error: name the aggregates")
    assert "does not exist" in error_line(run("snapshot", "nobody", "--store", url))


def test_snapshot_checks_every_named_aggregate_before_storing_any(url: str) -> None:
    """A bad or unknown id after a good one used to be refused only once the good one's
    snapshot was stored."""
    ok("demo", "--store", url, "--accounts", "3", "--months", "1")
    assert "control characters" in error_line(
        run("snapshot", "acc-00001", "bad\x01id", "--store", url)
    )
    assert "does not exist" in error_line(run("snapshot", "acc-00001", "nobody", "--store", url))
    with cronica.connect(url) as store:
        assert store.snapshot_store().load("acc-00001") is None


def test_snapshot_reads_old_events_through_upcasters(url: str) -> None:
    from cronica.examples.customers import customer_upcasters

    with cronica.connect(url) as store:  # what old code wrote: schema version 1
        store.append("client-1", [cronica.NewEvent("CustomerRegistered", {"name": "Juan Pérez"})],
                     aggregate_type="Customer")  # fmt: skip
    where = ["--aggregate", "cronica.examples.customers:Customer",
             "--events", "cronica.examples.customers:customer_events", "--store", url]  # fmt: skip
    assert "schema version 1" in error_line(run("snapshot", "client-1", *where))
    upcasters = "cronica.examples.customers:customer_upcasters"
    assert "at version 1" in ok("snapshot", "client-1", *where, "--upcasters", upcasters).stdout
    with cronica.connect(url, upcasters=customer_upcasters) as store:
        saved = store.snapshot_store().load("client-1")
        assert saved is not None and saved.version == 1


class _WaitingStore(cronica.MemoryEventStore):
    """A store whose readers wait on an open transaction, as PostgreSQL can report."""

    def status(self) -> cronica.StoreStatus:
        holder = cronica.HorizonHolder(
            4242, datetime(2026, 1, 5, 10, 30, tzinfo=UTC), "idle in transaction", "INSERT ..."
        )
        return cronica.StoreStatus("postgresql", 3, 1, 7, 9, 6, [holder])


def test_status_names_the_transactions_readers_wait_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cronica, "connect", lambda url: _WaitingStore())
    [report] = json_lines(ok("status", "--store", "postgresql://db", "--json"))
    assert (report["headPosition"], report["readablePosition"]) == (9, 6)
    assert report["waitingOn"] == [
        {
            "pid": 4242,
            "transactionStarted": "2026-01-05T10:30:00.000000Z",
            "state": "idle in transaction",
            "query": "INSERT ...",
        }
    ]
    table = ok("status", "--store", "postgresql://db").stdout
    assert "readers wait on" in table
    assert "4242" in table
    assert "idle in transaction" in table


# -- demo --------------------------------------------------------------------------------------


def test_demo_runs_twice_on_one_file(url: str) -> None:
    first = ok("demo", "--store", url, "--accounts", "50", "--months", "2").stdout
    assert "acc_12345" in first
    assert "Juan Pérez" in first
    assert "0 + 1000.00 - 500.00 = 500.00" in first
    assert "0 + 1000.00 = 1000.00" in first  # as of just after the deposit
    assert "teller:ana.garcia" in first  # who
    assert "cash withdrawal" in first  # why
    assert "History: 50 accounts" in first
    second = ok("demo", "--store", url, "--accounts", "50").stdout
    assert "acc_12345_2" in second
    assert "already there" in second
    with cronica.connect(url) as store:
        stories = [s for s in store.list_streams(limit=None) if s.aggregate_id.startswith("acc_")]
        generated = store.list_streams(after="acc-", limit=None)
    assert [(s.aggregate_id, s.version) for s in stories] == [("acc_12345", 3), ("acc_12345_2", 3)]
    assert len([s for s in generated if s.aggregate_id.startswith("acc-")]) == 50


def test_demo_on_a_memory_store() -> None:
    assert "500.00" in ok("demo", "--store", "memory://", "--accounts", "20").stdout


def test_the_console_script_runs_the_demo(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "cronica"
    env = {k: v for k, v in os.environ.items() if k != "CRONICA_STORE"}
    done = subprocess.run(
        [str(script), "demo"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "0 + 1000.00 - 500.00 = 500.00" in done.stdout
    assert (tmp_path / "cronica.db").exists()


def test_the_story_rebuilds_state_from_events() -> None:
    store = cronica.connect("memory://")
    story = _demo.run_story(store)
    assert story.account_id == "acc_12345"
    assert [e.event_type for e in story.events] == [
        "AccountCreated",
        "DepositMade",
        "WithdrawalMade",
    ]
    assert [e.data for e in story.events] == [
        {"owner": "Juan Pérez"},
        {"amount": "1000.00"},
        {"amount": "500.00"},
    ]
    assert story.account == _demo.Account("acc_12345", "Juan Pérez", Decimal("500.00"), 3)
    assert story.past_account.balance == Decimal("1000.00")
    assert [e.version for e in story.past_events] == [1, 2]
    assert all(e.timestamp <= story.as_of for e in story.past_events)
    for event in story.events:
        assert set(event.metadata) - {"subjectId"} == {"actor", "reason", "correlationId"}
        assert event.metadata["correlationId"] == story.correlation_id
    # The owner is stored encrypted with the account's key (its data subject).
    assert story.events[0].metadata["subjectId"] == "acc_12345"
    assert "Juan" not in str(store.read_stream("acc_12345")[0].data)
    assert _demo.balance_formula(story.events) == "0 + 1000.00 - 500.00 = 500.00"
    assert _demo.run_story(store).account_id == "acc_12345_2"


def test_the_balance_never_goes_negative() -> None:
    store = cronica.connect("memory://")
    audit = _demo.Audit("teller", "test", "c-1")
    _demo.open_account(store, "acc-1", "Ana", audit)
    _demo.deposit(store, "acc-1", Decimal("100"), audit)
    with pytest.raises(cronica.InvalidInputError, match="negative"):
        _demo.withdraw(store, "acc-1", Decimal("100.01"), audit)
    with pytest.raises(cronica.InvalidInputError, match="positive"):
        _demo.deposit(store, "acc-1", Decimal("-5"), audit)
    with pytest.raises(cronica.InvalidInputError, match="two decimal places"):
        _demo.deposit(store, "acc-1", Decimal("0.005"), audit)
    with pytest.raises(cronica.StreamNotFoundError):
        _demo.deposit(store, "acc-404", Decimal("1"), audit)
    assert _demo.load(store, "acc-1").balance == Decimal("100.00")
    assert _demo.load(store, "acc-1").version == 2
