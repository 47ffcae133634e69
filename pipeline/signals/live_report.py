"""What the UI shows of a live candle: the `live_signals` asset's metadata.

Numbers a trader follows over time (side, probability, confidence, the realised net return)
are numeric metadata, which Dagster plots across materialisations; the last signals are a
short markdown table (`TABLE_KEY`; the Dagster layer marks it as markdown). Times are UTC
dates, numbers rounded. Plain values only: the domain does not import Dagster.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pipeline.reporting.text import utc_text

LIVE_SIGNALS_ASSET = "live_signals"
TABLE_KEY = "last_signals"
POSITION = {1: "long", -1: "short", 0: "flat"}
TABLE_ROWS = 10


def top_features(explanation: Sequence[dict[str, Any]], k: int = 3) -> str:
    """The features that pushed hardest towards the decision, with their push (logits)."""
    return ", ".join(f"{e['feature']} ({e['attribution']:+.3f})" for e in explanation[:k])


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{value:+.2%}"


def signals_table(rows: Sequence[dict[str, Any]]) -> str:
    """The last signals, newest first, as a narrow markdown table."""
    lines = [
        "| candle (UTC) | mode | model | side | p(up) | confidence | realised net |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows[:TABLE_ROWS]:
        lines.append(
            f"| {utc_text(int(r['candle_ms']))[:-4]} | {r['mode']} | {r['model_id']} | "
            f"{POSITION[int(r['side'])]} | {r['probability_up']:.3f} | {r['confidence']:.3f} | "
            f"{_percent(r['realised_net_return'])} |"
        )
    return "\n".join(lines)


def live_signal_metadata(
    recorded: Sequence[tuple[Any, dict[str, Any]]],
    latest: Sequence[dict[str, Any]],
    candle_ms: int,
    resolved_now: int,
) -> dict[str, object]:
    """Metadata of one candle's materialisation: the first recorded decision (production's
    when there is one), the challenger's beside it, and the newest resolved outcome.

    `recorded`: (SignalRow, Decision.to_json()) per model that decided, production first.
    `latest`: the market's newest signals (store.signals.latest_signals), newest first.
    """
    row, decision = recorded[0]
    meta: dict[str, object] = {
        "candle": utc_text(candle_ms),
        "mode": row.mode,
        "model_id": int(row.model_id),
        "side": int(decision["side"]),
        "position": POSITION[int(decision["side"])],
        "probability_up": round(float(decision["probability_up"]), 4),
        "confidence": round(float(decision["confidence"]), 4),
        "threshold": round(float(decision["threshold"]), 4),
        "top_features": top_features(decision["explanation"]),
        "input_hash": decision["input_hash"],
        "signal_id": int(row.id),
    }
    for challenger, challenger_decision in recorded[1:]:
        meta |= {
            "challenger_model_id": int(challenger.model_id),
            "challenger_side": int(challenger_decision["side"]),
            "challenger_probability_up": round(float(challenger_decision["probability_up"]), 4),
            "challenger_confidence": round(float(challenger_decision["confidence"]), 4),
        }
    resolved = [r for r in latest if r["mode"] == row.mode and r["realised_return"] is not None]
    if resolved:
        newest = resolved[0]
        meta |= {
            "realised_net_return": round(float(newest["realised_net_return"]), 6),
            "realised_for_candle": utc_text(int(newest["candle_ms"])),
        }
    meta["resolved_now"] = resolved_now
    meta[TABLE_KEY] = signals_table(latest)
    return meta
