"""Webhooks: who wants to hear what (subscriptions) and each message sent (deliveries).

A `WebhookSubscription` belongs to one account, or to the platform (every account). Its
secret is stored sealed (``fernet:...``, see ledger.secrets); the plaintext leaves the
service once, in the answer to its creation.

A `WebhookDelivery` is one occurrence told to one subscription. Its id is derived from
the occurrence and the subscription (uuid5), so recording the same occurrence twice
collides on the event store's (aggregate, version) uniqueness: an occurrence is
scheduled once, whoever detects it and however often. Its events are the delivery's
life: scheduled, each failed attempt with the time of the next, delivered or given up.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlparse

from ledger.domain.base import Actor, LedgerAggregate, natural_id
from ledger.domain.errors import Conflict, InvalidCommand
from ledger.domain.settings import SEALED_PREFIX

LOW_BALANCE = "low_balance"  # the balance crossed below the subscription's threshold
BALANCE_EXHAUSTED = "balance_exhausted"  # the balance reached zero
HOLD_EXPIRED = "hold_expired"  # a hold nobody settled was released by the sweeper
LOT_EXPIRING = "lot_expiring"  # a lot with credits left expires within N days
LOT_EXPIRED = "lot_expired"  # a lot's unused credits left as breakage
PROVIDER_CALL_FAILED = "provider_call_failed"  # a metered AI call failed (nothing charged)
EVENT_TYPES = (LOW_BALANCE, BALANCE_EXHAUSTED, HOLD_EXPIRED, LOT_EXPIRING, LOT_EXPIRED,
               PROVIDER_CALL_FAILED)

SCHEDULED, RETRYING, DELIVERED, GAVE_UP = "scheduled", "retrying", "delivered", "gave_up"
PENDING = frozenset({SCHEDULED, RETRYING})


class WebhookSubscription(LedgerAggregate):
    class Created(LedgerAggregate.Created):
        subscription_id: str
        account_id: str | None  # None: every account (platform-wide)
        url: str
        secret: str  # sealed
        event_types: list[str]
        low_balance_threshold: int | None
        lot_expiring_days: int | None
        description: str

    class Deleted(LedgerAggregate.Event):
        reason: str

        def apply(self, sub: WebhookSubscription) -> None:
            sub.deleted_at = self.timestamp

    def __init__(self, subscription_id: str, account_id: str | None, url: str, secret: str,
                 event_types: list[str], low_balance_threshold: int | None,
                 lot_expiring_days: int | None, description: str) -> None:
        self.subscription_id = subscription_id
        self.account_id = account_id
        self.url = url
        self.secret = secret
        self.event_types = event_types
        self.low_balance_threshold = low_balance_threshold
        self.lot_expiring_days = lot_expiring_days
        self.description = description
        self.deleted_at: datetime | None = None

    @staticmethod
    def create_id(subscription_id: str) -> Any:
        return natural_id("webhook-subscription", subscription_id)

    @classmethod
    def subscribe(cls, subscription_id: str, account_id: str | None, url: str,
                  sealed_secret: str, event_types: list[str],
                  low_balance_threshold: int | None, lot_expiring_days: int | None,
                  description: str, actor: Actor) -> WebhookSubscription:
        """Refused (InvalidCommand) when a rule below does not hold; nothing recorded."""
        try:
            parsed = urlparse(url)
            host, _port = parsed.hostname, parsed.port  # both parse lazily and may raise
        except ValueError:  # "https://x[y", a port that is no number, ...
            host = None
        if host is None or parsed.scheme not in ("http", "https"):
            raise InvalidCommand("url must be an http(s) URL with a host", field="url")
        if not sealed_secret.startswith(SEALED_PREFIX):
            raise InvalidCommand("the secret must be sealed before it is recorded",
                                 field="secret")
        types = list(dict.fromkeys(event_types))
        unknown = [t for t in types if t not in EVENT_TYPES]
        if not types or unknown:
            raise InvalidCommand(f"event_types must be a non-empty list of "
                                 f"{', '.join(EVENT_TYPES)}", field="event_types")
        if LOW_BALANCE in types:
            if not _positive(low_balance_threshold):
                raise InvalidCommand("low_balance needs low_balance_threshold, a positive "
                                     "number of credits", field="low_balance_threshold")
        elif low_balance_threshold is not None:
            raise InvalidCommand("low_balance_threshold is only for low_balance",
                                 field="low_balance_threshold")
        if LOT_EXPIRING in types:
            if not _positive(lot_expiring_days):
                raise InvalidCommand("lot_expiring needs lot_expiring_days, a positive "
                                     "number of days", field="lot_expiring_days")
        elif lot_expiring_days is not None:
            raise InvalidCommand("lot_expiring_days is only for lot_expiring",
                                 field="lot_expiring_days")
        sub: WebhookSubscription = cls._open(
            cls.Created, actor, subscription_id=subscription_id, account_id=account_id,
            url=url, secret=sealed_secret, event_types=types,
            low_balance_threshold=low_balance_threshold, lot_expiring_days=lot_expiring_days,
            description=description)
        return sub

    def delete(self, reason: str, actor: Actor) -> None:
        if self.deleted_at is not None:
            raise Conflict(f"subscription {self.subscription_id} is already deleted",
                           field="subscription_id")
        self._record(self.Deleted, actor, reason=reason)


def _positive(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


class WebhookDelivery(LedgerAggregate):
    class Scheduled(LedgerAggregate.Created):
        delivery_id: str
        subscription_id: str
        account_id: str
        event_type: str
        occurrence_id: str  # what happened: the event's aggregate and version, or the lot
        payload: dict[str, Any]  # the body sent, the same on every attempt
        next_attempt_at: datetime

    class AttemptFailed(LedgerAggregate.Event):
        attempt: int
        error: str  # a kind ("timeout", "http_500", "ConnectError"), never a URL or secret
        http_status: int | None
        next_attempt_at: datetime

        def apply(self, d: WebhookDelivery) -> None:
            d.attempts = self.attempt
            d.status = RETRYING
            d.next_attempt_at = self.next_attempt_at

    class Delivered(LedgerAggregate.Event):
        attempt: int
        http_status: int

        def apply(self, d: WebhookDelivery) -> None:
            d.attempts = self.attempt
            d.status = DELIVERED
            d.next_attempt_at = None

    class GaveUp(LedgerAggregate.Event):
        attempt: int
        error: str
        http_status: int | None

        def apply(self, d: WebhookDelivery) -> None:
            d.attempts = self.attempt
            d.status = GAVE_UP
            d.next_attempt_at = None

    def __init__(self, delivery_id: str, subscription_id: str, account_id: str,
                 event_type: str, occurrence_id: str, payload: dict[str, Any],
                 next_attempt_at: datetime) -> None:
        self.delivery_id = delivery_id
        self.subscription_id = subscription_id
        self.account_id = account_id
        self.event_type = event_type
        self.occurrence_id = occurrence_id
        self.payload = payload
        self.next_attempt_at: datetime | None = next_attempt_at
        self.attempts = 0
        self.status = SCHEDULED

    @staticmethod
    def id_for(subscription_id: str, occurrence_id: str) -> str:
        """The delivery id of an occurrence for a subscription (sent to receivers)."""
        return str(natural_id("webhook-delivery", subscription_id, occurrence_id))

    @staticmethod
    def create_id(delivery_id: str) -> Any:
        return natural_id("webhook-delivery-aggregate", delivery_id)

    @classmethod
    def schedule(cls, subscription_id: str, account_id: str, event_type: str,
                 occurrence_id: str, payload: dict[str, Any], now: datetime,
                 actor: Actor) -> WebhookDelivery:
        if event_type not in EVENT_TYPES:
            raise InvalidCommand(f"unknown event type {event_type!r}", field="event_type")
        delivery: WebhookDelivery = cls._open(
            cls.Scheduled, actor, delivery_id=cls.id_for(subscription_id, occurrence_id),
            subscription_id=subscription_id, account_id=account_id, event_type=event_type,
            occurrence_id=occurrence_id, payload=payload, next_attempt_at=now)
        return delivery

    @property
    def pending(self) -> bool:
        return self.status in PENDING

    def _check_attempt(self, attempt: int, *, sent: bool = True) -> None:
        if not self.pending:
            raise Conflict(f"delivery {self.delivery_id} is already {self.status}",
                           field="delivery_id")
        if attempt != self.attempts + (1 if sent else 0):
            raise Conflict(f"attempt {attempt} of delivery {self.delivery_id} was "
                           f"recorded already", field="attempt")

    def attempt_failed(self, attempt: int, error: str, http_status: int | None,
                       next_attempt_at: datetime, actor: Actor) -> None:
        self._check_attempt(attempt)
        self._record(self.AttemptFailed, actor, attempt=attempt, error=error[:200],
                     http_status=http_status, next_attempt_at=next_attempt_at)

    def delivered(self, attempt: int, http_status: int, actor: Actor) -> None:
        self._check_attempt(attempt)
        self._record(self.Delivered, actor, attempt=attempt, http_status=http_status)

    def give_up(self, attempt: int, error: str, http_status: int | None, actor: Actor, *,
                sent: bool = True) -> None:
        """After the last attempt (`attempt`), or without sending (`sent` false: the
        subscription was deleted; `attempt` is then the attempts made so far)."""
        self._check_attempt(attempt, sent=sent)
        self._record(self.GaveUp, actor, attempt=attempt, error=error[:200],
                     http_status=http_status)
