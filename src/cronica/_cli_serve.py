"""``cronica serve``, ``cronica worker`` and ``cronica keys``: running the service.

Registered on the ``cronica`` app by :mod:`cronica.cli`.
"""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import socket
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import typer

import cronica
from cronica.bus import bus_factory
from cronica.cli import ReadModelsURL, StoreURL, _console, _reports_errors, app
from cronica.errors import CronicaError, InvalidInputError
from cronica.readmodels import connect_read_models

if TYPE_CHECKING:
    from cronica.server import ServerSettings


keys_app = typer.Typer(
    help=(
        "API keys for cronica serve: create one (the secret is printed once; only its hash "
        "is stored) or list those in a key file."
    ),
    no_args_is_help=True,
)
app.add_typer(keys_app, name="keys", short_help="Create and list API keys for the server.")

BusURL = Annotated[
    str | None,
    typer.Option(
        "--bus",
        envvar="CRONICA_BUS",
        metavar="URL",
        help="Publish the log to this event bus (redis://host:port/db or nats://host:port).",
    ),
]
KeyFile = Annotated[
    Path,
    typer.Option("--file", envvar="CRONICA_API_KEYS", metavar="PATH", help="The key file (JSON)."),
]


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        try:
            return all(
                ipaddress.ip_address(info[4][0]).is_loopback
                for info in socket.getaddrinfo(host, None)
            )
        except (OSError, ValueError):
            return False


@app.command(short_help="Serve the HTTP API (and run the projector) on a store.")
@_reports_errors
def serve(
    store_url: StoreURL = cronica.DEFAULT_STORE_URL,
    read_models_url: ReadModelsURL = None,
    bus_url: BusURL = None,
    host: Annotated[
        str, typer.Option(envvar="CRONICA_HOST", help="The address to listen on.")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(envvar="CRONICA_PORT", min=0, max=65535, help="The port.")
    ] = 8000,
    api_keys: Annotated[
        Path | None,
        typer.Option(
            "--api-keys",
            envvar="CRONICA_API_KEYS",
            metavar="PATH",
            help="Require these API keys (a file from cronica keys create).",
        ),
    ] = None,
    cors_origin: Annotated[
        list[str] | None,
        typer.Option(metavar="ORIGIN", help="Let this browser origin call the API (repeatable)."),
    ] = None,
    max_body_bytes: Annotated[
        int, typer.Option(min=1024, help="The largest request body; larger ones get 413.")
    ] = 4 * 1024 * 1024,
    projector: Annotated[
        bool,
        typer.Option(
            "--projector/--no-projector",
            help="Run the projector in this process (off when cronica worker runs it).",
        ),
    ] = True,
    min_position_timeout: Annotated[
        float,
        typer.Option(min=0.0, help="Seconds a query with minPosition waits for the read model."),
    ] = 5.0,
    workers: Annotated[
        int,
        typer.Option(
            min=1, max=64, help="API processes sharing the port (the projector runs in one)."
        ),
    ] = 1,
    log_level: Annotated[str, typer.Option(help="uvicorn's log level.")] = "info",
) -> None:
    """Serve the bank service and the store API over HTTP (see docs/http-api.md).

    With no options: the store and read models in sqlite:///cronica.db in the current folder,
    the projector in this process, listening on 127.0.0.1:8000. --bus redis://... also runs
    the relay that publishes every event to Redis Streams. Listening on another address needs
    --api-keys. SIGTERM (or Ctrl-C) stops taking requests, lets those in flight finish, then
    stops the projector and closes the store."""
    try:
        import uvicorn
        from uvicorn.config import STARTUP_FAILURE
        from uvicorn.supervisors import Multiprocess

        from cronica.server import ServerSettings, create_app
        from cronica.server.app import PARENT_VARIABLE, SETTINGS_VARIABLE, settings_to_json
        from cronica.server.auth import KeyRing
    except ImportError as exc:
        raise InvalidInputError(
            f"cronica serve needs the server extra: pip install 'cronica[server]' ({exc})"
        ) from None

    keys = KeyRing.load(api_keys) if api_keys is not None else KeyRing()
    if not keys and not is_loopback(host):
        raise InvalidInputError(
            f"listening on {host} needs API keys: pass --api-keys FILE"
            " (create one with cronica keys create)"
        )
    settings = ServerSettings(
        store=store_url,
        read_models=read_models_url,
        bus=bus_url,
        run_projector=projector,
        api_keys_file=None if api_keys is None else str(api_keys.resolve()),
        max_body_bytes=max_body_bytes,
        cors_origins=tuple(cors_origin or ()),
        min_position_timeout=min_position_timeout,
    )
    _preflight(settings, workers)
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "log_level": log_level,
        "timeout_graceful_shutdown": 10,
        "access_log": log_level == "debug",
    }
    # Bound here, so a port in use is one line of error before anything starts.
    listening = _listen(host, port)
    # uvicorn drains on SIGTERM/SIGINT, then raises the signal again for the handler that was
    # there before it: with this one, a clean stop ends the process with status 0.
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, _stopped)
    if workers == 1:
        config = uvicorn.Config(create_app(settings, keys=keys), **options)
        uvicorn.Server(config).run(sockets=[listening])
        return
    # Several processes share the socket; each builds its app from the settings passed
    # through the environment (uvicorn starts workers from an import string).
    os.environ[SETTINGS_VARIABLE] = settings_to_json(settings)
    os.environ[PARENT_VARIABLE] = str(os.getpid())
    config = uvicorn.Config(
        "cronica.server.app:app_from_environment", factory=True, workers=workers, **options
    )
    supervisor = Multiprocess(config, sockets=[listening])
    supervisor.run()
    if any(process.exitcode == STARTUP_FAILURE for process in supervisor.processes):
        raise CronicaError("the API processes failed to start (their log says why)")


