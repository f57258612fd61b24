"""cronica, opened as users open it: ``cronica.connect(url)`` with the default settings."""

from __future__ import annotations

from urllib.parse import quote, urlsplit

import cronica
from cronica import EventStore, NewEvent
from storebench.sites import Site
from storebench.subjects import AGGREGATE_TYPE, EVENT_DATA, EVENT_METADATA, EVENT_TYPE


def store_url(site: Site) -> str:
    """The URL a user would pass to ``cronica.connect`` for this site."""
    if site.backend == "sqlite":
        assert site.sqlite_path is not None
        return f"sqlite:///{site.sqlite_path.resolve()}"
    parts = urlsplit(site.conninfo)
    return f"postgresql://{parts.netloc}{parts.path}?schema={quote(site.schema)}"


class CronicaWriter:
    """Appends with the exact expected version, as an aggregate's repository would."""

    def __init__(self, store: EventStore, stream: str) -> None:
        self._store = store
        self._stream = stream
        self._version = 0

    def append(self, count: int) -> None:
        events = [NewEvent(EVENT_TYPE, EVENT_DATA, EVENT_METADATA) for _ in range(count)]
        result = self._store.append(self._stream, events, self._version, AGGREGATE_TYPE)
        self._version = result.to_version

    def close(self) -> None:
        """Nothing to release: the writers share the store."""


class CronicaSubject:
    """One store object shared by every writer (threads), so group commit can merge appends."""

    def __init__(self, site: Site) -> None:
        self.store = cronica.connect(store_url(site))

    def writer(self, stream: str) -> CronicaWriter:
        return CronicaWriter(self.store, stream)

    def load_stream(self, stream: str) -> int:
        return len(self.store.read_stream(stream))

    def read_log(self, page_size: int) -> int:
        count, after = 0, 0
        while True:
            page = self.store.read_all(after=after, limit=page_size)
            count += len(page)
            if len(page) < page_size:
                return count
            after = page[-1].position

    def close(self) -> None:
        self.store.close()
