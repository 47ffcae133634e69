"""Portfolio decisions are written once per model and candle, and hand their state on."""

from __future__ import annotations

from pipeline.portfolio.rebalance import LayerState
from pipeline.store import models as model_store
from pipeline.store import portfolio as store
from tests.store.test_models import record

H4 = 4 * 3_600_000
MARKETS = ["A/USDT:USDT", "B/USDT:USDT"]


def _decide(conn, model_id: int, candle_ms: int, targets: list[float], mode="production"):
    state = LayerState.initial(2).to_json()
    return store.record_decision(
        conn,
        model_id=model_id,
        exchange="binanceusdm",
        timeframe="4h",
        candle_ms=candle_ms,
        mode=mode,
        markets=MARKETS,
        scores=[0.5, None],
        vol=[0.6, 0.7],
        raw=targets,
        targets=targets,
        orders=[True, False],
        state={**state, "standing": targets},
        run_id="r",
    )


def test_a_decision_is_written_once_and_read_back_as_written(db) -> None:
    with db.connection() as conn:
        model = model_store.save_model(conn, record(0))
        first = _decide(conn, model, 10 * H4, [0.1, 0.0])
        again = _decide(conn, model, 10 * H4, [0.9, 0.9])  # a retried run's other figures
    assert first.created and not again.created
    assert (again.id, again.targets, again.scores) == (first.id, [0.1, 0.0], [0.5, None])
    assert again.candle_ms == 10 * H4 and again.orders == [True, False]


def test_the_state_comes_from_the_models_last_decision_or_production_before_it(db) -> None:
    with db.connection() as conn:
        old = model_store.save_model(conn, record(0))
        new = model_store.save_model(conn, record(1))
        _decide(conn, old, 10 * H4, [0.1, 0.0])
        _decide(conn, old, 11 * H4, [0.2, -0.1])
        _decide(conn, new, 11 * H4, [0.5, 0.5], mode="shadow")
        assert store.previous_decision(conn, new, "binanceusdm", "4h", 12 * H4).targets == [
            0.5,
            0.5,
        ]
        assert store.previous_decision(conn, new, "binanceusdm", "4h", 11 * H4) is None
        handed = store.previous_production_decision(conn, "binanceusdm", "4h", 12 * H4)
        assert (handed.model_id, handed.targets) == (old, [0.2, -0.1])  # never shadow's
        assert store.previous_production_decision(conn, "binanceusdm", "4h", 10 * H4) is None
        assert [d.candle_ms for d in store.decisions(conn, old, "binanceusdm", "4h")] == [
            10 * H4,
            11 * H4,
        ]
