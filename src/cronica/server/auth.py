"""API keys: ``Authorization: Bearer <key>``, with scopes ``read`` < ``write`` < ``admin``.

Keys are random (``ck_`` and 32 bytes in URL-safe base64) and kept only as SHA-256 hashes, in a
JSON file of entries ``{"name", "scopes", "hash"}`` (``cronica keys create`` writes one). A
slow password hash would add nothing: the keys are random, not chosen by people.

Without keys the API is open: the server then listens on the loopback interface only
(``cronica serve`` refuses another address without keys). With keys, every route but
``/health`` and the OpenAPI document needs one: 401 without a valid key, 403 when its scopes
fall short, and nothing is written. The key's name is recorded as the actor of the commands it
sends.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from cronica.errors import InvalidInputError
from cronica.server.errors import HTTPError, error_response

READ = "read"
WRITE = "write"
ADMIN = "admin"
SCOPES = (READ, WRITE, ADMIN)
_RANK = {scope: rank for rank, scope in enumerate(SCOPES)}


def hash_key(key: str) -> str:
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A key's name, its scopes and the hash of its secret."""

    name: str
    scopes: frozenset[str]
    hash: str

    def allows(self, scope: str) -> bool:
        return any(_RANK[held] >= _RANK[scope] for held in self.scopes)


def new_key(name: str, scopes: Iterable[str]) -> tuple[str, ApiKey]:
    """A fresh secret and its entry (the secret is shown once and never stored)."""
    chosen = frozenset(scopes)
    unknown = chosen - set(SCOPES)
    if not name or unknown or not chosen:
        raise InvalidInputError(
            f"a key needs a name and scopes among {', '.join(SCOPES)}"
            + (f" (unknown: {', '.join(sorted(unknown))})" if unknown else "")
        )
    secret = "ck_" + secrets.token_urlsafe(32)
    return secret, ApiKey(name, chosen, hash_key(secret))


class KeyRing:
    """The keys a server accepts."""

    def __init__(self, keys: Iterable[ApiKey] = ()) -> None:
        self._by_hash = {key.hash: key for key in keys}

    def __bool__(self) -> bool:
        return bool(self._by_hash)

    def find(self, secret: str) -> ApiKey | None:
        wanted = hash_key(secret)
        for known, key in self._by_hash.items():
            if hmac.compare_digest(known, wanted):
                return key
        return None

    @classmethod
    def load(cls, path: str | Path) -> KeyRing:
        """Read a key file; ``InvalidInputError`` if it is missing or malformed."""
        return cls(read_key_file(path))


def read_key_file(path: str | Path) -> list[ApiKey]:
    try:
        entries = json.loads(Path(path).read_text())
        if not isinstance(entries, list):
            raise TypeError(f"a JSON array of keys, not {type(entries).__name__}")
        keys = [
            ApiKey(str(e["name"]), frozenset(str(s) for s in e["scopes"]), str(e["hash"]))
            for e in entries
        ]
    except FileNotFoundError:
        raise InvalidInputError(f"no API key file at {path}") from None
    except OSError as exc:  # a directory, no permission
        raise InvalidInputError(f"API key file {path} cannot be read: {exc}") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidInputError(f"API key file {path} is malformed: {exc!r}") from None
    for key in keys:
        if not key.scopes or not key.scopes <= set(SCOPES) or not key.hash.startswith("sha256:"):
            raise InvalidInputError(f"API key file {path}: bad entry for {key.name!r}")
    return keys


def write_key_file(path: str | Path, keys: Iterable[ApiKey]) -> None:
    entries = [{"name": k.name, "scopes": sorted(k.scopes), "hash": k.hash} for k in keys]
    target = Path(path)
    temporary = target.with_name(f".{target.name}.tmp")
    try:  # written whole or not at all, readable by its owner only from the start
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(json.dumps(entries, indent=2) + "\n")
        os.replace(temporary, target)
    except OSError as exc:
        temporary.unlink(missing_ok=True)
        raise InvalidInputError(f"API key file {path} cannot be written: {exc}") from None


def authenticate(ring: KeyRing, authorization: str, scope: str) -> ApiKey:
    """The key in an ``Authorization`` header, if it has ``scope``; else 401 or 403."""
    kind, _, secret = authorization.partition(" ")
    key = ring.find(secret.strip()) if kind.lower() == "bearer" and secret else None
    if key is None:
        raise HTTPError(
            401,
            "unauthorized",
            "send a valid API key: Authorization: Bearer <key>",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not key.allows(scope):
        raise HTTPError(403, "forbidden", f"the key {key.name!r} lacks the {scope} scope")
    return key


def require(scope: str) -> Callable[[Request], Awaitable[None]]:
    """A route dependency: the request must carry a key with ``scope`` (when keys are set).
    :class:`KeysFirst` has already checked it before the body was read; this states each
    route's scope in the code (and in the OpenAPI document) and checks again."""

    async def check(request: Request) -> None:
        ring: KeyRing = request.app.state.keys
        if not ring:
            return
        key: ApiKey | None = getattr(request.state, "key", None)  # KeysFirst found it
        if key is None:
            key = authenticate(ring, request.headers.get("authorization", ""), scope)
        elif not key.allows(scope):
            raise HTTPError(403, "forbidden", f"the key {key.name!r} lacks the {scope} scope")
        request.state.actor = key.name

    return check


OPEN_PATHS = frozenset(
    {"/health", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc", "/ui/login"}
)
"""Answered without a key: load balancers' probes, the API's own description, the console's
sign-in page."""

KEY_COOKIE = "cronica_key"
"""The cookie the console keeps its API key in (same-site, HTTP-only, for ``/ui`` only)."""


def scope_for(method: str, path: str) -> str | None:
    """The scope a request needs (None: none)."""
    if path in OPEN_PATHS or method == "OPTIONS":  # CORS preflights carry no credentials
        return None
    if path.startswith("/ui/static/") or path == "/ui/logout":
        return None
    if method in ("GET", "HEAD"):
        return READ
    return WRITE  # the routes that need admin say so (require(ADMIN))


def _console_key(headers: dict[str, str]) -> str:
    """The API key a console request carries: its ``Authorization`` header, else the cookie."""
    if headers.get("authorization", "").lower().startswith("bearer "):
        return headers["authorization"]
    for part in headers.get("cookie", "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == KEY_COOKIE and value:
            return f"Bearer {value}"
    return ""


class KeysFirst:
    """ASGI middleware: check the API key before anything else, the body included, so a
    client without a valid key gets 401 or 403 whatever it sends."""

    def __init__(self, app: ASGIApp, ring: KeyRing) -> None:
        self.app = app
        self.ring = ring

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.ring:
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        needed = scope_for(scope["method"], path)
        if needed is not None:
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            console = path == "/ui" or path.startswith("/ui/")
            sent = _console_key(headers) if console else headers.get("authorization", "")
            try:
                key = authenticate(self.ring, sent, needed)
            except HTTPError as refused:
                response: Response
                if console and refused.status == 401:  # a person: to the sign-in page
                    query = scope.get("query_string", b"").decode("latin-1")
                    back = path + (f"?{query}" if query else "")
                    response = RedirectResponse(f"/ui/login?next={quote(back, safe='')}", 303)
                else:
                    response = error_response(
                        refused.status, refused.code, refused.message, refused.headers
                    )
                await response(scope, receive, send)
                return
            scope.setdefault("state", {}).update(actor=key.name, key=key)
        await self.app(scope, receive, send)
