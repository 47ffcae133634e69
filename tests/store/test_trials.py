"""The trials ledger counts every look at a test period, repeats included."""

from datetime import UTC, datetime

from pipeline.store import trials


def day(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


CONFIG = {"threshold": 0.65, "horizon": 8, "markets": ["BTC/USDT:USDT", "ETH/USDT:USDT"]}
Q1 = (day("2023-01-01"), day("2023-03-31T23:00"))
Q2 = (day("2023-04-01"), day("2023-06-30T23:00"))


def test_the_same_config_twice_is_two_trials(db) -> None:
    with db.connection() as conn:
        first = trials.append_trial(
            conn,
            kind="walk_forward",
            config=CONFIG,
            period_start=Q1[0],
            period_end=Q1[1],
            figures={"sharpe": 0.5, "trades": 40},
        )
        again = trials.append_trial(
            conn,
            kind="walk_forward",
            config=dict(reversed(list(CONFIG.items()))),
            period_start=Q1[0],
            period_end=Q1[1],
            figures={"sharpe": 0.7, "trades": 41},
            note="rerun",
        )
        rows = trials.list_trials(conn)
        assert trials.count_trials(conn) == 2
    assert again == first + 1
    assert [r["id"] for r in rows] == [again, first]  # newest first
    assert rows[0]["config_hash"] == rows[1]["config_hash"]  # key order does not matter
    assert rows[0]["config_hash"] == trials.config_hash(
        {"horizon": 8, "markets": ["BTC/USDT:USDT", "ETH/USDT:USDT"], "threshold": 0.65}
    )
    assert rows[0]["note"] == "rerun" and rows[1]["note"] == ""
    assert rows[0]["figures"] == {"sharpe": 0.7, "trades": 41}
    assert rows[1]["period_end"] == Q1[1]


def test_counts_and_sharpes_follow_kind_and_period_overlap(db) -> None:
    with db.connection() as conn:
        for kind, period, figures in [
            ("walk_forward", Q1, {"sharpe": 1.0}),
            ("walk_forward", Q2, {"sharpe": 2.0}),
            ("walk_forward", (Q1[0], Q2[1]), {"sharpe": 3.0}),  # the half-year
            ("tuning", Q2, {"sharpe": 4.0}),
            ("tuning", Q2, {"sharpe": float("nan")}),  # stored as null: no Sharpe
            ("walk_forward", (None, None), {"trades": 0}),  # no period: overlaps all
        ]:
            trials.append_trial(
                conn,
                kind=kind,
                config={"k": 1},
                period_start=period[0],
                period_end=period[1],
                figures=figures,
            )
        assert trials.count_trials(conn) == 6
        assert trials.count_trials(conn, kind="tuning") == 2
        assert trials.count_trials(conn, kind="walk_forward") == 4
        # Q1 alone: Q1, the half-year, the period-less one (Q2 starts after Q1's last hour)
        assert (
            trials.count_trials(conn, kind="walk_forward", period_start=Q1[0], period_end=Q1[1])
            == 3
        )
        # one shared instant is an overlap: both ends are included
        assert trials.count_trials(conn, kind="tuning", period_start=Q1[0], period_end=Q2[0]) == 2
        assert trials.count_trials(conn, kind="tuning", period_start=Q1[0], period_end=Q1[1]) == 0
        # an open end: everything from May on
        assert trials.count_trials(conn, period_start=day("2023-05-01")) == 5
        assert trials.trial_sharpes(conn) == [1.0, 2.0, 3.0, 4.0]
        assert trials.trial_sharpes(
            conn, kind="walk_forward", period_start=Q2[0], period_end=Q2[1]
        ) == [2.0, 3.0]
        assert len(trials.list_trials(conn, limit=2)) == 2
