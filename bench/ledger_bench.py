"""In-process deductions on PostgreSQL: distinct accounts, one hot account, beside plain
INSERT transactions and a state-based (CRUD) deduction written the usual way."""

from __future__ import annotations

import tempfile
from decimal import Decimal
from pathlib import Path

from psycopg_pool import ConnectionPool

from bench.common import PG_URL, SMOKE, Figure, LoadResult, pg_schema, run_clients
from ledger.config import Settings
from ledger.credits import account_key
from ledger.domain.base import Actor
from ledger.domain.credits import ProviderCharge
from ledger.service import Ledger

ACTOR = Actor("bench", "service")
SECONDS = 1.0 if SMOKE else 8.0


def bench_settings(schema: str, **kw: object) -> Settings:
    return Settings(database_url=PG_URL, postgres_schema=schema,  # type: ignore[call-arg]
                    var_dir=Path(tempfile.mkdtemp()), secret_key="x" * 43 + "=",
                    run_projections=False, postgres_pool_size=20, postgres_max_overflow=20,
                    **kw)


def deductions(clients: int, hot: bool) -> LoadResult:
    with pg_schema() as schema:
        ledger = Ledger(bench_settings(schema))
        try:
            ledger.seed()
            accounts = ["hot"] if hot else [f"acct-{c}" for c in range(clients)]
            for a in accounts:
                ledger.credits.purchase(a, 10**9, Decimal("1000000"), "bench", ACTOR)
            quote = ledger.credits.price("image_generation", units=1)
            cost = ProviderCharge(model_id="dall-e-3", provider="openai",
                                  cost_usd=Decimal("0.040"))

            def op(c: int, _i: int) -> bool:
                account = accounts[0] if hot else accounts[c]
                ledger.credits.deduct(account, quote, cost, ACTOR)
                return True

            result = run_clients(clients, SECONDS, op)
            # no lost update: the balance is exactly what the acknowledged deductions left
            spent = sum(10**9 - ledger.store.load(account_key(a)).balance for a in accounts)
            assert spent == result.ops * quote.credits, (spent, result.ops)
            return result
        finally:
            ledger.close()


def plain_inserts(clients: int) -> LoadResult:
    with pg_schema() as schema, ConnectionPool(PG_URL, min_size=clients, max_size=clients,
                                               open=True) as pool:
        with pool.connection() as conn:
            conn.execute(f'CREATE TABLE "{schema}".t (id bigserial primary key, '
                         "account text, credits int, at timestamptz default now())")

        def op(c: int, _i: int) -> bool:
            with pool.connection() as conn:
                conn.execute(f'INSERT INTO "{schema}".t (account, credits) VALUES (%s, 5)',
                             (f"acct-{c}",))
            return True

        return run_clients(clients, SECONDS, op)


def crud_deductions(clients: int, hot: bool) -> LoadResult:
    """The same deduction as a state-based service writes it: lock the balance row, check
    and update it, insert a usage row, commit."""
    with pg_schema() as schema, ConnectionPool(PG_URL, min_size=clients, max_size=clients,
                                               open=True) as pool:
        with pool.connection() as conn:
            conn.execute(f'CREATE TABLE "{schema}".balances (account text primary key, '
                         "credits bigint not null check (credits >= 0))")
            conn.execute(f'CREATE TABLE "{schema}".usage (id bigserial primary key, '
                         "account text, operation text, credits int, price numeric, "
                         "cost_usd numeric, at timestamptz default now())")
            accounts = ["hot"] if hot else [f"acct-{c}" for c in range(clients)]
            conn.execute(f'INSERT INTO "{schema}".balances SELECT unnest(%s::text[]), %s',
                         (accounts, 10**9))

        def op(c: int, _i: int) -> bool:
            account = accounts[0] if hot else accounts[c]
            with pool.connection() as conn, conn.transaction():
                row = conn.execute(f'SELECT credits FROM "{schema}".balances '
                                   "WHERE account = %s FOR UPDATE", (account,)).fetchone()
                if row is None or row[0] < 5:
                    return False
                conn.execute(f'UPDATE "{schema}".balances SET credits = credits - 5 '
                             "WHERE account = %s", (account,))
                conn.execute(f'INSERT INTO "{schema}".usage (account, operation, credits, '
                             "price, cost_usd) VALUES (%s, 'image_generation', 5, 0.02, "
                             "0.040)", (account,))
            return True

        return run_clients(clients, SECONDS, op)


def run() -> list[Figure]:
    base = plain_inserts(16)
    figures = []
    for name, clients, hot, target in (
        ("deductions/s, 1 client", 1, False, None),
        ("deductions/s, 16 clients, distinct accounts", 16, False, ">= 5,000/s"),
        ("deductions/s, 16 clients, one hot account", 16, True, ">= 1,000/s"),
    ):
        r = deductions(clients, hot)
        figures.append(Figure(name, r.rate, "/s", "plain INSERT tx, 16 clients", base.rate,
                              target, {"p50_ms": round(r.pct(50), 2),
                                       "p99_ms": round(r.pct(99), 2),
                                       "ratio_to_insert": round(r.rate / base.rate, 3)}))
        if clients > 1:
            crud = crud_deductions(clients, hot)
            figures.append(Figure(
                name.replace("deductions/s", "same, vs state-based CRUD"), r.rate, "/s",
                "SELECT FOR UPDATE+UPDATE+INSERT", crud.rate, ">= CRUD",
                {"crud_p50_ms": round(crud.pct(50), 2), "crud_p99_ms": round(crud.pct(99), 2),
                 "ratio_to_crud": round(r.rate / crud.rate, 3)}))
    return figures
