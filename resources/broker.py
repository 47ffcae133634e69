"""The trading account as a Dagster resource: the paper broker, or an exchange through ccxt."""

from pathlib import Path

import dagster as dg

from pipeline.exchange.ids import DEFAULT_EXCHANGE
from pipeline.execution.broker import ENV_API_KEY, ENV_API_SECRET, Broker
from pipeline.execution.paper import PaperBroker
from pipeline.execution.prices import ExchangePriceFeed
from pipeline.execution.risk import RiskConfig
from pipeline.settings import Settings
from pipeline.store.database import Database

BROKERS = ("paper", "ccxt")


class BrokerResource(dg.ConfigurableResource):
    """Where live signals trade, and within which limits.

    `paper` fills at the exchange's current price (public ticker, no keys) with `fee` and
    `slippage_bps`, its account in PostgreSQL. `ccxt` trades the exchange account with
    `api_key` / `api_secret`, given as `dg.EnvVar("SIGNALS_API_KEY")` /
    `dg.EnvVar("SIGNALS_API_SECRET")` so they stay in the environment (never logged).
    The kill switch is `kill_switch` or the file `home`/KILL_SWITCH. `account_per_market`
    gives each market its own paper account (`paper-BTCUSDT`, …): each market's equity then
    compounds on its own, as in the per-market backtest.
    """

    kind: str = "paper"
    account: str = "paper"
    account_per_market: bool = False
    exchange: str = DEFAULT_EXCHANGE
    api_url: str | None = None
    fee: float = 0.0005
    slippage_bps: float = 0.0
    initial_balance: float = 10_000.0
    timeout_ms: int = 10_000
    home: str = ".signals"
    risk_fraction: float = RiskConfig.risk_fraction
    leverage: int = RiskConfig.leverage
    margin_mode: str = RiskConfig.margin_mode
    max_notional: float = RiskConfig.max_notional
    daily_loss_limit: float = RiskConfig.daily_loss_limit
    kill_switch: bool = False
    api_key: str = ""
    api_secret: str = ""

    def open(self, db: Database, market: str | None = None) -> Broker:
        # ccxt (seconds to import) loads when a broker opens, not with the code location.
        from pipeline.exchange.client import make_exchange
        from pipeline.execution.ccxt_broker import CcxtBroker

        if self.kind == "paper":
            public = make_exchange(self.exchange, self.api_url, self.timeout_ms)
            # A few ticker requests per run (weight 1 each), far below the exchange's limit:
            # ccxt's pacing would only add a wait before each.
            public.enableRateLimit = False
            feed = ExchangePriceFeed(public)
            account = f"{self.account}-{market}" if self.account_per_market and market else None
            return PaperBroker(
                db,
                feed,
                account or self.account,
                self.fee,
                self.slippage_bps,
                self.initial_balance,
            )
        if self.kind == "ccxt":
            keys = {ENV_API_KEY: self.api_key, ENV_API_SECRET: self.api_secret}
            return CcxtBroker.from_env(self.exchange, self.api_url, self.timeout_ms, environ=keys)
        raise ValueError(f"unknown broker {self.kind!r}; choose one of {', '.join(BROKERS)}")

    def risk(self, horizon: int) -> RiskConfig:
        return RiskConfig(
            risk_fraction=self.risk_fraction,
            leverage=self.leverage,
            margin_mode=self.margin_mode,
            max_notional=self.max_notional,
            daily_loss_limit=self.daily_loss_limit,
            horizon=horizon,
            kill_switch=self.kill_switch,
            kill_file=Path(self.home) / "KILL_SWITCH",
        )


def broker_resource(settings: Settings) -> BrokerResource:
    """From the settings (cheap to import: `signals reconcile` needs no Definitions). Paper by
    default; SIGNALS_BROKER=ccxt trades the exchange account, whose keys Dagster
    reads from the environment when the resource is initialised (never stored in config)."""
    risk = RiskConfig.from_env(settings.home)
    keys = (
        {"api_key": dg.EnvVar(ENV_API_KEY), "api_secret": dg.EnvVar(ENV_API_SECRET)}
        if settings.broker == "ccxt"
        else {}
    )
    return BrokerResource(
        kind=settings.broker,
        account=settings.account,
        account_per_market=settings.account_per_market,
        exchange=settings.exchange,
        api_url=settings.api_url,
        home=str(settings.home),
        risk_fraction=risk.risk_fraction,
        leverage=risk.leverage,
        margin_mode=risk.margin_mode,
        max_notional=risk.max_notional,
        daily_loss_limit=risk.daily_loss_limit,
        kill_switch=risk.kill_switch,
        **keys,
    )
