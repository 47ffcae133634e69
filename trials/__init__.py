"""Reliability trials: faults injected by the hundred against the real components, each
script printing its figures and exiting non-zero when anything was lost (see README.md).

They exercise the per-market live path (a signal per market and candle, the position manager):
that strategy is set for them and the processes they start, whatever the default. The
portfolio live path is not under these trials yet."""

import os

os.environ.setdefault("SIGNALS_STRATEGY", "barrier")
