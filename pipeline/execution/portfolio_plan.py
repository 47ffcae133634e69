"""The orders that move one market from what it holds to its target weight: pure arithmetic,
no broker and no database, so the rules can be read and tested on their own.

The backtest's fill (`pipeline.backtest.portfolio`): with V the account's value at the open
(computed once, before any order) and p the market's price, the new quantity is
q* = w × V / p and Δ = q* − held. Live it becomes ordinary market orders:

- `max_notional` caps |q*| × p per market (the capped plan says so);
- |Δ| is rounded DOWN to the market's amount step (never more than the target asks);
- an order whose notional |Δ| × p is below the market's minimum notional is skipped, with
  the reason, except a close to exactly zero (reduce-only closes pass any minimum);
- Δ that crosses zero (long → short or back) is two orders: a reduce-only close of what is
  held, then an opening order of |q*| (rounded down to the step). The backtest's one fill
  pays fee × |Δ| × p; here |Δ| = |held| + |q*|, so the two fills at the same price pay the
  same fee in total, fee × |held| × p + fee × |q*| × p;
- Δ that only shrinks |held| is one reduce-only order; one that grows it, one opening order.

`leverage_for` is the account's one leverage: enough margin for every position once the
orders are filled, with room for the fees and slippage they cost.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pipeline.execution.broker import BUY, SELL, MarketRules, OrderResult
from pipeline.execution.market_rules import round_down

CLOSE, REDUCE, OPEN = "close", "reduce", "open"
NOT_ORDERED = "not ordered"
# Margin kept free beyond the positions' notional ÷ leverage: the orders' fees and slippage,
# and the price moving between the value read and the fills, must not make the last order
# of a rebalance fail the margin check (Σ |q| × price / leverage ≤ equity after the fee).
MARGIN_HEADROOM = 0.10
MAX_LEVERAGE = 125  # Binance USDⓈ-M's highest, and the paper broker's


@dataclass(frozen=True)
class MarketTarget:
    """One market at one decision: its target weight (fraction of equity, + long, − short) and
    whether the portfolio layer ordered it (the no-trade band and minimum hold leave the
    others where they are, even where their weight drifted)."""

    symbol: str  # ccxt unified symbol, e.g. BTC/USDT:USDT
    weight: float
    ordered: bool

    def __post_init__(self) -> None:
        if not math.isfinite(self.weight):
            raise ValueError(f"{self.symbol}: target weight must be finite, got {self.weight}")
        object.__setattr__(self, "weight", float(self.weight))
        object.__setattr__(self, "ordered", bool(self.ordered))


@dataclass(frozen=True)
class Leg:
    """One order of a market's rebalance, decided before any order is sent."""

    leg: str  # CLOSE, REDUCE or OPEN
    side: str  # BUY or SELL
    quantity: float  # > 0, base units
    client_order_id: str

    @property
    def reduce_only(self) -> bool:
        return self.leg != OPEN

    def signed(self) -> float:
        return self.quantity if self.side == BUY else -self.quantity

    def to_json(self) -> dict[str, Any]:
        return {
            "leg": self.leg,
            "side": self.side,
            "quantity": self.quantity,
            "client_order_id": self.client_order_id,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Leg:
        return cls(data["leg"], data["side"], float(data["quantity"]), data["client_order_id"])


@dataclass
class MarketExecution:
    """One market's part of a portfolio execution: the plan (before, price, target quantity,
    Δ sent, legs, or why nothing is sent) and, once executed, the orders' answers and the
    quantity held after."""

    symbol: str
    weight: float
    ordered: bool
    before: float
    price: float | None = None
    target_quantity: float | None = None
    delta: float = 0.0  # signed, Σ of the legs: what is sent
    skipped: str | None = None
    note: str = ""
    legs: list[Leg] = field(default_factory=list)
    after: float | None = None
    orders: list[OrderResult] = field(default_factory=list)

    def after_plan(self) -> float:
        """The quantity held once every leg fills."""
        return self.before + self.delta

    def plan_json(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "weight": self.weight,
            "ordered": self.ordered,
            "before": self.before,
            "price": self.price,
            "target_quantity": self.target_quantity,
            "delta": self.delta,
            "skipped": self.skipped,
            "note": self.note,
            "legs": [leg.to_json() for leg in self.legs],
        }

    @classmethod
    def from_plan(cls, data: dict[str, Any]) -> MarketExecution:
        return cls(
            symbol=data["symbol"],
            weight=float(data["weight"]),
            ordered=bool(data["ordered"]),
            before=float(data["before"]),
            price=_number(data["price"]),
            target_quantity=_number(data["target_quantity"]),
            delta=float(data["delta"]),
            skipped=data["skipped"],
            note=data["note"],
            legs=[Leg.from_json(leg) for leg in data["legs"]],
        )

    def to_json(self) -> dict[str, Any]:
        return {
            **self.plan_json(),
            "after": self.after,
            "orders": [o.to_json() for o in self.orders],
        }


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def _leg(kind: str, signed: float, cid: Callable[[str], str]) -> Leg:
    return Leg(kind, BUY if signed > 0 else SELL, abs(signed), cid(kind))


def plan_market(
    target: MarketTarget,
    held: float,
    price: float | None,
    equity: float,
    rules: MarketRules,
    max_notional: float,
    cid: Callable[[str], str],
) -> MarketExecution:
    """The legs that take `target.symbol` from `held` to `target.weight` × `equity` / `price`
    under the rules in this module's docstring. `cid(leg)` is the leg's client order id."""
    plan = MarketExecution(target.symbol, target.weight, target.ordered, before=held)
    if not target.ordered:
        plan.skipped = NOT_ORDERED
        return plan
    if price is None or not price > 0:
        raise ValueError(f"{target.symbol}: an ordered market needs a positive price, got {price}")
    plan.price = price
    wanted = target.weight * equity / price
    if abs(wanted) * price > max_notional:
        wanted = math.copysign(max_notional / price, wanted)
        plan.note = f"capped at max_notional {max_notional:g}"
    plan.target_quantity = wanted
    if wanted - held == 0:
        plan.skipped = "already at the target"
        return plan
    step, minimum = rules.amount_step, rules.min_notional
    if wanted == 0:  # a close to exactly zero: reduce-only, any size
        plan.legs = [_leg(CLOSE, -held, cid)]
    elif held != 0 and (wanted > 0) != (held > 0):  # crosses zero: close, then open the rest
        plan.legs = [_leg(CLOSE, -held, cid)]
        rest = round_down(abs(wanted), step)
        if rest == 0:
            plan.skipped = (
                f"opening {abs(wanted):.6g} is below one amount step {step:g}: closed only"
            )
        elif rest * price < minimum:
            plan.skipped = (
                f"opening notional {rest * price:.2f} is below the market's minimum "
                f"{minimum:g}: closed only"
            )
        else:
            plan.legs.append(_leg(OPEN, math.copysign(rest, wanted), cid))
    else:
        size = round_down(abs(wanted - held), step)
        shrinks = held != 0 and (wanted - held > 0) != (held > 0)
        if size == 0:
            plan.skipped = f"Δ {abs(wanted - held):.6g} is below one amount step {step:g}"
        elif size * price < minimum:
            plan.skipped = (
                f"order notional {size * price:.2f} is below the market's minimum {minimum:g}"
            )
        else:
            plan.legs = [_leg(REDUCE if shrinks else OPEN, math.copysign(size, wanted - held), cid)]
    plan.delta = sum(leg.signed() for leg in plan.legs)
    return plan


def leverage_for(gross: float, floor: int = 1) -> int:
    """The account's leverage for a gross exposure `gross` (Σ |q| × p ÷ V once the orders
    fill): the smallest integer ≥ gross × (1 + MARGIN_HEADROOM), at least `floor` (the risk
    settings' leverage) and 1, at most MAX_LEVERAGE. Then every position's initial margin,
    Σ |q| × p / leverage, is at most V ÷ 1.1: the margin check passes with 9 % of the equity
    to spare for fees, slippage and price moves. Gross 1 → 2, 1.5 → 2, 2 → 3, 0.5 → 1."""
    if not (gross >= 0 and math.isfinite(gross)):
        raise ValueError(f"gross exposure must be a finite number ≥ 0, got {gross}")
    need = math.ceil(gross * (1.0 + MARGIN_HEADROOM))
    return min(MAX_LEVERAGE, max(1, floor, need))
