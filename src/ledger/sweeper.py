"""The hold sweeper: releases credit holds nobody settled and abandons their calls.

A metered call holds credits and records itself as requested in one transaction, then
calls the provider. If the process dies before the call is settled, the hold would lock
those credits for good; every hold therefore expires, and this sweeper releases expired
holds (`CreditService.sweep`, which also marks their provider calls abandoned).

It follows the log: it reads only `CreditsReserved` events (a topic filter), from where
it stopped, and keeps for each account the earliest expiry among the holds it has seen.
When that time has passed, the account is swept by a command on its writer (so a sweep
never races a capture of the same account), and its earliest open hold is read again
from the account itself. Several processes may sweep at once: a hold is released once,
the other sweep finds it gone.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.utils import get_topic

from ledger.credits import CreditService
from ledger.domain.base import Actor, utcnow
from ledger.domain.credits import CreditAccount
from ledger.store import LedgerStore

log = logging.getLogger(__name__)

RESERVED_TOPIC = get_topic(CreditAccount.CreditsReserved)
PAGE = 1000


def sweeper_actor() -> Actor:
    return Actor(id="hold-sweeper", role="system")  # a fresh request id per sweep


@dataclass
class SweepReport:
    accounts: list[str] = field(default_factory=list)
    released: list[str] = field(default_factory=list)  # "account/rsv-N"
    position: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"accounts": self.accounts, "released": self.released,
                "position": self.position}


class HoldSweeper:
    def __init__(self, store: LedgerStore, credits: CreditService) -> None:
        self.store = store
        self.credits = credits
        self.after = 0  # the last notification id read
        self.due: dict[UUID, datetime] = {}  # account -> earliest expiry of a hold seen
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _follow(self) -> None:
        """Read the holds recorded since the last look."""
        while True:
            page = self.store.recorder.select_notifications(
                self.after, PAGE, topics=(RESERVED_TOPIC,), inclusive_of_start=False)
            for notification in page:
                event: Any = self.store.mapper.to_domain_event(notification)
                known = self.due.get(event.originator_id)
                if known is None or event.expires_at < known:
                    self.due[event.originator_id] = event.expires_at
                self.after = notification.id
            if len(page) < PAGE:
                return

    def run_once(self) -> SweepReport:
        """Sweep every account that has a hold expired by now (the ledger's clock)."""
        with self._lock:
            report = SweepReport()
            self._follow()
            now = utcnow()
            for key, expires_at in sorted(self.due.items(), key=lambda kv: kv[1]):
                if expires_at > now:
                    continue
                acc: CreditAccount | None = self.store.find(key)
                if acc is None:
                    del self.due[key]
                    continue
                if any(h["expires_at"] <= now for h in acc.holds.values()):
                    outcome = self.credits.sweep(acc.account_id, sweeper_actor())
                    released = (outcome.value.extra or {}).get("released", [])
                    if released:
                        report.accounts.append(acc.account_id)
                        report.released += [f"{acc.account_id}/{r}" for r in released]
                    acc = self.store.find(key)
                remaining = [h["expires_at"] for h in acc.holds.values()] if acc else []
                if remaining:
                    self.due[key] = min(remaining)
                else:
                    del self.due[key]
            report.position = self.after
            if report.released:
                log.info("released %d expired hold(s): %s", len(report.released),
                         ", ".join(report.released))
            return report

    # -- in the background -----------------------------------------------------------

    def start(self, interval_s: float) -> None:
        if interval_s <= 0 or self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, args=(interval_s,),
                                        name="hold-sweeper", daemon=True)
        self._thread.start()

    def _loop(self, interval_s: float) -> None:
        while not self._stop.wait(interval_s):
            try:
                self.run_once()
            except Exception:  # a database hiccup: try again next time
                log.exception("the hold sweep failed; retrying in %.0f s", interval_s)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
