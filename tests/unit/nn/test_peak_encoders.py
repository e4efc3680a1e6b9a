"""Seed 001's peak encoders: shapes, deterministic evaluation, and objectives that train the encoder."""

from __future__ import annotations

import io

import pytest
import torch

from xmodal.nn import PEAK_KINDS, PeakEncoder, nt_xent

P = 120


def _peaks(n: int = 24, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, P, generator=g) < 0.1).float()


@pytest.mark.parametrize("kind", PEAK_KINDS)
def test_shapes_eval_determinism_and_state_round_trip(kind: str) -> None:
    torch.manual_seed(0)
    enc = PeakEncoder(kind, P, hidden=16, intermediate=32, layers=3)
    x = _peaks()
    enc.train()
    assert enc(x).shape == (24, 16)
    enc.eval()
    with torch.no_grad():
        first, second = enc(x), enc(x)
    assert torch.equal(first, second)  # the seed's VAE sampled in eval mode: two calls differed
    buffer = io.BytesIO()
    torch.save(enc.state_dict(), buffer)
    buffer.seek(0)
    clone = PeakEncoder(kind, P, hidden=16, intermediate=32, layers=3)
    clone.load_state_dict(torch.load(buffer, weights_only=True))
    clone.eval()
    with torch.no_grad():
        assert torch.equal(clone(x), first)


@pytest.mark.parametrize("kind", ["dae", "vae", "contrastive"])
def test_own_objective_trains_the_encoder(kind: str) -> None:
    """The seed never called these losses; here a few steps on the objective alone lower it and move the trunk."""
    torch.manual_seed(0)
    enc = PeakEncoder(kind, P, hidden=16, intermediate=32, layers=3, dropout=0.0).train()
    x = _peaks(64)
    before = enc.trunk[0].weight.detach().clone()
    opt = torch.optim.Adam(enc.parameters(), lr=1e-2)
    losses = []
    for _ in range(30):
        torch.manual_seed(1)  # the same noise/augmentation every step: the decrease is the encoder's
        loss = enc.objective(x)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0]
    assert not torch.equal(before, enc.trunk[0].weight)


@pytest.mark.parametrize("kind", ["mlp", "hybrid"])
def test_encoders_without_an_objective_return_zero(kind: str) -> None:
    enc = PeakEncoder(kind, P, hidden=8, intermediate=16)
    assert enc.objective(_peaks()).item() == 0.0


def test_nt_xent_prefers_matching_views_and_bad_kinds_are_named() -> None:
    a = torch.eye(4, 6)
    assert nt_xent(a, a).item() < nt_xent(a, a.roll(1, dims=0)).item()
    with pytest.raises(ValueError, match="unknown peak encoder 'cnn'"):
        PeakEncoder("cnn", P)  # type: ignore[arg-type]
