"""What every saved model directory holds, and loading one back as its class."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from xmodal.errors import XmodalInputError, first_line

MODEL_JSON = "model.json"
RETRAIN = "the model folder is damaged or incomplete: train it again (`xmodal train` or `dvc repro`)"
"""The fix of every error about an unreadable saved model."""


def read_model_meta(path: str | Path, *, method: str | None = None) -> dict[str, Any]:
    """Read ``model.json`` of a saved model directory.

    Parameters
    ----------
    path
        The model folder.
    method
        When given, the folder must hold a model of this method.

    Raises
    ------
    XmodalInputError
        If the directory is not a saved xmodal model (of ``method``).
    """
    meta_path = Path(path) / MODEL_JSON
    if not meta_path.is_file():
        raise XmodalInputError(
            "not a saved xmodal model (no model.json)", path=path, fix="point to a `models/<dataset>/<method>` folder"
        )
    from xmodal._io import read_json

    meta = read_json(meta_path, fix=RETRAIN)
    if not isinstance(meta, dict) or not isinstance(meta.get("method"), str):
        raise XmodalInputError("not an xmodal model.json (no `method`)", path=meta_path, fix=RETRAIN)
    if method is not None and meta.get("method") != method:
        raise XmodalInputError(f"model is a {meta.get('method')!r}, not {method!r}", path=path)
    return meta


def write_model_meta(path: Path, *, method: str, config: Any, info: dict[str, Any],
                     history: list[dict[str, float]], **extra: Any) -> None:
    """Write ``model.json`` (method, version, config, info without wall time, ``extra``) and ``history.json``.

    Wall time stays out of the files: identical fits give identical bytes (a stable ``dvc.lock``).
    """
    from xmodal import __version__

    meta = {"method": method, "xmodal_version": __version__, "config": config.model_dump(mode="json"),
            "info": {k: v for k, v in info.items() if k != "fit_seconds"}, **extra}
    (path / MODEL_JSON).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    (path / "history.json").write_text(json.dumps(history, indent=1) + "\n")


def first_nonfinite(folder: str | Path) -> tuple[str, int, int] | None:
    """The first saved array of a model folder holding NaN or infinite values: ``(file/entry, n_bad, n)``.

    Reads ``.npy``/``.npz`` arrays (no pickles) and ``.pt`` state dicts (``weights_only``); ``None`` when every
    floating-point value is finite.
    """
    import numpy as np

    from xmodal._safe_load import load_torch

    folder = Path(folder)
    for file in sorted(folder.rglob("*")):
        arrays: dict[str, Any] = {}
        if file.suffix == ".npy":
            arrays = {file.relative_to(folder).as_posix(): np.load(file, allow_pickle=False)}
        elif file.suffix == ".npz":
            with np.load(file, allow_pickle=False) as found:
                arrays = {f"{file.relative_to(folder).as_posix()}:{k}": found[k] for k in found.files}
        elif file.suffix == ".pt":
            state = load_torch(file, what="model weights", fix=RETRAIN)
            arrays = {f"{file.relative_to(folder).as_posix()}:{k}": v.detach().cpu().numpy()
                      for k, v in (state.items() if isinstance(state, dict) else []) if hasattr(v, "detach")}
        for name, value in arrays.items():
            value = np.asarray(value)
            if np.issubdtype(value.dtype, np.floating) or np.issubdtype(value.dtype, np.complexfloating):
                bad = int((~np.isfinite(value)).sum())
                if bad:
                    return name, bad, int(value.size)
    return None


def read_history(path: str | Path) -> list[dict[str, float]]:
    """The ``history.json`` of a saved model folder (empty when there is none), as :func:`write_model_meta`
    wrote it."""
    from xmodal._io import read_json

    history = Path(path) / "history.json"
    return read_json(history, fix=RETRAIN) if history.is_file() else []


def load_model(path: str | Path) -> Any:
    """Load a saved model directory back as its own class (looked up in the registry).

    Parameters
    ----------
    path
        A folder written by ``<Model>.save``.

    Returns
    -------
    object
        The model instance, e.g. :class:`xmodal.methods.gwot.GWOT`.
    """
    from xmodal.errors import ConfigError
    from xmodal.methods._registry import get_method

    meta = read_model_meta(path)
    try:
        spec = get_method(meta["method"])
    except ConfigError as exc:
        raise XmodalInputError(str(exc), path=Path(path) / MODEL_JSON, fix=RETRAIN) from None
    try:
        return spec.model_cls().load(path)
    except XmodalInputError:
        raise
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, EOFError) as exc:  # arrays, JSON, weights
        raise XmodalInputError(f"cannot load the saved {spec.name} model ({type(exc).__name__}: "
                               f"{first_line(exc, limit=200)})", path=path,
                               fix=RETRAIN) from None


def embed(
    model: Any,
    data: Any,
    *,
    modality: str | None = None,
    preprocessors: dict[str, Any] | None = None,
    key: str | None = None,
) -> Any:
    """Embed new cells in a fitted model's shared space; return a copy with the codes in ``obsm``.

    Parameters
    ----------
    model
        A fitted paired-family model (``transform(x, modality=...)``), e.g. from :func:`load_model`.
    data
        An ``AnnData`` of one modality (give ``modality``), or a ``MuData`` holding both (its
        modalities are matched by the names the model was trained with, else taken in order).
    modality
        ``"a"``/``"b"`` or a modality name, for an ``AnnData``.
    preprocessors
        Modality (``"a"``/``"b"``) → fitted :class:`~xmodal.families.paired.ModalityPreprocessor`
        (``data/processed/<dataset>/preprocessor_<m>``) to apply to raw features first; without it
        ``X`` must already hold the processed features, named as in training.
    key
        ``obsm`` key (default ``X_<method>``).

    Returns
    -------
    AnnData or MuData
        A copy of ``data`` whose modality objects carry ``obsm[key]`` of shape ``(n_cells, d_shared)``;
        ``data`` itself is not modified.
    """
    import anndata as ad
    import numpy as np

    key = key or f"X_{getattr(model, 'method', 'xmodal')}"
    names = list(getattr(model, "info", {}).get("names", []))

    def one(adata: ad.AnnData, which: str) -> ad.AnnData:
        out = adata.copy()
        if preprocessors and which in preprocessors:
            x = preprocessors[which].transform(out)
        else:
            expected = getattr(model, "info", {}).get(f"features_{which}")
            if expected and list(map(str, out.var_names)) != list(expected):
                missing = [f for f in expected if f not in set(map(str, out.var_names))]
                raise XmodalInputError(
                    f"modality {which} does not have the model's {len(expected)} input features in order"
                    + (f" ({len(missing)} missing, first {missing[0]!r})" if missing else ""),
                    fix="pass `preprocessors=` to embed raw features, or give the processed features")
            x = np.asarray(out.X.toarray() if hasattr(out.X, "toarray") else out.X)
        out.obsm[key] = model.transform(x, modality=which)
        return out

    if isinstance(data, ad.AnnData):
        if modality is None:
            raise ValueError("embedding an AnnData needs modality= ('a', 'b' or a modality name)")
        which = modality if modality in ("a", "b") else {n: m for n, m in zip(names, "ab", strict=False)}.get(modality)
        if which is None:
            raise ValueError(f"unknown modality {modality!r}; the model knows {names or ['a', 'b']}")
        return one(data, which)
    mods = list(data.mod)
    chosen = names if len(names) == 2 and all(n in data.mod for n in names) else mods[:2]
    if len(chosen) != 2:
        raise XmodalInputError(f"the MuData has {len(mods)} modalities; two are needed",
                               fix=f"give modalities named {names}")
    import warnings

    import mudata as md

    embedded = {name: one(data.mod[name], which) for name, which in zip(chosen, "ab", strict=True)}
    with warnings.catch_warnings():  # mudata 0.3 announces a change of its obs/var pulling default
        warnings.simplefilter("ignore", FutureWarning)
        return md.MuData({**{n: data.mod[n].copy() for n in mods if n not in embedded}, **embedded})
