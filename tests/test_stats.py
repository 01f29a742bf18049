"""The math of a benchmark, checked with plain numbers."""
import numpy as np
import pytest

from farm.stats import accuracy, agreement, summarize


def test_summarize_known_numbers():
    summary = summarize([1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000, 9000, 10000])
    assert summary["count"] == 10
    assert summary["mean_ms"] == pytest.approx(5.5)
    assert summary["min_ms"] == 1.0 and summary["max_ms"] == 10.0
    assert summary["p50_ms"] == pytest.approx(5.5)
    assert summary["p90_ms"] == pytest.approx(9.1)
    assert summary["p99_ms"] == pytest.approx(9.91)
    assert summary["std_ms"] == pytest.approx(3.0276503540974917)


def test_single_sample_has_zero_spread():
    summary = summarize([2500])
    assert summary["std_ms"] == 0.0 and summary["p95_ms"] == 2.5


def test_no_samples_is_an_error():
    with pytest.raises(ValueError):
        summarize([])


def test_accuracy_and_agreement():
    assert accuracy([1, 2, 3, 4], [1, 2, 0, 4]) == 0.75
    assert agreement([1, 2, 3, 4], [1, 2, 3, 4]) == 1.0
    assert agreement([1, 2, 3, 4], [0, 2, 3, 0]) == 0.5
    assert agreement([1, 2], [1, 2, 3]) is None
    with pytest.raises(ValueError):
        accuracy([1], [1, 2])


def test_trial_intervals_carry_the_variance_between_trials():
    from farm.stats import trial_intervals

    rng = np.random.default_rng(7)
    same = [rng.normal(500, 20, 200) for _ in range(3)]
    apart = [rng.normal(500 + shift, 20, 200) for shift in (-40, 0, 40)]
    (estimate, low, high), (_, low_apart, high_apart) = trial_intervals(same)[50], trial_intervals(apart)[50]
    assert low < estimate < high and abs(estimate - 0.5) < 0.01
    # Trials that disagree widen the interval: it is about runs, not about samples inside one run.
    assert (high_apart - low_apart) > 3 * (high - low)
    # Seeded: the same trials give the same interval.
    assert trial_intervals(same)[90] == trial_intervals(same)[90]


def test_interval_over_trials_needs_two():
    from farm.stats import interval_over_trials

    assert interval_over_trials([2.0]) == (2.0, None, None)
    estimate, low, high = interval_over_trials([1.0, 1.1, 0.9, 1.05])
    assert low <= estimate <= high and 0.9 <= low and high <= 1.1


def test_small_sample_tests_match_scipy():
    stats = pytest.importorskip("scipy.stats")
    from farm.stats import mann_whitney_p, t_ppf, t_sf

    for t, df in ((0.5, 3), (2.1, 4.3), (-1.2, 10.0), (5.0, 2.5)):
        assert t_sf(t, df) == pytest.approx(stats.t.sf(t, df), rel=1e-9)
    assert t_ppf(0.975, 4) == pytest.approx(stats.t.ppf(0.975, 4), rel=1e-6)
    rng = np.random.default_rng(5)
    for n1, n2 in ((3, 3), (4, 6), (2, 5), (15, 12)):  # exact below 20 values in all, asymptotic above
        a, b = rng.normal(0, 1, n1), rng.normal(0.8, 1, n2)
        method = "exact" if n1 + n2 <= 20 else "asymptotic"
        assert mann_whitney_p(a, b) == pytest.approx(stats.mannwhitneyu(a, b, method=method).pvalue, rel=1e-9)
