"""Refusals in Bybit v5's own shape, and the translation of the account engine's Binance-worded
refusals into it: the replay keeps one account (`account.py`), and its Bybit dialect answers
with the retCode that Bybit gives for the same refusal, so ccxt's bybit client maps it to the
same exception class it would raise against Bybit."""

from __future__ import annotations

from pipeline.replay.errors import BinanceError


class BybitError(Exception):
    """A refusal in Bybit's words: retCode and retMsg (HTTP 200, as Bybit answers most)."""

    def __init__(self, ret_code: int, ret_msg: str, status: int = 200):
        super().__init__(f"{ret_code} {ret_msg}")
        self.ret_code, self.ret_msg, self.status = ret_code, ret_msg, status

    def body(self, now_ms: int) -> dict:
        return {
            "retCode": self.ret_code,
            "retMsg": self.ret_msg,
            "result": {},
            "retExtInfo": {},
            "time": now_ms,
        }


def params_error(what: str) -> BybitError:
    """Bybit's answer to a missing or unreadable parameter (ccxt: BadRequest)."""
    return BybitError(10001, f"params error: {what}")


# Binance code of the account engine → (Bybit retCode, Bybit's message). Bybit's codes as its
# v5 docs list them; ccxt maps each to the class noted.
_FROM_BINANCE: dict[int, tuple[int, str]] = {
    -2019: (110007, "ab not enough for new order"),  # InsufficientFunds
    -2022: (110017, "Reduce-only rule not satisfied"),  # InvalidOrder
    -4164: (110094, "Order does not meet minimum order value 5USDT"),  # InvalidOrder
    -4116: (110072, "OrderLinkedID is duplicate"),  # InvalidOrder
    -2013: (110001, "Order does not exist"),  # OrderNotFound
    -2011: (110001, "Order does not exist"),  # OrderNotFound
    -4003: (10001, "params error: qty must be greater than 0"),  # BadRequest
    -4004: (10001, "params error: qty is below the minimum order qty"),
    -4005: (10001, "params error: qty exceeds the maximum order qty"),
    -1111: (10001, "params error: qty is not a multiple of qtyStep"),
    -4014: (10001, "params error: price is not a multiple of tickSize"),
    -4001: (10001, "params error: price must be greater than 0"),
    -4015: (10001, "params error: orderLinkId is invalid"),
    -1121: (10001, "Not supported symbols"),  # BadSymbol (a broad match)
    -4028: (10001, "params error: leverage is invalid"),
    -4048: (3400045, "Set margin mode failed: a position exists"),
    -4047: (3400045, "Set margin mode failed: open orders exist"),
}


def from_binance(err: BinanceError) -> BybitError:
    """The account engine's refusal as Bybit words it (unmapped ones: a params error)."""
    code, msg = _FROM_BINANCE.get(err.code, (10001, f"params error: {err.msg}"))
    return BybitError(code, msg)
