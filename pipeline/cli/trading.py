"""`signals reconcile` and `signals kill`: the book against the broker, and the kill switch."""

from __future__ import annotations

import argparse

from pipeline.data.timeframes import timeframe_ms
from pipeline.settings import Settings


def register(subparsers: argparse._SubParsersAction) -> None:
    rec = subparsers.add_parser(
        "reconcile", help="compare the broker's positions and open orders with the book"
    )
    rec.add_argument(
        "--adopt", action="store_true", help="make the book hold what the broker holds"
    )
    rec.set_defaults(func=cmd_reconcile)

    kill = subparsers.add_parser("kill", help="the kill switch: flatten and stop trading")
    kill.add_argument("action", choices=("on", "off", "status"))
    kill.set_defaults(func=cmd_kill)


def cmd_reconcile(args: argparse.Namespace) -> int:
    """Compare the broker's positions and open orders with the book; optionally adopt."""
    from pipeline.execution.manager import PositionManager
    from pipeline.store.database import open_database
    from resources.broker import broker_resource

    settings = Settings.from_env()
    db = open_database(settings)
    # Outside a run: resolve the resource's config (the keys' EnvVars) as Dagster would.
    resource = broker_resource(settings).process_config_and_initialize()
    broker = resource.open(db)
    manager = PositionManager(
        db,
        broker,
        resource.risk(1),
        settings.exchange,
        settings.base_timeframe,
        timeframe_ms(settings.base_timeframe),
    )
    differences = manager.adopt() if args.adopt else manager.reconcile()
    for d in differences:
        print(f"{d.symbol} {d.what}: book {d.book}, broker {d.broker}")
    if not differences:
        print(f"account {broker.name}: book and broker agree")
    elif args.adopt:
        print("the book now holds what the broker holds")
    return 1 if differences and not args.adopt else 0


def cmd_kill(args: argparse.Namespace) -> int:
    """The kill switch file: while it exists, the next live run flattens and nothing trades."""
    settings = Settings.from_env()
    path = settings.home / "KILL_SWITCH"
    if args.action == "on":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("trading stopped by `signals kill on`\n")
    elif args.action == "off":
        path.unlink(missing_ok=True)
    print(f"kill switch {'ON' if path.exists() else 'off'} ({path})")
    return 0
