"""ccxt's ids of the exchanges the project speaks to, and the one it uses by default.

Kept free of the ccxt import, so settings can name the default without loading ccxt.
"""

from __future__ import annotations

BINANCE_USDM = "binanceusdm"
BYBIT = "bybit"
DEFAULT_EXCHANGE = BINANCE_USDM
