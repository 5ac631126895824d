"""The webhooks view: what the occurrence detector knows, and every delivery's state.

* `proj_webhook_balances`: each account's balance as of the view's position: what the
  detector compares a new balance with to see a threshold crossed.
* `proj_webhook_deliveries`: one row per delivery id. The detector inserts it as
  `detected` (the outbox); the WebhookDelivery events then move it to `scheduled`,
  `retrying`, `delivered` or `gave_up`. The worker schedules what is detected and sends
  what is due from here, but decides on the delivery aggregate itself.

Rows and position commit together (a TrackingRecorder): an occurrence is detected once.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, ClassVar

from projections.base import LedgerView
from projections.tables import Column, Table

WEBHOOK_BALANCES = Table("proj_webhook_balances", (
    Column("account_id", "text", "key"),
    Column("balance", "int", "sum"),
    Column("position", "int", "latest"),
))

DETECTED = "detected"

WEBHOOK_DELIVERIES = Table("proj_webhook_deliveries", (
    Column("delivery_id", "text", "key"),
    # what is delivered: from the first row of the delivery (its detection or its
    # scheduling); nullable only because a later event upserts the row without them
    Column("subscription_id", "text", nullable=True),
    Column("account_id", "text", nullable=True),
    Column("event_type", "text", nullable=True),
    Column("occurrence_id", "text", nullable=True),
    Column("payload", "json", nullable=True),
    Column("created_at", "time", nullable=True),
    Column("attempts", "int", "sum"),
    Column("status", "text", "latest"),
    Column("next_attempt_at", "time", "latest", nullable=True),
    Column("last_error", "text", "latest", nullable=True),
    Column("http_status", "int", "latest", nullable=True),
    Column("updated_at", "time", "latest"),
    Column("position", "int", "latest"),
), indexes=(("status", "next_attempt_at"), ("subscription_id",)))


class WebhooksView(LedgerView):
    name: ClassVar[str] = "webhooks"
    tables = (WEBHOOK_BALANCES, WEBHOOK_DELIVERIES)

    def balances(self, account_ids: Iterable[str]) -> dict[str, int]:
        ids = list(dict.fromkeys(account_ids))
        if not ids:
            return {}
        marks = ", ".join("?" for _ in ids)
        rows = self.select(f"SELECT account_id, balance FROM {{proj_webhook_balances}} "  # noqa: S608
                           f"WHERE account_id IN ({marks})", ids, {"balance": "int"})
        return {str(r["account_id"]): int(r["balance"]) for r in rows}

    def detected(self, limit: int = 500) -> list[dict[str, Any]]:
        """Occurrences detected and not scheduled yet, oldest first."""
        return self.select("SELECT * FROM {proj_webhook_deliveries} WHERE status = ? "
                           "ORDER BY position, delivery_id LIMIT ?",
                           [DETECTED, int(limit)], WEBHOOK_DELIVERIES.kinds())

    def due(self, now: datetime, limit: int = 100) -> list[dict[str, Any]]:
        """Deliveries waiting for an attempt whose time has come, earliest first."""
        return self.select("SELECT * FROM {proj_webhook_deliveries} "
                           "WHERE status IN ('scheduled', 'retrying') AND next_attempt_at <= ? "
                           "ORDER BY next_attempt_at, delivery_id LIMIT ?",
                           [self.param("time", now), int(limit)], WEBHOOK_DELIVERIES.kinds())

    def known(self, delivery_ids: Iterable[str]) -> set[str]:
        ids = list(dict.fromkeys(delivery_ids))
        if not ids:
            return set()
        marks = ", ".join("?" for _ in ids)
        rows = self.select(f"SELECT delivery_id FROM {{proj_webhook_deliveries}} "  # noqa: S608
                           f"WHERE delivery_id IN ({marks})", ids, {})
        return {str(r["delivery_id"]) for r in rows}

    def deliveries(self, *, subscription_id: str | None = None, account_id: str | None = None,
                   limit: int = 100) -> list[dict[str, Any]]:
        """Deliveries, newest first."""
        conditions: list[str] = []
        params: list[Any] = []
        if subscription_id is not None:
            conditions.append("subscription_id = ?")
            params.append(subscription_id)
        if account_id is not None:
            conditions.append("account_id = ?")
            params.append(account_id)
        clause = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        return self.select(f"SELECT * FROM {{proj_webhook_deliveries}}{clause} "  # noqa: S608
                           "ORDER BY position DESC, delivery_id LIMIT ?", [*params, int(limit)],
                           WEBHOOK_DELIVERIES.kinds())
