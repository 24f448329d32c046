"""Is B better than A? The tests ``compare.py`` reports, on plain arrays, with scipy.stats:

- the exact McNemar test on paired per-image correctness (McNemar 1947; exact form: a two-sided
  binomial test of the discordant pairs at 1/2, Dietterich 1998, "Approximate statistical tests for
  comparing supervised classification learning algorithms", recommends it for one test set);
- a paired bootstrap interval of the accuracy difference (``scipy.stats.bootstrap``, BCa);
- Welch's t-test over the seeds' test accuracies of two seed groups (``scipy.stats.ttest_ind``,
  ``equal_var=False``);
- the verdict in words at a stated significance level.
"""
from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95  # of the bootstrap interval


@dataclass
class McNemar:
    """Paired outcomes of A and B on the same ``images`` test images, and the exact McNemar p-value.

    ``a_only``: images A gets right and B wrong; ``b_only``: the reverse (the discordant pairs);
    ``p_value``: two-sided ``scipy.stats.binomtest(a_only, a_only + b_only, 0.5)``, 1.0 without
    discordant pairs.
    """

    images: int
    both_right: int
    a_only: int
    b_only: int
    both_wrong: int
    p_value: float

    @property
    def acc_a(self) -> float:
        """A's accuracy, a fraction in [0, 1]."""
        return (self.both_right + self.a_only) / self.images

    @property
    def acc_b(self) -> float:
        """B's accuracy, a fraction in [0, 1]."""
        return (self.both_right + self.b_only) / self.images

    @property
    def delta(self) -> float:
        """B's accuracy minus A's, a fraction in [-1, 1]: ``(b_only - a_only) / images``."""
        return (self.b_only - self.a_only) / self.images

    def to_dict(self) -> dict:
        return asdict(self) | {"acc_a": self.acc_a, "acc_b": self.acc_b, "delta": self.delta}


def check_paired(correct_a: np.ndarray, correct_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both as (N,) bool arrays of one length N >= 1.

    Raises:
        ValueError: not 1-D, of different lengths, or empty.
    """
    a, b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    if a.ndim != 1 or a.shape != b.shape or not len(a):
        raise ValueError(f"paired outcomes must be two (N,) arrays of one length N >= 1, got {a.shape} and {b.shape}")
    return a, b


def mcnemar(correct_a: np.ndarray, correct_b: np.ndarray) -> McNemar:
    """The exact McNemar test of per-image correctness (N,) bool of A and of B on the same images.

    Raises:
        ValueError: see :func:`check_paired`.
    """
    a, b = check_paired(correct_a, correct_b)
    a_only, b_only = int((a & ~b).sum()), int((~a & b).sum())
    discordant = a_only + b_only
    p = stats.binomtest(a_only, discordant, 0.5).pvalue if discordant else 1.0
    return McNemar(len(a), int((a & b).sum()), a_only, b_only, int((~a & ~b).sum()), float(p))


def bootstrap_delta(correct_a: np.ndarray, correct_b: np.ndarray, resamples: int = 9999,
                    seed: int = 0) -> tuple[float, float]:
    """The 95 % paired bootstrap interval of B's accuracy minus A's, (low, high) as fractions.

    Test images are resampled with replacement, each with both outcomes (the per-image
    difference ``correct_b - correct_a`` is resampled), ``resamples`` times from ``seed``;
    BCa interval (``scipy.stats.bootstrap``'s default). When every image has the same difference
    (e.g. identical predictions) the interval is that difference, with no resampling.

    Raises:
        ValueError: see :func:`check_paired`.
    """
    a, b = check_paired(correct_a, correct_b)
    diff = b.astype(np.float64) - a.astype(np.float64)
    if np.ptp(diff) == 0:
        return float(diff[0]), float(diff[0])
    result = stats.bootstrap((diff,), np.mean, confidence_level=CONFIDENCE, n_resamples=resamples,
                             method="BCa", batch=500, rng=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


@dataclass
class Welch:
    """Welch's t-test of two seed groups' test accuracies (fractions), B minus A.

    ``mean_*`` and ``std_*``: mean and sample standard deviation (n - 1) of each group;
    ``t``, ``df`` and two-sided ``p_value`` from ``scipy.stats.ttest_ind(b, a, equal_var=False)``
    (NaN when both groups have zero variance).
    """

    acc_a: list[float]
    acc_b: list[float]
    mean_a: float
    std_a: float
    mean_b: float
    std_b: float
    t: float
    df: float
    p_value: float

    @property
    def delta(self) -> float:
        """Mean of B minus mean of A, a fraction."""
        return self.mean_b - self.mean_a


def welch(acc_a: list[float], acc_b: list[float]) -> Welch:
    """Welch's t-test of B's test accuracies against A's (at least two of each).

    Raises:
        ValueError: fewer than two accuracies on a side.
    """
    if min(len(acc_a), len(acc_b)) < 2:
        raise ValueError(f"Welch's t-test needs at least two runs on each side, got {len(acc_a)} and {len(acc_b)}")
    result = stats.ttest_ind(acc_b, acc_a, equal_var=False)
    return Welch(list(acc_a), list(acc_b), statistics.fmean(acc_a), statistics.stdev(acc_a),
                 statistics.fmean(acc_b), statistics.stdev(acc_b), float(result.statistic), float(result.df),
                 float(result.pvalue))


def verdict(delta: float, p_value: float, test: str, alpha: float) -> str:
    """The result in words: ``"B is better than A by 1.20 points (p = 0.003, exact McNemar, α = 0.05)"``,
    or ``"no detectable difference (p = 0.41, exact McNemar, α = 0.05)"`` when ``p_value`` is not
    below ``alpha`` (or is NaN). ``delta`` is B's accuracy minus A's, a fraction; ``test`` names the test."""
    why = f"(p = {p_value:.2g}, {test}, α = {alpha:g})"
    if not p_value < alpha or delta == 0:
        return f"no detectable difference {why}"
    better, worse = ("B", "A") if delta > 0 else ("A", "B")
    return f"{better} is better than {worse} by {100 * abs(delta):.2f} points {why}"
