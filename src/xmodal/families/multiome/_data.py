"""The ``multiome`` family: RNA and ATAC measured in the same cells, in one or more domains.

Conventions on ``obs`` (shared by both modalities, which hold the same cells in the same order):

``phase``
    Cell-cycle phase (``G1``, ``S``, ``G2M``), the label transferred from RNA to ATAC.
``domain``
    The dataset (cell line) a cell comes from: the source domain trains, the target is adapted to.

Peaks are named ``chr:start-end``; ``atac.var["gene"]`` names the gene a peak is linked to (``""`` when none).

This module holds the container and the synthetic generator; the stages do not read the family yet
(issue 5).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from xmodal.families.multiome._config import SyntheticMultiomeSource

PHASE, DOMAIN = "phase", "domain"
_RESTING = 0.4  # program activity of a cycling gene outside its phase (as a share of program_effect)
PHASES = ("G1", "S", "G2M")

#: S-phase and G2/M genes of Tirosh et al. (2016), the list scanpy's cell-cycle scoring tutorial uses.
S_GENES = (
    "MCM5", "PCNA", "TYMS", "FEN1", "MCM2", "MCM4", "RRM1", "UNG", "GINS2", "MCM6", "CDCA7", "DTL", "PRIM1",
    "UHRF1", "MLF1IP", "HELLS", "RFC2", "RPA2", "NASP", "RAD51AP1", "GMNN", "WDR76", "SLBP", "CCNE2", "UBR7",
    "POLD3", "MSH2", "ATAD2", "RAD51", "RRM2", "CDC45", "CDC6", "EXO1", "TIPIN", "DSCC1", "BLM", "CASP8AP2",
    "USP1", "CLSPN", "POLA1", "CHAF1B", "BRIP1", "E2F8",
)
G2M_GENES = (
    "HMGB2", "CDK1", "NUSAP1", "UBE2C", "BIRC5", "TPX2", "TOP2A", "NDC80", "CKS2", "NUF2", "CKS1B", "MKI67",
    "TMPO", "CENPF", "TACC3", "FAM64A", "SMC4", "CCNB2", "CKAP2L", "CKAP2", "AURKB", "BUB1", "KIF11", "ANP32E",
    "TUBB4B", "GTSE1", "KIF20B", "HJURP", "CDCA3", "HN1", "CDC20", "TTK", "CDC25C", "KIF2C", "RANGAP1", "NCAPD2",
    "DLGAP5", "CDCA2", "CDCA8", "ECT2", "KIF23", "HMMR", "AURKA", "PSRC1", "ANLN", "LBR", "CKAP5", "CENPE",
    "CTCF", "NEK2", "G2E3", "GAS2L3", "CBX5", "CENPA",
)


@dataclass(frozen=True)
class MultiomeData:
    """Paired RNA and ATAC profiles of the same cells.

    Attributes
    ----------
    rna
        Cells × genes, counts (``X`` sparse CSR float32).
    atac
        Cells × peaks (``chr:start-end``), counts (``X`` sparse CSR float32); same ``obs_names`` as ``rna``.
    """

    rna: ad.AnnData
    atac: ad.AnnData

    def __post_init__(self) -> None:
        if not self.rna.obs_names.equals(self.atac.obs_names):
            raise ValueError("rna and atac must hold the same cells in the same order")

    @property
    def domains(self) -> list[str]:
        """Domain names in order of first appearance."""
        return list(dict.fromkeys(self.rna.obs[DOMAIN].astype(str)))

    def domain(self, name: str) -> MultiomeData:
        """The cells of one domain (both modalities)."""
        mask = (self.rna.obs[DOMAIN].astype(str) == name).to_numpy()
        if not mask.any():
            raise ValueError(f"no domain {name!r} (known: {self.domains})")
        return replace(self, rna=self.rna[mask].copy(), atac=self.atac[mask].copy())


def _check_size(cfg: SyntheticMultiomeSource) -> None:
    """Refuse sizes this machine cannot hold (dense float64 work arrays per domain, then sparse results)."""
    from xmodal._resources import check_memory

    n_genes = len(S_GENES) + len(G2M_GENES) + cfg.n_background_genes
    n_features = n_genes * (1 + cfg.peaks_per_gene) + cfg.n_background_peaks
    per_domain = 4 * 8 * cfg.n_cells * n_features
    check_memory(per_domain + 12 * 0.3 * cfg.n_cells * len(cfg.domains) * n_features,
                 what=f"synthetic multiome data of {len(cfg.domains)} × {cfg.n_cells:,} cells × {n_features:,} "
                 "features", fix="lower source.n_cells, n_background_genes, n_background_peaks or peaks_per_gene")


def synthetic_multiome(config: SyntheticMultiomeSource | None = None, **overrides: object) -> MultiomeData:
    """Generate Multiome-like data with planted cell-cycle programs and a planted domain shift.

    Every cell gets a phase (``phase_fractions``). S-phase genes (:data:`S_GENES`) sit at
    ``−0.4·program_effect`` on the log-rate scale outside S and rise to ``+0.6…1.0·program_effect`` in S
    cells (likewise the G2/M genes, :data:`G2M_GENES`, in G2M cells), so gene scoring can find G1; each
    gene has ``peaks_per_gene`` linked peaks near its TSS whose opening logit rises by
    ``accessibility_effect`` in the phase of their gene's program, so the phase is readable from
    chromatin. Peaks are binary-ish (0, 1, rarely 2) and mostly closed (> 85 % zeros). Domains after
    the first get per-peak and per-gene offsets of SD ``domain_shift`` and a lower depth, and their
    S-program peaks open more (logit ``+program_shift``) while their G2/M-program peaks open less
    (``−program_shift``) in every cell: the known shift that domain adaptation must overcome (a
    classifier trained on the first domain reads the second's cells as more S-like).

    Parameters
    ----------
    config
        Generator parameters (defaults: :class:`~xmodal.config.SyntheticMultiomeSource`).
    **overrides
        Field overrides, e.g. ``synthetic_multiome(n_cells=200, seed=3)``.

    Returns
    -------
    MultiomeData
        ``rna``: cells × genes counts; ``atac``: cells × peaks counts; ``obs``: ``phase``, ``domain``;
        ``rna.var["program"]`` is ``S``, ``G2M`` or ``""``; ``atac.var["gene"]`` the linked gene.
    """
    cfg = (config or SyntheticMultiomeSource()).model_copy(update=overrides)
    _check_size(cfg)
    rng = np.random.default_rng(cfg.seed)
    genes = [*S_GENES, *G2M_GENES, *(f"GENE{j:04d}" for j in range(cfg.n_background_genes))]
    program = np.array(["S"] * len(S_GENES) + ["G2M"] * len(G2M_GENES) + [""] * cfg.n_background_genes)
    n_genes = len(genes)
    base_rate = rng.normal(-0.5, 1.0, size=n_genes)
    peak_gene = np.concatenate([np.repeat(np.arange(n_genes), cfg.peaks_per_gene),
                                np.full(cfg.n_background_peaks, -1)])
    n_peaks = len(peak_gene)
    base_logit = rng.normal(-3.0, 0.8, size=n_peaks)
    peak_names = _peak_coordinates(rng, n_peaks)

    rna_blocks, atac_blocks, obs_blocks = [], [], []
    for d, domain in enumerate(cfg.domains):
        drng = np.random.default_rng([cfg.seed, d])
        shift = cfg.domain_shift if d > 0 else 0.0
        gene_offset = drng.normal(0.0, shift, size=n_genes) if shift else np.zeros(n_genes)
        peak_offset = drng.normal(0.0, shift, size=n_peaks) if shift else np.zeros(n_peaks)
        depth = np.exp(-0.4 * shift)
        phase = drng.choice(3, size=cfg.n_cells, p=cfg.phase_fractions)
        in_s, in_g2m = phase == 1, phase == 2
        # cycling genes sit below their mean outside their phase, and rise inside it by how far the cell is into it
        activity = np.zeros((cfg.n_cells, n_genes))
        activity[:, program != ""] = -_RESTING
        progress = drng.uniform(0.6, 1.0, size=(cfg.n_cells, 1))
        activity[np.ix_(in_s, program == "S")] = np.broadcast_to(progress[in_s], (in_s.sum(), (program == "S").sum()))
        activity[np.ix_(in_g2m, program == "G2M")] = np.broadcast_to(
            progress[in_g2m], (in_g2m.sum(), (program == "G2M").sum()))
        library = drng.lognormal(np.log(2000.0 * depth), 0.3, size=(cfg.n_cells, 1))
        log_rate = base_rate + gene_offset + cfg.program_effect * activity
        rate = np.exp(log_rate)
        rate = library * rate / rate.sum(axis=1, keepdims=True)
        rna_counts = drng.poisson(rate).astype(np.float32)
        linked = peak_gene >= 0
        logits = np.broadcast_to(base_logit + peak_offset + np.log(depth), (cfg.n_cells, n_peaks)).copy()
        logits[:, linked] += cfg.accessibility_effect * activity[:, peak_gene[linked]]
        if d > 0 and cfg.program_shift:  # this domain's S-program chromatin sits more open, its G2/M program less
            peak_program = np.where(linked, program[np.maximum(peak_gene, 0)], "")
            logits[:, peak_program == "S"] += cfg.program_shift
            logits[:, peak_program == "G2M"] -= cfg.program_shift
        p_open = 1.0 / (1.0 + np.exp(-logits))
        opened = drng.random(p_open.shape) < p_open
        atac_counts = opened.astype(np.float32) + (opened & (drng.random(p_open.shape) < 0.15))
        rna_blocks.append(sp.csr_matrix(rna_counts))
        atac_blocks.append(sp.csr_matrix(atac_counts.astype(np.float32)))
        obs_blocks.append(pd.DataFrame({PHASE: np.array(PHASES)[phase], DOMAIN: domain},
                                       index=[f"{domain}_{i:05d}" for i in range(cfg.n_cells)]))

    obs = pd.concat(obs_blocks)
    obs[PHASE] = pd.Categorical(obs[PHASE], categories=list(PHASES))
    obs[DOMAIN] = pd.Categorical(obs[DOMAIN], categories=list(cfg.domains))
    rna = ad.AnnData(X=sp.vstack(rna_blocks, format="csr"), obs=obs.copy(),
                     var=pd.DataFrame({"program": program}, index=genes))
    atac_var = pd.DataFrame({"gene": np.where(peak_gene >= 0, np.array(genes, dtype=object)[peak_gene], "")},
                            index=peak_names)
    atac = ad.AnnData(X=sp.vstack(atac_blocks, format="csr"), obs=obs.copy(), var=atac_var)
    return MultiomeData(rna=rna, atac=atac)


def _peak_coordinates(rng: np.random.Generator, n: int) -> list[str]:
    """Distinct, non-overlapping ``chrN:start-end`` names of 300–800 bp peaks on 22 autosomes."""
    chrom = rng.integers(1, 23, size=n)
    start = rng.choice(200_000, size=n, replace=False) * 1000  # distinct 1-kb slots: no two peaks overlap
    width = rng.integers(300, 800, size=n)
    return [f"chr{c}:{s}-{s + w}" for c, s, w in zip(chrom, start, width, strict=True)]
