"""The MLflow ``pyfunc`` wrapper for every xmodal model (imported only when MLflow is used)."""

from __future__ import annotations

import warnings
from typing import Any

import mlflow.pyfunc
import numpy as np

#: artifact keys of a logged xmodal model
MODEL_ARTIFACT = "model"
PREPROCESSOR_ARTIFACT = "preprocessor_{modality}"


# MLflow warns at class definition when ``predict`` has no input type hint. Ours has none on purpose: a
# hint makes MLflow convert and validate inputs, while our inputs differ per modality and the signature
# is explicit (see ``xmodal.tracking._mlflow._signature``).
with warnings.catch_warnings(record=True) as _caught:
    warnings.simplefilter("always")

    class XmodalPyfunc(mlflow.pyfunc.PythonModel):
        """Serve a saved xmodal model through ``mlflow.pyfunc``.

        ``predict`` embeds the cells of one modality in the shared space.

        Parameters accepted by ``predict`` (``params=``):

        - ``modality``: ``"a"`` (default) or ``"b"``;
        - ``input``: ``"processed"`` (default; features as in ``data/processed``, in order) or ``"raw"``
          (a DataFrame whose columns include the raw features the logged preprocessor kept; it is applied first);
        - ``domain`` (raw input, families with domains): the domain (cell line) the cells come from; when the
          preprocessor has a learned peak mapper for it, the peaks that line did not measure may be absent and
          are predicted;
        - ``set`` (counterfactual models, ``cycleae``): the target context, JSON or ``field=value`` pairs; the input
          is then raw counts plus the metadata fields (see :meth:`counterfactual`).

        After loading, ``.model`` is the model as its own class and ``.preprocessors`` maps modality → the fitted
        preprocessor of the dataset's family (:func:`xmodal.families.load_preprocessor`; empty if none was
        logged).
        """

        def load_context(self, context: Any) -> None:
            """Load the model folder and the preprocessors from the logged artifacts."""
            from xmodal.families import load_preprocessor
            from xmodal.methods import load_model

            self.model = load_model(context.artifacts[MODEL_ARTIFACT])
            prefix = PREPROCESSOR_ARTIFACT.format(modality="")
            self.preprocessors = {key.removeprefix(prefix): load_preprocessor(path)
                                  for key, path in sorted(context.artifacts.items()) if key.startswith(prefix)}

        def predict(self, context, model_input, params=None):  # noqa: ANN001, ANN201
            """Embed ``model_input`` (``(n, d)``) → shared-space coordinates ``(n, d_shared)``, a float64 array.

            A classifier (a model with ``predict_proba``, e.g. ``dualdann``) returns class probabilities
            ``(n, K)`` instead; its modalities are ``atac`` and ``rna`` (``a`` means the first).
            """
            params = dict(params or {})
            if hasattr(self.model, "counterfactual"):
                return self.counterfactual(model_input, params)
            modality = str(params.get("modality", "a"))
            modalities = getattr(self.model, "modalities", ("a", "b"))
            if modality not in modalities and modality in ("a", "b"):
                modality = modalities["ab".index(modality)]
            kind = str(params.get("input", "processed"))
            if kind not in ("processed", "raw"):
                raise ValueError(f"params['input'] must be 'processed' or 'raw', got {kind!r}")
            if kind == "raw":
                model_input = self.preprocess(model_input, modality=modality, domain=params.get("domain") or None)
            if not hasattr(model_input, "tocsr") and not hasattr(model_input, "obs"):  # sparse and AnnData stay
                model_input = np.asarray(model_input, dtype=np.float64)
            if hasattr(self.model, "predict_proba"):
                return self.model.predict_proba(model_input, modality=modality).astype(np.float64)
            return self.model.transform(model_input, modality=modality)

        def counterfactual(self, frame: Any, params: dict[str, Any]) -> Any:
            """A counterfactual model (``cycleae``): raw counts (gene columns, named by ``feature_id`` or
            ``feature_name``) plus the model's metadata fields as columns, and ``params["set"]`` the target context
            (JSON ``{"sex": "female"}`` or ``sex=female,disease=normal``; empty: each cell's own context) → the
            predicted expression ``(n, G)`` in the model's space ``log1p(target_sum · counts / total)``."""
            import json

            import anndata as ad
            import pandas as pd
            import scipy.sparse as sp

            if not isinstance(frame, pd.DataFrame):
                raise TypeError("input must be a pandas DataFrame: raw counts per gene and the metadata fields")
            text = str(params.get("set") or "").strip()
            if text.startswith("{"):
                changes = {str(k): str(v) for k, v in json.loads(text).items()}
            else:
                pairs = [p.split("=", 1) for p in text.split(",") if p.strip()]
                if any(len(p) != 2 for p in pairs):
                    raise ValueError(f"params['set'] must be JSON or field=value pairs, got {text!r}")
                changes = {k.strip(): v.strip() for k, v in pairs}
            if "rna" in self.preprocessors:
                cells = self.preprocessors["rna"].transform_frame(frame)
            else:
                fields = [c for c in frame.columns if c in self.model.fields]
                genes = [c for c in frame.columns if c not in fields]
                cells = ad.AnnData(X=sp.csr_matrix(frame[genes].to_numpy(dtype=np.float32)), obs=frame[fields].copy(),
                                   var=pd.DataFrame(index=pd.Index(genes, dtype=str)))
            return np.asarray(self.model.counterfactual(cells, set=changes).X, dtype=np.float64)

        def preprocess(self, frame: Any, *, modality: str, domain: str | None = None) -> Any:
            """Apply the logged preprocessor of ``modality`` to a DataFrame of raw features → ``(n, d_processed)``.

            The family's preprocessor adapts the frame (``transform_frame``); ``domain`` names the cells' domain
            where the family has domains (its learned peak mapper then applies).
            """
            import pandas as pd

            if modality not in self.preprocessors:
                raise ValueError(f"no preprocessor was logged for modality {modality!r}; pass processed features")
            if not isinstance(frame, pd.DataFrame):
                raise TypeError("raw input must be a pandas DataFrame whose columns are feature names")
            return self.preprocessors[modality].transform_frame(frame, domain=domain)

for _w in _caught:
    if "type hints to the `predict` method" not in str(_w.message):
        warnings.warn_explicit(_w.message, _w.category, _w.filename, _w.lineno)
del _caught
