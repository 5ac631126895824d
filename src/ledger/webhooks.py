"""Webhook subscriptions and deliveries: their commands, the directory, signing.

Signing (what a receiver checks): each POST carries

    Ledger-Webhook-Id: <delivery id>          the same on every retry: dedupe on it
    Ledger-Webhook-Timestamp: <unix seconds>  when this attempt was signed
    Ledger-Webhook-Signature: v1=<hex>        HMAC-SHA256(secret, f"{timestamp}.{body}")

The body is the same bytes on every attempt of a delivery. A receiver recomputes the
HMAC over the timestamp header, a dot and the raw body, compares in constant time
(`verify_signature`), and refuses a timestamp too far from its clock (replays).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
import time
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any
from uuid import UUID

from eventsourcing.utils import get_topic

from ledger.config import Settings
from ledger.domain.base import Actor, utcnow
from ledger.domain.errors import NotFound
from ledger.domain.webhooks import WebhookDelivery, WebhookSubscription
from ledger.pipeline import Batch, IdempotencySpec, Outcome, Pipeline
from ledger.secrets import SecretBox
from ledger.store import LedgerStore

ID_HEADER = "Ledger-Webhook-Id"
TIMESTAMP_HEADER = "Ledger-Webhook-Timestamp"
SIGNATURE_HEADER = "Ledger-Webhook-Signature"
SUBSCRIPTION_TOPICS = (get_topic(WebhookSubscription.Created),
                       get_topic(WebhookSubscription.Deleted))
PLATFORM = object()  # `account_id=PLATFORM`: platform-wide subscriptions only


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header's value of `body` signed at `timestamp`."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


def verify_signature(secret: str, timestamp: str, body: bytes, signature: str, *,
                     tolerance_s: float = 300.0, now: float | None = None) -> bool:
    """What a receiver does: the signature matches and the timestamp is recent."""
    try:
        signed_at = int(timestamp)
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - signed_at) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, timestamp, body), signature)


def body_of(payload: dict[str, Any]) -> bytes:
    """The bytes sent for a delivery's payload (canonical: the same on every attempt)."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()


def backoff_s(attempt: int, base_s: float, max_s: float) -> float:
    """The wait after failed attempt `attempt` (1, 2, ...): base, 2 base, 4 base ..."""
    return float(min(base_s * 2 ** (attempt - 1), max_s))


@dataclass(frozen=True)
class SubscriptionInfo:
    """A subscription as anyone may see it: never its secret."""

    subscription_id: str
    account_id: str | None
    url: str
    event_types: tuple[str, ...]
    low_balance_threshold: int | None
    lot_expiring_days: int | None
    description: str
    created_at: datetime
    created_by: str
    position: int  # where its creation is in the log
    deleted_at: datetime | None = None
    deleted_position: int | None = None

    def active_at(self, position: int) -> bool:
        """Whether it listened to the event at `position` of the log."""
        return self.position < position and (self.deleted_position is None
                                             or self.deleted_position > position)

    def covers(self, account_id: str) -> bool:
        return self.account_id is None or self.account_id == account_id

    def public(self) -> dict[str, Any]:
        return {"subscription_id": self.subscription_id, "account_id": self.account_id,
                "url": self.url, "event_types": list(self.event_types),
                "low_balance_threshold": self.low_balance_threshold,
                "lot_expiring_days": self.lot_expiring_days,
                "description": self.description, "created_at": self.created_at,
                "created_by": self.created_by, "deleted_at": self.deleted_at,
                "active": self.deleted_at is None}


def info_of(sub: WebhookSubscription, position: int = 0) -> SubscriptionInfo:
    """What may be shown of a subscription aggregate."""
    return SubscriptionInfo(
        sub.subscription_id, sub.account_id, sub.url, tuple(sub.event_types),
        sub.low_balance_threshold, sub.lot_expiring_days, sub.description, sub.created_on,
        "", position, sub.deleted_at)


