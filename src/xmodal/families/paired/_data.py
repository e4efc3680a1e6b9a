"""The ``paired`` family container and its on-disk form (``data.h5mu`` + ``schema.json``).

Conventions on each modality's ``obs``:

``label``
    Cell label (category), optional; used for evaluation and stratification only.
``match``
    Name of the true partner cell in the *other* modality (``""`` when unknown); ground truth
    for FOSCTTM and matching accuracy, never shown to a method.
``split``
    ``"train"``, ``"validation"`` or ``"test"``, written by ``preprocess``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd

from xmodal.data._h5mu import SCHEMA_FILE, read_h5mu, write_h5mu
from xmodal.errors import XmodalInputError

LABEL, MATCH, SPLIT, CLUSTER = "label", "match", "split", "cluster"
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class PairedData:
    """Two modalities measured on related cells.

    Attributes
    ----------
    a, b
        Modality A (``n_a × d_a``) and B (``n_b × d_b``). ``X`` is dense float32.
    names
        Human names of the modalities, e.g. ``("morphology", "expression")``.
    corr_matrix
        Optional cluster-level correlation (B clusters × A clusters), the seed-000 prior.
    kinds
        What each modality holds: ``counts`` (non-negative integers: log1p applies, negatives are refused)
        or ``continuous``; declared in the source or inferred at ingest (``None``: not known, older files).
    kind_reasons
        Why each modality got its kind, as ingest logged it (``schema.json``: ``kind_reason``; ``None``: not
        recorded).
    """

    a: ad.AnnData
    b: ad.AnnData
    names: tuple[str, str] = ("a", "b")
    corr_matrix: pd.DataFrame | None = None
    kinds: tuple[str, str] | None = None
    kind_reasons: tuple[str, str] | None = None

    @property
    def has_labels(self) -> bool:
        """Whether both modalities carry a ``label`` column."""
        return LABEL in self.a.obs and LABEL in self.b.obs

    @property
    def has_pairing(self) -> bool:
        """Whether ground-truth partners are known for at least some cells."""
        return MATCH in self.a.obs and bool((self.a.obs[MATCH].astype(str) != "").any())

    def modality(self, key: str) -> ad.AnnData:
        """Return modality ``"a"`` or ``"b"``."""
        if key not in ("a", "b"):
            raise ValueError(f"modality must be 'a' or 'b', got {key!r}")
        return self.a if key == "a" else self.b

    def split(self, which: str) -> PairedData:
        """Return the cells of split ``which`` (``"train"`` or ``"validation"``) in both modalities."""
        if SPLIT not in self.a.obs or SPLIT not in self.b.obs:
            raise XmodalInputError("data has no train/validation split", fix="run `xmodal preprocess` first")
        a = self.a[self.a.obs[SPLIT] == which].copy()
        b = self.b[self.b.obs[SPLIT] == which].copy()
        return replace(self, a=a, b=b)

    def true_pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """Indices ``(ia, ib)`` of known partner pairs present in both modalities (shape ``(n_pairs,)``)."""
        if MATCH not in self.a.obs:
            return np.array([], dtype=int), np.array([], dtype=int)
        pos_b = pd.Series(np.arange(self.b.n_obs), index=self.b.obs_names)
        partner = self.a.obs[MATCH].astype(str)
        keep = partner.isin(pos_b.index) & (partner != "")
        ia = np.flatnonzero(keep.to_numpy())
        ib = pos_b.loc[partner[keep]].to_numpy()
        return ia, ib

    def schema(self) -> dict[str, Any]:
        """The ``schema.json`` content: family, version, shapes and content hashes."""
        mods = {}
        for key, adata, name in (("a", self.a, self.names[0]), ("b", self.b, self.names[1])):
            mods[key] = {
                "name": name,
                "n_obs": int(adata.n_obs),
                "n_vars": int(adata.n_vars),
                "sha256": content_hash(adata),
                "obs_columns": sorted(map(str, adata.obs.columns)),
            }
            if self.kinds is not None:
                mods[key]["kind"] = self.kinds["ab".index(key)]
            if self.kind_reasons is not None:
                mods[key]["kind_reason"] = self.kind_reasons["ab".index(key)]
        return {
            "family": "paired",
            "schema_version": SCHEMA_VERSION,
            "modalities": mods,
            "has_labels": self.has_labels,
            "has_pairing": self.has_pairing,
            "n_pairs": int(len(self.true_pairs()[0])),
            "has_corr_matrix": self.corr_matrix is not None,
        }


def content_hash(adata: ad.AnnData) -> str:
    """SHA-256 over the matrix values, cell names, feature names and the ``label``/``match`` columns."""
    h = hashlib.sha256()
    x = np.ascontiguousarray(np.asarray(adata.X, dtype=np.float32))
    h.update(str(x.shape).encode())
    h.update(x.tobytes())
    for seq in (adata.obs_names, adata.var_names):
        h.update("\x1f".join(map(str, seq)).encode())
    for col in (LABEL, MATCH, SPLIT):
        if col in adata.obs:
            h.update(col.encode() + "\x1f".join(map(str, adata.obs[col])).encode())
    return h.hexdigest()


def write_paired(data: PairedData, directory: str | Path) -> dict[str, Any]:
    """Write ``data.h5mu`` and ``schema.json`` into ``directory``; return the schema."""
    from xmodal._io import write_json

    uns: dict[str, Any] = {"xmodal": {"family": "paired", "modalities": list(data.names)}}
    if data.kinds is not None:
        uns["xmodal"]["kinds"] = list(data.kinds)
    if data.corr_matrix is not None:
        uns["xmodal_corr"] = {
            "values": data.corr_matrix.to_numpy(dtype=np.float64),
            "rows": np.asarray(data.corr_matrix.index, dtype=str),
            "columns": np.asarray(data.corr_matrix.columns, dtype=str),
        }
    write_h5mu({data.names[0]: data.a, data.names[1]: data.b}, uns, directory)
    schema = data.schema()
    write_json(Path(directory) / SCHEMA_FILE, schema)
    return schema


def read_paired(directory_or_file: str | Path) -> PairedData:
    """Read what :func:`write_paired` wrote (a directory or the ``.h5mu`` file itself)."""
    mdata, path = read_h5mu(directory_or_file)
    meta = mdata.uns.get("xmodal", {})
    names = tuple(str(n) for n in meta.get("modalities", list(mdata.mod)[:2]))
    if meta.get("family", "paired") != "paired" or len(names) != 2:
        raise XmodalInputError("not a `paired` family file (needs exactly two modalities)", path=path)
    corr = None
    if "xmodal_corr" in mdata.uns:
        c = mdata.uns["xmodal_corr"]
        corr = pd.DataFrame(np.asarray(c["values"]), index=list(c["rows"]), columns=list(c["columns"]))
    a, b = mdata.mod[names[0]].copy(), mdata.mod[names[1]].copy()
    kinds = meta.get("kinds")
    kinds = (str(kinds[0]), str(kinds[1])) if kinds is not None and len(kinds) == 2 else None
    return PairedData(a=a, b=b, names=(names[0], names[1]), corr_matrix=corr, kinds=kinds)
