"""Issuing, checking, listing and revoking bearer tokens.

A token is ``lk_<key_id>_<secret>``. Only its SHA-256 is stored (in the ApiKey's
event); checking a token loads the key by id and compares hashes in constant time.
Issuing and revoking are events of the key's aggregate; the list of keys follows those
events in the log (never showing a token or its hash).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.utils import get_topic

from ledger.domain.base import Actor, utcnow
from ledger.domain.errors import NotFound
from ledger.domain.keys import ApiKey, Role
from ledger.pipeline import Batch, IdempotencySpec, Outcome, Pipeline
from ledger.store import LedgerStore

BOOTSTRAP_KEY_ID = "bootstrap"
CHECK_CACHE_S = 2.0  # a revocation is seen by every process within this time


@dataclass(frozen=True)
class Principal:
    key_id: str
    role: Role
    account_id: str | None = None
    user_id: str | None = None

    def actor(self, request_id: str = "") -> Actor:
        return Actor(id=self.key_id, role=self.role.value, request_id=request_id)


@dataclass(frozen=True)
class IssuedKey:
    key_id: str
    token: str
    principal: Principal
    expires_at: datetime | None


@dataclass(frozen=True)
class KeyInfo:
    """What may be shown of a key: everything but its token and the token's hash."""

    key_id: str
    role: str
    account_id: str | None
    user_id: str | None
    label: str
    expires_at: datetime | None
    issued_at: datetime
    issued_by: str
    revoked_at: datetime | None = None
    revoked_by: str | None = None

    def status(self, now: datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if self.expires_at is not None and self.expires_at <= now else "active"


KEY_TOPICS = (get_topic(ApiKey.Issued), get_topic(ApiKey.Revoked))


def _sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class KeyService:
    def __init__(self, store: LedgerStore, pipeline: Pipeline,
                 bootstrap_token: str | None = None) -> None:
        self.store = store
        self.pipeline = pipeline
        self._bootstrap = _sha256(bootstrap_token) if bootstrap_token else None
        self._checked: dict[str, tuple[float, Principal | None, datetime | None]] = {}
        self._lock = threading.Lock()
        self._directory: dict[UUID, KeyInfo] = {}  # aggregate id -> key, up to _seen
        self._seen = 0
        self._directory_lock = threading.Lock()

    def issue(self, role: str, actor: Actor, *, account_id: str | None = None,
              user_id: str | None = None, expires_at: datetime | None = None,
              label: str = "", idem: IdempotencySpec | None = None,
              respond: Any = None) -> Outcome[Any]:
        key_id = secrets.token_hex(8)
        token = f"lk_{key_id}_{secrets.token_urlsafe(32)}"

        def run(batch: Batch) -> IssuedKey:
            key = ApiKey.issue(key_id, role, account_id, user_id, _sha256(token), expires_at,
                               label, actor, utcnow())
            batch.add(key)
            return IssuedKey(key_id, token, Principal(key_id, Role(key.role), account_id,
                                                      user_id), expires_at)
        return self.pipeline.submit(ApiKey.create_id(key_id), run, actor, idempotency=idem,
                                    respond=respond)

    def revoke(self, key_id: str, reason: str, actor: Actor, *,
               account_id: str | None = None) -> Outcome[Any]:
        """Revoke a key (of `account_id` only, when given: another's is not found)."""
        def run(batch: Batch) -> str:
            key = batch.find(ApiKey.create_id(key_id))
            if key is None or account_id not in (None, key.account_id):
                raise NotFound(f"no key {key_id!r}", field="key_id")
            key.revoke(reason, actor)
            return key_id
        outcome = self.pipeline.submit(ApiKey.create_id(key_id), run, actor)
        with self._lock:
            self._checked.clear()
        return outcome

    def authenticate(self, token: str, now: datetime | None = None) -> Principal | None:
        """The principal a bearer token stands for, or None (unknown, revoked, expired)."""
        digest = _sha256(token)
        if self._bootstrap is not None and hmac.compare_digest(digest, self._bootstrap):
            return Principal(BOOTSTRAP_KEY_ID, Role.PLATFORM_ADMIN)
        parts = token.split("_")
        if len(parts) < 3 or parts[0] != "lk":
            return None
        now = now or utcnow()
        checked = time.monotonic()
        with self._lock:
            hit = self._checked.get(digest)
        if hit is not None and checked - hit[0] < CHECK_CACHE_S:
            expires_at = hit[2]
            return hit[1] if expires_at is None or now < expires_at else None
        key = self.store.find(ApiKey.create_id(parts[1]))
        principal = None
        if key is not None and hmac.compare_digest(key.token_sha256, digest) and key.is_valid(
                now):
            principal = Principal(key.key_id, Role(key.role), key.account_id, key.user_id)
        with self._lock:
            if len(self._checked) > 10_000:
                self._checked.clear()
            self._checked[digest] = (checked, principal, key and key.expires_at)
        return principal

    def issued(self, account_id: str | None = None) -> list[KeyInfo]:
        """Every key ever issued (of one account, if given), oldest first."""
        with self._directory_lock:
            self._follow_log()
            keys = list(self._directory.values())
        return [k for k in keys if account_id is None or k.account_id == account_id]

    def _follow_log(self) -> None:
        """Apply the key events stored since the last call (by position, in order)."""
        recorder = self.store.recorder
        while page := recorder.select_notifications(self._seen, 500, topics=KEY_TOPICS,
                                                    inclusive_of_start=False):
            for notification in page:
                event = self.store.mapper.to_domain_event(notification)
                kid = event.originator_id
                if isinstance(event, ApiKey.Issued):
                    self._directory[kid] = KeyInfo(
                        event.key_id, event.role, event.account_id, event.user_id,
                        event.label, event.expires_at, event.timestamp, event.actor_id)
                elif isinstance(event, ApiKey.Revoked):
                    self._directory[kid] = replace(self._directory[kid],
                                                   revoked_at=event.timestamp,
                                                   revoked_by=event.actor_id)
            self._seen = page[-1].id
