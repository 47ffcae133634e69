"""Sensors: `new_candle_sensor` launches one live inference run per newly closed candle."""

import json
import warnings

import dagster as dg

from pipeline.data.ccxt_source import CcxtCandleSource
from pipeline.data.schema import CandleValidationError
from pipeline.data.timeframes import ms_to_iso, timeframe_ms
from pipeline.exchange.markets import UnknownMarketError
from pipeline.exchange.retry import ExchangeSourceError
from pipeline.inference_job import live_inference_job
from pipeline.location import SETTINGS
from pipeline.partitions import MODEL_TIMEFRAME, STRATEGY, SYMBOLS_BY_MARKET_ID
from pipeline.portfolio_live import portfolio_live_job
from pipeline.prelaunch import candles_to_request
from resources.exchange import CandleSourceResource

warnings.filterwarnings("ignore", category=dg.BetaWarning, module="dagster")

# The timeframe models decide on (the portfolio's decision timeframe, or the base one for
# barrier models) is the one the sensor watches.
LIVE_TIMEFRAME = MODEL_TIMEFRAME
PORTFOLIO = STRATEGY == "portfolio"
# A sensor that was off for a while catches up this many candles per market per tick; the
# cursor moves only past what was requested, so nothing is skipped, and no tick floods the
# run queue. (Candles too old to trade are recorded but not traded: see PositionManager.)
MAX_CANDLES_PER_TICK = 12
LIVE_RUN_RETRIES = 2


def portfolio_run_key(timeframe: str, candle_ms: int) -> str:
    """Unique per decision candle: every market of it is decided in one run."""
    return f"live:portfolio:{timeframe}:{candle_ms}"


def portfolio_run_request(timeframe: str, candle_ms: int) -> dg.RunRequest:
    return dg.RunRequest(
        run_key=portfolio_run_key(timeframe, candle_ms),
        run_config={
            "ops": {
                "portfolio_signals": {"config": {"timeframe": timeframe, "candle_ms": candle_ms}}
            }
        },
        tags={
            "timeframe": timeframe,
            "signals/candle": ms_to_iso(candle_ms),
            # One portfolio run at a time (dagster.yaml's tag limit): candles in order.
            "signals/series": f"portfolio-{timeframe}",
            "dagster/max_retries": str(LIVE_RUN_RETRIES),
        },
    )


def run_key(market: str, timeframe: str, candle_ms: int) -> str:
    """Unique per market, timeframe and candle: Dagster never launches a key twice."""
    return f"live:{market}:{timeframe}:{candle_ms}"


def candle_run_request(market: str, timeframe: str, candle_ms: int) -> dg.RunRequest:
    return dg.RunRequest(
        run_key=run_key(market, timeframe, candle_ms),
        run_config={
            "ops": {
                "live_signal": {
                    "config": {"market": market, "timeframe": timeframe, "candle_ms": candle_ms}
                }
            }
        },
        tags={
            "market": market,
            "timeframe": timeframe,
            "signals/candle": ms_to_iso(candle_ms),
            # One run at a time per series (see dagster.yaml's tag concurrency limit), so a
            # market's candles are executed in order.
            "signals/series": f"{market}-{timeframe}",
            # A failed run (exchange down past the retry bound, database restarting) is
            # retried by the daemon, so the candle is not lost (dagster.yaml enables retries).
            "dagster/max_retries": str(LIVE_RUN_RETRIES),
        },
    )


@dg.sensor(
    job=portfolio_live_job if PORTFOLIO else live_inference_job,
    minimum_interval_seconds=SETTINGS.sensor_interval_s,
    default_status=dg.DefaultSensorStatus.STOPPED,
    description=(
        "Each tick, one portfolio_live_job run per decision candle every market has closed "
        "since the last tick, and one for the next candle when it closes before the next tick "
        "(that run waits for the close); run key = the candle, so a candle runs once."
        if PORTFOLIO
        else "Each tick, one live_inference_job run per market whose newest candle closed "
        "since the last tick (run key = market and candle, so a candle runs once)."
    ),
)
def new_candle_sensor(
    context: dg.SensorEvaluationContext, candle_source: CandleSourceResource
) -> dg.SensorResult:
    """Each tick, asks the exchange for every configured market's newest closed candle and
    requests a live inference run for each candle after the cursor (the last one handled
    per market × timeframe). An exchange error (or klines whose open times cannot be read)
    skips that market this tick, with a log line; its cursor stays, so the next tick asks for
    the same candle again."""
    cursor: dict[str, int] = json.loads(context.cursor) if context.cursor else {}
    source = candle_source.open()
    if not isinstance(source, CcxtCandleSource):
        return dg.SensorResult(
            skip_reason="live inference needs an exchange source (SIGNALS_SOURCE=ccxt)",
            cursor=context.cursor,
        )
    step = timeframe_ms(LIVE_TIMEFRAME)
    # One clock request and one 5-candle request per market each tick: unpaced (ccxt's
    # limiter would spend 50 ms per request of a bounded, tiny load).
    source.exchange.enableRateLimit = False
    try:
        now = source.now_ms()
    except ExchangeSourceError as err:
        context.log.warning(f"exchange clock unavailable: {err}")
        return dg.SensorResult(skip_reason=f"exchange unavailable: {err}", cursor=context.cursor)
    requests, problems = [], []
    closed: list[int] = []  # portfolio: each market's newest closed candle
    for market, symbol in SYMBOLS_BY_MARKET_ID.items():
        key = f"{market}:{LIVE_TIMEFRAME}"
        try:
            latest = source.latest_closed(symbol, LIVE_TIMEFRAME, now)
        except (ExchangeSourceError, UnknownMarketError, CandleValidationError) as err:
            context.log.warning(f"{key}: {err}")
            problems.append(f"{key}: {err}")
            continue
        if latest is None:
            continue
        if PORTFOLIO:  # one run per candle, once every market has closed it
            closed.append(latest)
            continue
        # first tick: start from now; never ahead of the close (the per-market runs)
        candles = candles_to_request(latest, cursor.get(key), now, step, 0, MAX_CANDLES_PER_TICK)
        requests += [candle_run_request(market, LIVE_TIMEFRAME, c) for c in candles]
        if candles:
            cursor[key] = candles[-1]
    if PORTFOLIO and closed and not problems:
        key, latest = f"portfolio:{LIVE_TIMEFRAME}", min(closed)
        # The next candle too when it closes before the next tick: its run starts now and
        # waits for the close (`pipeline.prelaunch`).
        lead_ms = SETTINGS.prelaunch_lead_s * 1000
        candles = candles_to_request(
            latest, cursor.get(key), now, step, lead_ms, MAX_CANDLES_PER_TICK
        )
        requests += [portfolio_run_request(LIVE_TIMEFRAME, c) for c in candles]
        if candles:
            cursor[key] = candles[-1]
    if requests:
        return dg.SensorResult(run_requests=requests, cursor=json.dumps(cursor, sort_keys=True))
    reason = "; ".join(problems) if problems else f"no new closed {LIVE_TIMEFRAME} candle"
    return dg.SensorResult(skip_reason=reason, cursor=json.dumps(cursor, sort_keys=True))
