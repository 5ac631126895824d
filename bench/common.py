"""Shared benchmark plumbing: a throwaway PostgreSQL schema, timed client loops, results."""

from __future__ import annotations

import json
import os
import platform
import statistics
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg

PG_URL = os.environ.get("LEDGER_BENCH_POSTGRES_URL",
                        "postgresql://postgres@127.0.0.1:5432/postgres")
RESULTS = Path(__file__).with_name("results.json")
SMOKE = bool(os.environ.get("BENCH_SMOKE"))


@dataclass
class Figure:
    name: str
    value: float
    unit: str
    baseline: str | None = None
    baseline_value: float | None = None
    target: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@contextmanager
def pg_schema() -> Iterator[str]:
    name = f"bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def synchronous_commit() -> str:
    with psycopg.connect(PG_URL) as conn:
        row = conn.execute("SHOW synchronous_commit").fetchone()
    return str(row[0]) if row else "?"


@dataclass
class LoadResult:
    ops: int
    errors: int
    seconds: float
    latencies_ms: list[float]

    @property
    def rate(self) -> float:
        return self.ops / self.seconds if self.seconds else 0.0

    def pct(self, p: float) -> float:
        if not self.latencies_ms:
            return 0.0
        q = statistics.quantiles(self.latencies_ms, n=100, method="inclusive")
        return q[min(98, max(0, int(p) - 1))]


def run_clients(clients: int, seconds: float, op: Callable[[int, int], bool]) -> LoadResult:
    """`clients` threads call op(client, i) for `seconds`; op returns False on error."""
    stop = threading.Event()
    lat: list[list[float]] = [[] for _ in range(clients)]
    errs = [0] * clients
    start_barrier = threading.Barrier(clients + 1)

    def work(c: int) -> None:
        start_barrier.wait()
        i = 0
        while not stop.is_set():
            t0 = time.perf_counter()
            ok = op(c, i)
            lat[c].append((time.perf_counter() - t0) * 1000)
            if not ok:
                errs[c] += 1
            i += 1

    threads = [threading.Thread(target=work, args=(c,), daemon=True) for c in range(clients)]
    for t in threads:
        t.start()
    start_barrier.wait()
    t0 = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    all_lat = [x for per in lat for x in per]
    return LoadResult(len(all_lat) - sum(errs), sum(errs), elapsed, all_lat)


def machine() -> dict[str, Any]:
    return {"cpus": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(), "synchronous_commit": synchronous_commit()}


def write_results(figures: list[Figure]) -> None:
    data = {"machine": machine(), "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "smoke": SMOKE, "figures": [asdict(f) for f in figures]}
    RESULTS.write_text(json.dumps(data, indent=2))


def _num(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:,.2f}"


def print_table(figures: list[Figure], *, flush: bool = False) -> None:
    print(f"\n{'benchmark':<52} {'value':>12}  {'baseline (same run)':<40} target")
    for f in figures:
        base = ""
        if f.baseline:
            base = (f"{f.baseline}: {_num(f.baseline_value)}" if f.baseline_value is not None
                    else f.baseline)
        print(f"{f.name:<52} {_num(f.value):>10} {f.unit:<4} {base:<40} {f.target or ''}",
              flush=flush)
