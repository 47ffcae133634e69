"""Independent reference computations for tests (pandas, not our code paths)."""

import pandas as pd


def independent(frame: pd.DataFrame, rule: str, hours: int) -> pd.DataFrame:
    """pandas resample, keeping only buckets with every hour present."""
    indexed = frame.set_index(pd.to_datetime(frame["timestamp"], unit="ms", utc=True))
    grouped = indexed.resample(rule, origin="epoch")
    out = pd.DataFrame(
        {
            "open": grouped["open"].first(),
            "high": grouped["high"].max(),
            "low": grouped["low"].min(),
            "close": grouped["close"].last(),
            "volume": grouped["volume"].sum(),
            "n": grouped["open"].count(),
        }
    )
    out = out[out["n"] == hours].drop(columns="n")
    out.insert(0, "timestamp", (out.index.asi8 // 1_000_000).astype("int64"))
    return out.reset_index(drop=True)