class WebhookService:
    def __init__(self, store: LedgerStore, pipeline: Pipeline, settings: Settings) -> None:
        self.store = store
        self.pipeline = pipeline
        self.settings = settings
        self._directory: dict[UUID, SubscriptionInfo] = {}
        self._seen = 0
        self._lock = threading.Lock()

    @cached_property
    def box(self) -> SecretBox:
        return SecretBox.from_settings(self.settings)

    # -- subscriptions -------------------------------------------------------------------

    def subscribe(self, account_id: str | None, url: str, event_types: list[str],
                  actor: Actor, *, secret: str | None = None,
                  low_balance_threshold: int | None = None,
                  lot_expiring_days: int | None = None, description: str = "",
                  idem: IdempotencySpec | None = None,
                  respond: Any = None) -> Outcome[Any]:
        """A new subscription (of one account, or platform-wide with None). The secret is
        sealed before any event; the result (and an idempotent replay) holds it sealed:
        `open_secret()` shows it to the caller that created it."""
        plaintext = secret or "whsec_" + secrets.token_urlsafe(32)
        sealed = self.box.seal(plaintext)
        subscription_id = "whs_" + secrets.token_hex(8)

        def run(batch: Batch) -> WebhookSubscription:
            sub = WebhookSubscription.subscribe(
                subscription_id, account_id, url, sealed, event_types,
                low_balance_threshold, lot_expiring_days, description, actor)
            return batch.add(sub)  # type: ignore[no-any-return]
        return self.pipeline.submit(WebhookSubscription.create_id(subscription_id), run, actor,
                                    idempotency=idem, respond=respond)

    def unsubscribe(self, subscription_id: str, actor: Actor, *,
                    account_id: Any = None) -> Outcome[Any]:
        """Delete a subscription. With `account_id` (a str, or PLATFORM), one that does not
        belong there is not found."""
        key = WebhookSubscription.create_id(subscription_id)

        def run(batch: Batch) -> str:
            sub: WebhookSubscription | None = batch.find(key)
            owner = None if account_id is PLATFORM else account_id
            if sub is None or (account_id is not None and sub.account_id != owner):
                raise NotFound(f"no webhook subscription {subscription_id!r}",
                               field="subscription_id")
            sub.delete("deleted through the API", actor)
            return subscription_id
        return self.pipeline.submit(key, run, actor)

    def open_secret(self, sealed: str) -> str:
        return self.box.open(sealed)

    def secret_of(self, subscription_id: str) -> str | None:
        """The plaintext secret of a live subscription (for signing only)."""
        sub = self.store.find(WebhookSubscription.create_id(subscription_id))
        if sub is None or sub.deleted_at is not None:
            return None
        return self.box.open(sub.secret)

    def subscription(self, subscription_id: str) -> WebhookSubscription | None:
        found: WebhookSubscription | None = self.store.find(
            WebhookSubscription.create_id(subscription_id))
        return found

    def subscriptions(self, account_id: Any = None, *,
                      include_deleted: bool = False) -> list[SubscriptionInfo]:
        """Subscriptions, oldest first: all (None), one account's own (a str) or the
        platform-wide ones (PLATFORM)."""
        subs = self.directory()
        if account_id is PLATFORM:
            subs = [s for s in subs if s.account_id is None]
        elif account_id is not None:
            subs = [s for s in subs if s.account_id == account_id]
        return [s for s in subs if include_deleted or s.deleted_at is None]

    def directory(self) -> list[SubscriptionInfo]:
        """Every subscription ever made, with the positions of its creation and deletion,
        following the log up to its head."""
        with self._lock:
            recorder = self.store.recorder
            while page := recorder.select_notifications(
                    self._seen, 500, topics=SUBSCRIPTION_TOPICS, inclusive_of_start=False):
                for n in page:
                    event = self.store.mapper.to_domain_event(n)
                    if isinstance(event, WebhookSubscription.Created):
                        self._directory[event.originator_id] = SubscriptionInfo(
                            event.subscription_id, event.account_id, event.url,
                            tuple(event.event_types), event.low_balance_threshold,
                            event.lot_expiring_days, event.description, event.timestamp,
                            event.actor_id, n.id)
                    elif isinstance(event, WebhookSubscription.Deleted):
                        self._directory[event.originator_id] = replace(
                            self._directory[event.originator_id],
                            deleted_at=event.timestamp, deleted_position=n.id)
                self._seen = page[-1].id
            return list(self._directory.values())

    # -- deliveries ------------------------------------------------------------------------

    def schedule(self, subscription_id: str, account_id: str, event_type: str,
                 occurrence_id: str, payload: dict[str, Any], actor: Actor) -> bool:
        """Record a delivery of an occurrence to a subscription, unless it was already
        (by anyone): True if this call recorded it."""
        delivery_id = WebhookDelivery.id_for(subscription_id, occurrence_id)
        key = WebhookDelivery.create_id(delivery_id)

        def run(batch: Batch) -> bool:
            if batch.find(key) is not None:
                return False
            batch.add(WebhookDelivery.schedule(
                subscription_id, account_id, event_type, occurrence_id,
                {"id": delivery_id, **payload}, utcnow(), actor))
            return True
        scheduled: bool = self.pipeline.submit(key, run, actor).value
        return scheduled

    def delivery(self, delivery_id: str) -> WebhookDelivery | None:
        """The delivery as the log has it now (not from a writer's cache)."""
        found: WebhookDelivery | None = self.store.find(WebhookDelivery.create_id(delivery_id))
        return found

    def record_attempt(self, delivery_id: str, attempt: int, http_status: int | None,
                       error: str | None, actor: Actor) -> str:
        """Record how attempt `attempt` went: delivered (error None), failed with the
        time of the next attempt (exponential backoff), or given up after the last one.
        Returns the delivery's status."""
        s = self.settings
        key = WebhookDelivery.create_id(delivery_id)

        def run(batch: Batch) -> str:
            d: WebhookDelivery | None = batch.find(key)
            if d is None:
                raise NotFound(f"no delivery {delivery_id!r}", field="delivery_id")
            if error is None:
                assert http_status is not None
                d.delivered(attempt, http_status, actor)
            elif attempt >= s.webhooks_max_attempts:
                d.give_up(attempt, error, http_status, actor)
            else:
                wait = backoff_s(attempt, s.webhooks_backoff_s, s.webhooks_backoff_max_s)
                d.attempt_failed(attempt, error, http_status,
                                 utcnow() + timedelta(seconds=wait), actor)
            return d.status
        status: str = self.pipeline.submit(key, run, actor).value
        return status

    def abandon(self, delivery_id: str, reason: str, actor: Actor) -> str:
        """Give a delivery up without sending it (its subscription was deleted)."""
        key = WebhookDelivery.create_id(delivery_id)

        def run(batch: Batch) -> str:
            d: WebhookDelivery | None = batch.find(key)
            if d is None:
                raise NotFound(f"no delivery {delivery_id!r}", field="delivery_id")
            d.give_up(d.attempts, reason, None, actor, sent=False)
            return d.status
        status: str = self.pipeline.submit(key, run, actor).value
        return status
