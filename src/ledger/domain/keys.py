"""API keys: a bearer token per caller, stored only as its hash."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from ledger.domain.base import Actor, LedgerAggregate, natural_id
from ledger.domain.errors import Conflict, InvalidCommand


class Role(StrEnum):
    PLATFORM_ADMIN = "platform_admin"
    SERVICE = "service"
    ACCOUNT_ADMIN = "account_admin"
    USER = "user"
    AUDITOR = "auditor"


ACCOUNT_BOUND = frozenset({Role.ACCOUNT_ADMIN, Role.USER})


class ApiKey(LedgerAggregate):
    class Issued(LedgerAggregate.Created):
        key_id: str
        role: str
        account_id: str | None
        user_id: str | None
        token_sha256: str
        expires_at: datetime | None
        label: str

    class Revoked(LedgerAggregate.Event):
        reason: str

        def apply(self, key: ApiKey) -> None:
            key.revoked_at = self.timestamp

    def __init__(self, key_id: str, role: str, account_id: str | None, user_id: str | None,
                 token_sha256: str, expires_at: datetime | None, label: str) -> None:
        self.key_id = key_id
        self.role = role
        self.account_id = account_id
        self.user_id = user_id
        self.token_sha256 = token_sha256
        self.expires_at = expires_at
        self.label = label
        self.revoked_at: datetime | None = None

    @staticmethod
    def create_id(key_id: str) -> Any:
        return natural_id("api-key", key_id)

    @classmethod
    def issue(cls, key_id: str, role: str, account_id: str | None, user_id: str | None,
              token_sha256: str, expires_at: datetime | None, label: str, actor: Actor,
              now: datetime) -> ApiKey:
        try:
            r = Role(role)
        except ValueError:
            raise InvalidCommand(f"role must be one of {[x.value for x in Role]}",
                                 field="role") from None
        if r in ACCOUNT_BOUND and not account_id:
            raise InvalidCommand(f"a {r.value} key must be bound to an account",
                                 field="account_id")
        if r is Role.USER and not user_id:
            raise InvalidCommand("a user key must be bound to a user", field="user_id")
        if r not in ACCOUNT_BOUND and (account_id or user_id):
            raise InvalidCommand(f"a {r.value} key is not bound to an account",
                                 field="account_id")
        if expires_at is not None and expires_at <= now:
            raise InvalidCommand("expires_at must be in the future", field="expires_at")
        key: ApiKey = cls._open(cls.Issued, actor, key_id=key_id, role=r.value,
                                account_id=account_id, user_id=user_id,
                                token_sha256=token_sha256, expires_at=expires_at, label=label)
        return key

    def revoke(self, reason: str, actor: Actor) -> None:
        if self.revoked_at is not None:
            raise Conflict(f"key {self.key_id} is already revoked", field="key_id")
        self._record(self.Revoked, actor, reason=reason)

    def is_valid(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)
