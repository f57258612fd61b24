"""What a server is started with (``cronica serve`` options, ``CRONICA_*`` variables)."""

from __future__ import annotations

from dataclasses import dataclass, field

from cronica.connect import DEFAULT_STORE_URL as DEFAULT_STORE


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """The service's configuration.

    - ``store``: the event store's URL (``sqlite:///cronica.db``, ``postgresql://...``).
    - ``read_models``: where the read models live; ``None``: in the store's own database.
    - ``run_projector``: run the background work in this process (``cronica serve``): the
      projector, and the relay when there is a bus; off when ``cronica worker`` runs them.
    - ``bus``: the event bus the relay publishes the log to (``redis://...``); None: no relay.
    - ``api_keys_file``: a key file (``cronica keys create``): every route but ``/health`` then
      needs one of its keys (see :mod:`cronica.server.auth`). ``cronica serve`` refuses to
      listen beyond the loopback interface without one.
    - ``max_body_bytes``: the largest request body; larger ones get 413.
    - ``cors_origins``: origins allowed to call the API from a browser (none by default).
    - ``min_position_timeout``: how long a query with ``minPosition`` waits for the read model.
    - ``batch_size``: events per batch of the projector and the relay (None: their defaults).
    """

    store: str = DEFAULT_STORE
    read_models: str | None = None
    bus: str | None = None
    run_projector: bool = True
    api_keys_file: str | None = None
    max_body_bytes: int = 4 * 1024 * 1024
    cors_origins: tuple[str, ...] = field(default_factory=tuple)
    min_position_timeout: float = 5.0
    max_event_bytes: int | None = None
    batch_size: int | None = None
