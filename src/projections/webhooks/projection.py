"""The occurrence detector: credit and provider-call events -> deliveries to schedule.

It follows the log in order, with each account's balance from its own view, and the
subscriptions as they stood at each event (`SubscriptionInfo.active_at`: one created
after an event does not hear of it). What it tells:

* `low_balance`: the balance went from at or above the subscription's threshold to
  below it. Later debits while below tell nothing; going back to or above re-arms it.
  The balance is the account's credits (holds not counted: a hold and its release do
  not make it flap).
* `balance_exhausted`: the balance went from above zero to zero.
* `lot_expired`: a LotExpired event (its breakage).
* `hold_expired`: a hold released by the sweeper because nobody settled it.
* `provider_call_failed`: a metered AI call failed (nothing was charged).

`lot_expiring` depends on the clock, not on an event: the worker's scan finds it.

An occurrence is named by the event that caused it (aggregate id and version), and its
delivery id by that name and the subscription: replaying the log (a rebuild) detects
the same deliveries under the same ids, which the event store will not schedule twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ledger.credits import transaction_row
from ledger.domain.calls import ProviderCall
from ledger.domain.credits import CreditAccount
from ledger.domain.webhooks import (
    BALANCE_EXHAUSTED,
    HOLD_EXPIRED,
    LOT_EXPIRED,
    LOW_BALANCE,
    PROVIDER_CALL_FAILED,
    WebhookDelivery,
)
from ledger.webhooks import SubscriptionInfo, WebhookService
from projections.base import CREDIT_EVENTS, LedgerProjection, LogLookup, topics_of
from projections.tables import Changes
from projections.webhooks.view import (
    DETECTED,
    WEBHOOK_BALANCES,
    WEBHOOK_DELIVERIES,
    WebhooksView,
)

DELIVERY_EVENTS = (WebhookDelivery.Scheduled, WebhookDelivery.AttemptFailed,
                   WebhookDelivery.Delivered, WebhookDelivery.GaveUp)


class WebhooksProjection(LedgerProjection[WebhooksView]):
    name = "webhooks"
    topics = topics_of(*CREDIT_EVENTS, ProviderCall.Failed, *DELIVERY_EVENTS)

    def __init__(self, view: WebhooksView, log: LogLookup, webhooks: WebhookService) -> None:
        super().__init__(view, log)
        self.webhooks = webhooks
        self._subscriptions: list[SubscriptionInfo] = []
        self._balances: dict[str, int] = {}

    def changes(self, items: Iterable[tuple[int, Any]]) -> Changes:
        # The subscriptions up to the log's head (each knows where it begins and ends),
        # and balances as the view holds them at the batch's start.
        self._subscriptions = self.webhooks.directory()
        self._balances = {}
        return super().changes(items)

    def project(self, event: Any, position: int, changes: Changes) -> None:
        handler = self._handlers.get(type(event))
        if handler is not None:
            handler(self, event, position, changes)

    def _credit(self, event: Any, position: int, changes: Changes) -> None:
        self.log.note(event)
        tx = transaction_row(event)
        if tx is None:
            return
        account = self.log.account_id(event.originator_id)
        delta: int = tx["balance_delta"]
        if delta:
            before = self._balance(account)
            after = before + delta
            self._balances[account] = after
            changes.add(WEBHOOK_BALANCES, WEBHOOK_BALANCES.row(
                account_id=account, balance=delta, position=position))
            data = {"balance": after, "previous_balance": before}
            for sub in self._listening(account, position, LOW_BALANCE):
                threshold = sub.low_balance_threshold or 0
                if before >= threshold > after:
                    self._detect(changes, sub, LOW_BALANCE, event, position, account,
                                 {**data, "threshold": threshold})
            if before > 0 >= after:
                for sub in self._listening(account, position, BALANCE_EXHAUSTED):
                    self._detect(changes, sub, BALANCE_EXHAUSTED, event, position, account,
                                 data)
        if isinstance(event, CreditAccount.LotExpired):
            for sub in self._listening(account, position, LOT_EXPIRED):
                self._detect(changes, sub, LOT_EXPIRED, event, position, account,
                             {"lot_id": event.lot_id, "credits": event.credits})
        elif isinstance(event, CreditAccount.ReservationReleased) and event.reason == "expired":
            for sub in self._listening(account, position, HOLD_EXPIRED):
                self._detect(changes, sub, HOLD_EXPIRED, event, position, account,
                             {"reservation_id": event.reservation_id,
                              "credits": event.credits})

    def _call_failed(self, event: ProviderCall.Failed, position: int,
                     changes: Changes) -> None:
        requested = self.log.event(event.originator_id, 1)
        account = str(requested.account_id)
        for sub in self._listening(account, position, PROVIDER_CALL_FAILED):
            self._detect(changes, sub, PROVIDER_CALL_FAILED, event, position, account, {
                "call_id": requested.call_id, "operation": requested.operation,
                "provider": requested.provider, "model_id": requested.model_id,
                "error_kind": event.error_kind, "http_status": event.http_status})

    def _scheduled(self, event: WebhookDelivery.Scheduled, position: int,
                   changes: Changes) -> None:
        changes.add(WEBHOOK_DELIVERIES, WEBHOOK_DELIVERIES.row(
            delivery_id=event.delivery_id, subscription_id=event.subscription_id,
            account_id=event.account_id, event_type=event.event_type,
            occurrence_id=event.occurrence_id, payload=event.payload,
            created_at=event.timestamp,
            **self._state(event, position, "scheduled", event.next_attempt_at)))

    def _failed(self, event: WebhookDelivery.AttemptFailed, position: int,
                changes: Changes) -> None:
        changes.add(WEBHOOK_DELIVERIES, WEBHOOK_DELIVERIES.row(
            delivery_id=self._delivery_id(event), attempts=1,
            **self._state(event, position, "retrying", event.next_attempt_at, event.error,
                          event.http_status)))

    def _delivered(self, event: WebhookDelivery.Delivered, position: int,
                   changes: Changes) -> None:
        changes.add(WEBHOOK_DELIVERIES, WEBHOOK_DELIVERIES.row(
            delivery_id=self._delivery_id(event), attempts=1,
            **self._state(event, position, "delivered", None, None, event.http_status)))

    def _gave_up(self, event: WebhookDelivery.GaveUp, position: int,
                 changes: Changes) -> None:
        attempts = 1 if event.attempt > self._attempts_before(event) else 0
        changes.add(WEBHOOK_DELIVERIES, WEBHOOK_DELIVERIES.row(
            delivery_id=self._delivery_id(event), attempts=attempts,
            **self._state(event, position, "gave_up", None, event.error, event.http_status)))

    _handlers: dict[type[Any], Any] = {
        **dict.fromkeys(CREDIT_EVENTS, _credit),
        ProviderCall.Failed: _call_failed,
        WebhookDelivery.Scheduled: _scheduled,
        WebhookDelivery.AttemptFailed: _failed,
        WebhookDelivery.Delivered: _delivered,
        WebhookDelivery.GaveUp: _gave_up,
    }

    # -- helpers ---------------------------------------------------------------------------

    def _balance(self, account: str) -> int:
        if account not in self._balances:
            self._balances[account] = self.view.balances([account]).get(account, 0)
        return self._balances[account]

    def _listening(self, account: str, position: int, event_type: str) -> list[SubscriptionInfo]:
        return [s for s in self._subscriptions
                if event_type in s.event_types and s.covers(account) and s.active_at(position)]

    def _detect(self, changes: Changes, sub: SubscriptionInfo, event_type: str, event: Any,
                position: int, account: str, data: dict[str, Any]) -> None:
        occurrence_id = f"{event_type}:{event.originator_id}:{event.originator_version}"
        payload = {"type": event_type, "account_id": account,
                   "occurred_at": event.timestamp.isoformat(), "data": data}
        changes.add(WEBHOOK_DELIVERIES, WEBHOOK_DELIVERIES.row(
            delivery_id=WebhookDelivery.id_for(sub.subscription_id, occurrence_id),
            subscription_id=sub.subscription_id, account_id=account, event_type=event_type,
            occurrence_id=occurrence_id, payload=payload, created_at=event.timestamp,
            **self._state(event, position, DETECTED, None)))

    @staticmethod
    def _state(event: Any, position: int, status: str, next_attempt_at: Any,
               error: str | None = None, http_status: int | None = None) -> dict[str, Any]:
        return {"status": status, "next_attempt_at": next_attempt_at, "last_error": error,
                "http_status": http_status, "updated_at": event.timestamp,
                "position": position}

    def _delivery_id(self, event: Any) -> str:
        return str(self.log.event(event.originator_id, 1).delivery_id)

    def _attempts_before(self, event: Any) -> int:
        """Attempts recorded before a GaveUp (the version before it tells: Scheduled is
        version 1, then one event per attempt)."""
        return int(event.originator_version) - 2
