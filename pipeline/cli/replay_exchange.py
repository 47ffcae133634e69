"""`signals replay-exchange`: a candle folder served over Binance USDⓈ-M's REST API and Bybit
v5's (under /v5/), at once."""

from __future__ import annotations

import argparse
import os

from pipeline.data.timeframes import parse_date_ms
from pipeline.reporting.text import utc_text


def register(subparsers: argparse._SubParsersAction) -> None:
    replay = subparsers.add_parser(
        "replay-exchange",
        help="serve a candle folder over Binance USDⓈ-M's REST API and Bybit v5's (/v5/)",
    )
    replay.add_argument("--data-dir", required=True, help="folder of MARKETID.csv[.gz] 1h files")
    replay.add_argument(
        "--funding-dir",
        default=os.environ.get("SIGNALS_FUNDING_DIR") or None,
        help="folder of MARKETID_funding.csv[.gz] recorded funding (default $SIGNALS_FUNDING_DIR; "
        "without one, the candle folder's own files, else a stated 0.01 %% stand-in)",
    )
    replay.add_argument("--port", type=int, default=8765, help="default 8765; 0 picks a free one")
    replay.add_argument("--host", default="127.0.0.1")
    replay.add_argument(
        "--clock",
        help="replay clock start (ISO date), or 'now' for real time; default: real time if the "
        "data reaches today, else 24 h before the data's last candle closes (so candles keep "
        "closing and the live sensor has runs to launch)",
    )
    replay.add_argument("--speed", type=float, default=1.0, help="replay seconds per real second")
    replay.add_argument(
        "--fault",
        help="fail requests: 429|500|timeout|reset (not carried out) or lost|reset_after|"
        "truncated|malformed_json (carried out, the answer lost, cut or not JSON) followed by "
        ":N (the next N requests) or :0.2 (a share of them), e.g. 500:3",
    )
    replay.add_argument(
        "--fault-delay",
        type=float,
        default=15.0,
        help="seconds a 'timeout' or 'lost' fault hangs (default 15)",
    )
    replay.add_argument("--seed", type=int, default=0, help="seed for share-based faults")
    replay.add_argument(
        "--balance", type=float, default=10_000.0, help="USDT wallet balance (default 10000)"
    )
    replay.set_defaults(func=cmd_replay_exchange)


def cmd_replay_exchange(args: argparse.Namespace) -> int:
    import time

    from pipeline.replay.clock import LEAD_HOURS, ReplayClock, sample_start_ms
    from pipeline.replay.faults import FaultPlan
    from pipeline.replay.server import ReplayExchange, ReplayServer

    explicit = args.clock not in (None, "now")
    clock = ReplayClock(parse_date_ms(args.clock) if explicit else None, args.speed)
    # The trading side accepts the same credentials the exchange broker reads, when set.
    credentials = {
        name: os.environ[var]
        for name, var in (("api_key", "SIGNALS_API_KEY"), ("api_secret", "SIGNALS_API_SECRET"))
        if os.environ.get(var)
    }
    exchange = ReplayExchange(
        args.data_dir, clock, balance=args.balance, funding_dir=args.funding_dir, **credentials
    )
    shown = "real time" if args.clock in (None, "now") else args.clock
    if args.clock is None:
        start = sample_start_ms(exchange.data.last_close_ms(), int(time.time() * 1000))
        if start is not None:
            clock.set(start, args.speed)
            shown = (
                f"{utc_text(start)}, {LEAD_HOURS} h before the data's last candle closes; "
                "--clock now for real time"
            )
    if args.fault:
        exchange.set_faults(FaultPlan.parse(args.fault, args.fault_delay, args.seed))
    server = ReplayServer(exchange, port=args.port, host=args.host)
    print(
        f"replay exchange on {server.url} serving {', '.join(exchange.data.symbols())} "
        f"(clock {shown}, speed {args.speed}x); "
        "Ctrl-C stops it",
        flush=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0
