"""The repository and command handler: load an aggregate, run a command, append its events.

The seed's command handler (1.4.4) in one place: :meth:`Repository.execute` loads the aggregate
from its events (starting from a snapshot when there is one), runs the command, and appends the
new events with the loaded version as the expected version, so two commands racing on one
aggregate cannot both win. The result carries the position of the last event, for
read-your-writes on the query side.

>>> import cronica
>>> from cronica.examples.bank import BankAccount, bank_events
>>> from decimal import Decimal
>>> accounts = Repository(cronica.connect("memory://"), BankAccount, bank_events)
>>> accounts.create("acc-1", lambda account: account.open("Juan")).to_version
1
>>> accounts.execute("acc-1", lambda account: account.deposit(Decimal("50.00"))).position
2
>>> accounts.load("acc-1").balance
Decimal('50.00')
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Generic, TypeVar

import pydantic

from cronica._validation import check_aggregate_id, check_text
from cronica.aggregates import Aggregate
from cronica.audit import Audit, current_audit
from cronica.errors import (
    AggregateTypeMismatchError,
    ConcurrencyError,
    CronicaError,
    DuplicateEventError,
    InvalidInputError,
    StreamNotFoundError,
)
from cronica.event_types import EventRegistry
from cronica.events import NewEvent, RecordedEvent
from cronica.privacy.cipher import SUBJECT_KEY, PersonalData, any_sealed
from cronica.privacy.erasure import ERASURE_EVENT
from cronica.privacy.keys import SubjectForgottenError, SubjectKeys
from cronica.snapshots.base import Snapshot, SnapshotStore
from cronica.store.base import (
    MAX_EVENTS_PER_APPEND,
    EventStore,
    check_as_of,
    check_version_bound,
)

A = TypeVar("A", bound=Aggregate)
Command = Callable[[A], object]
"""A command: a function that calls the aggregate's command methods."""

log = logging.getLogger("cronica.repository")


@dataclass(frozen=True, slots=True)
class CommandResult(Generic[A]):
    """What a command did: the versions it wrote, the last event's position (``None`` when it
    recorded nothing), the events, and the aggregate after it.

    ``replayed`` is True when a command with the same idempotency key had already run: nothing
    was written now, the versions, position and events are those of that first run, and the
    aggregate is as it is now."""

    aggregate_id: str
    from_version: int
    to_version: int
    position: int | None
    events: tuple[NewEvent, ...]
    aggregate: A
    replayed: bool = False


REPLAY_PAGE = 100
"""Events read at a time when collecting what an earlier run of a command wrote."""

IDEMPOTENCY_NAMESPACE: Final = uuid.UUID("5f1c9e4a-6b0d-4f43-9a43-2f0c3d7d8e51")
"""The UUID namespace of event ids derived from idempotency keys (UUID version 5)."""


MAX_IDEMPOTENCY_KEY_LENGTH = 255


def idempotent_event_id(key: str, n: int) -> uuid.UUID:
    """The id of the ``n``-th event (from 1) that a command with idempotency key ``key`` writes:
    the same key always gives the same ids, so the store can tell a repeated command.
    ``InvalidInputError`` for a key that is not 1 to 255 characters of storable text."""
    check_text(key, "an idempotency key", MAX_IDEMPOTENCY_KEY_LENGTH)
    return uuid.uuid5(IDEMPOTENCY_NAMESPACE, f"{key}#{n}")


def stored_run(store: EventStore, key: str) -> list[RecordedEvent] | None:
    """The events a command with idempotency key ``key`` stored (they are consecutive in one
    stream), or None when the key's first event id is not in the store."""
    first = store.read_event(idempotent_event_id(key, 1))
    if first is None:
        return None
    run = [first]
    while len(run) < MAX_EVENTS_PER_APPEND:  # the rest of the run, a page at a time
        page = store.read_stream(first.aggregate_id, from_version=run[-1].version + 1,
                                 limit=REPLAY_PAGE)  # fmt: skip
        for n, recorded in enumerate(page, start=len(run) + 1):
            if recorded.event_id != idempotent_event_id(key, n):
                return run
            run.append(recorded)
        if len(page) < REPLAY_PAGE:
            return run
    return run


