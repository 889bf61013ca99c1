"""Statistics of the loss lab: pure functions on lists of floats.

No scipy: Student's t quantile comes from the regularised incomplete beta
function (continued fraction, evaluated with the modified Lentz method) and
a bisection on the CDF, accurate to ~1e-10 for the degrees of freedom a
seed matrix has.
"""
from __future__ import annotations

import math
import random
from typing import Dict, List, Optional, Sequence, Tuple

#: verdict strings of the report (``report.json``)
BETTER = 'better'
WORSE = 'worse'
NO_DIFFERENCE = 'no difference detected'
#: resamples and seed of the bootstrap interval (fixed: the report is
#: reproducible from the same numbers)
BOOTSTRAP_RESAMPLES = 10000
BOOTSTRAP_SEED = 0
#: a bootstrap interval is added from this many paired seeds on
BOOTSTRAP_MIN_SEEDS = 5


def mean(values: Sequence[float]) -> float:
    """Arithmetic mean; ``ValueError`` for no values."""
    if len(values) == 0:
        raise ValueError('mean of no values')
    return math.fsum(values) / len(values)


def sample_std(values: Sequence[float]) -> Optional[float]:
    """Sample standard deviation (divisor n - 1); None for fewer than 2."""
    if len(values) < 2:
        return None
    m = mean(values)
    return math.sqrt(math.fsum((v - m) ** 2 for v in values) / (len(values) - 1))


def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    # continued fraction of I_x(a, b) (modified Lentz); converges fast for
    # x < (a + 1) / (a + b + 2), which the caller ensures by symmetry
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 500):
        m2 = 2 * m
        for numerator in (m * (b - m) * x / ((a + m2 - 1.0) * (a + m2)),
                          -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1.0))):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def regularized_incomplete_beta(a: float, b: float, x: float) -> float:
    """``I_x(a, b)`` for ``a, b > 0`` and ``0 <= x <= 1``."""
    if a <= 0 or b <= 0:
        raise ValueError(f'a and b must be > 0, got a={a}, b={b}')
    if not 0.0 <= x <= 1.0:
        raise ValueError(f'x must be in [0, 1], got {x}')
    if x in (0.0, 1.0):
        return x
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                 + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_continued_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_continued_fraction(b, a, 1.0 - x) / b


def t_cdf(t: float, df: float) -> float:
    """CDF of Student's t with ``df`` degrees of freedom."""
    if df <= 0:
        raise ValueError(f'df must be > 0, got {df}')
    tail = 0.5 * regularized_incomplete_beta(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t > 0 else tail


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t (e.g. ``t_quantile(0.975, 4)``
    = 2.776445)."""
    if not 0.0 < p < 1.0:
        raise ValueError(f'p must be in (0, 1), got {p}')
    if df <= 0:
        raise ValueError(f'df must be > 0, got {df}')
    if p < 0.5:
        return -t_quantile(1.0 - p, df)
    if p == 0.5:
        return 0.0
    lo, hi = 0.0, 1.0
    while t_cdf(hi, df) < p:  # bracket, then bisect the monotone CDF
        lo, hi = hi, hi * 2.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if t_cdf(mid, df) < p:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12 * max(1.0, hi):
            break
    return 0.5 * (lo + hi)


def t_interval(values: Sequence[float], level: float = 0.95
               ) -> Optional[Tuple[float, float]]:
    """Student's t interval of the mean: ``mean -/+ t_{(1+level)/2, n-1} *
    sd / sqrt(n)``; None for fewer than 2 values."""
    n = len(values)
    if n < 2:
        return None
    m, sd = mean(values), sample_std(values)
    half = t_quantile(0.5 + level / 2.0, n - 1) * sd / math.sqrt(n)
    return (m - half, m + half)


def bootstrap_interval(values: Sequence[float], level: float = 0.95,
                       resamples: int = BOOTSTRAP_RESAMPLES,
                       seed: int = BOOTSTRAP_SEED) -> Tuple[float, float]:
    """Percentile bootstrap interval of the mean (seeded, reproducible).

    ``resamples`` means of n values drawn with replacement; the interval is
    their ``(1 - level) / 2`` and ``(1 + level) / 2`` empirical quantiles
    (linear interpolation between order statistics).
    """
    if len(values) < 2:
        raise ValueError('the bootstrap needs at least 2 values')
    rng = random.Random(seed)
    n = len(values)
    means = sorted(math.fsum(rng.choices(values, k=n)) / n
                   for _ in range(resamples))

    def quantile(q: float) -> float:
        pos = q * (resamples - 1)
        low = int(math.floor(pos))
        high = min(low + 1, resamples - 1)
        return means[low] + (pos - low) * (means[high] - means[low])

    return (quantile((1.0 - level) / 2.0), quantile((1.0 + level) / 2.0))


def verdict(ci: Optional[Sequence[float]]) -> str:
    """"better" when the interval lies above 0, "worse" below, else (or no
    interval) "no difference detected"."""
    if ci is None:
        return NO_DIFFERENCE
    lo, hi = ci
    if lo > 0:
        return BETTER
    if hi < 0:
        return WORSE
    return NO_DIFFERENCE


def paired_difference(variant: Dict[int, float], baseline: Dict[int, float],
                      level: float = 0.95) -> Optional[dict]:
    """Paired difference ``variant - baseline`` over the seeds both have.

    Args:
        variant, baseline: seed -> final metric of the finished runs.

    Returns:
        None when no seed is shared, else ``dict(mean, ci95, method='t',
        n, seeds)``: the 95 % interval is Student's t on the per-seed
        differences (None with one shared seed). From
        ``BOOTSTRAP_MIN_SEEDS`` shared seeds on, ``bootstrap_ci95`` (the
        seeded percentile bootstrap) is added beside it; the verdict stays
        on the t interval, because a percentile bootstrap of so few values
        is too narrow (it behaves like a normal interval with a biased sd).
    """
    seeds = sorted(set(variant) & set(baseline))
    if not seeds:
        return None
    diffs = [variant[s] - baseline[s] for s in seeds]
    ci = t_interval(diffs, level)
    out = dict(mean=mean(diffs), ci95=list(ci) if ci else None, method='t',
               n=len(seeds), seeds=seeds)
    if len(seeds) >= BOOTSTRAP_MIN_SEEDS:
        out['bootstrap_ci95'] = list(bootstrap_interval(diffs, level))
    return out


def summarise(values: List[float]) -> Tuple[Optional[float], Optional[float]]:
    """(mean, sample sd) of ``values``; None where undefined."""
    return (mean(values) if values else None, sample_std(values))
