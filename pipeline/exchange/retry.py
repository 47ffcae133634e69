"""How a ccxt call is retried: exponential backoff on errors worth another try, a clear error
on everything else (an unknown market, a refusal, the retry bound reached)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from pipeline.exchange.markets import UnknownMarketError

log = logging.getLogger(__name__)

T = TypeVar("T")


def retryable() -> tuple[type[Exception], ...]:
    """Worth another try: network errors, rate limits, an exchange down for a moment, and an
    operation whose outcome it could not tell (Binance's -1000 "internal error" on HTTP 5xx).

    A function, not a constant: ccxt (seconds to import) loads when a call is made, not when
    the code location is (the policy is configured at definition time)."""
    import ccxt

    return (ccxt.OperationFailed,)


class ExchangeSourceError(RuntimeError):
    """The exchange refused, or kept failing past the retry bound; the message says which."""


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    backoff_s: float = 0.5
    max_backoff_s: float = 10.0

    def delay(self, attempt: int) -> float:
        return min(self.max_backoff_s, self.backoff_s * 2**attempt)


def with_retries(
    call: Callable[[], T],
    what: str,
    policy: RetryPolicy,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run `call`; retry retryable ccxt errors with exponential backoff, fail clearly otherwise."""
    import ccxt

    retry_on = retryable()
    for attempt in range(policy.attempts):
        try:
            return call()
        except ccxt.BadSymbol as err:
            raise UnknownMarketError(f"{what}: unknown market: {err}") from err
        except retry_on as err:
            if attempt + 1 == policy.attempts:
                raise ExchangeSourceError(
                    f"{what}: gave up after {policy.attempts} attempts; last error "
                    f"{type(err).__name__}: {err}"
                ) from err
            wait = policy.delay(attempt)
            log.warning("%s: %s (%s); retrying in %.2fs", what, type(err).__name__, err, wait)
            sleep(wait)
        except ccxt.BaseError as err:
            raise ExchangeSourceError(
                f"{what}: exchange error {type(err).__name__}: {err}"
            ) from err
    raise AssertionError("unreachable")  # pragma: no cover