SEALED_STATE: Final = "cronica:sealed"
"""The key of a stored snapshot state encrypted with its data subject's key."""


def _snapshot_bound(aggregate_type: str, aggregate_id: str, version: int) -> str:
    """The associated data binding a sealed snapshot state to its aggregate and version."""
    return f"snapshot:{aggregate_type}:{aggregate_id}:{version}"


class _ClassPolicy:
    """The default of ``snapshot_every``: the aggregate class's own policy."""

    def __repr__(self) -> str:
        return "CLASS_POLICY"


CLASS_POLICY: Final = _ClassPolicy()

SNAPSHOT_CACHE_SIZE = 10_000
"""How many aggregates' latest snapshots a repository keeps in memory."""


class Repository(Generic[A]):
    """Aggregates of one class in an event store.

    ``snapshots`` is where snapshots go (default: the store's own snapshot table when snapshots
    are on); ``snapshot_every`` overrides the class's policy (``None``: no snapshots).

    With snapshots on, the repository also keeps in memory (up to :data:`SNAPSHOT_CACHE_SIZE`
    aggregates) the latest snapshot it saw of each aggregate, or that there was none, and the
    state each command saved: a snapshot stays true of its version forever, so a command only
    reads the events after it, without asking the database for a snapshot again. (A snapshot
    another process takes meanwhile is not seen; this repository takes its own when its
    history grows past ``snapshot_every``.)
    """

    def __init__(
        self,
        store: EventStore,
        aggregate_class: type[A],
        events: EventRegistry,
        *,
        snapshots: SnapshotStore | None = None,
        snapshot_every: int | _ClassPolicy | None = CLASS_POLICY,
        keys: SubjectKeys | None = None,
    ) -> None:
        self.store = store
        self.aggregate_class = aggregate_class
        self.events = events
        self.snapshot_every = (
            aggregate_class.snapshot_every
            if isinstance(snapshot_every, _ClassPolicy)
            else snapshot_every
        )
        # The latest snapshot seen of each aggregate; None: there was none when last asked.
        self._cache: OrderedDict[str, Snapshot | None] = OrderedDict()
        if self.snapshot_every is not None and (
            isinstance(self.snapshot_every, bool)
            or not isinstance(self.snapshot_every, int)
            or self.snapshot_every < 1
        ):
            raise InvalidInputError(f"snapshot_every must be an integer >= 1, not {snapshot_every}")
        if snapshots is None and self.snapshot_every is not None:
            snapshots = store.snapshot_store()
        self.snapshots = snapshots
        # Checked at start-up: every chain complete up to the versions the code reads.
        if store.upcasters is not None:
            store.upcasters.check(events)
        self._keys = keys
        self._personal: PersonalData | None = None
        self.seals_personal_data = bool(events.personal_fields())
        """Whether this aggregate's events declare personal data: then they are encrypted,
        and so are its snapshots."""
        self._skip_erasures = ERASURE_EVENT not in events

    @property
    def personal_data(self) -> PersonalData:
        """Encrypts and decrypts the events' personal fields with the subjects' keys (by
        default the store's, :meth:`EventStore.subject_keys`), made on first use."""
        if self._personal is None:
            keys = self.store.subject_keys() if self._keys is None else self._keys
            self._personal = PersonalData(keys, self.events.personal_fields())
        return self._personal

    # -- loading -----------------------------------------------------------------------------

    def load(
        self, aggregate_id: str, *, version: int | None = None, as_of: datetime | None = None
    ) -> A:
        """The aggregate now, or as it was after event ``version`` or at the moment ``as_of``.

        Raises ``StreamNotFoundError`` when it has no events (or had none by then), and
        ``InvalidReadError`` for a version or moment that is not one.
        """
        check_aggregate_id(aggregate_id)
        check_version_bound(version)
        check_as_of(as_of)
        aggregate = self.aggregate_class(aggregate_id)
        snapshot, stale = self._usable_snapshot(aggregate_id, version, as_of)
        last: RecordedEvent | None = None
        if snapshot is not None:
            try:
                aggregate.restore_state(snapshot.state)
            except pydantic.ValidationError as exc:  # a cache that no longer fits: rebuild
                log.warning("snapshot of %s does not fit its class (%s): not used", aggregate_id,
                            exc.errors()[0]["msg"])  # fmt: skip
                self.forget_cached(aggregate_id)
                aggregate, snapshot, stale = self.aggregate_class(aggregate_id), None, True
            else:
                aggregate.version = snapshot.version
        events = self.store.read_stream(
            aggregate_id, from_version=aggregate.version + 1, to_version=version, as_of=as_of
        )
        if snapshot is not None and any(e.event_type == ERASURE_EVENT for e in events):
            # The subject was forgotten since the snapshot: it may hold their personal data.
            self.forget_cached(aggregate_id)
            aggregate, snapshot, stale = self.aggregate_class(aggregate_id), None, True
            events = self.store.read_stream(aggregate_id, to_version=version, as_of=as_of)
        if events:
            # One stream has one aggregate type: checking the first event checks them all.
            self._check_type(events[0])
            decode, apply, skip = self.events.decode, aggregate.apply, self._skip_erasures
            if any_sealed(events):
                events = self.personal_data.decrypt_all(events)
            for recorded in events:
                if skip and recorded.event_type == ERASURE_EVENT:
                    continue  # handled here when the aggregate's events do not include it
                apply(decode(recorded))
            last = events[-1]
            aggregate.version = last.version
        if aggregate.version == 0:
            raise StreamNotFoundError(aggregate_id)
        every = self.snapshot_every
        if (
            every is not None
            and last is not None
            and version is None
            and as_of is None
            and (stale or (snapshot is None and aggregate.version >= every))
        ):
            # An outdated snapshot, or a long history without one: replace it now.
            self._take_snapshot(aggregate, last.timestamp)
        return aggregate

    def _usable_snapshot(
        self, aggregate_id: str, version: int | None, as_of: datetime | None
    ) -> tuple[Snapshot | None, bool]:
        """The stored snapshot if it can start this load, and whether it is stale (to replace)."""
        if self.snapshots is None:
            return None, False
        # A state kept in memory may hold personal data erased since, when the erasure comes
        # after the version asked for: a past state starts from the stored snapshot only,
        # which is sealed and opens only while the subject's keys exist.
        from_memory = not self.seals_personal_data or (version is None and as_of is None)
        if from_memory and aggregate_id in self._cache:
            snapshot = self._cache[aggregate_id]
        else:
            try:
                snapshot = self._unsealed(self.snapshots.load(aggregate_id))
            except CronicaError as exc:  # a cache: fall back to the events
                log.warning("snapshot of %s unreadable, loading from events: %s", aggregate_id, exc)
                return None, False
            if from_memory:
                self._remember(aggregate_id, snapshot)
        if snapshot is None:
            return None, False
        if (
            snapshot.schema_version != self.aggregate_class.snapshot_version
            or snapshot.aggregate_type != self.aggregate_class.aggregate_type
        ):
            return None, True
        if (version is not None and snapshot.version > version) or (
            as_of is not None and snapshot.timestamp > as_of
        ):
            return None, False
        return snapshot, False

    def _check_type(self, recorded: RecordedEvent) -> None:
        if recorded.aggregate_type != self.aggregate_class.aggregate_type:
            raise AggregateTypeMismatchError(
                recorded.aggregate_id, self.aggregate_class.aggregate_type, recorded.aggregate_type
            )

    # -- saving ------------------------------------------------------------------------------

    def save(
        self, aggregate: A, *, audit: Audit | None = None, idempotency_key: str | None = None
    ) -> CommandResult[A]:
        """Append the aggregate's pending events, expecting the version it was loaded at.

        Raises ``ConcurrencyError`` when another writer got there first; nothing is written.
        With ``idempotency_key``, the events' ids derive from it (:func:`idempotent_event_id`).
        """
        pending = aggregate.pending_events
        start = aggregate.stored_version
        if not pending:
            return CommandResult(aggregate.id, start + 1, start, None, (), aggregate)
        answers = (audit or Audit()).merged_over(current_audit())
        if idempotency_key is not None and answers.command_id is None:
            # One command id for every run of the command: a retry stores the same metadata.
            command_id = str(uuid.uuid5(IDEMPOTENCY_NAMESPACE, idempotency_key))
            answers = dataclasses.replace(answers, command_id=command_id)
        metadata = answers.metadata()
        new_events = tuple(
            self.events.to_new_event(
                event,
                metadata,
                None if idempotency_key is None else idempotent_event_id(idempotency_key, n),
            )
            for n, event in enumerate(pending, start=1)
        )
        if self.seals_personal_data:
            encrypt, subject = self.personal_data.encrypt, aggregate.data_subject
            new_events = tuple(encrypt(event, subject, complete=True) for event in new_events)
        result = self.store.append(
            aggregate.id,
            new_events,
            expected_version=start,
            aggregate_type=self.aggregate_class.aggregate_type,
        )
        if idempotency_key is not None and result.from_version != start + 1:
            # The store answered a retry: a racing run stored these very events at another
            # version. The aggregate in hand is not the stored one; report that run.
            self.forget_cached(aggregate.id)
            earlier = self.earlier_run(aggregate.id, idempotency_key)
            assert earlier is not None
            return earlier
        aggregate.mark_saved()
        every = self.snapshot_every
        if every is not None and result.to_version // every > start // every:
            self._take_snapshot(aggregate, None)
        elif self.snapshots is not None:
            self._remember_state(aggregate)
        return CommandResult(
            aggregate.id,
            result.from_version,
            result.to_version,
            result.position,
            new_events,
            aggregate,
        )

    def snapshot(self, aggregate_id: str) -> Snapshot:
        """Load the aggregate and store a snapshot of its latest version now (``cronica
        snapshot``). Raises ``StreamNotFoundError`` for an unknown aggregate and
        ``InvalidInputError`` when this repository keeps no snapshots."""
        if self.snapshots is None:
            raise InvalidInputError(
                f"snapshots are off for {self.aggregate_class.__name__} (snapshot_every=None)"
            )
        return self._store_snapshot(self.load(aggregate_id), None)

    def _store_snapshot(self, aggregate: A, timestamp: datetime | None) -> Snapshot:
        """Store (sealed when it must be) and remember a snapshot of the aggregate now."""
        assert self.snapshots is not None
        snapshot = self._snapshot_of(aggregate, timestamp)
        self.snapshots.save(self._sealed(snapshot, aggregate.data_subject))
        self._remember(aggregate.id, snapshot)
        return snapshot

    def _snapshot_of(self, aggregate: A, timestamp: datetime | None) -> Snapshot:
        """A snapshot of the aggregate's state, dated by its last event (or ``timestamp``)."""
        if timestamp is None:
            timestamp = self.store.read_stream(
                aggregate.id, from_version=aggregate.version, limit=1
            )[0].timestamp
        return Snapshot(
            aggregate.id,
            self.aggregate_class.aggregate_type,
            aggregate.version,
            self.aggregate_class.snapshot_version,
            aggregate.snapshot_state(),
            timestamp,
        )

    def _take_snapshot(self, aggregate: A, timestamp: datetime | None) -> None:
        if self.snapshots is None:
            return
        try:
            self._store_snapshot(aggregate, timestamp)
        except SubjectForgottenError:
            # Nothing of theirs may be sealed again; their aggregate loads from its events.
            log.debug("no snapshot of %s: its data subject was forgotten", aggregate.id)
        except CronicaError as exc:  # a snapshot is a cache: the command has succeeded
            log.warning("snapshot of %s not taken: %s", aggregate.id, exc)

    def stored_snapshot(self, aggregate_id: str) -> Snapshot | None:
        """The aggregate's stored snapshot with its state decrypted, or None when there is none
        (or its data subject was forgotten: it can no longer be opened)."""
        if self.snapshots is None:
            return None
        return self._unsealed(self.snapshots.load(aggregate_id))

    def _sealed(self, snapshot: Snapshot, subject_id: str) -> Snapshot:
        """The snapshot as stored: its state encrypted with the data subject's key when the
        aggregate's events carry personal data (its state may hold it too)."""
        if not self.seals_personal_data:
            return snapshot
        bound = _snapshot_bound(snapshot.aggregate_type, snapshot.aggregate_id, snapshot.version)
        sealed = self.personal_data.seal(subject_id, snapshot.state, bound)
        return dataclasses.replace(snapshot, state={SEALED_STATE: sealed, SUBJECT_KEY: subject_id})

    def _unsealed(self, snapshot: Snapshot | None) -> Snapshot | None:
        """A stored snapshot with its state decrypted; None when its subject's key is gone."""
        if snapshot is None or set(snapshot.state) != {SEALED_STATE, SUBJECT_KEY}:
            return snapshot
        bound = _snapshot_bound(snapshot.aggregate_type, snapshot.aggregate_id, snapshot.version)
        opened, state = self.personal_data.unseal(
            str(snapshot.state[SUBJECT_KEY]), str(snapshot.state[SEALED_STATE]), bound
        )
        if not opened or not isinstance(state, dict):
            return None
        return dataclasses.replace(snapshot, state=state)

    def _remember_state(self, aggregate: A) -> None:
        """Keep the state just saved in memory, as a snapshot this repository alone uses: the
        next command on the aggregate reads only the events written after it. Its timestamp is
        taken after the commit, so it is never earlier than its event's (``as_of`` loads stay
        exact)."""
        try:
            state = aggregate.snapshot_state()
        except CronicaError as exc:
            log.warning("state of %s not kept in memory: %s", aggregate.id, exc)
            return
        self._remember(
            aggregate.id,
            Snapshot(
                aggregate.id,
                self.aggregate_class.aggregate_type,
                aggregate.version,
                self.aggregate_class.snapshot_version,
                state,
                datetime.now(UTC),
            ),
        )

    def _remember(self, aggregate_id: str, snapshot: Snapshot | None) -> None:
        cache = self._cache
        cache[aggregate_id] = snapshot
        cache.move_to_end(aggregate_id)
        if len(cache) > SNAPSHOT_CACHE_SIZE:
            cache.popitem(last=False)

    def forget_cached(self, aggregate_id: str | None = None) -> None:
        """Drop the in-memory snapshot of ``aggregate_id`` (of every aggregate when None), for
        when a snapshot must not be used any more (its aggregate's data was erased)."""
        if aggregate_id is None:
            self._cache.clear()
        else:
            self._cache.pop(aggregate_id, None)

    # -- commands ----------------------------------------------------------------------------

    def create(
        self,
        aggregate_id: str,
        command: Command[A],
        *,
        audit: Audit | None = None,
        idempotency_key: str | None = None,
    ) -> CommandResult[A]:
        """Run ``command`` on a new aggregate and append its events; ``ConcurrencyError`` when
        the aggregate already exists (unless this very command, by ``idempotency_key``, created
        it: see :meth:`execute`)."""
        if idempotency_key is not None:
            earlier = self.earlier_run(aggregate_id, idempotency_key)
            if earlier is not None:
                return earlier
        aggregate = self.aggregate_class(aggregate_id)
        try:
            command(aggregate)
            return self.save(aggregate, audit=audit, idempotency_key=idempotency_key)
        except CronicaError:
            earlier = self._earlier(aggregate_id, idempotency_key)
            if earlier is None:
                raise
            return earlier

    def execute(
        self,
        aggregate_id: str,
        command: Command[A],
        *,
        audit: Audit | None = None,
        retries: int = 0,
        idempotency_key: str | None = None,
    ) -> CommandResult[A]:
        """Load the aggregate, run ``command`` on it, append its events.

        With ``idempotency_key``, the command's effect is stored at most once: its events' ids
        derive from the key, and when they are already stored (the command ran before, say in
        a process that crashed before it could tell, or in a process racing this one) the
        result is the first run's, with ``replayed`` set, and nothing more is written. The key
        is looked up after the aggregate is loaded and again when the command is refused, so a
        run that another process committed meanwhile is found, not refused. A saga's step is
        such a command. (A command that records nothing stores nothing, so it may run again.)

        With ``retries=n``, a ``ConcurrencyError`` (another command changed the aggregate since
        it was loaded) reloads it and runs the command again, up to n more times; the command
        must then be safe to re-run (it decides on the fresh state). Raises
        ``StreamNotFoundError`` for an unknown aggregate and whatever the command raises
        (``InvariantError``), with nothing written.
        """
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise InvalidInputError(f"retries must be an integer >= 0, not {retries!r}")
        key = idempotency_key
        attempt = 0
        while True:
            try:
                aggregate = self.load(aggregate_id)
            except StreamNotFoundError:
                if earlier := self._earlier(aggregate_id, key):
                    return earlier
                raise
            if earlier := self._earlier(aggregate_id, key):
                return earlier
            try:
                command(aggregate)
            except Exception:
                if earlier := self._earlier(aggregate_id, key):
                    return earlier  # refused only because a racing run got there first
                raise
            try:
                return self.save(aggregate, audit=audit, idempotency_key=key)
            except DuplicateEventError:
                if earlier := self._earlier(aggregate_id, key):
                    return earlier  # a racing run of this very command stored it first
                raise
            except ConcurrencyError:
                if attempt >= retries:
                    if earlier := self._earlier(aggregate_id, key):
                        return earlier
                    raise
                attempt += 1
                log.info("%s changed meanwhile; running the command again", aggregate_id)

    def _earlier(self, aggregate_id: str, key: str | None) -> CommandResult[A] | None:
        return None if key is None else self.earlier_run(aggregate_id, key)

    def earlier_run(self, aggregate_id: str, idempotency_key: str) -> CommandResult[A] | None:
        """What the command with ``idempotency_key`` wrote to ``aggregate_id`` when it ran, or
        None if it has not run (or recorded nothing). ``DuplicateEventError`` when the key's
        first event id is stored in another stream (the key was used there, or a saga fenced
        the key off: see :mod:`cronica.sagas.runner`)."""
        run = stored_run(self.store, idempotency_key)
        if run is None:
            return None
        first, last = run[0], run[-1]
        if first.aggregate_id != aggregate_id:
            raise DuplicateEventError(
                str(first.event_id),
                f"in stream {first.aggregate_id!r}: idempotency key {idempotency_key!r} was"
                f" used there, not on {aggregate_id!r}",
            )
        self.forget_cached(aggregate_id)  # what this repository remembers may predate the run
        return CommandResult(
            aggregate_id,
            first.version,
            last.version,
            last.position,
            tuple(NewEvent(r.event_type, r.data, r.metadata, r.event_id) for r in run),
            self.load(aggregate_id),
            replayed=True,
        )
