"""Whether a matrix holds counts: the rule ``kinds: auto`` reads a modality by, and the reason it gives.

Counts (UMIs, reads, fragments) are non-negative integers, and they are *sparse or small*: a cell's library is
spread over many features, so most values are 0, 1 or a few (measured on negative-binomial UMI counts at 1 000 to
100 000 UMIs per cell over 50 to 20 000 genes, and on every bundled and synthetic dataset of xmodal:
``benchmarks/counts_rule.py``). Integer features that are *dense and large* — no or few zeros, typical values in
the hundreds to hundreds of thousands, as binned image features or aggregated intensities are — are
measurements on a scale, not counts: ``log1p`` compresses exactly the range they carry (on such a paired
dataset gwot lost 0.05 FOSCTTM and 0.26 label transfer to it).

The rule, on every value of the matrix:

1. a negative or non-integer value → not counts;
2. fewer than :data:`DENSE_ZEROS` of the values are zero **and** the median non-zero value is at least
   :data:`LARGE_MEDIAN` → dense integers, not counts;
3. otherwise → counts.

Dense *small* integers (deep UMI counts of a few highly expressed genes: 0.2 % zeros and a median of 20 at
100 000 UMIs per cell over 2 000 genes; ordinal scores) stay counts. A matrix the rule misreads is declared in the
source's ``kinds``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

#: below this share of zeros a matrix is dense
DENSE_ZEROS = 0.05
#: a dense integer matrix whose median non-zero value reaches this is read as aggregates, not counts
LARGE_MEDIAN = 100.0
#: the median is taken over at most this many non-zero values (an even-strided sample beyond it)
_MEDIAN_SAMPLE = 2_000_000


@dataclass(frozen=True)
class CountsVerdict:
    """What :func:`judge_counts` found.

    Attributes
    ----------
    counts
        Whether the matrix reads as counts.
    integers
        Whether every value is a non-negative integer.
    zero_share
        Share of the values that are 0.
    median
        Median of the non-zero values (0 when every value is 0).
    reason
        One line for logs and ``schema.json``, e.g. ``"dense integers: 0.0 % zeros, median 1.2e+04: aggregates,
        not counts"``.
    """

    counts: bool
    integers: bool
    zero_share: float
    median: float
    reason: str

    @property
    def kind(self) -> str:
        """``counts`` or ``continuous``."""
        return "counts" if self.counts else "continuous"


def judge_counts(x: Any, *, dense_zeros: float = DENSE_ZEROS, large_median: float = LARGE_MEDIAN) -> CountsVerdict:
    """Apply the counts rule (module docstring) to a matrix.

    Parameters
    ----------
    x
        ``(cells, features)``, dense or sparse, finite.
    dense_zeros, large_median
        The rule's thresholds.

    Returns
    -------
    CountsVerdict
        The decision and its reason.
    """
    size = int(np.prod(x.shape)) if hasattr(x, "shape") else int(np.size(x))
    values = np.asarray(x.data if sp.issparse(x) else x, dtype=np.float64).ravel()
    nonzero = values[values != 0]
    zero_share = 1.0 - nonzero.size / size if size else 1.0
    negative = bool((nonzero < 0).any())
    fractional = bool((nonzero != np.round(nonzero)).any())
    sample = nonzero[:: -(-nonzero.size // _MEDIAN_SAMPLE)] if nonzero.size > _MEDIAN_SAMPLE else nonzero
    median = float(np.median(sample)) if sample.size else 0.0
    stats = f"{100 * zero_share:.1f} % zeros, median {median:.3g}"
    if negative or fractional:
        what = "negative values" if negative else "non-integer values"
        return CountsVerdict(False, False, zero_share, median, f"{what}: not counts")
    if zero_share < dense_zeros and median >= large_median:
        return CountsVerdict(False, True, zero_share, median, f"dense integers: {stats}: aggregates, not counts")
    shape = "binary" if median <= 1 and (nonzero.size == 0 or float(nonzero.max()) <= 1) else (
        "sparse" if zero_share >= dense_zeros else "small dense")
    return CountsVerdict(True, True, zero_share, median, f"{shape} non-negative integers: {stats}: counts")


__all__ = ["DENSE_ZEROS", "LARGE_MEDIAN", "CountsVerdict", "judge_counts"]
