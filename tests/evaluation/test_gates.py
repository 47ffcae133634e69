"""The promotion gate refuses on every failed bound and on being worse than production."""

from pipeline.evaluation.gates import GateConfig, check_gate

GOOD = {
    "total_return": 0.08,
    "win_rate": 0.55,
    "profit_factor": 1.3,
    "max_drawdown": 0.10,
    "trades": 120,
}


def test_a_good_candidate_passes() -> None:
    verdict = check_gate(GOOD, None)
    assert verdict.passed and verdict.reasons == []


def test_each_bound_is_named_when_it_fails() -> None:
    bad = {
        "total_return": -0.02,
        "win_rate": 0.40,
        "profit_factor": 0.9,
        "max_drawdown": 0.4,
        "trades": 10,
    }
    verdict = check_gate(bad, None)
    assert not verdict.passed
    text = " ".join(verdict.reasons)
    for word in ("trades", "net return", "profit factor", "win rate", "drawdown"):
        assert word in text
    assert len(verdict.reasons) == 5
    # No trade at all has no profit factor: refused for it, not waved through.
    none = check_gate({**GOOD, "profit_factor": float("nan"), "trades": 0}, None)
    assert any("profit factor nan" in r for r in none.reasons)


def test_worse_than_production_is_refused() -> None:
    verdict = check_gate(GOOD, {**GOOD, "total_return": 0.12})
    assert not verdict.passed
    assert "below production" in verdict.reasons[0]


def test_bounds_are_configurable() -> None:
    strict = GateConfig(min_win_rate=0.6)
    assert not check_gate(GOOD, None, strict).passed
    assert check_gate(GOOD, None, GateConfig(min_win_rate=0.5)).passed


def test_a_fit_no_better_than_the_majority_or_past_the_gap_is_refused() -> None:
    honest = {"val_accuracy": 0.53, "val_majority_accuracy": 0.51, "gap": 0.05}
    assert check_gate(GOOD, None, fit=honest).passed
    majority = check_gate(GOOD, None, fit={**honest, "val_accuracy": 0.51})
    assert majority.reasons == ["validation accuracy 51.00% ≤ the majority class's 51.00%"]
    gap = check_gate(GOOD, None, fit={**honest, "gap": 0.2})
    assert gap.reasons == ["train − validation gap +20.0% > 15%"]
    lenient = GateConfig(require_beats_majority=False, max_gap=0.3)
    assert check_gate(GOOD, None, lenient, fit={**honest, "val_accuracy": 0.5, "gap": 0.2}).passed


def test_the_gate_can_require_shadow_candles_equal_to_the_backtest() -> None:
    required = GateConfig(min_shadow_candles=24)
    assert check_gate(GOOD, None).passed  # not asked for by default
    missing = check_gate(GOOD, None, required)
    assert missing.reasons == ["0 shadow candles equal to the backtest's decisions < 24 required"]
    assert check_gate(GOOD, None, required, shadow=(30, 30)).passed
    differing = check_gate(GOOD, None, required, shadow=(30, 28))
    assert differing.reasons == ["2 shadow decisions differ from the backtest's"]
