"""`ledger webhooks run`: the webhook worker on its own (docker-compose, or beside an API
started with LEDGER_RUN_WEBHOOKS=false)."""

from __future__ import annotations

import argparse
import signal
import threading
from typing import Any

from ledger.config import Settings


def cmd_run(args: argparse.Namespace) -> int:
    """Detect, schedule and deliver webhooks until SIGTERM or SIGINT."""
    from ledger.service import Ledger
    from projections.webhooks.worker import WebhookWorker

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    settings = Settings()
    ledger = Ledger(settings)
    worker = WebhookWorker(ledger, settings)
    try:
        worker.run(stop)
    finally:
        worker.close()
        ledger.close()
    return 0


def add_commands(sub: Any) -> None:
    webhooks = sub.add_parser("webhooks", help="webhook deliveries").add_subparsers(
        dest="webhooks_command", required=True)
    p = webhooks.add_parser(
        "run", help="detect occurrences, deliver and retry webhooks until stopped (one "
        "worker per database sends; others stand by)")
    p.set_defaults(func=cmd_run)
