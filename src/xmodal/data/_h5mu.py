"""The on-disk form every family shares: ``data.h5mu`` (a MuData) + ``schema.json`` in a stage's folder."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import anndata as ad

from xmodal.errors import XmodalInputError

DATA_FILE, SCHEMA_FILE = "data.h5mu", "schema.json"


def write_h5mu(modalities: dict[str, ad.AnnData], uns: dict[str, Any], directory: str | Path) -> Path:
    """Write ``directory/data.h5mu`` holding ``modalities`` and ``uns`` (the folder is created); return its path."""
    import mudata as md

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    md.set_options(pull_on_update=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mdata = md.MuData(dict(modalities))
        mdata.uns.update(uns)
        mdata.write(directory / DATA_FILE)
    return directory / DATA_FILE


def read_h5mu(directory_or_file: str | Path) -> tuple[Any, Path]:
    """Open a stage's ``data.h5mu`` (given the folder or the file); return the MuData and the file path.

    Raises
    ------
    XmodalInputError
        When there is no such file (the previous stage has not run).
    """
    import mudata as md

    from xmodal.data._formats import require

    path = Path(directory_or_file)
    if path.is_dir():
        path = path / DATA_FILE
    if not path.is_file():
        raise XmodalInputError("no such data file", path=path, fix="run the previous stage (`dvc repro`) first")
    require(path, "h5mu", expects="expected an .h5mu written by xmodal", suggest=False,
            fix="give a folder (or .h5mu) that `xmodal ingest`/`preprocess` wrote; re-run the stage that writes it "
            "if it was damaged")
    from xmodal.data._sparse import check_h5_file

    check_h5_file(path)  # every modality's matrix arrays, before mudata builds them
    md.set_options(pull_on_update=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return md.read_h5mu(path), path
        except Exception as exc:  # noqa: BLE001 - h5py/mudata raise many types for a damaged file
            raise XmodalInputError(f"cannot read the .h5mu ({type(exc).__name__}: {exc})", path=path,
                                   fix="the file is damaged or incomplete: re-run the stage that writes it "
                                   "(`dvc repro`)") from None
