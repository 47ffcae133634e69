"""The live portfolio job resolves its signals on the exchange's clock, not the store's.

A store may already hold candles the exchange has not closed (`make run` stored the sample
further than the replay clock): `portfolio_signals` resolves a signal's realised return only
once its exit candle has closed on the exchange's clock, read from the replay exchange over
HTTP through the real ccxt candle source.
"""

from __future__ import annotations

import torch

from pipeline.backtest.config import BacktestConfig
from pipeline.data.csv_source import CandleFolder
from pipeline.inference_job import live_source
from pipeline.model.checkpoint import checkpoint_bytes
from pipeline.portfolio.model import MODEL_NAME
from pipeline.portfolio_live import _resolve
from pipeline.replay.clock import ReplayClock
from pipeline.replay.server import ReplayExchange, ReplayServer
from pipeline.signals.inference import LONG, Decision
from pipeline.store.models import ModelRecord, save_model
from pipeline.store.signals import load_signals, record_signal
from pipeline.trading_replay import seed_candles
from resources.exchange import CandleSourceResource
from tests.helpers.live import HOUR, LIVE_START, live_folder

EXCHANGE, BTC, TF, HORIZON = "binanceusdm", "BTC/USDT:USDT", "4h", 2
STEP = 4 * HOUR
# The signal's candle opens at LIVE_START: it enters at the next candle's open (+ 4 h) and
# exits at the open HORIZON candles later (+ 12 h), a candle that closes at + 16 h.
ENTRY, EXIT = LIVE_START + STEP, LIVE_START + (1 + HORIZON) * STEP
EXIT_CLOSE = EXIT + STEP


def _record_portfolio_signal(db) -> None:
    """A long BTC signal at LIVE_START, recorded as `_record_signals` records one."""
    with db.connection() as conn:
        model_id = save_model(
            conn,
            ModelRecord(
                name=MODEL_NAME,
                timeframe=TF,
                config={"horizon": HORIZON},
                features=["a"],
                scaler={},
                data_window={},
                metrics={},
                seed=0,
                checkpoint=checkpoint_bytes(torch.nn.Linear(1, 1).state_dict()),
            ),
        )
        record_signal(
            conn,
            exchange=EXCHANGE,
            symbol=BTC,
            timeframe=TF,
            candle_ms=LIVE_START,
            decision=Decision(
                model_id=model_id,
                market="BTCUSDT",
                timestamp=LIVE_START,
                probability_up=0.8,
                confidence=0.8,
                side=LONG,
                threshold=0.5,
                input_hash="0" * 64,
            ),
            run_id=None,
            timings={},
            mode="production",
            horizon=HORIZON,
            context={"score": 1.0, "target_weight": 0.2, "ordered": True},
        )


def _btc_signal(db) -> dict:
    with db.connection() as conn:
        (row,) = load_signals(conn, EXCHANGE, BTC, TF)
    return row


def test_a_portfolio_outcome_waits_for_the_exit_candle_to_close_on_the_exchange_clock(
    tmp_path, sample_frames, db
):
    """The store holds the exit candle before the exchange has closed it: `_resolve` must
    leave the signal open until the exchange's clock passes the exit candle's close."""
    folder = live_folder(tmp_path, sample_frames, 20)
    # Every 4h candle up to and including the exit candle is stored from the start.
    seed_candles(db, CandleFolder(folder), EXCHANGE, [BTC], [TF], EXIT_CLOSE)
    _record_portfolio_signal(db)
    exchange = ReplayExchange(folder, ReplayClock(EXIT_CLOSE - 60_000, speed=1e-9))
    with ReplayServer(exchange) as server:
        source = live_source(
            CandleSourceResource(
                exchange=EXCHANGE, api_url=server.url, retry_attempts=2, retry_backoff_s=0.05
            )
        )
        # A minute before the exit candle closes on the exchange: stored, but not closed.
        assert _resolve(db, source, TF) == 0
        early = _btc_signal(db)
        exchange.clock.set(EXIT_CLOSE + 60_000, 1e-9)
        assert _resolve(db, source, TF) == 1
        late = _btc_signal(db)
    assert early["realised_return"] is None and early["realised_net_return"] is None
    # Open to open, entry (the candle after the signal's) to exit, read from the sample (a
    # 4h candle opens at its first hour's open); the same float8 arithmetic, bit for bit.
    opens = sample_frames["BTCUSDT"].set_index("timestamp")["open"]
    move = float(opens[EXIT]) / float(opens[ENTRY]) - 1
    assert late["realised_return"] == move
    assert late["realised_net_return"] == move - BacktestConfig().round_trip  # a long
