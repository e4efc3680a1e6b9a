"""The interface every data family implements: what the stages call, paths in and results out.

A stage owns its output folder (it prepares it, writes into a temporary folder and swaps it into place, see
:mod:`xmodal._io`); the family reads its inputs and writes its files into the folder it is given. Every family
splits cells into ``train`` / ``validation`` / ``test`` with the shared :class:`~xmodal.config.SplitConfig`
(:func:`xmodal.data.split_cells`): validation serves early stopping, model selection and ``xmodal tune``; test
serves the headline figures, the gates and promotion.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

#: the splits every family writes into ``obs["split"]`` of its processed cells
SPLITS = ("train", "validation", "test")
#: the split that is the headline (``reports/summary.json``, the gates, promotion)
HEADLINE = "test"
#: sub-folder of ``reports/<dataset>/<method>`` holding the family's plots (one DVC ``plots`` entry)
PLOTS = "plots"


@dataclass(frozen=True)
class Evaluation:
    """What a family's :meth:`Family.evaluate` returns.

    Attributes
    ----------
    metrics
        ``{"test": {...}, "validation": {...}, "train": {...}}``; ``test`` is the headline.
    summary
        A few headline values for the log line.
    """

    metrics: dict[str, dict[str, float]]
    summary: dict[str, float]


class Projection(ABC):
    """A fitted low-dimensional view of one modality's cells, for the drift monitor."""

    @property
    @abstractmethod
    def columns(self) -> list[str]:
        """Names of the projected columns (``pc_1``, ...), as the drift report shows them."""

    @abstractmethod
    def missing(self, cells: Any) -> list[str]:
        """The features the projection needs that ``cells`` (an AnnData) lack."""

    @abstractmethod
    def transform(self, cells: Any) -> np.ndarray:
        """Project ``cells`` ``(n, d)`` → ``(n, n_components)``; bad values raise ``XmodalInputError``."""


class FeatureProjection(Projection):
    """A projection that reads named features (``features``) onto principal axes (``components`` ``(k, d)``)."""

    features: np.ndarray
    components: np.ndarray

    @property
    def columns(self) -> list[str]:
        """``pc_1`` … ``pc_k``."""
        return [f"pc_{i + 1}" for i in range(len(self.components))]

    def missing(self, cells: Any) -> list[str]:
        """The features the projection reads that ``cells`` lack."""
        have = set(map(str, cells.var_names))
        return [f for f in map(str, self.features) if f not in have]


class Family(ABC):
    """One data family: its container, preprocessing, evaluation, held-out cells and monitor view.

    Subclasses are registered in :data:`xmodal.families.FAMILIES` (see :mod:`xmodal.families._registry`).
    """

    #: registry name (``datasets.<name>.family`` in params)
    name: str = ""

    def data_path(self, folder: Path) -> Path:
        """The data a stage folder (``data/ingested/<x>``, ``data/processed/<x>``) holds, as errors name it."""
        from xmodal.data import DATA_FILE

        return Path(folder) / DATA_FILE

    # ---------------------------------------------------------------- ingest
    @abstractmethod
    def ingest(self, cfg: Any, *, out: Path, source_root: Path, seed: int) -> str:
        """Read and validate the dataset ``cfg`` describes; write ``data.h5mu`` + ``schema.json`` into ``out``.

        Parameters
        ----------
        cfg
            The dataset's validated config (the family's ``dataset_config`` class).
        out
            An empty folder (the stage swaps it into ``data/ingested/<dataset>``).
        source_root
            Where relative input paths are resolved.
        seed
            The project seed (for anything random at ingest).

        Returns
        -------
        str
            One line for the log (shapes, domains).
        """

    # ---------------------------------------------------------------- preprocess
    @abstractmethod
    def preprocess(self, ingested: Path, *, out: Path, cfg: Any, split: Any, dataset: Any = None
                   ) -> dict[str, dict[str, int]]:
        """Split the ingested cells, fit preprocessing on the training cells, write the processed data into ``out``.

        ``out`` gets ``data.h5mu`` (``obs["split"]`` in every modality), ``schema.json`` and one
        ``preprocessor_<modality>`` folder per fitted preprocessor (:meth:`load_preprocessor` reads them).

        ``dataset`` is the dataset's config in ``params.yaml`` (a family whose split depends on it, such as held-out
        context combinations, reads it here; the others ignore it).

        Returns
        -------
        dict
            ``{"train": {group: n}, "validation": {...}, "test": {...}}``: cells per split per modality or domain.
        """

    @abstractmethod
    def load_preprocessor(self, directory: Path) -> Any:
        """Read a ``preprocessor_<modality>`` folder. The object has ``transform_frame(frame, domain=None)``,
        which brings a DataFrame of raw features into the model's features (the pyfunc's raw input)."""

    # ---------------------------------------------------------------- train
    @abstractmethod
    def training_data(self, processed: Path) -> Any:
        """What a method's ``fit`` may see of ``data/processed/<dataset>``; never the test cells."""

    def fit_kwargs(self, cfg: Any) -> dict[str, Any]:
        """Keyword arguments of ``fit`` that come from the dataset's config (none by default)."""
        return {}

    def check_fitted(self, model: Any, train: Any) -> str | None:
        """Describe non-finite outputs of a fitted ``model`` on its training cells, or ``None`` when all is finite."""
        return None

    # ---------------------------------------------------------------- evaluate
    @abstractmethod
    def evaluate(self, model_dir: Path, processed: Path, *, out: Path, cfg: Any, title: str) -> Evaluation:
        """Score the model in ``model_dir`` on every split; write ``metrics.json`` and ``plots/`` into ``out``."""

    def confusion(self, model_dir: Path, processed: Path, *, cfg: Any) -> tuple[list[str], list[list[int]]]:
        """A confusion matrix on the test cells ``(categories, rows of counts)``; empty when there are no labels."""
        return [], []

    # ---------------------------------------------------------------- register
    @abstractmethod
    def holdout(self, ingested: Path, processed: Path) -> Any:
        """The test cells in their *ingested* features with the processed ``obs``: what the registry scores."""

    @abstractmethod
    def score(self, model: Any, preprocessors: dict[str, Any], cells: Any, *, cfg: Any) -> dict[str, float]:
        """Score ``model`` on raw :meth:`holdout` cells, each modality through its preprocessor first."""

    # ---------------------------------------------------------------- monitor
    @abstractmethod
    def monitor_reference(self, ingested: Path, processed: Path, *, min_cells: int) -> dict[str, Any]:
        """Modality name → the training cells in their ingested features (an AnnData each)."""

    @abstractmethod
    def monitor_new(self, path: Path, *, names: list[str], min_cells: int) -> dict[str, Any]:
        """Modality name → the new cells of ``path`` (a folder ingest wrote, or its ``.h5mu``)."""

    @abstractmethod
    def projection(self, cells: Any, *, n_components: int, cfg: Any, seed: int) -> Projection:
        """Fit the monitor's projection of one modality on reference ``cells`` with the family's preprocessing."""
