"""Client order ids: derived from what caused the order, so a retry is the same order.

Binance accepts `^[.A-Z:/a-z0-9_-]{1,36}$`; Bybit 36 characters. A hash of the cause keeps
the id short, stable across retries and processes, and different for every other order.
"""

from __future__ import annotations

import hashlib

PREFIX = "fs"


def client_order_id(*cause: object) -> str:
    """`fs` + 32 hex digits of SHA-256 over the cause's parts (34 characters)."""
    digest = hashlib.sha256("|".join(str(part) for part in cause).encode()).hexdigest()
    return f"{PREFIX}{digest[:32]}"
