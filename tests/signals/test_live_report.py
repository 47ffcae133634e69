"""The live_signals metadata: production first, the challenger beside it, rounded numbers,
UTC dates, and the last signals as a narrow table."""

from __future__ import annotations

from pipeline.signals.live_report import TABLE_KEY, live_signal_metadata, signals_table
from pipeline.store.signals import SignalRow

CANDLE = 1_700_000_000_000 // 3_600_000 * 3_600_000  # 2023-11-14 22:00 UTC


def _row(model_id: int, mode: str) -> SignalRow:
    return SignalRow(
        id=model_id * 10,
        model_id=model_id,
        exchange="binanceusdm",
        symbol="BTC/USDT:USDT",
        timeframe="1h",
        candle_ms=CANDLE,
        probability_up=0.61234567,
        side=1,
        input_hash="a" * 64,
        created=True,
        mode=mode,  # type: ignore[arg-type]
    )


def _decision(p: float, side: int) -> dict:
    return {
        "probability_up": p,
        "confidence": max(p, 1 - p),
        "side": side,
        "threshold": 0.5512345,
        "input_hash": "a" * 64,
        "explanation": [{"feature": f"f{i}", "attribution": 0.1 / (i + 1)} for i in range(5)],
    }


def _stored(model_id: int, mode: str, ms: int, net: float | None) -> dict:
    return {
        "candle_ms": ms,
        "mode": mode,
        "model_id": model_id,
        "side": -1,
        "probability_up": 0.4,
        "confidence": 0.6,
        "realised_return": None if net is None else -net,
        "realised_net_return": net,
    }


def test_production_leads_and_the_challenger_sits_beside_it() -> None:
    latest = [
        _stored(2, "production", CANDLE, None),
        _stored(3, "shadow", CANDLE, None),
        _stored(2, "production", CANDLE - 3_600_000, 0.0123456789),
    ]
    meta = live_signal_metadata(
        [
            (_row(2, "production"), _decision(0.61234567, 1)),
            (_row(3, "shadow"), _decision(0.3, -1)),
        ],
        latest,
        CANDLE,
        resolved_now=1,
    )
    assert meta["mode"] == "production" and meta["model_id"] == 2
    assert meta["candle"] == "2023-11-14 22:00 UTC"
    assert meta["probability_up"] == 0.6123 and meta["threshold"] == 0.5512
    assert meta["position"] == "long" and meta["side"] == 1
    assert meta["top_features"] == "f0 (+0.100), f1 (+0.050), f2 (+0.033)"
    assert (meta["challenger_model_id"], meta["challenger_side"]) == (3, -1)
    # The newest resolved signal of production's own mode, not the challenger's.
    assert meta["realised_net_return"] == 0.012346
    assert meta["realised_for_candle"] == "2023-11-14 21:00 UTC"
    assert "| shadow | 3 | short |" in meta[TABLE_KEY]


def test_nothing_resolved_yet_shows_no_realised_figure() -> None:
    meta = live_signal_metadata(
        [(_row(3, "shadow"), _decision(0.45, 0))], [_stored(3, "shadow", CANDLE, None)], CANDLE, 0
    )
    assert "realised_net_return" not in meta and meta["position"] == "flat"
    assert signals_table([_stored(3, "shadow", CANDLE, None)]).splitlines()[-1].endswith("| – |")
