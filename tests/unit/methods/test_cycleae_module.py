"""cycleae's networks and losses: seed 002's structure, and one test per defect of the original code.

Each defect test states the seed's behaviour it would have failed on.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xmodal.families.census._synthetic import synthetic_census
from xmodal.families.census._vocab import build_vocabulary
from xmodal.methods.cycleae._module import (
    ContextClassifier,
    ContextHeads,
    CycleAEModule,
    context_loss,
    generator_losses,
    log_normalize,
    optimizers,
    sample_targets,
    train_step,
)

FIELDS = ["cell_type", "sex", "assay"]


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def batch():
    sim = synthetic_census(n_cells=256, n_genes=120, seed=0)
    vocab = build_vocabulary([sim.obs], FIELDS)
    counts = torch.as_tensor(np.asarray(sim.counts.todense()))
    codes = torch.as_tensor(vocab.encode(sim.obs))
    return counts, codes, [vocab.cardinality(f) for f in vocab.fields]


def test_heads_are_applied_by_code() -> None:
    torch.manual_seed(0)
    heads = ContextHeads(4, 8)
    h, codes = torch.randn(10, 8), torch.tensor([0, 3, 1, 1, 2, 3, 0, 2, 2, 1])
    expected = torch.stack([heads.weight[c] @ h[i] for i, c in enumerate(codes.tolist())])
    torch.testing.assert_close(heads(h, codes), expected)


def test_contributions_are_additive(batch) -> None:
    counts, codes, cards = batch
    torch.manual_seed(0)
    module = CycleAEModule(counts.shape[1], cards, latent=16)
    x = log_normalize(counts)
    x_st, hidden, parts = module(x, codes, sample_targets(codes, cards, generator=torch.Generator().manual_seed(0)))
    assert len(hidden) == len(parts) == 1 + len(cards)
    torch.testing.assert_close(torch.stack(parts).sum(0), x_st)


def test_every_field_changes_not_only_the_last() -> None:
    """Seed defect 1: the target dict was re-cloned from the source per field, so only the last field changed."""
    source = torch.tensor([[1, 2, 3], [2, 1, 1], [3, 2, 2], [1, 1, 3]] * 50)
    target = sample_targets(source, [3, 2, 3], generator=torch.Generator().manual_seed(1))
    assert bool((target != source).all())
    assert int(target.min()) >= 1
    assert bool((target <= torch.tensor([3, 2, 3])).all())
    only_third = sample_targets(source, [3, 2, 3], generator=torch.Generator().manual_seed(1), fields=[2])
    assert bool((only_third[:, :2] == source[:, :2]).all())
    assert bool((only_third[:, 2] != source[:, 2]).all())


def test_null_and_unseen_codes_have_a_path_and_no_target() -> None:
    """Seed defect 5: a null or unknown value gave idx=None and crashed; code 0 is its own head, never a target."""
    source = torch.tensor([[0, 1], [2, 0], [0, 0]])
    target = sample_targets(source, [3, 2], generator=torch.Generator().manual_seed(0))
    assert bool((target > 0).all())
    module = CycleAEModule(20, [3, 2], latent=4)
    out, _, _ = module(torch.rand(3, 20), source, target)
    assert bool(torch.isfinite(out).all())
    logits = [torch.zeros(3, 3, requires_grad=True), torch.zeros(3, 2, requires_grad=True)]
    loss = context_loss(logits, source)  # rows with code 0 are left out of each field's term
    loss.backward()
    assert logits[0].grad[0].abs().sum() == 0
    assert logits[0].grad[1].abs().sum() > 0


def test_log_input_and_learnable_scale_keep_the_loss_small(batch) -> None:
    """Seed defect 2: raw counts through unscaled tied maps and a fixed 0.0159 gave a reconstruction MSE of ~1e8."""
    counts, codes, cards = batch
    torch.manual_seed(0)
    module, classifier = CycleAEModule(counts.shape[1], cards, latent=16), ContextClassifier(counts.shape[1], cards)
    target = sample_targets(codes, cards, generator=torch.Generator().manual_seed(0))
    seed_like = CycleAEModule(counts.shape[1], cards, latent=16)
    with torch.no_grad():  # the seed's scales: 1 on the base head, the constant 0.0159 on every field head
        seed_like.log_scale_base.zero_()
        seed_like.log_scale.fill_(float(np.log(0.0159)))
    raw = generator_losses(seed_like, classifier, counts, codes, target)["recon"].detach()
    x = log_normalize(counts)
    logged = generator_losses(module, classifier, x, codes, target)
    assert float(raw) > 1e6
    assert float(logged["recon"].detach()) < 2 * float((x**2).mean())  # of the order of the input's own scale
    logged["total"].backward()
    assert module.log_scale.grad is not None
    assert float(module.log_scale.grad.abs().sum()) > 0
    assert module.log_scale_base.grad is not None


def test_clamp_is_on_the_base_head_only() -> None:
    """Seed defect 3: every parameter was clamped ≥ 0, while the README constrains only the base head."""
    module = CycleAEModule(10, [2], latent=4)
    with torch.no_grad():
        module.base[0, 0] = -1.0
        module.decoders[0][0, 0] = -1.0
        module.heads[0].weight[0][0, 0] = -1.0
    module.clamp_()
    assert float(module.base.detach().min()) >= 0
    assert float(module.decoders[0].detach()[0, 0]) == -1.0
    assert float(module.heads[0].weight[0].detach()[0, 0]) == -1.0


def test_classifier_heads_only_for_fields_in_use() -> None:
    """Seed defect 4: a head per spec entry (soma_joinid with 1 000 classes included), used or not."""
    sim = synthetic_census(n_cells=100, n_genes=20, seed=0)
    obs = sim.obs.assign(soma_joinid=range(100), constant="x")
    vocab = build_vocabulary([obs], ["cell_type", "constant", "sex"])
    cards = [vocab.cardinality(f) for f in vocab.fields]
    classifier = ContextClassifier(20, cards)
    assert vocab.fields == ["cell_type", "sex"]
    assert [h.out_features for h in classifier.heads] == [vocab.cardinality("cell_type"), 2]


def test_the_classifier_is_frozen_in_the_generator_step(batch) -> None:
    counts, codes, cards = batch
    module, classifier = CycleAEModule(counts.shape[1], cards, latent=8), ContextClassifier(counts.shape[1], cards)
    losses = generator_losses(module, classifier, log_normalize(counts), codes,
                              sample_targets(codes, cards, generator=torch.Generator().manual_seed(0)))
    losses["total"].backward()
    assert all(p.grad is None for p in classifier.parameters())
    assert all(p.requires_grad for p in classifier.parameters())


def test_training_lowers_the_losses_and_is_deterministic(batch) -> None:
    counts, codes, cards = batch
    x = log_normalize(counts)

    def run() -> list[dict[str, float]]:
        torch.manual_seed(0)
        module, classifier = CycleAEModule(x.shape[1], cards, latent=16), ContextClassifier(x.shape[1], cards)
        opt_gen, opt_cls = optimizers(module, classifier, lr=1e-3)
        g = torch.Generator().manual_seed(0)
        return [train_step(module, classifier, opt_gen, opt_cls, x[i:i + 64], codes[i:i + 64], generator=g)
                for _ in range(15) for i in range(0, 256, 64)]

    first, second = run(), run()
    assert first == second
    start, end = np.mean([r["recon"] for r in first[:4]]), np.mean([r["recon"] for r in first[-4:]])
    assert end < 0.95 * start
    assert np.mean([r["classifier"] for r in first[-4:]]) < 0.8 * np.mean([r["classifier"] for r in first[:4]])
