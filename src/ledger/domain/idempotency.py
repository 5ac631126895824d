"""Idempotency keys, stored as aggregates in the same transaction as the command.

The key's aggregate id is derived from (scope, key). Creating it twice collides on the
event store's (originator_id, version) uniqueness, so a retry racing its original can
never both be applied: one save wins, the other reloads and answers from the record.
"""

from __future__ import annotations

from typing import Any

from ledger.domain.base import Actor, LedgerAggregate, natural_id


class IdempotencyRecord(LedgerAggregate):
    class Recorded(LedgerAggregate.Created):
        scope: str
        key: str
        fingerprint: str
        status: int
        body: dict[str, Any]

    def __init__(self, scope: str, key: str, fingerprint: str, status: int,
                 body: dict[str, Any]) -> None:
        self.scope = scope
        self.key = key
        self.fingerprint = fingerprint
        self.status = status
        self.body = body

    @staticmethod
    def create_id(scope: str, key: str) -> Any:
        return natural_id("idempotency", scope, key)

    @classmethod
    def record(cls, scope: str, key: str, fingerprint: str, status: int,
               body: dict[str, Any], actor: Actor) -> IdempotencyRecord:
        record: IdempotencyRecord = cls._open(cls.Recorded, actor, scope=scope, key=key,
                                              fingerprint=fingerprint, status=status, body=body)
        return record
