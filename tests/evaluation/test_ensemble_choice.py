"""The default ensemble size is chosen on validation over every refit, with one model's
figure the median seed's (the first seed is the one the study chose on)."""

from pipeline.evaluation.summary import ensemble_line


def _fold(singles: list[float], sizes: dict[int, float]) -> dict:
    members = [{"validation": {"sharpe": s}} for s in singles]
    validation = {str(n): {"sharpe": v} for n, v in sizes.items()}
    return {"tuned": {"members": members, "ensemble_validation": validation}}


def test_the_median_seed_not_the_tuned_one_stands_for_one_model() -> None:
    # The first seed looks best on validation in every refit, but it is the one the study
    # chose on: the median seed (0.1, 0.3) is below the 3-seed mean (0.5, 0.4).
    report = {"folds": [_fold([3.0, 0.1, 0.0], {3: 0.5}), _fold([2.0, 0.2, 0.3], {3: 0.4})]}
    line = ensemble_line(report)
    assert "one model (median seed) +0.20, 3 seeds +0.45" in line
    assert line.endswith("validation prefers the mean of 3 seeds.")


def test_ties_go_to_fewer_models_and_no_tuning_says_nothing() -> None:
    report = {"folds": [_fold([0.3, 0.3, 0.3], {3: 0.3})]}
    assert ensemble_line(report).endswith("validation prefers one model.")
    assert ensemble_line({"folds": [{}]}) == ""
