"""The loss lab's statistics on fixed numbers, worked out by hand.

Quantiles of Student's t: the printed tables (e.g. NIST/SEMATECH e-Handbook
1.3.6.7.2), six significant digits.
"""
import math

import pytest

from yolo_losses.lab import stats


@pytest.mark.parametrize('p, df, expected', [
    (0.975, 1, 12.706205),
    (0.975, 2, 4.302653),
    (0.975, 3, 3.182446),
    (0.975, 4, 2.776445),
    (0.975, 10, 2.228139),
    (0.975, 30, 2.042272),
    (0.95, 5, 2.015048),
    (0.995, 3, 5.840909),
    (0.975, 100000, 1.959988),  # -> the normal's 1.959964
])
def test_t_quantile_matches_the_tables(p, df, expected):
    assert stats.t_quantile(p, df) == pytest.approx(expected, abs=2e-6)
    assert stats.t_quantile(1 - p, df) == pytest.approx(-expected, abs=2e-6)


def test_t_cdf_and_incomplete_beta_known_values():
    # t with 1 df is Cauchy: F(1) = 1/2 + atan(1)/pi = 0.75
    assert stats.t_cdf(1.0, 1) == pytest.approx(0.75, abs=1e-12)
    # t with 2 df: F(t) = 1/2 + t / (2 sqrt(2 + t^2)); F(1) = 0.5 + 1/(2 sqrt 3)
    assert stats.t_cdf(1.0, 2) == pytest.approx(0.5 + 1 / (2 * math.sqrt(3)),
                                                abs=1e-12)
    assert stats.t_cdf(0.0, 7) == 0.5
    # I_x(1, 1) = x; I_x(2, 1) = x^2; I_x(1, 2) = 1 - (1 - x)^2
    assert stats.regularized_incomplete_beta(1, 1, 0.3) == pytest.approx(0.3)
    assert stats.regularized_incomplete_beta(2, 1, 0.3) == pytest.approx(0.09)
    assert stats.regularized_incomplete_beta(1, 2, 0.3) == pytest.approx(0.51)
    with pytest.raises(ValueError, match='p must be in'):
        stats.t_quantile(1.0, 3)
    with pytest.raises(ValueError, match='df must be'):
        stats.t_quantile(0.9, 0)


def test_mean_and_sample_sd_by_hand():
    # 0.50, 0.52, 0.54: mean 0.52; squares 0.0004 + 0 + 0.0004 over n-1 = 2
    assert stats.mean([0.50, 0.52, 0.54]) == pytest.approx(0.52)
    assert stats.sample_std([0.50, 0.52, 0.54]) == pytest.approx(0.02)
    assert stats.sample_std([0.5]) is None
    assert stats.summarise([]) == (None, None)


def test_t_interval_three_paired_differences_by_hand():
    # d = 0.01, 0.03, 0.02: mean 0.02, sd 0.01, n 3, t_{.975,2} = 4.302653
    # half width = 4.302653 * 0.01 / sqrt(3) = 0.0248414
    lo, hi = stats.t_interval([0.01, 0.03, 0.02])
    assert lo == pytest.approx(0.02 - 0.0248414, abs=1e-7)
    assert hi == pytest.approx(0.02 + 0.0248414, abs=1e-7)
    assert stats.verdict((lo, hi)) == 'no difference detected'
    assert stats.t_interval([0.01]) is None


def test_paired_difference_five_seeds_adds_a_bootstrap_interval():
    baseline = {0: 0.50, 1: 0.40, 2: 0.60, 3: 0.55, 4: 0.45, 9: 0.3}
    # differences 0.02, 0.03, 0.04, 0.05, 0.06 on the shared seeds 0-4:
    # mean 0.04; sd = sqrt((4 + 1 + 0 + 1 + 4) e-4 / 4) = 0.0158114;
    # half width = t_{.975,4} 2.776445 * 0.0158114 / sqrt(5) = 0.0196324
    variant = {0: 0.52, 1: 0.43, 2: 0.64, 3: 0.60, 4: 0.51}
    diff = stats.paired_difference(variant, baseline)
    assert diff['seeds'] == [0, 1, 2, 3, 4] and diff['n'] == 5
    assert diff['method'] == 't'
    assert diff['mean'] == pytest.approx(0.04)
    assert diff['ci95'] == pytest.approx([0.04 - 0.0196324, 0.04 + 0.0196324],
                                         abs=1e-7)
    assert stats.verdict(diff['ci95']) == 'better'
    lo, hi = diff['bootstrap_ci95']
    # resampled means of {.02 ... .06} lie in [.02, .06] and straddle .04
    assert 0.02 <= lo < 0.04 < hi <= 0.06
    # seeded: the same numbers give the same interval
    assert stats.paired_difference(variant, baseline)['bootstrap_ci95'] == [lo, hi]
    # four seeds: t only
    four = stats.paired_difference({s: variant[s] for s in range(4)}, baseline)
    assert 'bootstrap_ci95' not in four


def test_verdict_signs_and_missing_interval():
    assert stats.verdict((-0.03, -0.01)) == 'worse'
    assert stats.verdict((0.001, 0.01)) == 'better'
    assert stats.verdict((-0.01, 0.0)) == 'no difference detected'
    assert stats.verdict(None) == 'no difference detected'
    assert stats.paired_difference({1: 0.5}, {0: 0.5}) is None
    one = stats.paired_difference({0: 0.6}, {0: 0.5})
    assert one['mean'] == pytest.approx(0.1) and one['ci95'] is None


def test_bootstrap_of_constant_values_is_a_point():
    assert stats.bootstrap_interval([0.1] * 6) == pytest.approx((0.1, 0.1))
    with pytest.raises(ValueError, match='at least 2'):
        stats.bootstrap_interval([0.1])
