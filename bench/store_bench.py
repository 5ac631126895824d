"""Aggregate load time by history length, and projection rebuild speed, on PostgreSQL.

Load times are measured from a fresh store (no aggregate cache) so they show what the
first command on a cold account pays: a full replay, then the same after a snapshot.
"""

from __future__ import annotations

import statistics
import time
from decimal import Decimal

from bench.common import SMOKE, Figure, pg_schema
from bench.ledger_bench import ACTOR, bench_settings
from ledger.credits import account_key
from ledger.domain.base import utcnow
from ledger.domain.credits import CreditAccount, ProviderCharge
from ledger.service import Ledger
from projections.service import Projections

SIZES = (100, 1_000) if SMOKE else (100, 10_000, 100_000)
CHUNK = 5_000  # events saved per transaction while building the history


def _timed_loads(ledger: Ledger, account_id: str, repeat: int) -> float:
    """Median milliseconds to load the account from the store."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        ledger.store.load(account_key(account_id))
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def aggregate_loads() -> list[Figure]:
    figures = []
    for size in SIZES:
        with pg_schema() as schema:
            ledger = Ledger(bench_settings(schema))
            try:
                ledger.seed()
                quote = ledger.credits.price("image_generation", units=1)
                cost = ProviderCharge(model_id="dall-e-3", provider="openai",
                                      cost_usd=Decimal("0.040"))
                account = CreditAccount.open("long", ACTOR)
                account.purchase(10**9, Decimal("1000000"), "bench", ACTOR, utcnow())
                while account.version < size:
                    for _ in range(min(CHUNK, size - account.version)):
                        account.deduct(quote, cost, ACTOR, utcnow())
                    ledger.store.record(account)
                replay = _timed_loads(ledger, "long", 3 if size >= 100_000 else 7)
                ledger.store.snapshot([ledger.store.load(account_key("long"))])
                snap = _timed_loads(ledger, "long", 7)
            finally:
                ledger.close()
        figures.append(Figure(f"aggregate load, {size:,} events (full replay)", replay, "ms",
                              "same aggregate from a snapshot", snap,
                              extra={"events": size, "from_snapshot_ms": round(snap, 3)}))
    return figures


def rebuild() -> Figure:
    events = 2_000 if SMOKE else 10_000
    with pg_schema() as schema:
        settings = bench_settings(schema)
        ledger = Ledger(settings)
        try:
            ledger.seed()
            quote = ledger.credits.price("image_generation", units=1)
            cost = ProviderCharge(model_id="dall-e-3", provider="openai",
                                  cost_usd=Decimal("0.040"))
            accounts = [CreditAccount.open(f"acct-{i}", ACTOR) for i in range(50)]
            for a in accounts:
                a.purchase(10**9, Decimal("1000000"), "bench", ACTOR, utcnow())
            per_account = events // len(accounts)
            for _ in range(per_account):
                for a in accounts:
                    a.deduct(quote, cost, ACTOR, utcnow())
            ledger.store.record(*accounts)
            projections = Projections(ledger.store, settings)
            try:
                rebuilt = projections.rebuild()
            finally:
                projections.stop()
        finally:
            ledger.close()
    return Figure("projection rebuild, all views", rebuilt.per_second, "ev/s",
                  extra={"events": rebuilt.events, "seconds": round(rebuilt.seconds, 2)})


def run() -> list[Figure]:
    return [*aggregate_loads(), rebuild()]
