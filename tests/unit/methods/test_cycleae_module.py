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
    shift_loss,
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


def _group_means(x: torch.Tensor, codes: torch.Tensor, cards: list[int]) -> list[torch.Tensor]:
    return [torch.stack([x[codes[:, f] == c].mean(0) if (codes[:, f] == c).any() else x.new_zeros(x.shape[1])
                         for c in range(k + 1)]) for f, k in enumerate(cards)]


def test_the_shift_term_compares_each_pair_s_mean_change_with_the_training_means(batch) -> None:
    """Against a loop written out pair by pair: the moved cells' field contribution in b minus that in a, averaged
    per (a, b), minus the means' b − a; and it is zero when the means differ exactly by the predicted changes."""
    counts, codes, cards = batch
    torch.manual_seed(0)
    module = CycleAEModule(counts.shape[1], cards, latent=16)
    x = log_normalize(counts)
    means = _group_means(x, codes, cards)
    got = shift_loss(module, x, codes, means, generator=torch.Generator().manual_seed(3))
    reused = shift_loss(module, x, codes, means, generator=torch.Generator().manual_seed(3),
                        hidden=module(x, codes, codes)[1])  # the hidden codes of a forward pass from the source
    torch.testing.assert_close(reused, got)
    draw = torch.Generator().manual_seed(3)
    terms, predicted = [], []
    assert min(cards) >= 2  # a one-value field has no term (and draws nothing)
    for f in range(len(cards)):
        known = codes[:, f] > 0
        target = sample_targets(codes[known], cards, generator=draw, fields=[f])
        assert torch.equal(target[:, [g for g in range(len(cards)) if g != f]],
                           codes[known][:, [g for g in range(len(cards)) if g != f]])  # one field moves
        change = module(x[known], codes[known], target)[0] - module(x[known], codes[known], codes[known])[0]
        pairs = {}
        for i, (a, b) in enumerate(zip(codes[known, f].tolist(), target[:, f].tolist(), strict=True)):
            pairs.setdefault((a, b), []).append(i)
        by_pair = {ab: change[rows].mean(0) for ab, rows in sorted(pairs.items())}
        predicted.append(by_pair)
        terms.append(torch.stack([((m - (means[f][b] - means[f][a])) ** 2).mean() for (a, b), m in by_pair.items()
                                  ]).mean())
    torch.testing.assert_close(got, torch.stack(terms).mean(), rtol=1e-4, atol=1e-6)
    assert got > 0
    # a model with one field of two values, every cell moved a → b, and means that differ by its mean change
    sex = FIELDS.index("sex")
    (a, b), _ = next(iter(sorted(predicted[sex].items())))
    only_sex = [c if f == sex else 1 for f, c in enumerate(cards)]  # other fields: one value, no term
    assert cards[sex] == 2
    one = codes.clone()
    one[:, [f for f in range(len(cards)) if f != sex]] = 1
    one = one[one[:, sex] == a]  # every cell moves a → b
    module_one = CycleAEModule(counts.shape[1], only_sex, latent=16)
    module_one.load_state_dict(module.state_dict(), strict=False)
    rows = (codes[:, sex] == a).nonzero().squeeze(1)
    h = module_one.heads[sex](x[rows] @ module_one.encoders[sex].T, one[:, sex])
    shift = torch.exp(module_one.log_scale[sex]) * ((module_one.heads[sex](h, torch.full_like(one[:, sex], b))
                                                      - module_one.heads[sex](h, one[:, sex])) @ module_one.decoders[sex].T)
    exact_one = [torch.zeros(c + 1, x.shape[1]) for c in only_sex]
    exact_one[sex][b] = shift.mean(0).detach()
    torch.testing.assert_close(shift_loss(module_one, x[rows], one, exact_one), torch.zeros(()), atol=1e-10, rtol=0)


def test_the_shift_term_teaches_the_size_of_a_change(batch) -> None:
    """The class-reading term sets no size of a change; the shift term does: after the same steps from the same
    start, the mean predicted change between sexes is closer to the observed one with it than without (the seed)."""
    counts, codes, cards = batch
    x = log_normalize(counts)
    means = _group_means(x, codes, cards)
    sex = FIELDS.index("sex")
    observed = means[sex][2] - means[sex][1]
    male = (codes[:, sex] == 1).nonzero().squeeze(1)
    errors = {}
    for weight in (0.0, 10.0):  # 150 steps on 256 cells: a larger weight than training's 1 (4 300 steps)
        torch.manual_seed(0)
        module, classifier = CycleAEModule(counts.shape[1], cards, latent=16), ContextClassifier(counts.shape[1], cards)
        opt, _ = optimizers(module, classifier, lr=1e-2)
        draw = torch.Generator().manual_seed(0)
        for _ in range(150):
            loss = generator_losses(module, classifier, x, codes, sample_targets(codes, cards, generator=draw),
                                    label_smoothing=0.1)["total"]
            if weight:
                loss = loss + weight * shift_loss(module, x, codes, means, generator=draw)
            opt.zero_grad()
            loss.backward()
            opt.step()
            module.clamp_()
        with torch.no_grad():
            target = codes[male].clone()
            target[:, sex] = 2
            change = (module(x[male], codes[male], target)[0] - module(x[male], codes[male], codes[male])[0]).mean(0)
        errors[weight] = float(((change - observed) ** 2).sum() / (observed**2).sum())
    assert errors[10.0] < 0.5 * errors[0.0], errors
