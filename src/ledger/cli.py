"""The `ledger` command line."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import partial

from ledger.config import Settings


def _ledger(settings: Settings):  # type: ignore[no-untyped-def]
    from ledger.service import Ledger

    return Ledger(settings)


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    settings = Settings()
    ledger = _ledger(settings)
    created = ledger.seed()
    ledger.close()
    if any(created.values()):
        logging.getLogger("ledger").info("seeded an empty store: %s", created)
    uvicorn.run("api.app:create_app", factory=True, host=args.host, port=args.port,
                workers=args.workers, log_level=args.log_level, access_log=False)
    return 0


def cmd_seed(args: argparse.Namespace) -> int:
    ledger = _ledger(Settings())
    try:
        print(json.dumps(ledger.seed()))
    finally:
        ledger.close()
    return 0


def _aware_time(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an RFC 3339 time: {text!r}") from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError("give the time with an offset, e.g. Z or +00:00")
    return value.astimezone(UTC)


def cmd_keys_create(args: argparse.Namespace) -> int:
    from ledger.domain.base import Actor

    ledger = _ledger(Settings())
    try:
        outcome = ledger.keys.issue(args.role, Actor(id="cli", role="platform_admin"),
                                    account_id=args.account_id, user_id=args.user_id,
                                    expires_at=args.expires_at, label=args.label or "")
        key = outcome.value
        print(json.dumps({"key_id": key.key_id, "token": key.token, "role": args.role,
                          "account_id": args.account_id, "user_id": args.user_id,
                          "expires_at": args.expires_at and args.expires_at.isoformat()}))
    finally:
        ledger.close()
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    from ledger.domain.base import Actor

    ledger = _ledger(Settings())
    try:
        ledger.keys.revoke(args.key_id, args.reason, Actor(id="cli", role="platform_admin"))
        print(json.dumps({"key_id": args.key_id, "revoked": True}))
    finally:
        ledger.close()
    return 0


def cmd_keys_list(args: argparse.Namespace) -> int:
    """Every key issued, with its status; never a token or its hash."""
    from dataclasses import asdict

    from ledger.domain.base import utcnow
    from projections.export import plain, table_text

    ledger = _ledger(Settings())
    try:
        now = utcnow()
        rows = [{**asdict(k), "status": k.status(now)}
                for k in ledger.keys.issued(args.account_id)]
    finally:
        ledger.close()
    if args.json:
        print(json.dumps(rows, default=plain))
    else:
        print(table_text(("key_id", "role", "account_id", "user_id", "status", "issued_at",
                          "expires_at", "revoked_at", "label"), rows))
    return 0


def cmd_verify(args: argparse.Namespace, views: Callable[[argparse.Namespace], int]) -> int:
    """The audit chain, then (unless --chain-only) every view against a replay of the
    log: exit status 1 on a problem in either."""
    from ledger.integrity import verify_chain
    from ledger.store import LedgerStore
    from projections.commands import progress

    store = LedgerStore(Settings())
    try:
        with progress("chain") as bar:
            report = verify_chain(store, anchors=args.anchor, progress=bar)
    finally:
        store.close()
    for problem in report.problems:
        print(problem)
    head = report.head
    print(f"chain {'ok' if report.ok else 'BROKEN'}: {len(report.problems)} problem(s) in "
          f"{report.links:,} links and {report.events:,} events ({report.seconds:.2f}s); "
          f"head {f'{head.notification_id}:{head.hash.hex()}' if head else 'none'}")
    code = 0 if report.ok else 1
    return code if args.chain_only else max(code, views(args))


def anchor(value: str) -> tuple[int, bytes]:
    """argparse type of --anchor."""
    from ledger.integrity import parse_anchor

    try:
        return parse_anchor(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def cmd_secrets_new_key(args: argparse.Namespace) -> int:
    from ledger.secrets import SecretBox

    print(SecretBox.new_key())
    return 0


def cmd_secrets_rotate(args: argparse.Namespace) -> int:
    """Re-seal the stored API keys under the first key of LEDGER_SECRET_KEY."""
    from ledger.domain.base import Actor

    ledger = _ledger(Settings())
    try:
        fields = ledger.settings_service.rotate(Actor(id="cli", role="platform_admin"))
        print(json.dumps({"resealed": fields}))
    finally:
        ledger.close()
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Fill the store with a month of usage (see ledger/demo.py), with a progress bar."""
    from ledger.demo import Demo
    from ledger.progress import Progress

    ledger = _ledger(Settings())
    try:
        ledger.seed()
        demo = Demo(ledger, days=args.days, seed=args.seed, scale=args.scale,
                    prefix=args.prefix)
        with Progress("demo", unit="commands") as bar:
            summary = demo.run(progress=bar)
        print(json.dumps(summary.as_dict()))
    finally:
        ledger.close()
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    """Release every credit hold that has expired and mark its provider call abandoned;
    record the breakage of every lot past its expiry."""
    from projections.lots.sweep import expire_due_lots
    from projections.service import Projections

    settings = Settings()
    ledger = _ledger(settings)
    try:
        report = ledger.sweeper.run_once().as_dict()
        projections = Projections(ledger.store, settings)
        projections.catch_up()  # the lots view says which accounts have lots due
        report["expired_lots_of"] = expire_due_lots(ledger.credits, projections.lots)
        print(json.dumps(report))
    finally:
        ledger.close()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ledger",
        description="Credit ledger and AI settings service. Configuration comes from "
                    "LEDGER_* environment variables (see README).")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("serve", help="serve the HTTP API (seeds an empty store first)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    p.add_argument("--log-level", default="info")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("seed", help="seed the model registry and credit costs (idempotent)")
    p.set_defaults(func=cmd_seed)

    keys = sub.add_parser("keys", help="API keys").add_subparsers(dest="keys_command",
                                                                   required=True)
    p = keys.add_parser("create", help="issue a bearer token (printed once)")
    p.add_argument("--role", required=True,
                   choices=["platform_admin", "service", "account_admin", "user", "auditor"])
    p.add_argument("--account-id")
    p.add_argument("--user-id")
    p.add_argument("--label")
    p.add_argument("--expires-at", type=_aware_time, metavar="TIME",
                   help="RFC 3339 time with an offset (2026-01-31T00:00:00Z): the key is "
                        "refused from then on")
    p.set_defaults(func=cmd_keys_create)
    p = keys.add_parser("revoke", help="revoke a key")
    p.add_argument("key_id")
    p.add_argument("--reason", default="revoked from the command line")
    p.set_defaults(func=cmd_keys_revoke)
    p = keys.add_parser("list", help="every key issued and its status (no tokens)")
    p.add_argument("--account-id")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_keys_list)

    secrets = sub.add_parser(
        "secrets", help="LEDGER_SECRET_KEY rotation (see ledger/secrets.py)").add_subparsers(
        dest="secrets_command", required=True)
    p = secrets.add_parser("new-key", help="print a new key for LEDGER_SECRET_KEY")
    p.set_defaults(func=cmd_secrets_new_key)
    p = secrets.add_parser("rotate", help="re-seal the stored API keys under the first key "
                           "of LEDGER_SECRET_KEY (run with LEDGER_SECRET_KEY=new,old)")
    p.set_defaults(func=cmd_secrets_rotate)

    p = sub.add_parser("sweep", help="release expired credit holds and abandon their calls "
                       "(the API process also does it every LEDGER_SWEEP_INTERVAL_S); "
                       "expire lots past their expiry (so does the webhook worker)")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser(
        "demo", help="fill the store with a realistic month of usage (for the dashboard)",
        description="Seed the store if it is empty, then record a month of purchases, "
                    "grants, charges across the seeded models and providers, top-ups, "
                    "refunds and open holds for a dozen new accounts, spread over the past "
                    "--days up to now. Runs once per store and --prefix.")
    p.add_argument("--days", type=int, default=30, help="how far back it starts (30)")
    p.add_argument("--scale", type=float, default=1.0,
                   help="more (2) or less (0.2) activity per account (1)")
    p.add_argument("--seed", type=int, default=8, help="random seed: same seed, same data")
    p.add_argument("--prefix", default="", help="prefix of the demo account ids")
    p.set_defaults(func=cmd_demo)

    # the read side: projections run|rebuild|status, verify, report (the CLI is an edge,
    # like `serve`, so it may reach up to the projections)
    from projections.commands import add_commands

    add_commands(sub)
    from projections.webhooks.commands import add_commands as add_webhook_commands

    add_webhook_commands(sub)  # ledger webhooks run
    # `verify` checks the audit chain first (ledger.integrity), then the views
    p = sub.choices["verify"]
    p.add_argument("--chain-only", action="store_true",
                   help="check the audit chain only, not the views")
    p.add_argument("--anchor", action="append", default=[], type=anchor, metavar="ID:HASH",
                   help="a chain head printed earlier: the link must still be there")
    p.set_defaults(func=partial(cmd_verify, views=p.get_default("func")))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a clear one-line error, not a stack trace
        from ledger.domain.errors import DomainError

        if isinstance(exc, DomainError):
            print(f"ledger: {exc.title}: {exc.detail}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
