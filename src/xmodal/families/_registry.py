"""The explicit data-family registry: name → where its configs and its implementation live.

Adding a data family is one folder ``families/<name>/``, one entry here and a ``preprocess.<name>`` section in
``params.yaml`` (datasets of the family then say ``family: <name>``); nothing in ``stages/``, ``tracking/``,
``cli.py``, ``components/`` or ``pipelines/`` changes. A test's toy family is one more entry
(``monkeypatch.setitem(FAMILIES, ...)``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from xmodal._targets import import_target
from xmodal.errors import ConfigError


@dataclass(frozen=True)
class FamilySpec:
    """How to find one data family.

    Attributes
    ----------
    name
        Registry key: the ``family`` of a dataset in ``params.yaml`` and the section ``preprocess.<name>``.
    dataset_config
        ``module:Class`` of the pydantic model of one ``datasets.<name>`` entry (cheap to import); its ``source``
        field is usually a union discriminated by ``kind``.
    preprocess_config
        ``module:Class`` of the pydantic model of ``preprocess.<name>``.
    family
        ``module:Class`` of its :class:`~xmodal.families._base.Family` (may import anndata, torch, scanpy).
    description
        One line for ``--help`` and the README.
    """

    name: str
    dataset_config: str
    preprocess_config: str
    family: str
    description: str = ""

    def dataset_config_cls(self) -> Any:
        """Import and return the dataset config class."""
        return import_target(self.dataset_config)

    def preprocess_config_cls(self) -> Any:
        """Import and return the preprocessing config class."""
        return import_target(self.preprocess_config)

    def load(self) -> Any:
        """Import the family class and return an instance."""
        return import_target(self.family)()


FAMILIES: dict[str, FamilySpec] = {
    "paired": FamilySpec(
        name="paired",
        dataset_config="xmodal.families.paired._config:PairedDatasetConfig",
        preprocess_config="xmodal.families.paired._config:PairedPreprocessConfig",
        family="xmodal.families.paired._family:PairedFamily",
        description="two modalities of the same (or comparable) cells, pairing known or not (morphology + "
        "expression, two gene panels)",
    ),
    "multiome": FamilySpec(
        name="multiome",
        dataset_config="xmodal.families.multiome._config:MultiomeDatasetConfig",
        preprocess_config="xmodal.families.multiome._config:MultiomePreprocessConfig",
        family="xmodal.families.multiome._family:MultiomeFamily",
        description="RNA + ATAC of the same cells (10x Multiome) in a source and a target domain, with phases",
    ),
    "census": FamilySpec(
        name="census",
        dataset_config="xmodal.families.census._config:CensusDatasetConfig",
        preprocess_config="xmodal.families.census._config:CensusPreprocessConfig",
        family="xmodal.families.census._family:CensusFamily",
        description="raw counts streamed from a Census-shaped SOMA store, with categorical metadata fields "
        "(CZ CELLxGENE Census queries, chunk exports, .h5ad)",
    ),
}


def get_family(name: str) -> FamilySpec:
    """Return the registry entry ``name`` or raise :class:`ConfigError` listing the known families."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise ConfigError(f"unknown data family {name!r} (known: {sorted(FAMILIES)})") from None

