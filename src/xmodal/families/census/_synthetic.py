"""A Census-shaped synthetic dataset whose context effects are planted, so every counterfactual has a true answer.

Each cell has an intrinsic state (a low-dimensional latent ``u``, its own library size) and a context: one value
per Census metadata field. Expression is negative-binomial around a rate whose logarithm is **additive** over
the fields, plus a planted **interaction** of two fields on a subset of genes::

    log rate[c, g] = base[g] + (u[c] @ loadings)[g] + Σ_f effect[f][context[c, f], g]
                     + interaction[(context[c, f1], context[c, f2]), g] + donor[c's donor, g]
    counts[c, :]  ~ NB(library[c] · softmax_g(log rate[c, :]), dispersion)

The true counterfactual of cell ``c`` in context ``t`` keeps ``u[c]`` and the donor, swaps the context terms and
reads the noise-free expected expression in the space the model predicts: ``log1p(target_sum · softmax(...))``
(:meth:`CensusSim.true_expression`). Fields are sampled independently per cell except ``tissue`` (nested in
``tissue_general``), so whole combinations can be held out of training.

The nine Census fields are all present: the modelled ones carry effects; ``development_stage`` and
``self_reported_ethnicity`` are mostly ``"unknown"`` as in Census; ``donor_id`` is a small nuisance effect.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

#: planted fields: values, the effect size (SD of a per-value log-rate offset), the share of genes it touches and
#: whether those genes are drawn among the better-expressed half only (sex: a few X/Y-linked genes such as XIST or
#: RPS4Y1, expressed and switched on or off, rather than faint shifts of random genes)
FIELD_DESIGN: dict[str, tuple[tuple[str, ...], float, float, bool]] = {
    "cell_type": (("T cell", "B cell", "NK cell", "monocyte", "dendritic cell", "erythrocyte"), 1.0, 0.25, False),
    "sex": (("female", "male"), 2.0, 0.015, True),
    "tissue_general": (("blood", "lung", "brain"), 0.6, 0.15, False),
    "assay": (("10x 3' v3", "10x 5' v2", "Smart-seq2"), 0.35, 1.0, False),
    "disease": (("normal", "COVID-19"), 0.8, 0.06, False),
}
_TISSUES = {"blood": ("blood", "bone marrow"), "lung": ("lung", "lung parenchyma"), "brain": ("cortex", "cerebellum")}
#: the pair of fields with a planted interaction
INTERACTION = ("cell_type", "sex")


@dataclass(frozen=True)
class CensusSim:
    """A generated dataset and everything needed to compute true counterfactuals.

    Attributes
    ----------
    counts
        ``(n_cells, n_genes)`` CSR float32 raw counts.
    obs
        Metadata, one row per cell (index: cell ids), the nine Census fields as categoricals.
    var
        Genes: index ``feature_id`` (Ensembl-like), column ``feature_name``.
    base, loadings, latent, donor_effect, effects, interaction
        The planted model (see the module docstring); ``effects[f]`` is ``(n_values, n_genes)``,
        ``interaction`` is ``(n_values_f1, n_values_f2, n_genes)``.
    donor
        Donor index of each cell ``(n_cells,)``.
    target_sum
        Library size of the normalised space the truth is expressed in.
    source
        The file it was read from (:meth:`load_truth`), named in errors.
    """

    counts: sp.csr_matrix
    obs: pd.DataFrame
    var: pd.DataFrame
    base: np.ndarray
    loadings: np.ndarray
    latent: np.ndarray
    donor: np.ndarray
    donor_effect: np.ndarray
    effects: dict[str, np.ndarray]
    interaction: np.ndarray
    target_sum: float = 1e4
    values: dict[str, tuple[str, ...]] = field(
        default_factory=lambda: {name: design[0] for name, design in FIELD_DESIGN.items()})
    source: str = ""

    def _refuse(self, problem: str) -> None:
        from xmodal.errors import XmodalInputError

        raise XmodalInputError(f"the planted model does not fit these data: {problem}", path=self.source or None,
                               fix="the truth.npz belongs to other data: run `xmodal ingest` and `xmodal preprocess` "
                               "for this dataset again")

    def log_rate(self, cells: np.ndarray, context: pd.DataFrame) -> np.ndarray:
        """Noise-free log rates of ``cells`` (row indices) in ``context`` (one row per cell, planted fields).

        Returns
        -------
        numpy.ndarray
            ``(len(cells), n_genes)`` float64, before the per-cell softmax.
        """
        cells = np.asarray(cells)
        if cells.size and (cells.min() < 0 or cells.max() >= len(self.latent)):
            self._refuse(f"cell {int(cells.max()) + 1} asked, the model has {len(self.latent)} cells")
        out = self.base[None, :] + self.latent[cells] @ self.loadings + self.donor_effect[self.donor[cells]]
        codes = {}
        for name, values in self.values.items():
            lookup = {v: i for i, v in enumerate(values)}
            try:
                codes[name] = np.array([lookup[v] for v in context[name].astype(str)])
            except KeyError as err:
                raise ValueError(f"{name}: {err.args[0]!r} is not a planted value ({', '.join(values)})") from None
            out = out + self.effects[name][codes[name]]
        f1, f2 = INTERACTION
        return out + self.interaction[codes[f1], codes[f2]]

    def true_expression(self, cells: np.ndarray, context: pd.DataFrame, *, genes: np.ndarray | None = None
                        ) -> np.ndarray:
        """The true expected expression of ``cells`` in ``context``: ``log1p(target_sum · softmax(log rate))``.

        Parameters
        ----------
        cells
            Row indices of the generated cells.
        context
            One row per cell holding every planted field.
        genes
            Gene indices of the space the truth is read in (a model's selected genes): the rates are normalised
            over these genes, as a model normalises its input; default all genes.

        Returns
        -------
        numpy.ndarray
            ``(len(cells), len(genes))`` float32.
        """
        rate = self.log_rate(cells, context)
        if genes is not None:
            genes = np.asarray(genes)
            if genes.size and (genes.min() < 0 or genes.max() >= rate.shape[1]):
                self._refuse(f"gene {int(genes.max()) + 1} asked, the model has {rate.shape[1]} genes")
            rate = rate[:, genes]
        rate = np.exp(rate - rate.max(axis=1, keepdims=True))
        return np.log1p(self.target_sum * rate / rate.sum(axis=1, keepdims=True)).astype(np.float32)

    def subset_genes(self, genes: np.ndarray) -> CensusSim:
        """The planted model on the genes ``genes`` only (indices): its truth is normalised over those genes, as a
        model's input is over the genes it keeps. The counts are dropped."""
        genes = np.asarray(genes)
        if genes.size and (genes.min() < 0 or genes.max() >= len(self.base)):
            self._refuse(f"gene {int(genes.max()) + 1} asked, the model has {len(self.base)} genes")
        return CensusSim(counts=sp.csr_matrix((len(self.latent), len(genes)), dtype=np.float32), obs=pd.DataFrame(),
                         var=pd.DataFrame(), base=self.base[genes], loadings=self.loadings[:, genes],
                         latent=self.latent, donor=self.donor, donor_effect=self.donor_effect[:, genes],
                         effects={k: v[:, genes] for k, v in self.effects.items()},
                         interaction=self.interaction[..., genes], target_sum=self.target_sum, values=self.values,
                         source=self.source)

    # ------------------------------------------------------------ the planted model on disk
    def save_truth(self, path: str | Path) -> Path:
        """Write the planted model (not the counts) to ``path`` (``.npz``, no pickles): what evaluation needs to
        compute true counterfactuals of the generated cells."""
        arrays = {"base": self.base, "loadings": self.loadings, "latent": self.latent, "donor": self.donor,
                  "donor_effect": self.donor_effect, "interaction": self.interaction,
                  "target_sum": np.asarray(self.target_sum)}
        for name, values in self.values.items():
            arrays[f"effect:{name}"] = self.effects[name]
            arrays[f"values:{name}"] = np.asarray(values, dtype=str)
        path = Path(path)
        with path.open("wb") as fh:
            np.savez_compressed(fh, **arrays)
        return path

    @classmethod
    def load_truth(cls, path: str | Path) -> CensusSim:
        """Read what :meth:`save_truth` wrote; the result computes :meth:`true_expression` (it holds no counts).

        Every array is checked before use: present, numeric (no pickles), finite, of the shapes the planted model
        needs and consistent with each other (genes, cells, donors, field values).

        Raises
        ------
        XmodalInputError
            A missing, unreadable (truncated, overwritten) or inconsistent file, naming it and what is wrong.
        """
        from xmodal.errors import XmodalInputError

        path = Path(path)
        fix = "the file is damaged: run `xmodal ingest` (then `xmodal preprocess`) for this dataset again"
        arrays: dict[str, np.ndarray] = {}
        try:
            with np.load(path, allow_pickle=False) as npz:
                for key in npz.files:
                    arrays[key] = np.asarray(npz[key])
        except Exception as exc:  # noqa: BLE001 - zipfile/zlib/numpy raise many types for a damaged file
            raise XmodalInputError(f"cannot read the planted model ({type(exc).__name__}: {exc})", path=path,
                                   fix=fix) from None
        names = [k.split(":", 1)[1] for k in arrays if k.startswith("values:")]

        def bad(problem: str) -> XmodalInputError:
            return XmodalInputError(f"the planted model is damaged: {problem}", path=path, fix=fix)

        needed = ["base", "loadings", "latent", "donor", "donor_effect", "interaction", "target_sum",
                  *[f"effect:{n}" for n in names]]
        missing = [k for k in needed if k not in arrays]
        if missing or not names:
            raise bad(f"it has no {missing[0] if missing else 'values:<field>'!r} array")
        for key in needed:
            if arrays[key].dtype.kind not in "biuf":
                raise bad(f"{key!r} holds {arrays[key].dtype} values, not numbers")
            if arrays[key].dtype.kind == "f" and not np.isfinite(arrays[key]).all():
                raise bad(f"{key!r} holds values that are not finite")
        base, loadings, latent = arrays["base"], arrays["loadings"], arrays["latent"]
        donor, donor_effect, interaction = arrays["donor"], arrays["donor_effect"], arrays["interaction"]
        values = {n: tuple(str(v) for v in arrays[f"values:{n}"].reshape(-1)) for n in names}
        genes = base.shape[0] if base.ndim == 1 else -1
        shapes = {"base": (base, 1), "loadings": (loadings, 2), "latent": (latent, 2), "donor": (donor, 1),
                  "donor_effect": (donor_effect, 2), "interaction": (interaction, 3),
                  **{f"effect:{n}": (arrays[f"effect:{n}"], 2) for n in names}}
        for key, (array, ndim) in shapes.items():
            if array.ndim != ndim:
                raise bad(f"{key!r} has shape {array.shape}, expected {ndim} dimensions")
        f1, f2 = INTERACTION
        checks = [("loadings", loadings.shape[1] == genes, f"{genes} genes"),
                  ("latent", latent.shape[1] == loadings.shape[0], f"{loadings.shape[0]} latent dimensions"),
                  ("donor", donor.shape[0] == latent.shape[0], f"{latent.shape[0]} cells"),
                  ("donor", donor.dtype.kind in "iu" and (donor.size == 0 or (donor.min() >= 0 and
                                                         donor.max() < donor_effect.shape[0])),
                   f"donor indices within the {donor_effect.shape[0]} donors"),
                  ("donor_effect", donor_effect.shape[1] == genes, f"{genes} genes"),
                  ("interaction", f1 in values and f2 in values and interaction.shape == (
                      len(values.get(f1, ())), len(values.get(f2, ())), genes), f"{f1} × {f2} values × genes"),
                  ("target_sum", arrays["target_sum"].size == 1 and float(arrays["target_sum"].reshape(-1)[0]) > 0,
                   "one positive number")]
        checks += [(f"effect:{n}", arrays[f"effect:{n}"].shape == (len(values[n]), genes),
                    f"{len(values[n])} values × {genes} genes") for n in names]
        for key, ok, expected in checks:
            if not ok:
                raise bad(f"{key!r} does not fit the rest of the model (expected {expected}; shape "
                          f"{arrays[key].shape})")
        return cls(counts=sp.csr_matrix((latent.shape[0], genes), dtype=np.float32), obs=pd.DataFrame(),
                   var=pd.DataFrame(), base=base, loadings=loadings, latent=latent, donor=donor,
                   donor_effect=donor_effect, effects={n: arrays[f"effect:{n}"] for n in names},
                   interaction=interaction, target_sum=float(arrays["target_sum"].reshape(-1)[0]), values=values,
                   source=str(path))


def memory_estimate(*, n_cells: int, n_genes: int, depth: float = 900.0, dispersion: float = 5.0,
                    seed: int = 0) -> float:
    """Bytes :func:`synthetic_census` and the ingest of its cells need at their peak, estimated in well under a second.

    Three terms: the dense work arrays of one block of 4 096 cells (about five ``(4096, n_genes)`` float64 arrays at
    once), the count matrix (held twice while the blocks are stacked; 12 bytes per stored count, int64 indices
    included) and about 1 KiB per cell of metadata, latent state and hashing. The stored counts per cell are the
    expected number of non-zero negative-binomial draws at the planted base rates (measured against the generator:
    it overestimates by 10 to 35 %, e.g. 184 for 146 at 2 000 genes and the default depth).

    Returns
    -------
    float
        Bytes (not rounded; an absurd size gives an absurd number, quickly).
    """
    fixed = 5 * 4096 * 8 * float(n_genes) + 1024 * float(n_cells)
    if fixed > 2**40 or n_genes > 2**24:  # already beyond any machine: no need to look at the rates
        return fixed + 24 * float(n_cells) * float(n_genes)
    base = np.random.default_rng(seed).normal(-1.0, 3.2, size=n_genes)  # the generator's first draw
    share = np.exp(base - base.max())
    share /= share.sum()
    library = depth * np.exp(np.array([-0.8, -0.4, 0.0, 0.4, 0.8]))  # the lognormal library sizes' spread
    stored = 0.0
    for lib in library:
        stored += float((1.0 - (dispersion / (dispersion + lib * share)) ** dispersion).sum()) / len(library)
    return fixed + 2 * 12 * stored * float(n_cells)


def synthetic_census(*, n_cells: int = 6000, n_genes: int = 2000, latent_dim: int = 8, n_donors: int = 12,
                     interaction: float = 0.3, depth: float = 900.0, dispersion: float = 5.0,
                     seed: int = 0) -> CensusSim:
    """Generate a Census-shaped dataset with planted additive and interacting context effects.

    Parameters
    ----------
    n_cells, n_genes
        Shape of the count matrix.
    latent_dim
        Dimension of each cell's intrinsic state.
    n_donors
        Donors (a nuisance effect; sex is a donor property, as in real data).
    interaction
        SD of the planted ``cell_type × sex`` log-rate interaction, on 5 % of the genes (0: purely additive).
    depth
        Median raw counts per cell.
    dispersion
        Negative-binomial theta (smaller: noisier).
    seed
        Seeds everything.

    Returns
    -------
    CensusSim
        About 7 % of the counts are non-zero at the defaults, as in Census at 2 000 genes.
    """
    if n_cells < 1 or n_genes < 2:
        raise ValueError(f"need at least 1 cell and 2 genes, got {n_cells} × {n_genes}")
    rng = np.random.default_rng(seed)
    base = rng.normal(-1.0, 3.2, size=n_genes)
    loadings = rng.normal(0.0, 0.35, size=(latent_dim, n_genes))
    effects = {}
    expressed = base > np.median(base)
    for name, (values, size, share, expressed_only) in FIELD_DESIGN.items():
        touched = rng.random(n_genes) < (2 * share * expressed if expressed_only else share)
        effects[name] = rng.normal(0.0, size, size=(len(values), n_genes)) * touched[None, :]
    f1, f2 = INTERACTION
    touched = rng.random(n_genes) < 0.05
    inter = rng.normal(0.0, interaction, size=(len(FIELD_DESIGN[f1][0]), len(FIELD_DESIGN[f2][0]), n_genes))
    inter *= touched

    donor_sex = rng.choice(FIELD_DESIGN["sex"][0], size=n_donors)
    donor_effect = rng.normal(0.0, 0.1, size=(n_donors, n_genes))
    donor = rng.integers(0, n_donors, size=n_cells)
    obs: dict[str, np.ndarray] = {}
    for name, (values, *_) in FIELD_DESIGN.items():
        weights = rng.dirichlet(np.full(len(values), 3.0))
        obs[name] = np.asarray(values, dtype=object)[rng.choice(len(values), size=n_cells, p=weights)]
    obs["sex"] = donor_sex[donor]
    obs["tissue"] = np.array([_TISSUES[t][i] for t, i in zip(obs["tissue_general"], rng.integers(0, 2, n_cells),
                                                              strict=True)], dtype=object)
    obs["development_stage"] = np.where(rng.random(n_cells) < 0.7, "unknown",
                                        rng.choice(["adult stage", "65-79 year-old stage"], size=n_cells))
    obs["self_reported_ethnicity"] = np.where(rng.random(n_cells) < 0.6, "unknown",
                                              rng.choice(["European", "Asian", "African"], size=n_cells))
    obs["donor_id"] = np.array([f"donor_{d}" for d in donor], dtype=object)
    frame = pd.DataFrame(obs, index=pd.Index([f"cell_{seed}_{i:07d}" for i in range(n_cells)], name="cell_id"))
    order = ["cell_type", "disease", "development_stage", "sex", "self_reported_ethnicity", "tissue_general", "tissue",
             "assay", "donor_id"]
    frame = frame[order].astype("category")
    var = pd.DataFrame({"feature_name": [f"GENE{g}" for g in range(n_genes)]},
                       index=pd.Index([f"ENSG{g:011d}" for g in range(n_genes)], name="feature_id"))

    sim = CensusSim(counts=sp.csr_matrix((n_cells, n_genes), dtype=np.float32), obs=frame, var=var, base=base,
                    loadings=loadings, latent=rng.normal(size=(n_cells, latent_dim)), donor=donor,
                    donor_effect=donor_effect, effects=effects, interaction=inter)
    library = rng.lognormal(np.log(depth), 0.4, size=n_cells)
    blocks = []
    for start in range(0, n_cells, 4096):  # bounded memory: 4 096 dense rows at a time
        cells = np.arange(start, min(start + 4096, n_cells))
        rate = sim.log_rate(cells, frame.iloc[cells])
        rate = np.exp(rate - rate.max(axis=1, keepdims=True))
        mu = rate / rate.sum(axis=1, keepdims=True) * library[cells, None]
        blocks.append(sp.csr_matrix(rng.poisson(rng.gamma(dispersion, mu / dispersion)).astype(np.float32)))
    return CensusSim(**{**sim.__dict__, "counts": sp.vstack(blocks, format="csr")})
