"""Project settings, read from the environment so every process (CLI, Dagster runs) agrees."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_MARKETS = (
    "BTC/USDT:USDT",
    "ETH/USDT:USDT",
    "SOL/USDT:USDT",
    "BNB/USDT:USDT",
    "XRP/USDT:USDT",
)
DEFAULT_TIMEFRAMES = ("1h", "4h", "1d")
DEFAULT_EXCHANGE = "binanceusdm"
# Binance USDⓈ-M perpetuals start in late 2019; earlier dates just return nothing.
DEFAULT_SINCE = "2019-09-01"


def _split(value: str | None, default: tuple[str, ...]) -> tuple[str, ...]:
    if not value:
        return default
    return tuple(item.strip() for item in value.split(",") if item.strip())


@dataclass(frozen=True)
class Settings:
    """What the project runs on. Build with `Settings.from_env()`."""

    home: Path = Path(".signals")
    database_url: str | None = None
    data_dir: Path | None = None
    source: str = "ccxt"
    exchange: str = DEFAULT_EXCHANGE
    api_url: str | None = None
    markets: tuple[str, ...] = DEFAULT_MARKETS
    timeframes: tuple[str, ...] = DEFAULT_TIMEFRAMES
    since: str = DEFAULT_SINCE

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        data_dir = env.get("SIGNALS_DATA_DIR")
        return cls(
            home=Path(env.get("SIGNALS_HOME", ".signals")).expanduser().resolve(),
            database_url=env.get("SIGNALS_DATABASE_URL") or None,
            data_dir=Path(data_dir).expanduser().resolve() if data_dir else None,
            source=env.get("SIGNALS_SOURCE", "ccxt"),
            exchange=env.get("SIGNALS_EXCHANGE", DEFAULT_EXCHANGE),
            api_url=env.get("SIGNALS_API_URL") or None,
            markets=_split(env.get("SIGNALS_MARKETS"), DEFAULT_MARKETS),
            timeframes=_split(env.get("SIGNALS_TIMEFRAMES"), DEFAULT_TIMEFRAMES),
            since=env.get("SIGNALS_SINCE", DEFAULT_SINCE),
        )

    @property
    def pgdata(self) -> Path:
        return self.home / "pg"
