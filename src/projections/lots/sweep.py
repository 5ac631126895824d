"""Expiring due lots: which accounts have one (the lots view), then a command on each.

The view only says where to look; each account's `expire_lots` command decides on the
aggregate itself (a lot already expired or drained records nothing). Called by the
webhooks worker's periodic scan (so that `lot_expired` is told on time), by
`ledger lots expire`, and by any sweeper that wants it.
"""

from __future__ import annotations

import logging
from datetime import datetime

from ledger.credits import CreditService
from ledger.domain.base import Actor, utcnow
from projections.lots.view import LotsView

log = logging.getLogger(__name__)

SWEEPER = Actor(id="lot-sweeper", role="system")


def expire_due_lots(credits: CreditService, lots: LotsView, now: datetime | None = None,
                    actor: Actor | None = None) -> list[str]:
    """Record the breakage of every lot past its expiry; the accounts looked at."""
    accounts = lots.accounts_with_due_lots(now or utcnow())
    for account_id in accounts:
        credits.expire_lots(account_id, actor or Actor(id=SWEEPER.id, role=SWEEPER.role))
    if accounts:
        log.info("expired due lots of %d account(s)", len(accounts))
    return accounts
