"""One URL factory at the edge: ``cronica.connect("sqlite:///events.db")``."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from cronica._validation import encodes
from cronica.errors import InvalidURLError
from cronica.store.base import EventStore
from cronica.store.memory import MemoryEventStore
from cronica.store.sqlite import SQLiteEventStore

DEFAULT_STORE_URL = "sqlite:///cronica.db"


def connect(url: str, **options: Any) -> EventStore:
    """Open the event store at ``url``; keyword options go to the backend's constructor.

    - ``memory://``: in-process, for tests.
    - ``sqlite:///relative.db`` or ``sqlite:////absolute/path.db`` (SQLAlchemy's form);
      ``?synchronous=normal`` opts into the weaker durability mode.
    - ``postgresql://user@host:port/db`` (or ``postgres://``); ``?schema=name`` puts the tables
      in that schema, ``?synchronous_commit=off`` opts into the weaker durability mode; other
      parameters go to libpq.

    >>> store = connect("memory://")
    """
    check_url(url)
    if "://" not in url:
        raise InvalidURLError(f"not a store URL: {url!r} (try sqlite:///cronica.db)")
    scheme = url.split("://", 1)[0].lower()
    if scheme == "memory":
        return MemoryEventStore(**options)
    if scheme == "sqlite":
        return _connect_sqlite(url, options)
    if scheme in ("postgresql", "postgres") or scheme.startswith("postgresql+"):
        return _connect_postgres(url, options)
    raise InvalidURLError(
        f"unknown store scheme {scheme!r}: use memory://, sqlite:///path or postgresql://..."
    )


def check_url(url: object) -> str:
    """Refuse what cannot be a URL: not a string, a NUL (which libpq and the file system would
    cut the name at) or text with no UTF-8 form."""
    if not isinstance(url, str):
        raise InvalidURLError(f"a URL must be a string, not {type(url).__name__}")
    if "\x00" in url or not encodes(url):
        raise InvalidURLError(f"not a usable URL (NUL or a lone surrogate): {url!r}")
    return url


def _connect_sqlite(url: str, options: dict[str, Any]) -> EventStore:
    path, parameters = sqlite_url_parts(url)
    for key, value in parameters:
        if key == "synchronous" and value.lower() in ("full", "normal"):
            options.setdefault("synchronous", value.lower())
        else:
            raise InvalidURLError(f"unknown SQLite URL parameter {key}={value}")
    return SQLiteEventStore(path, **options)


def sqlite_url_parts(url: str) -> tuple[str, list[tuple[str, str]]]:
    """The file path of a ``sqlite:///...`` URL and its query parameters."""
    rest = url.split("://", 1)[1]
    if not rest.startswith("/") or rest == "/":
        raise InvalidURLError(
            f"SQLite URLs are sqlite:///relative.db or sqlite:////absolute/path.db, not {url!r}"
        )
    path, _, query = rest[1:].partition("?")
    if not path or path == ":memory:":
        raise InvalidURLError("SQLite needs a file path; use memory:// for an in-memory store")
    return path, parse_qsl(query, keep_blank_values=True)


def _connect_postgres(url: str, options: dict[str, Any]) -> EventStore:
    try:
        from cronica.store.postgres import PostgresEventStore
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise InvalidURLError(
            "PostgreSQL needs the driver: pip install 'cronica[postgres]'"
        ) from exc
    conninfo, parameters = postgres_url_parts(url)
    if "schema" in parameters:
        options.setdefault("schema", parameters["schema"])
    if "synchronous_commit" in parameters:
        durable = parameters["synchronous_commit"].lower() not in ("off", "false", "0")
        options.setdefault("synchronous_commit", durable)
    return PostgresEventStore(conninfo, **options)


def postgres_url_parts(url: str) -> tuple[str, dict[str, str]]:
    """A ``postgresql://`` URL as the libpq connection string and cronica's own parameters
    (``schema``, ``synchronous_commit``), which libpq would not understand."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - parsed here, so that a bad one is refused now
    except ValueError as exc:  # "Invalid IPv6 URL", a port out of range
        raise InvalidURLError(f"not a PostgreSQL URL: {url!r} ({exc})") from None
    ours: dict[str, str] = {}
    passthrough = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in ("schema", "synchronous_commit"):
            ours[key] = value
        else:
            passthrough.append((key, value))
    conninfo = urlunsplit(("postgresql", parts.netloc, parts.path, urlencode(passthrough), ""))
    return conninfo, ours
