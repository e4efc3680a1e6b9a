"""The one split of every family: seeded train / validation / test, stratified where there are labels."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

SPLITS = ("train", "validation", "test")
#: the ``obs`` column holding each cell's split
SPLIT = "split"
_RERUN = "re-run `dvc repro` so both are current"


def split_cells(n: int, *, strata: Sequence[Sequence[str]] = (), validation: float, test: float,
                rng: np.random.Generator) -> np.ndarray:
    """Assign ``n`` cells to ``train``, ``validation`` or ``test``.

    Inside every stratum (the distinct combinations of ``strata``, in sorted order) the cells are
    permuted with ``rng``; the first ``round(test · size)`` go to test, the next ``round(validation · size)``
    to validation and the rest to training. A stratum too small for a share keeps its cells in training.

    Parameters
    ----------
    n
        Number of cells.
    strata
        Zero or more label arrays of length ``n`` (e.g. the cell label; a domain and a phase).
    validation, test
        Shares of every stratum; ``validation + test < 1``.
    rng
        The generator; the same seed gives the same split.

    Returns
    -------
    numpy.ndarray
        ``(n,)`` object array of split names.

    Raises
    ------
    ValueError
        A share outside ``[0, 1)`` or shares summing to 1 or more, or a stratum array of another length.
    """
    if validation < 0 or test < 0 or validation + test >= 1:
        raise ValueError("validation and test must be non-negative shares with validation + test < 1")
    out = np.empty(n, dtype=object)
    if n == 0:
        return out
    columns = [pd.Series(np.asarray(s).astype(str)) for s in strata]
    if any(len(c) != n for c in columns):
        raise ValueError(f"every stratum array must hold {n} values")
    if columns:
        groups = sorted(pd.concat(columns, axis=1).groupby(list(range(len(columns))), sort=True).indices.items())
        blocks = [np.asarray(idx) for _, idx in groups]
    else:
        blocks = [np.arange(n)]
    for idx in blocks:
        idx = rng.permutation(idx)
        n_test = int(round(test * len(idx)))
        n_val = int(round(validation * len(idx)))
        out[idx[:n_test]] = "test"
        out[idx[n_test:n_test + n_val]] = "validation"
        out[idx[n_test + n_val:]] = "train"
    return out


def split_names(obs: pd.DataFrame, split: str, *, ingested_names: pd.Index, ingested: Path,
                processed: Path) -> pd.Index:
    """The cells of ``split`` in processed ``obs``, each checked to be among the ingested cells.

    What the registry's held-out cells and the monitor's reference both need: processed cells looked up in
    their raw (ingested) features.

    Raises
    ------
    XmodalInputError
        The processed data carry no split, or some of the cells are not in the ingested data (the two stages'
        outputs are out of step: ``dvc repro``).
    """
    from xmodal.errors import XmodalInputError

    if SPLIT not in obs:
        raise XmodalInputError("processed data carry no split", path=processed, fix=_RERUN)
    names = obs.index[obs[SPLIT].astype(str) == split]
    absent = names.difference(ingested_names)
    if len(absent):
        raise XmodalInputError(f"{len(absent)} {split} cells of the processed data are not in the ingested data "
                               f"(first {absent[0]!r})", path=ingested, fix=_RERUN)
    return names
