"""Refusals in Binance's own shape, shared by every endpoint of the replay exchange."""

from __future__ import annotations


class BinanceError(Exception):
    """A refusal in Binance's words: HTTP status, error code and message."""

    def __init__(self, code: int, msg: str, status: int = 400):
        super().__init__(f"{code} {msg}")
        self.code, self.msg, self.status = code, msg, status

    def body(self) -> dict:
        return {"code": self.code, "msg": self.msg}


def missing(name: str) -> BinanceError:
    """Binance's answer when a required parameter is absent or unreadable."""
    return BinanceError(
        -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
    )
