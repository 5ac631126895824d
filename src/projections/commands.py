"""`ledger projections run|rebuild|status`, `ledger verify`, `ledger report`.

Rebuild and verify draw a progress bar when stderr is a terminal, and print one line
when they are done otherwise (logs, CI).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from ledger.config import Settings
from ledger.store import LedgerStore
from projections.export import csv_text, plain, table_text
from projections.runner import Progress
from projections.service import NAMES, Projections


@contextmanager
def opened(settings: Settings | None = None) -> Iterator[Projections]:
    settings = settings or Settings()
    store = LedgerStore(settings)
    try:
        yield Projections(store, settings)
    finally:
        store.close()


class Bar:
    """A progress bar on a terminal; silent otherwise."""

    def __init__(self, label: str, stream: TextIO | None = None, width: int = 30) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.width = width
        self.shown = self.stream.isatty()

    def __call__(self, position: int, head: int) -> None:
        if not self.shown or head <= 0:
            return
        done = min(position / head, 1.0)
        filled = int(done * self.width)
        self.stream.write(f"\r{self.label} [{'#' * filled}{'.' * (self.width - filled)}] "
                          f"{done:4.0%} {position:,}/{head:,}")
        self.stream.flush()

    def close(self) -> None:
        if self.shown:
            self.stream.write("\n")
            self.stream.flush()


@contextmanager
def progress(label: str) -> Iterator[Progress]:
    bar = Bar(label)
    try:
        yield bar
    finally:
        bar.close()


def cmd_run(args: argparse.Namespace) -> int:
    """Keep the views up to date until SIGTERM or SIGINT."""
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with opened() as projections:
        projections.run(stop)
    return 0


def cmd_rebuild(args: argparse.Namespace) -> int:
    with opened() as projections, progress("rebuild") as bar:
        rebuilt = projections.rebuild(args.names, progress=bar)
    print(f"rebuilt {', '.join(rebuilt.names)} from {rebuilt.events:,} events in "
          f"{rebuilt.seconds:.2f}s ({rebuilt.per_second:,.0f} events/s)")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    with opened() as projections:
        status = projections.status()
    if args.json:
        print(json.dumps(status))
    else:
        rows = [{**p, "head": status["head"]} for p in status["projections"]]
        print(table_text(("name", "position", "head", "lag"), rows))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """Exit status 1 when a view differs from the replay of the log."""
    from projections.verify import verify

    with opened() as projections, progress("verify") as bar:
        result = verify(projections, progress=bar)
    for difference in result.differences:
        print(difference)
    print(f"{'ok' if result.ok else 'DIFFERENCES'}: {len(result.differences)} difference(s) "
          f"after replaying {result.events:,} events in {result.seconds:.2f}s; positions "
          + ", ".join(f"{k} {v}" for k, v in result.positions.items()))
    return 0 if result.ok else 1


def cmd_report(args: argparse.Namespace) -> int:
    """The revenue report; the views first apply what the log holds."""
    groups = args.group_by or []
    with opened() as projections:
        projections.catch_up()
        report = projections.revenue.report(since=args.since, until=args.until,
                                            group_by=groups, account_id=args.account_id)
    if args.format == "json":
        print(json.dumps({"group_by": groups, "data": report.rows, "total": report.total},
                         default=plain))
    elif args.format == "csv":
        sys.stdout.write(csv_text(report.columns, report.rows))
    else:
        total: dict[str, Any] = {**dict.fromkeys(report.group_by, ""), **report.total}
        if report.group_by:
            total[report.group_by[0]] = "total"
        rows = [*report.rows, total] if report.group_by else report.rows
        print(table_text(report.columns, rows))
    return 0


def whole_hour(value: str) -> Any:
    """argparse type of --from/--to: a date or a whole UTC hour (RFC 3339)."""
    from datetime import UTC, datetime

    when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    if (when.minute, when.second, when.microsecond) != (0, 0, 0):
        raise argparse.ArgumentTypeError("the report is kept per hour: give a whole hour")
    return when


def view_name(value: str) -> str:
    """argparse type of a view's name (`choices` refuses an empty list of them)."""
    if value not in NAMES:
        raise argparse.ArgumentTypeError(f"no view {value!r} (one of {', '.join(NAMES)})")
    return value


def dimensions(value: str) -> list[str]:
    """argparse type of --group-by."""
    from projections.revenue.view import DIMENSIONS

    groups = [g.strip() for g in value.split(",") if g.strip()]
    unknown = [g for g in groups if g not in DIMENSIONS]
    if unknown:
        raise argparse.ArgumentTypeError(f"cannot group by {', '.join(unknown)} "
                                         f"(one of {', '.join(DIMENSIONS)})")
    return groups


def add_commands(sub: Any) -> None:
    """Register the read side's commands on the `ledger` parser's subcommands."""
    projections = sub.add_parser("projections", help="the read models").add_subparsers(
        dest="projections_command", required=True)
    p = projections.add_parser("run", help="keep the views up to date (a worker); on "
                               "PostgreSQL follows the log's notifications")
    p.set_defaults(func=cmd_run)
    p = projections.add_parser("rebuild", help="drop views and replay the whole log into "
                               "them (all by default)")
    p.add_argument("names", nargs="*", metavar="NAME", type=view_name,
                   help=", ".join(NAMES))
    p.set_defaults(func=cmd_rebuild)
    p = projections.add_parser("status", help="each view's position, the head, the lag")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("verify", help="replay the log and compare it with every view "
                       "(exit status 1 on a difference)")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("report", help="revenue, cost and margin (the revenue report)")
    p.add_argument("--from", dest="since", type=whole_hour, metavar="WHEN",
                   help="start, inclusive: a date (2026-03-01) or a whole UTC hour "
                        "(2026-03-01T09:00Z)")
    p.add_argument("--to", dest="until", type=whole_hour, metavar="WHEN",
                   help="end, exclusive (same forms)")
    p.add_argument("--group-by", type=dimensions, metavar="DIMS",
                   help="comma-separated: hour, day, month, account, operation, model, "
                        "provider (none: one total)")
    p.add_argument("--account-id", help="one account only")
    p.add_argument("--format", choices=["table", "csv", "json"], default="table")
    p.set_defaults(func=cmd_report)
