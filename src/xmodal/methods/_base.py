"""What every saved model directory holds, and loading one back as its class."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from xmodal.errors import XmodalInputError

MODEL_JSON = "model.json"


def read_model_meta(path: str | Path) -> dict[str, Any]:
    """Read ``model.json`` of a saved model directory.

    Raises
    ------
    XmodalInputError
        If the directory is not a saved xmodal model.
    """
    meta_path = Path(path) / MODEL_JSON
    if not meta_path.is_file():
        raise XmodalInputError(
            "not a saved xmodal model (no model.json)", path=path, fix="point to a `models/<dataset>/<method>` folder"
        )
    return json.loads(meta_path.read_text())


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
    from xmodal.methods._registry import get_method

    meta = read_model_meta(path)
    return get_method(meta["method"]).model_cls().load(path)
