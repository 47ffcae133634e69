"""`signals db`: the PostgreSQL store's URL, migrations, and the embedded server's stop."""

from __future__ import annotations

import argparse

from pipeline.cli.common import CliError
from pipeline.settings import Settings


def register(subparsers: argparse._SubParsersAction) -> None:
    db = subparsers.add_parser(
        "db",
        help="the PostgreSQL store",
        description="url: the store's libpq URL; dagster-url: the SQLAlchemy URL of Dagster's "
        "own database on the same server (created if missing; what `make ui` gives the local "
        "instance); migrate: apply the store's migrations; stop: stop the embedded server.",
    )
    db.add_argument("action", choices=("url", "dagster-url", "migrate", "stop"))
    db.set_defaults(func=cmd_db)


def cmd_db(args: argparse.Namespace) -> int:
    from pipeline.store.database import open_database, resolve_url
    from pipeline.store.embedded import stop_embedded

    settings = Settings.from_env()
    if args.action == "url":
        print(resolve_url(settings))
    elif args.action == "dagster-url":
        from pipeline.store.dagster_storage import dagster_storage_url

        print(dagster_storage_url(resolve_url(settings)))
    elif args.action == "migrate":
        open_database(settings)
        print("migrations applied")
    elif args.action == "stop":
        if settings.database_url:
            raise CliError("SIGNALS_DATABASE_URL is set: that server is not ours to stop")
        print("stopped" if stop_embedded(settings.pgdata) else "not running")
    return 0
