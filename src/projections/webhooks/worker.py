"""The webhook worker: detect, schedule, deliver, retry; resumes where it stopped.

Each round (`tick()`, every LEDGER_WEBHOOKS_POLL_S):

1. **detect**: the webhooks view catches up with the log (`WebhooksProjection`): each
   occurrence is found once, as a `detected` row, in the same transaction as the view's
   position;
2. **schedule**: every detected row becomes a `WebhookDelivery` (its `Scheduled` event),
   under an id derived from the occurrence: scheduling it again changes nothing;
3. **scan** (every LEDGER_WEBHOOKS_SCAN_S): lots past their expiry are expired (so that
   `lot_expired` is told on time, see projections.lots.sweep), and lots that expire
   within a `lot_expiring` subscription's days are scheduled, once per lot;
4. **deliver**: each delivery whose attempt is due is read from the log (never from the
   view alone, which may lag), POSTed signed (ledger.webhooks), and its outcome recorded:
   delivered (2xx), failed with the time of the next attempt (exponential backoff), or
   given up after LEDGER_WEBHOOKS_MAX_ATTEMPTS.

Everything the worker knows is in the log or the view, so a restarted worker goes on
with the pending deliveries. One worker per database sends (a lease, as for the
projections); others stand by. A receiver can still see an attempt twice if the worker
dies between the POST and recording its outcome: it dedupes on `Ledger-Webhook-Id`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from eventsourcing.persistence import IntegrityError
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder

from ledger.config import Settings
from ledger.domain.base import Actor, utcnow
from ledger.domain.errors import DomainError
from ledger.domain.webhooks import LOT_EXPIRING, WebhookDelivery
from ledger.service import Ledger
from ledger.webhooks import (
    ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    body_of,
    sign,
)
from projections.base import LogLookup
from projections.lease import LeasedWorker
from projections.lots.postgres import PostgresLotsView
from projections.lots.sqlite import SQLiteLotsView
from projections.lots.sweep import expire_due_lots
from projections.lots.view import LotsView
from projections.runner import Runner
from projections.webhooks.postgres import PostgresWebhooksView
from projections.webhooks.projection import WebhooksProjection
from projections.webhooks.sqlite import SQLiteWebhooksView
from projections.webhooks.view import WebhooksView

log = logging.getLogger(__name__)

SENDERS = 4  # deliveries sent at the same time
USER_AGENT = "credit-ledger-webhooks/1"


def worker_actor() -> Actor:
    return Actor(id="webhook-worker", role="system")


@dataclass
class Tick:
    detected: int = 0  # log events read by the detector
    scheduled: int = 0
    attempts: int = 0
    delivered: int = 0
    expired_accounts: int = 0


class WebhookWorker(LeasedWorker):
    worker = "webhooks"
    retry_s = (0.2, 5.0)
    def __init__(self, ledger: Ledger, settings: Settings, *,
                 http: httpx.Client | None = None) -> None:
        super().__init__(ledger.store)
        self.ledger = ledger
        self.settings = settings
        store = ledger.store
        recorder = store.recorder
        if isinstance(recorder, PostgresApplicationRecorder):
            pg = recorder.datastore
            self.view: WebhooksView = PostgresWebhooksView(pg)
            self.lots: LotsView = PostgresLotsView(pg)
        elif isinstance(recorder, SQLiteApplicationRecorder):
            lite = recorder.datastore
            self.view = SQLiteWebhooksView(lite)
            self.lots = SQLiteLotsView(lite)
        else:
            raise TypeError(f"no webhooks view for {type(recorder).__name__}")
        for view in (self.view, self.lots):
            try:
                view.create_table()
            except IntegrityError:  # another process created it at the same moment
                view.create_table()
        self.projection = WebhooksProjection(self.view, LogLookup(store), ledger.webhooks)
        self.runner = Runner(store, [self.projection])
        self._owns_http = http is None
        self.http = http or httpx.Client(timeout=settings.webhooks_timeout_s,
                                         follow_redirects=False,
                                         headers={"User-Agent": USER_AGENT})
        self._senders = ThreadPoolExecutor(SENDERS, thread_name_prefix="webhook-send")
        self._last_scan: float | None = None

    # -- one round ------------------------------------------------------------------------

    def tick(self, *, scan: bool | None = None) -> Tick:
        """One round: detect, schedule, (scan,) deliver what is due. `scan` forces the
        periodic scan on (True) or off (False)."""
        report = Tick()
        report.detected = self._catch_up()
        if scan or (scan is None and self._scan_due()):
            report.expired_accounts = len(self.scan())
            report.detected += self._catch_up()
        report.scheduled = self.schedule()
        if report.scheduled:
            report.detected += self._catch_up()
        outcomes = self.deliver()
        report.attempts = len(outcomes)
        report.delivered = sum(1 for o in outcomes if o == "delivered")
        return report

    def _catch_up(self) -> int:
        self.runner.refresh()
        return self.runner.catch_up()

    def _scan_due(self) -> bool:
        now = time.monotonic()
        if self._last_scan is None or now - self._last_scan >= self.settings.webhooks_scan_s:
            self._last_scan = now
            return True
        return False

    def schedule(self) -> int:
        """Record a delivery for every detected occurrence; how many were new."""
        count = 0
        for row in self.view.detected():
            if self.ledger.webhooks.schedule(row["subscription_id"], row["account_id"],
                                             row["event_type"], row["occurrence_id"],
                                             row["payload"], worker_actor()):
                count += 1
        return count

    def scan(self, now: datetime | None = None) -> list[str]:
        """Expire due lots; schedule `lot_expiring` for lots that expire soon. The
        accounts whose lots were expired."""
        now = now or utcnow()
        expired = expire_due_lots(self.ledger.credits, self.lots, now)
        subs = [s for s in self.ledger.webhooks.subscriptions()
                if LOT_EXPIRING in s.event_types and s.lot_expiring_days]
        if not subs:
            return expired
        horizon = max(s.lot_expiring_days or 0 for s in subs)
        lots = self.lots.expiring(now, now + timedelta(days=horizon))
        wanted: list[tuple[Any, dict[str, Any], str]] = []
        for sub in subs:
            until = now + timedelta(days=sub.lot_expiring_days or 0)
            for lot in lots:
                if sub.covers(lot["account_id"]) and lot["expires_at"] <= until:
                    occurrence_id = f"{LOT_EXPIRING}:{lot['account_id']}:{lot['lot_id']}"
                    wanted.append((sub, lot, occurrence_id))
        known = self.view.known(WebhookDelivery.id_for(s.subscription_id, o)
                                for s, _, o in wanted)
        for sub, lot, occurrence_id in wanted:
            if WebhookDelivery.id_for(sub.subscription_id, occurrence_id) in known:
                continue
            self.ledger.webhooks.schedule(sub.subscription_id, lot["account_id"], LOT_EXPIRING,
                                          occurrence_id, {
                                              "type": LOT_EXPIRING,
                                              "account_id": lot["account_id"],
                                              "occurred_at": now.isoformat(),
                                              "data": {
                                                  "lot_id": lot["lot_id"],
                                                  "source": lot["source"],
                                                  "remaining": lot["remaining"],
                                                  "expires_at": lot["expires_at"].isoformat(),
                                              }}, worker_actor())
        return expired

    def deliver(self, now: datetime | None = None) -> list[str | None]:
        """Attempt every delivery that is due; the statuses they reached (None: skipped)."""
        due = self.view.due(now or utcnow())
        if not due:
            return []
        return list(self._senders.map(self._attempt, [row["delivery_id"] for row in due]))

    def _attempt(self, delivery_id: str) -> str | None:
        webhooks = self.ledger.webhooks
        try:
            d = webhooks.delivery(delivery_id)  # the log's word, not the view's
            if d is None or not d.pending or (d.next_attempt_at is not None
                                              and d.next_attempt_at > utcnow()):
                return None
            sub = webhooks.subscription(d.subscription_id)
            if sub is None or sub.deleted_at is not None:
                return webhooks.abandon(delivery_id, "subscription deleted", worker_actor())
            attempt = d.attempts + 1
            status, error = self._post(sub.url, webhooks.open_secret(sub.secret), delivery_id,
                                       body_of(d.payload))
            return webhooks.record_attempt(delivery_id, attempt, status, error,
                                           worker_actor())
        except DomainError as exc:  # recorded by someone else meanwhile
            log.info("webhook delivery %s: %s", delivery_id, exc.detail)
            return None

    def _post(self, url: str, secret: str, delivery_id: str,
              body: bytes) -> tuple[int | None, str | None]:
        """POST one attempt: (HTTP status, None) on 2xx, else (status or None, error kind).
        The error names a kind only: never the URL (it may hold a token) or the secret."""
        timestamp = str(int(time.time()))
        headers = {"Content-Type": "application/json", ID_HEADER: delivery_id,
                   TIMESTAMP_HEADER: timestamp, SIGNATURE_HEADER: sign(secret, timestamp, body)}
        try:
            response = self.http.post(url, content=body, headers=headers)
        except httpx.TimeoutException:
            return None, "timeout"
        except httpx.HTTPError as exc:
            return None, type(exc).__name__
        if 200 <= response.status_code < 300:
            return response.status_code, None
        return response.status_code, f"http_{response.status_code}"

    # -- running ---------------------------------------------------------------------------

    def close(self) -> None:
        self.stop()
        self._senders.shutdown(wait=True)
        if self._owns_http:
            self.http.close()

    def lead(self, stop: threading.Event, alive: Callable[[], bool]) -> None:
        """Rounds every LEDGER_WEBHOOKS_POLL_S (WebhookWorker.start() runs this)."""
        while not stop.is_set() and alive():
            self.tick()
            self.recovered()
            stop.wait(self.settings.webhooks_poll_s)
