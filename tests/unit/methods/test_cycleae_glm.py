"""cycleae's count-aware targets: the Poisson GLM of the fields and its per-cell changes read through log1p."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xmodal.errors import ConfigError
from xmodal.families.census._synthetic import synthetic_census
from xmodal.families.census._vocab import build_vocabulary
from xmodal.methods.cycleae._glm import MAX_COLUMNS, fit_poisson_glm
from xmodal.methods.cycleae._module import CycleAEModule, log_normalize, shift_loss

FIELDS = ["cell_type", "sex", "assay"]


@pytest.fixture(scope="module")
def fitted():
    sim = synthetic_census(n_cells=3000, n_genes=200, seed=1)
    vocab = build_vocabulary([sim.obs], FIELDS)
    codes = vocab.encode(sim.obs)
    counts = np.asarray(sim.counts.todense())
    glm = fit_poisson_glm(counts, codes, [vocab.cardinality(f) for f in FIELDS], target_sum=sim.target_sum)
    return sim, vocab, codes, counts, glm


def _expressed(sim, counts, a: str, b: str) -> np.ndarray:
    """Genes with at least 0.5 counts per cell on average in both cell types (a fainter gene's change is beyond
    what 3 000 cells at this depth show)."""
    kind = sim.obs["cell_type"].astype(str).to_numpy()
    return (counts[kind == a].mean(0) >= 0.5) & (counts[kind == b].mean(0) >= 0.5)


def _planted(sim, vocab, glm, a: str, b: str):
    """The GLM's and the planted cell-type log-rate change from ``a`` to ``b`` (rows of ``glm.beta``, genes)."""
    j = FIELDS.index("cell_type")
    values = list(sim.values["cell_type"])
    rows = [vocab.code("cell_type", v) + int(glm.offsets[j]) for v in (a, b)]
    estimated = (glm.beta[rows[1]] - glm.beta[rows[0]]).numpy()
    planted = sim.effects["cell_type"][values.index(b)] - sim.effects["cell_type"][values.index(a)]
    return estimated, planted


def test_the_glm_recovers_the_planted_log_rate_effects(fitted) -> None:
    """Cell-type effects are planted in log-rate on a quarter of the genes: the GLM's T cell → B cell difference
    matches them there and stays near zero elsewhere."""
    sim, vocab, _, counts, glm = fitted
    estimated, planted = _planted(sim, vocab, glm, "T cell", "B cell")
    seen = _expressed(sim, counts, "T cell", "B cell")
    estimated, planted = estimated[seen], planted[seen]
    touched = planted != 0
    assert touched.sum() >= 10
    assert np.corrcoef(estimated[touched], planted[touched])[0, 1] > 0.95
    assert np.abs(estimated[touched] - planted[touched]).mean() < 0.3
    assert np.abs(estimated[~touched]).mean() < 0.15


def test_changes_read_through_log1p(fitted) -> None:
    """No change without a move; moved T cells → B cells go the planted way on the genes with a large effect, and
    never by more than the log-rate change (``log1p`` compresses it where a gene is faint)."""
    sim, vocab, codes, counts, glm = fitted
    j = FIELDS.index("cell_type")
    cells = np.flatnonzero(codes[:, j] == vocab.code("cell_type", "T cell"))[:100]
    codes_t = torch.as_tensor(codes[cells], dtype=torch.long)
    same = glm.change(codes_t, j, codes_t[:, j])
    assert torch.allclose(same, torch.zeros_like(same), atol=1e-6)
    moved = glm.change(codes_t, j, torch.full((len(cells),), vocab.code("cell_type", "B cell"))).numpy()
    _, planted = _planted(sim, vocab, glm, "T cell", "B cell")
    big = (np.abs(planted) > 1.0) & _expressed(sim, counts, "T cell", "B cell")
    assert big.sum() >= 3
    assert (np.sign(moved[:, big]) == np.sign(planted[big])).mean() > 0.95
    assert (np.abs(moved[:, big]) <= np.abs(planted[big]) + 0.5).all()


def test_the_term_matches_the_glm_changes_cell_by_cell(fitted) -> None:
    """With a count model the mean-shift term is the MSE of each moved cell's change against the model's change at
    the cell's context, averaged over fields; the training means are not read."""
    _, vocab, codes, counts, glm = fitted
    cards = [vocab.cardinality(f) for f in FIELDS]
    torch.manual_seed(0)
    module = CycleAEModule(counts.shape[1], cards, latent=8)
    x = log_normalize(torch.as_tensor(counts[:64], dtype=torch.float32))
    source = torch.as_tensor(codes[:64], dtype=torch.long)
    got = shift_loss(module, x, source, None, generator=torch.Generator().manual_seed(3), glm=glm)
    from xmodal.methods.cycleae._module import sample_targets

    gen = torch.Generator().manual_seed(3)
    terms = []
    with torch.no_grad():
        scales = torch.exp(module.log_scale)
        for f, heads in enumerate(module.heads):
            t = sample_targets(source, cards, generator=gen, fields=[f])[:, f]
            h = heads(x @ module.encoders[f].T, source[:, f])
            change = scales[f] * ((heads(h, t) - heads(h, source[:, f])) @ module.decoders[f].T)
            terms.append(((change - glm.change(source, f, t)) ** 2).mean())
    assert float(got.detach()) == pytest.approx(float(torch.stack(terms).mean()), rel=1e-5)


def test_too_many_columns_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="shift_targets adjusted"):
        fit_poisson_glm(np.ones((4, 3)), np.zeros((4, 1), dtype=np.int64), [MAX_COLUMNS], target_sum=1e4)
