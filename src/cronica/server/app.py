"""The ASGI application: the seed's API gateway in front of the command and query handlers.

>>> from cronica.server import ServerSettings, create_app
>>> app = create_app(ServerSettings(store="memory://"))

Run it with ``cronica serve`` (uvicorn), or any ASGI server.
"""

from __future__ import annotations

import asyncio
import ctypes
import dataclasses
import json
import os
import signal
import sys
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from types import FrameType
from typing import Any

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

import cronica
from cronica.readmodels.base import ReadModelDatabase
from cronica.server import console, routes_bank, routes_ops, routes_store, routes_transfers
from cronica.server.auth import KeyRing, KeysFirst
from cronica.server.console.routes import STATIC
from cronica.server.errors import install_error_handlers
from cronica.server.metrics import Metrics
from cronica.server.middleware import BodyLimit, RequestMetrics
from cronica.server.services import Services
from cronica.server.settings import ServerSettings
from cronica.store.base import EventStore

DESCRIPTION = """\
Event sourcing for Python: the store API (append, read, follow the log), the seed's bank
service (commands and queries on separate paths, CQRS) and operations.

A command answers with the **position** of its last event; pass it as `minPosition` to a query
to read your own writes. Errors are JSON `{"error": code, "message": ...}`.
"""


def create_app(
    settings: ServerSettings | None = None,
    *,
    store: EventStore | None = None,
    keys: KeyRing | None = None,
) -> FastAPI:
    """The application for ``settings``. The store, read models and projector open when the
    application starts (its lifespan) and close when it stops. ``store`` uses an open store
    instead of ``settings.store`` (the caller closes it); ``keys`` replaces the keys of
    ``settings.api_keys_file``."""
    chosen = settings or ServerSettings()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services = Services(chosen, store=store)
        app.state.services = services
        loop = asyncio.get_running_loop()
        restore = _on_stop_signals(lambda: loop.call_soon_threadsafe(services.stopping.set))
        try:
            services.start()
            yield
        finally:
            restore()
            app.state.services = None
            services.close()

    app = FastAPI(
        title="cronica",
        version=cronica.__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.services = None
    if keys is None:
        keys = KeyRing.load(chosen.api_keys_file) if chosen.api_keys_file else KeyRing()
    app.state.keys = keys
    app.state.metrics = metrics
    metrics.watch(lambda: _store_and_read_models(app))
    install_error_handlers(app)
    app.include_router(routes_store.router)
    app.include_router(routes_bank.router)
    app.include_router(routes_transfers.router)
    app.include_router(routes_ops.router)
    app.include_router(console.router)
    app.mount("/ui/static", STATIC, name="console-static")
    app.add_middleware(BodyLimit, limit=chosen.max_body_bytes)
    app.add_middleware(KeysFirst, ring=keys)
    app.add_middleware(RequestMetrics, metrics=metrics)
    if chosen.cors_origins:  # outermost: its headers go on refusals too
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(chosen.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "X-Actor", "X-Reason"],
        )
    return app


SETTINGS_VARIABLE = "CRONICA_SERVER_SETTINGS"
"""How ``cronica serve --workers N`` hands its settings to the worker processes."""


def settings_to_json(settings: ServerSettings) -> str:
    return json.dumps(dataclasses.asdict(settings))


PARENT_VARIABLE = "CRONICA_SERVE_PARENT"
"""The process id of ``cronica serve --workers N``, which its API processes end with."""


def app_from_environment() -> FastAPI:
    """The application for the settings in ``CRONICA_SERVER_SETTINGS`` (a uvicorn factory)."""
    _end_with_parent()
    fields = json.loads(os.environ[SETTINGS_VARIABLE])
    fields["cors_origins"] = tuple(fields.get("cors_origins") or ())
    return create_app(ServerSettings(**fields))


def _end_with_parent() -> None:
    """Ask Linux to send this API process SIGTERM when ``cronica serve`` dies (killed, it
    cannot stop its workers; they would go on serving the port, orphaned)."""
    parent = os.environ.get(PARENT_VARIABLE)
    if parent is None or not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if str(os.getppid()) != parent:  # it died before the request was made
        os.kill(os.getpid(), signal.SIGTERM)


_PR_SET_PDEATHSIG = 1


def _store_and_read_models(app: FastAPI) -> tuple[EventStore, ReadModelDatabase] | None:
    services: Services | None = app.state.services
    if services is None:
        return None
    return services.store, services.read_models


def _on_stop_signals(callback: Callable[[], object]) -> Callable[[], None]:
    """Call ``callback`` too when SIGTERM or SIGINT arrives (before the server's own handler,
    which starts the graceful shutdown): the live logs end then, instead of holding the
    shutdown until its timeout. Returns what puts the handlers back. Signals reach only the
    main thread: elsewhere (a test client), nothing is installed."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous: dict[int, Any] = {
        sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)
    }
    if not all(callable(before) for before in previous.values()):
        return lambda: None  # no server's handlers to chain to: leave the signals alone

    def handler(sig: int, frame: FrameType | None) -> None:
        callback()
        before = previous[sig]
        if callable(before):
            before(sig, frame)

    for sig in previous:
        signal.signal(sig, handler)

    def restore() -> None:
        for sig, before in previous.items():
            signal.signal(sig, before)

    return restore