def _preflight(settings: ServerSettings, workers: int) -> None:
    """What would stop the service from starting, said in one line before anything listens:
    a bus URL that cannot be one, the store or read models out of reach; and in-memory stores
    with several processes (each would have its own)."""
    if workers > 1 and any(
        url is not None and url.split("://", 1)[0].lower() == "memory"
        for url in (settings.store, settings.read_models)
    ):
        raise InvalidInputError(
            "--workers above 1 needs a store and read models the processes share:"
            " memory:// would be one per process"
        )
    if settings.bus is not None:
        bus_factory(settings.bus)  # checked, not connected: the relay retries a bus away
    with cronica.connect(settings.store):
        pass
    if settings.read_models is not None:
        connect_read_models(settings.read_models).close()


def _listen(host: str, port: int) -> socket.socket:
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        listening = socket.socket(family, socket.SOCK_STREAM)
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listening.bind((host, port))
    except OSError as exc:
        raise InvalidInputError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    listening.set_inheritable(True)
    return listening


def _stopped(signum: int, frame: FrameType | None) -> None:
    """Nothing to do: uvicorn has already drained and stopped."""


@app.command(short_help="Run the background work (projectors, relay) apart from the API.")
@_reports_errors
def worker(
    store_url: StoreURL = cronica.DEFAULT_STORE_URL,
    read_models_url: ReadModelsURL = None,
    bus_url: BusURL = None,
    batch_size: Annotated[int, typer.Option(min=1, max=100_000, help="Events per batch.")] = 1000,
) -> None:
    """Run the bank service's background work until stopped, beside API processes started
    with cronica serve --no-projector: the projectors, the event handlers, the transfer
    saga's runner and, with --bus, the relay that publishes the log to the bus. Start as many
    workers as you like: they share the projections through leases and take over from one
    that dies; handlers and sagas are safe to run in several at once."""
    from cronica.server.services import Services
    from cronica.server.settings import ServerSettings

    settings = ServerSettings(
        store=store_url, read_models=read_models_url, bus=bus_url, batch_size=batch_size
    )
    if bus_url is not None:
        bus_factory(bus_url)  # a bus URL that cannot be one, said before the store is made
    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    services = Services(settings)
    try:
        services.start()
        relay = "" if services.relay is None else f", the relay to {services.relay.bus.name}"
        typer.echo(
            f"worker {services.projector.owner}: projections, handlers, sagas{relay}", err=True
        )
        while not stopping.wait(0.5):
            pass
    finally:
        services.close()


@keys_app.command(short_help="Create an API key; print its secret once.")
@_reports_errors
def create(
    name: Annotated[str, typer.Argument(help="Who uses the key (recorded as the actor).")],
    key_file: KeyFile = Path("cronica-keys.json"),
    scope: Annotated[
        list[str] | None,
        typer.Option(metavar="SCOPE", help="read, write or admin (repeatable; default read)."),
    ] = None,
) -> None:
    """Add a key to the key file (created if missing) and print its secret: it is shown
    only now. Scopes rise: write includes read, admin includes both."""
    from cronica.server.auth import new_key, read_key_file, write_key_file

    existing = read_key_file(key_file) if key_file.exists() else []
    if any(k.name == name for k in existing):
        raise InvalidInputError(f"{key_file} already has a key named {name!r}")
    secret, key = new_key(name, scope or ["read"])
    write_key_file(key_file, [*existing, key])
    typer.echo(secret)


@keys_app.command(name="list", short_help="The keys in a key file (names and scopes).")
@_reports_errors
def list_keys(
    key_file: KeyFile = Path("cronica-keys.json"),
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON, one per line.")] = False,
) -> None:
    """Names and scopes of the keys in the file (the secrets are not kept)."""
    from cronica.server.auth import read_key_file

    keys = read_key_file(key_file)
    if as_json:
        for key in keys:
            typer.echo(json.dumps({"name": key.name, "scopes": sorted(key.scopes)}))
        return
    for key in keys:
        _console().print(f"{key.name}: {', '.join(sorted(key.scopes))}")
