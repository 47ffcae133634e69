"""Project settings, read from the environment so every process (CLI, Dagster runs) agrees."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pipeline.exchange.ids import DEFAULT_EXCHANGE

DEFAULT_MARKETS = (
    "BTC/USDT:USDT",
    "ETH/USDT:USDT",
    "SOL/USDT:USDT",
    "BNB/USDT:USDT",
    "XRP/USDT:USDT",
)
DEFAULT_TIMEFRAMES = ("1h", "4h", "1d")
# Binance USDⓈ-M perpetuals start in late 2019; earlier dates just return nothing.
DEFAULT_SINCE = "2019-09-01"
# Feature selection is fitted on candles up to the train end and its uplift scored up to the
# validation end; training uses the same split.
DEFAULT_TRAIN_END = "2022-06-30"
DEFAULT_VALIDATION_END = "2022-12-31"
DEFAULT_MAX_EPOCHS = 30  # LSTM training epochs at most (early stopping usually ends sooner)
# What the product trades: `portfolio` (every market's score → target weights at the decision
# timeframe, one shared equity) or `barrier` (each market alone, barrier round trips).
STRATEGIES = ("portfolio", "barrier")
DEFAULT_STRATEGY = "portfolio"
# The portfolio's decision timeframe and scorer: what the walk-forward's written rule chose on
# validation's judging halves among 1h, 4h and 1d and the LSTM, boosting and their blend
# (pipeline/evaluation/default_choice.py; the README gives the run and its figures).
DEFAULT_DECISION_TIMEFRAME = "4h"
DEFAULT_SCORER = "gbm"


def _split(value: str | None, default: tuple[str, ...]) -> tuple[str, ...]:
    if not value:
        return default
    return tuple(item.strip() for item in value.split(",") if item.strip())


def _optional_int(env: Mapping[str, str], name: str) -> int | None:
    """An integer setting, or None when unset or blank; a clear error when it is no integer."""
    text = (env.get(name) or "").strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{name} must be a whole number of seconds, not {text!r}") from None


@dataclass(frozen=True)
class Settings:
    """What the project runs on. Build with `Settings.from_env()`."""

    home: Path = Path(".signals")
    database_url: str | None = None
    data_dir: Path | None = None
    # Recorded funding (MARKETID_funding.csv[.gz]) for the verdicts and the replay exchange;
    # None: the candle folder's own funding files, if any.
    funding_dir: Path | None = None
    source: str = "ccxt"
    exchange: str = DEFAULT_EXCHANGE
    api_url: str | None = None
    markets: tuple[str, ...] = DEFAULT_MARKETS
    timeframes: tuple[str, ...] = DEFAULT_TIMEFRAMES
    since: str = DEFAULT_SINCE
    train_end: str = DEFAULT_TRAIN_END
    validation_end: str = DEFAULT_VALIDATION_END
    store_url: str | None = None
    max_epochs: int = DEFAULT_MAX_EPOCHS
    broker: str = "paper"  # where live signals trade: `paper` or `ccxt` (the exchange account)
    account: str = "paper"  # the paper account's name
    # One paper account per market (`<account>-<market id>`), each compounding alone like its
    # backtest: what a replay compared with the backtest market by market needs.
    account_per_market: bool = False
    sensor_interval_s: int = 30  # how often new_candle_sensor asks for a closed candle
    # How long before a portfolio decision candle's close (on the exchange's clock) its live
    # run may be launched, to wait there for the close (`pipeline.prelaunch`); None: one sensor
    # interval and 5 s, so the run is up before the tick that would see the close late; 0: off.
    prelaunch_s: int | None = None
    strategy: str = DEFAULT_STRATEGY
    decision_timeframe: str = DEFAULT_DECISION_TIMEFRAME  # the portfolio's (barrier: the base)
    scorer: str = DEFAULT_SCORER  # the portfolio model's scorer: lstm or gbm

    @property
    def prelaunch_lead_s(self) -> int:
        """Seconds of the exchange's clock a live run may start before its candle closes."""
        return self.sensor_interval_s + 5 if self.prelaunch_s is None else self.prelaunch_s

    def __post_init__(self) -> None:
        if self.prelaunch_s is not None and self.prelaunch_s < 0:
            raise ValueError(f"SIGNALS_PRELAUNCH_S must be 0 or more, not {self.prelaunch_s}")
        if self.strategy not in STRATEGIES:
            raise ValueError(
                f"SIGNALS_STRATEGY must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}"
            )
        if self.scorer not in ("lstm", "gbm"):
            raise ValueError(f"SIGNALS_SCORER must be lstm or gbm, got {self.scorer!r}")
        if self.strategy == "portfolio" and self.decision_timeframe not in self.timeframes:
            raise ValueError(
                f"SIGNALS_DECISION_TIMEFRAME {self.decision_timeframe!r} is not among "
                f"SIGNALS_TIMEFRAMES ({', '.join(self.timeframes)}): its candles would not exist"
            )

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        data_dir = env.get("SIGNALS_DATA_DIR")
        funding_dir = env.get("SIGNALS_FUNDING_DIR")
        return cls(
            home=Path(env.get("SIGNALS_HOME", ".signals")).expanduser().resolve(),
            database_url=env.get("SIGNALS_DATABASE_URL") or None,
            data_dir=Path(data_dir).expanduser().resolve() if data_dir else None,
            funding_dir=Path(funding_dir).expanduser().resolve() if funding_dir else None,
            source=env.get("SIGNALS_SOURCE", "ccxt"),
            exchange=env.get("SIGNALS_EXCHANGE", DEFAULT_EXCHANGE),
            api_url=env.get("SIGNALS_API_URL") or None,
            markets=_split(env.get("SIGNALS_MARKETS"), DEFAULT_MARKETS),
            timeframes=_split(env.get("SIGNALS_TIMEFRAMES"), DEFAULT_TIMEFRAMES),
            since=env.get("SIGNALS_SINCE", DEFAULT_SINCE),
            train_end=env.get("SIGNALS_TRAIN_END", DEFAULT_TRAIN_END),
            validation_end=env.get("SIGNALS_VALIDATION_END", DEFAULT_VALIDATION_END),
            store_url=env.get("SIGNALS_STORE_URL") or None,
            max_epochs=int(env.get("SIGNALS_MAX_EPOCHS", str(DEFAULT_MAX_EPOCHS))),
            broker=env.get("SIGNALS_BROKER", "paper"),
            account=env.get("SIGNALS_ACCOUNT", "paper"),
            account_per_market=env.get("SIGNALS_ACCOUNT_PER_MARKET", "").lower()
            in ("1", "true", "yes"),
            sensor_interval_s=int(env.get("SIGNALS_SENSOR_INTERVAL_S", "30")),
            prelaunch_s=_optional_int(env, "SIGNALS_PRELAUNCH_S"),
            strategy=env.get("SIGNALS_STRATEGY", DEFAULT_STRATEGY),
            decision_timeframe=env.get("SIGNALS_DECISION_TIMEFRAME", DEFAULT_DECISION_TIMEFRAME),
            scorer=env.get("SIGNALS_SCORER", DEFAULT_SCORER),
        )

    @property
    def pgdata(self) -> Path:
        return self.home / "pg"

    @property
    def base_timeframe(self) -> str:
        """The timeframe features, labels and models work on: the finest configured."""
        from pipeline.data.timeframes import timeframe_ms

        return min(self.timeframes, key=timeframe_ms)

    @property
    def model_timeframe(self) -> str:
        """The timeframe models decide on: the portfolio's decision timeframe, or the base."""
        return self.decision_timeframe if self.strategy == "portfolio" else self.base_timeframe

    @property
    def store_uri(self) -> str:
        """Where columnar assets (features, selections) live: a folder or an object-store URL."""
        return self.store_url or str(self.home / "store")
