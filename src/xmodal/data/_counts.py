"""Whether a matrix holds counts: the rule ``kinds: auto`` reads a modality by, and the reason it gives.

Counts (UMIs, reads, fragments, antibody tags) are non-negative integers with a *low end*: a cell's library is
spread over many features, so zeros, ones and small values are common whatever the depth (negative-binomial UMI
counts at 1 000 to 100 000 UMIs per cell over 50 to 20 000 genes: 5th percentile of the values 0 to 50; the
background of an antibody panel: 1 to 20). Integer features without a low end — no zeros and no small values,
values in the hundreds to hundreds of thousands, as binned image features or aggregated intensities are — are
measurements on a scale, not counts, and ``log1p`` bends the range they carry (issue 28: on a real paired dataset
of such features gwot lost 0.05 FOSCTTM and 0.26 label transfer to it; on ``synthetic_paired`` with its continuous
modality mapped linearly onto such integers, 0.054 against 0.044 FOSCTTM over three seeds, label transfer level).
``benchmarks/counts_rule.py`` measures the rule on every bundled and synthetic dataset of xmodal (none changes
kind) and on 36 simulated shapes (each read as expected).

The rule, on every value of the matrix:

1. a negative or non-integer value → not counts;
2. the 5th percentile of the values is :data:`LOW_END` (100) or more — at least 95 % of the values are 100 or
   more, so under 5 % are zero → dense integers, not counts;
3. otherwise → counts.

Dense *small* integers (deep counts of a few genes, antibody counts, ordinal scores) stay counts. A matrix the rule
misreads is declared in the source's ``kinds``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

#: a matrix of non-negative integers whose 5th percentile reaches this has no low end: not counts
LOW_END = 100.0
#: the percentile the low end is read at
LOW_PERCENTILE = 5.0
#: percentiles are taken over at most this many non-zero values (an even-strided sample beyond it)
_SAMPLE = 2_000_000


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
    low
        The 5th percentile of the values (zeros included).
    median
        Median of the non-zero values (0 when every value is 0).
    reason
        One line for logs and ``schema.json``, e.g. ``"dense integers: 0.0 % zeros, 5th percentile 312, median
        1.2e+04: aggregates, not counts"``.
    """

    counts: bool
    integers: bool
    zero_share: float
    low: float
    median: float
    reason: str

    @property
    def kind(self) -> str:
        """``counts`` or ``continuous``."""
        return "counts" if self.counts else "continuous"


def judge_counts(x: Any, *, low_end: float = LOW_END) -> CountsVerdict:
    """Apply the counts rule (module docstring) to a matrix.

    Parameters
    ----------
    x
        ``(cells, features)``, dense or sparse, finite.
    low_end
        The rule's threshold on the 5th percentile.

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
    sample = nonzero[:: -(-nonzero.size // _SAMPLE)] if nonzero.size > _SAMPLE else nonzero
    median = float(np.median(sample)) if sample.size else 0.0
    share = LOW_PERCENTILE / 100
    # the percentile among all values: 0 while zeros fill it, else the matching percentile of the non-zero values
    low = 0.0 if zero_share >= share or not sample.size else float(
        np.percentile(sample, 100 * (share - zero_share) / (1 - zero_share)))
    stats = f"{100 * zero_share:.1f} % zeros, {LOW_PERCENTILE:g}th percentile {low:.3g}, median {median:.3g}"
    if negative or fractional:
        what = "negative values" if negative else "non-integer values"
        return CountsVerdict(False, False, zero_share, low, median, f"{what}: not counts")
    if low >= low_end:
        return CountsVerdict(False, True, zero_share, low, median,
                             f"dense integers without a low end: {stats}: aggregates, not counts")
    what = "binary (0/1) values" if nonzero.size == 0 or float(nonzero.max()) <= 1 else (
        "non-negative integers with a low end")
    return CountsVerdict(True, True, zero_share, low, median, f"{what}: {stats}: counts")


__all__ = ["LOW_END", "LOW_PERCENTILE", "CountsVerdict", "judge_counts"]
