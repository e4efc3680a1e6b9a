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

    def log_rate(self, cells: np.ndarray, context: pd.DataFrame) -> np.ndarray:
        """Noise-free log rates of ``cells`` (row indices) in ``context`` (one row per cell, planted fields).

        Returns
        -------
        numpy.ndarray
            ``(len(cells), n_genes)`` float64, before the per-cell softmax.
        """
        cells = np.asarray(cells)
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
            rate = rate[:, np.asarray(genes)]
        rate = np.exp(rate - rate.max(axis=1, keepdims=True))
        return np.log1p(self.target_sum * rate / rate.sum(axis=1, keepdims=True)).astype(np.float32)

    def subset_genes(self, genes: np.ndarray) -> CensusSim:
        """The planted model on the genes ``genes`` only (indices): its truth is normalised over those genes, as a
        model's input is over the genes it keeps. The counts are dropped."""
        genes = np.asarray(genes)
        return CensusSim(counts=sp.csr_matrix((len(self.latent), len(genes)), dtype=np.float32), obs=pd.DataFrame(),
                         var=pd.DataFrame(), base=self.base[genes], loadings=self.loadings[:, genes],
                         latent=self.latent, donor=self.donor, donor_effect=self.donor_effect[:, genes],
                         effects={k: v[:, genes] for k, v in self.effects.items()},
                         interaction=self.interaction[..., genes], target_sum=self.target_sum, values=self.values)

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
        """Read what :meth:`save_truth` wrote; the result computes :meth:`true_expression` (it holds no counts)."""
        with np.load(path, allow_pickle=False) as npz:
            names = [k.split(":", 1)[1] for k in npz.files if k.startswith("values:")]
            values = {n: tuple(str(v) for v in npz[f"values:{n}"]) for n in names}
            return cls(counts=sp.csr_matrix((len(npz["latent"]), len(npz["base"])), dtype=np.float32),
                       obs=pd.DataFrame(), var=pd.DataFrame(), base=npz["base"], loadings=npz["loadings"],
                       latent=npz["latent"], donor=npz["donor"], donor_effect=npz["donor_effect"],
                       effects={n: npz[f"effect:{n}"] for n in names}, interaction=npz["interaction"],
                       target_sum=float(npz["target_sum"]), values=values)


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
