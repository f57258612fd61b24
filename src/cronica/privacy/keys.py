"""Per-subject data keys, kept apart from the events: what crypto-shredding destroys.

Each data subject (a person whose personal data events carry) has a data key: 32 random bytes
for AES-256-GCM. Keys live in a table of their own (``cronica_subject_keys``), in the store's
database or another one, never in the events. When ``CRONICA_MASTER_KEY`` (32 bytes, base64)
is set, each data key is stored wrapped by it (AES-GCM, the subject id as associated data), so
a copy of the key table alone decrypts nothing; without it the data keys are stored as they
are, and whoever reads the key table can read the personal data.

- :meth:`SubjectKeys.active_key` gives the key new data is encrypted with, creating it on first
  use; :meth:`SubjectKeys.rotate` retires it for a new one, and the retired key still decrypts
  what it encrypted (no history is rewritten).
- :meth:`SubjectKeys.forget` deletes every key of the subject and records that the subject was
  forgotten: their ciphertext can never be read again. A forgotten subject gets no new key by
  itself (``SubjectForgottenError``); :meth:`SubjectKeys.allow_again` is the explicit decision
  to store personal data for them again.

>>> from cronica.readmodels import connect_read_models
>>> keys = SubjectKeys(connect_read_models("memory://"))
>>> key_id, key = keys.active_key("acc-1")
>>> keys.key("acc-1", key_id) == key
True
>>> keys.forget("acc-1", reason="GDPR request")
1
>>> keys.key("acc-1", key_id) is None
True
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
import threading
import time
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from cronica._validation import MAX_REASON_LENGTH, check_subject_id, check_text
from cronica.errors import CronicaError, InvalidInputError
from cronica.readmodels.base import ReadModelDatabase, ReadModelTransaction
from cronica.readmodels.sqlite import empty_wal

__all__ = ["MASTER_KEY_VARIABLE", "SubjectForgottenError", "SubjectKeys", "master_key_from"]

MASTER_KEY_VARIABLE = "CRONICA_MASTER_KEY"
"""The environment variable holding the master key (32 bytes, standard base64)."""

KEYS_DDL = (
    """CREATE TABLE IF NOT EXISTS cronica_subject_keys (
        subject_id TEXT NOT NULL,
        key_id     TEXT NOT NULL,
        key_data   TEXT NOT NULL,
        wrapped    INTEGER NOT NULL,
        retired    INTEGER NOT NULL,
        created_at TEXT NOT NULL,
        PRIMARY KEY (subject_id, key_id)
    )""",
    # At most one key in use per subject: two processes creating one at once cannot both win.
    """CREATE UNIQUE INDEX IF NOT EXISTS cronica_subject_keys_active
        ON cronica_subject_keys (subject_id) WHERE retired = 0""",
    """CREATE TABLE IF NOT EXISTS cronica_forgotten_subjects (
        subject_id   TEXT PRIMARY KEY,
        forgotten_at TEXT NOT NULL,
        reason       TEXT NOT NULL
    )""",
)

KEY_BYTES = 32

MAX_CACHED_KEYS = 100_000
"""Past this many keys in memory, the expired ones are dropped."""


class SubjectForgottenError(CronicaError):
    """Personal data for a subject who was forgotten: refused unless allowed again."""

    def __init__(self, subject_id: str) -> None:
        super().__init__(
            f"subject {subject_id!r} was forgotten: storing personal data for them again needs"
            " an explicit SubjectKeys.allow_again"
        )
        self.subject_id = subject_id


def master_key_from(text: str) -> bytes:
    """The master key from its base64 text; ``InvalidInputError`` unless it is 32 bytes."""
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInputError(f"{MASTER_KEY_VARIABLE} is not base64: {exc}") from exc
    if len(key) != KEY_BYTES:
        raise InvalidInputError(f"{MASTER_KEY_VARIABLE} must be {KEY_BYTES} bytes, not {len(key)}")
    return key


class SubjectKeys:
    """The data keys of data subjects in ``db``.

    ``master_key``: wraps the stored keys (default: ``CRONICA_MASTER_KEY`` when set).
    ``cache_seconds``: how long a key read from the table is kept in memory; a subject forgotten
    by another process is still readable here for at most that long (this process's own
    :meth:`forget` takes effect at once).
    """

    def __init__(
        self,
        db: ReadModelDatabase,
        *,
        master_key: bytes | None = None,
        cache_seconds: float = 5.0,
    ) -> None:
        if master_key is None and os.environ.get(MASTER_KEY_VARIABLE):
            master_key = master_key_from(os.environ[MASTER_KEY_VARIABLE])
        if master_key is not None and len(master_key) != KEY_BYTES:
            raise InvalidInputError(f"a master key is {KEY_BYTES} bytes, not {len(master_key)}")
        self.db = db
        self._master = None if master_key is None else AESGCM(master_key)
        self.cache_seconds = cache_seconds
        self._cache: dict[tuple[str, str], tuple[float, bytes, AESGCM]] = {}
        self._active: dict[str, tuple[float, str, bytes, AESGCM]] = {}
        self._lock = threading.Lock()
        with db.transaction() as tx:
            for ddl in KEYS_DDL:
                tx.execute(ddl)

    # -- using keys ----------------------------------------------------------------------------

    def active_key(self, subject_id: str) -> tuple[str, bytes]:
        """(key id, key) to encrypt the subject's new personal data with, made on first use.
        ``SubjectForgottenError`` for a forgotten subject. Kept in memory for ``cache_seconds``:
        within that time a key rotated or destroyed by another process may still encrypt here
        (what it encrypts after a forget is unreadable at once, like the rest)."""
        key_id, key, _ = self.active_sealer(subject_id)
        return key_id, key

    def active_sealer(self, subject_id: str) -> tuple[str, bytes, AESGCM]:
        """:meth:`active_key` with the key's cipher, made once per cached key."""
        if type(subject_id) is not str:  # before the cache: a list is not even hashable
            check_subject_id(subject_id)
        now = time.monotonic()
        cached = self._active.get(subject_id)
        if cached is not None and cached[0] > now:
            return cached[1], cached[2], cached[3]
        check_subject_id(subject_id)
        for _ in range(3):
            rows = self.db.query(
                "SELECT key_id, key_data, wrapped FROM cronica_subject_keys"
                " WHERE subject_id = ? AND retired = 0",
                [subject_id],
            )
            if rows:
                key_id, data, wrapped = rows[0]
                made: tuple[str, bytes] | None = (
                    str(key_id),
                    self._unwrap(subject_id, str(data), bool(wrapped)),
                )
            else:
                made = self._create(subject_id)
            if made is not None:
                sealer = AESGCM(made[1])
                with self._lock:
                    self._active[subject_id] = (now + self.cache_seconds, made[0], made[1], sealer)
                return made[0], made[1], sealer
        raise CronicaError(f"no key could be made for subject {subject_id!r}")  # pragma: no cover

    def key(self, subject_id: str, key_id: str) -> bytes | None:
        """The key ``key_id`` of the subject, or None when it was destroyed (forgotten)."""
        found = self.sealer(subject_id, key_id)
        return None if found is None else found[0]

    def sealer(
        self, subject_id: str, key_id: str, *, fetch: bool = True
    ) -> tuple[bytes, AESGCM] | None:
        """:meth:`key` with the key's cipher, made once per cached key. A key not in memory is
        asked for (never assumed missing), unless ``fetch`` is off because :meth:`prefetch`
        has just asked."""
        if type(subject_id) is not str:  # before the cache: a list is not even hashable
            check_subject_id(subject_id)
        cached = self._cache.get((subject_id, key_id))
        if cached is not None and cached[0] > time.monotonic():
            return cached[1], cached[2]
        if not fetch:
            return None
        check_subject_id(subject_id)
        self._fetch([subject_id])
        cached = self._cache.get((subject_id, key_id))
        # Not read again: the key is gone (forgotten, maybe by another process). A copy kept
        # from before must not open anything now.
        return None if cached is None else (cached[1], cached[2])

    def prefetch(self, keys: Iterable[tuple[str, str]]) -> None:
        """Read into memory the keys ``(subject id, key id)`` not there yet: one query per 500
        subjects, for a page of events that names many. A key still missing afterwards is gone
        (a key is made before anything is encrypted with it)."""
        now = time.monotonic()
        cache = self._cache
        missing = {s for s, k in set(keys) if (c := cache.get((s, k))) is None or c[0] <= now}
        self._fetch(sorted(missing))

    def _fetch(self, subject_ids: list[str]) -> None:
        now = time.monotonic()
        expiry = now + self.cache_seconds
        for start in range(0, len(subject_ids), 500):
            chunk = subject_ids[start : start + 500]
            rows = self.db.query(
                "SELECT subject_id, key_id, key_data, wrapped FROM cronica_subject_keys"
                f" WHERE subject_id IN ({', '.join('?' * len(chunk))})",
                chunk,
            )
            with self._lock:
                if len(self._cache) > MAX_CACHED_KEYS:
                    self._cache = {k: v for k, v in self._cache.items() if v[0] > now}
                # Keys of these subjects kept from earlier and not in the table any more are
                # destroyed: forget them here too.
                asked = set(chunk)
                for gone in [k for k in self._cache if k[0] in asked]:
                    del self._cache[gone]
                for subject_id, key_id, data, wrapped in rows:
                    key = self._unwrap(str(subject_id), str(data), bool(wrapped))
                    self._cache[(str(subject_id), str(key_id))] = (expiry, key, AESGCM(key))

    def rotate(self, subject_id: str) -> str:
        """Retire the subject's key in use for a new one; return the new key's id. What the old
        key encrypted stays readable."""
        check_subject_id(subject_id)
        self._check_not_forgotten(subject_id)
        with self._lock:
            self._active.pop(subject_id, None)
        with self.db.transaction() as tx:
            tx.execute(
                "UPDATE cronica_subject_keys SET retired = 1 WHERE subject_id = ? AND retired = 0",
                [subject_id],
            )
        made = self._create(subject_id)
        return made[0] if made is not None else self.active_key(subject_id)[0]

    # -- forgetting ----------------------------------------------------------------------------

    def forget(self, subject_id: str, *, reason: str) -> int:
        """Destroy every key of the subject and record that they were forgotten; return how
        many keys were destroyed. On SQLite the deleted keys are overwritten on disk and the
        write-ahead log is emptied, so no copy of them is left in the file."""
        check_subject_id(subject_id)
        check_text(reason, "the reason for forgetting", MAX_REASON_LENGTH)
        sqlite = self.db.dialect == "sqlite"
        with self.db.transaction() as tx:
            self._lock_subject(tx, subject_id)
            gone = tx.execute("DELETE FROM cronica_subject_keys WHERE subject_id = ?", [subject_id])
            tx.execute(
                "INSERT INTO cronica_forgotten_subjects (subject_id, forgotten_at, reason)"
                " VALUES (?, ?, ?) ON CONFLICT (subject_id) DO NOTHING",
                [subject_id, _now(), reason],
            )
        self.drop_cached(subject_id)
        if sqlite:
            empty_wal(self.db)
        return gone

    def drop_cached(self, subject_id: str) -> None:
        """Drop the subject's keys held in memory: the next use reads the table (a reader that
        meets ``PersonalDataErased`` calls this, so that a copy of a key destroyed by another
        process opens nothing written after it)."""
        with self._lock:
            self._active.pop(subject_id, None)
            for cached in [k for k in self._cache if k[0] == subject_id]:
                del self._cache[cached]

    def forgotten(self, subject_id: str) -> bool:
        check_subject_id(subject_id)
        return bool(
            self.db.query(
                "SELECT 1 FROM cronica_forgotten_subjects WHERE subject_id = ?", [subject_id]
            )
        )

    def forgotten_at(self, subject_id: str) -> str | None:
        """When the subject was forgotten (ISO 8601), or None."""
        check_subject_id(subject_id)
        rows = self.db.query(
            "SELECT forgotten_at FROM cronica_forgotten_subjects WHERE subject_id = ?",
            [subject_id],
        )
        return str(rows[0][0]) if rows else None

    def has_keys(self, subject_id: str) -> bool:
        """Whether any key of the subject exists (in use or retired)."""
        check_subject_id(subject_id)
        return bool(
            self.db.query("SELECT 1 FROM cronica_subject_keys WHERE subject_id = ?", [subject_id])
        )

    def allow_again(self, subject_id: str) -> None:
        """The explicit decision to store personal data of a forgotten subject again (a person
        who came back): a new key is made on next use; what was forgotten stays unreadable."""
        check_subject_id(subject_id)
        with self.db.transaction() as tx:
            tx.execute("DELETE FROM cronica_forgotten_subjects WHERE subject_id = ?", [subject_id])

    def copy_to(self, other: SubjectKeys) -> int:
        """Copy every key as stored (a wrapped key stays wrapped: ``other`` needs the same
        master key) and every forgotten subject into ``other``, keeping rows it has already
        (``cronica migrate``: the copied events stay readable, the forgotten stay forgotten).
        Returns how many keys were read."""
        keys = self.db.query(
            "SELECT subject_id, key_id, key_data, wrapped, retired, created_at"
            " FROM cronica_subject_keys"
        )
        forgotten = self.db.query(
            "SELECT subject_id, forgotten_at, reason FROM cronica_forgotten_subjects"
        )
        with other.db.transaction() as tx:
            tx.executemany(
                "INSERT INTO cronica_subject_keys (subject_id, key_id, key_data, wrapped,"
                " retired, created_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                keys,
            )
            tx.executemany(
                "INSERT INTO cronica_forgotten_subjects (subject_id, forgotten_at, reason)"
                " VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
                forgotten,
            )
            # Forgotten since an earlier copy: their keys go in the copy too.
            tx.execute(
                "DELETE FROM cronica_subject_keys WHERE subject_id IN"
                " (SELECT subject_id FROM cronica_forgotten_subjects)"
            )
        other._drop_cached()
        return len(keys)

    def _drop_cached(self) -> None:
        with self._lock:
            self._cache.clear()
            self._active.clear()

    # -- inside ------------------------------------------------------------------------------

    def _create(self, subject_id: str) -> tuple[str, bytes] | None:
        """A new key in use for the subject; None when a racing process made one first.
        ``SubjectForgottenError`` for a forgotten subject (checked in the same statement)."""
        key_id, key = uuid.uuid4().hex, secrets.token_bytes(KEY_BYTES)
        data, wrapped = self._wrap(subject_id, key)
        with self.db.transaction() as tx:
            self._lock_subject(tx, subject_id)
            # A racing process that made the subject's key first wins (the unique index).
            made = tx.execute(
                "INSERT INTO cronica_subject_keys (subject_id, key_id, key_data, wrapped,"
                " retired, created_at) SELECT ?, ?, ?, ?, 0, ? WHERE NOT EXISTS"
                " (SELECT 1 FROM cronica_forgotten_subjects WHERE subject_id = ?)"
                " ON CONFLICT DO NOTHING",
                [subject_id, key_id, data, int(wrapped), _now(), subject_id],
            )
        if made:
            return key_id, key
        self._check_not_forgotten(subject_id)
        return None

    def _lock_subject(self, tx: ReadModelTransaction, subject_id: str) -> None:
        """On PostgreSQL, make a subject's key creation and forgetting wait for each other:
        else a key made while the subject is forgotten could outlive the forget (SQLite's
        write transactions already take turns)."""
        if self.db.dialect == "postgresql":
            tx.query("SELECT pg_advisory_xact_lock(hashtext(?))", ["cronica.subject:" + subject_id])

    def _check_not_forgotten(self, subject_id: str) -> None:
        if self.forgotten(subject_id):
            raise SubjectForgottenError(subject_id)

    def _wrap(self, subject_id: str, key: bytes) -> tuple[str, bool]:
        if self._master is None:
            return base64.b64encode(key).decode(), False
        nonce = secrets.token_bytes(12)
        sealed = self._master.encrypt(nonce, key, subject_id.encode())
        return base64.b64encode(nonce + sealed).decode(), True

    def _unwrap(self, subject_id: str, data: str, wrapped: bool) -> bytes:
        raw = base64.b64decode(data)
        if not wrapped:
            return raw
        if self._master is None:
            raise InvalidInputError(
                f"the key of subject {subject_id!r} is wrapped: set {MASTER_KEY_VARIABLE}"
            )
        try:
            return self._master.decrypt(raw[:12], raw[12:], subject_id.encode())
        except InvalidTag as exc:
            raise InvalidInputError(
                f"the key of subject {subject_id!r} does not open with this master key"
            ) from exc


def _now() -> str:
    return datetime.now(UTC).isoformat()
