"""Gromov–Wasserstein loss between two batches of codes, with a real gradient.

Seed 000 computed GW in NumPy on detached codes, so the term never reached the encoders. Here the
optimal coupling ``T*`` is solved by POT (exact conditional gradient, square loss, uniform
marginals) on detached distances, and the GW objective is evaluated in PyTorch at ``T*``:

    GW(C_a, C_b) = Σ_ijkl (C_a[i,k] − C_b[j,l])² T*_ij T*_kl.

By the envelope theorem this has the gradient of the GW *value* with respect to both distance
matrices — exactly what POT's PyTorch backend returns from ``gromov_wasserstein2`` — and it
flows through ``torch.cdist`` into the encoders. Solving on NumPy keeps the term independent of
which POT backends were loaded first in the process, and is faster for small batches.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch


def _gw_value(c_a: torch.Tensor, c_b: torch.Tensor, coupling: torch.Tensor) -> torch.Tensor:
    p, q = coupling.sum(dim=1), coupling.sum(dim=0)
    # square loss split as in Peyré et al. (2016): constant part + cross term
    const = (c_a.pow(2) @ p) @ p + (c_b.pow(2) @ q) @ q
    cross = (c_a @ coupling @ c_b.T * coupling).sum()
    return const - 2.0 * cross


def _solve_coupling(c_a: torch.Tensor, c_b: torch.Tensor) -> torch.Tensor:
    from xmodal._pot import import_pot

    ot = import_pot()
    a = c_a.detach().cpu().to(torch.float64).numpy()
    b = c_b.detach().cpu().to(torch.float64).numpy()
    p, q = np.full(len(a), 1.0 / len(a)), np.full(len(b), 1.0 / len(b))
    coupling = ot.gromov.gromov_wasserstein(a, b, p, q, loss_fun="square_loss")
    return torch.as_tensor(coupling, dtype=c_a.dtype, device=c_a.device)


def gromov_wasserstein_loss(z_a: torch.Tensor, z_b: torch.Tensor, *, mode: Literal["global", "groupwise"] = "global",
                            group_size: int = 16, generator: torch.Generator | None = None) -> torch.Tensor:
    """GW discrepancy between the Euclidean geometries of two batches of codes.

    Parameters
    ----------
    z_a, z_b
        Codes ``(n_a, latent)`` and ``(n_b, latent)``; rows need not correspond.
    mode
        ``global``: one problem over the whole batches; ``groupwise``: the batches are cut into
        random groups of ``group_size`` (one permutation per modality) and the GW values averaged.
    group_size
        Cells per group in ``groupwise`` mode.
    generator
        Draws the groups (seeded training passes its own).

    Returns
    -------
    torch.Tensor
        Scalar, differentiable with respect to ``z_a`` and ``z_b``.
    """
    if mode == "global":
        c_a, c_b = torch.cdist(z_a, z_a), torch.cdist(z_b, z_b)
        return _gw_value(c_a, c_b, _solve_coupling(c_a, c_b))
    if mode != "groupwise":
        raise ValueError(f"gw mode must be 'global' or 'groupwise', got {mode!r}")
    perm_a = torch.randperm(len(z_a), generator=generator)
    perm_b = torch.randperm(len(z_b), generator=generator)
    n_groups = max(1, min(len(z_a), len(z_b)) // group_size)
    values = []
    for ga, gb in zip(perm_a.chunk(n_groups), perm_b.chunk(n_groups), strict=False):
        sub_a, sub_b = z_a[ga], z_b[gb]
        c_a, c_b = torch.cdist(sub_a, sub_a), torch.cdist(sub_b, sub_b)
        values.append(_gw_value(c_a, c_b, _solve_coupling(c_a, c_b)))
    return torch.stack(values).mean()
