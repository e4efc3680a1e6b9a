"""Data families: each package owns everything about one kind of data (see :mod:`xmodal.families._base`).

The stages never name a family: they look the dataset's family up here and call its interface.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from xmodal.families._registry import FAMILIES, FamilySpec, get_family

__all__ = ["FAMILIES", "FamilySpec", "family_of", "get_family", "load_preprocessor"]

#: the ``meta.json`` key of a saved preprocessor naming its family
FAMILY_KEY = "family"
#: preprocessors saved before ``family`` was recorded (models already in a registry): ``kind`` → family
_LEGACY = {"multiome": "multiome"}


def family_of(params: Any, dataset: str) -> Any:
    """The :class:`~xmodal.families._base.Family` of ``params.datasets[dataset]``.

    Raises
    ------
    ConfigError
        An unknown dataset or family.
    """
    return get_family(params.dataset(dataset).family).load()


def load_preprocessor(directory: str | Path) -> Any:
    """Read a saved ``preprocessor_<modality>`` folder with the family its ``meta.json`` names.

    Raises
    ------
    XmodalInputError
        A missing or damaged ``meta.json``, or a family this installation does not know.
    """
    from xmodal._io import read_json
    from xmodal.errors import ConfigError, XmodalInputError

    directory = Path(directory)
    meta = read_json(directory / "meta.json", fix="re-run `xmodal preprocess` (or `dvc repro`): the folder is damaged")
    name = meta.get(FAMILY_KEY) or _LEGACY.get(str(meta.get("kind")), "paired")
    try:
        family = get_family(str(name)).load()
    except ConfigError:
        raise XmodalInputError(f"the preprocessor names the data family {name!r}, which is not registered (known: "
                               f"{sorted(FAMILIES)})", path=directory / "meta.json",
                               fix="re-run `xmodal preprocess` with this version of xmodal") from None
    return family.load_preprocessor(directory)
