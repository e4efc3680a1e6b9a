"""cycleae's networks and losses (seed 002, the context-conditioned cycle autoencoder), with its defects fixed.

Every layer is linear and bias-free; there is no non-linearity, so each field's contribution is additive and
readable. With ``x`` ``(batch, genes)`` log1p-normalised expression, ``s`` and ``t`` ``(batch, fields)`` context
codes (0: null or unseen, ``1..K_f`` the field's values)::

    h_base      = x Wᵀ                     out_base = scale_base · h_base W            (tied W ≥ 0)
    h_f         = H[f, s_f] (E_f x)        out_f    = scale_f · D_f (H[f, t_f] h_f)
    G(x; s → t) = out_base + Σ_f out_f

The context heads ``H[f, c]`` are applied by grouping the batch by code (one matmul per code present). Code 0
has its own head, so a cell whose context is unknown still has a path; it is never a target.

What the seed did and this does instead (``reference/seed-methods.md`` §3.6, each with a test):

* the target context changes in **every** field in use (the seed re-cloned the source per field, so only
  the last field changed);
* input is log1p of counts normalised to ``target_sum`` and every head has a **learnable output scale**
  (the seed fed raw counts through a hard-coded 0.0159, and its loss reached 1e8);
* the non-negativity clamp applies to the **base head only** (the seed clamped every parameter);
* classifier heads exist only for the **fields in use** (the seed built one per spec entry, ``soma_joinid``
  with 1 000 classes included);
* null and unseen values take code 0 (the seed crashed on them).

Where the seed's choices, once its defects were fixed, still did not train on the synthetic Census data (measured,
see the README), there is an option whose other value is the seed's: field heads start as identity maps with
orthogonal encoders/decoders (``field_init="seed"``: U(0,1) entries with unit columns, every field map rank-1
along the mean profile), the integration term is scale-free (``integration="mse"``: the plain MSE, lowered by
shrinking every hidden code), the cross-entropies are label-smoothed (``label_smoothing=0``), and a mean-shift term
(:func:`shift_loss`, ``shift_weight=0``) gives a change a size: the seed's losses only ask the frozen classifier to
read the target.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812


def _uniform_unit_columns(rows: int, cols: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """The seed's init: U(0, 1) entries, then each column scaled to unit L2 norm."""
    w = torch.rand(rows, cols, generator=generator)
    return w / w.norm(dim=0, keepdim=True).clamp_min(1e-12)


class ContextHeads(nn.Module):
    """One ``L × L`` linear map per context code of a field (code 0 included), applied by grouping the batch.

    Each head is its own parameter, as the seed's ``nn.ModuleList`` of heads: a head no cell of the batch uses gets
    no gradient, so the optimiser leaves it as it is (no momentum step, no weight decay) and the step's cost grows
    with the values present, not with the field's cardinality (Census: hundreds of cell types).

    Parameters
    ----------
    n_codes
        ``K_f + 1`` (the reserved code 0 and the field's ``K_f`` values).
    latent
        ``L``.
    """

    def __init__(self, n_codes: int, latent: int) -> None:
        super().__init__()
        self.weight = nn.ParameterList([nn.Parameter(_uniform_unit_columns(latent, latent)) for _ in range(n_codes)])

    def forward(self, h: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """``h`` ``(batch, L)``, ``codes`` ``(batch,)`` int64 → ``(batch, L)``: row ``i`` through head ``codes[i]``."""
        order = torch.argsort(codes, stable=True)  # rows grouped by code: one slice of h per code present
        values, counts = torch.unique_consecutive(codes[order], return_counts=True)
        parts = [h[rows] @ self.weight[code].T
                 for code, rows in zip(values.tolist(), torch.split(order, counts.tolist()), strict=True)]
        return torch.cat(parts)[torch.argsort(order)] if parts else torch.empty_like(h)


class CycleAEModule(nn.Module):
    """The generator: a tied base head plus one encoder, decoder and context-head set per field.

    Parameters
    ----------
    n_genes
        ``G``.
    cardinalities
        ``K_f`` per field in use (codes ``1..K_f``; 0 is reserved).
    latent
        ``L`` (the seed's example: 128).
    field_gain
        Initial gain of each field head's map, relative to the base head's (the seed's fixed constant 0.0159
        scaled raw outputs instead).

    Notes
    -----
    With the seed's init (positive entries, unit columns) ``x ↦ x WᵀW`` has an operator norm of about ``G/4``, and
    two cycles multiply it again: the learnable scales therefore start at the values that give the base map an
    operator norm of 1 and each field's map ``D_f H H E_f`` an operator norm of ``field_gain``.
    """

    def __init__(self, n_genes: int, cardinalities: list[int], *, latent: int = 128, field_gain: float = 0.1,
                 field_init: str = "identity") -> None:
        super().__init__()
        if field_init not in ("identity", "seed"):
            raise ValueError(f"field_init must be 'identity' or 'seed', got {field_init!r}")
        self.n_genes, self.latent, self.cardinalities = n_genes, latent, list(cardinalities)
        self.base = nn.Parameter(_uniform_unit_columns(latent, n_genes))  # W (L × G), tied, ≥ 0
        self.encoders = nn.ParameterList([nn.Parameter(_uniform_unit_columns(latent, n_genes)) for _ in cardinalities])
        self.decoders = nn.ParameterList([nn.Parameter(_uniform_unit_columns(n_genes, latent)) for _ in cardinalities])
        self.heads = nn.ModuleList([ContextHeads(k + 1, latent) for k in cardinalities])
        if field_init == "identity":
            with torch.no_grad():
                for f in range(len(cardinalities)):
                    nn.init.orthogonal_(self.encoders[f])
                    nn.init.orthogonal_(self.decoders[f])
                    for w in self.heads[f].weight:
                        w.copy_(torch.eye(latent))
        # learnable output scales, kept positive through their logarithm (see Notes)
        with torch.no_grad():
            norm = lambda m: float(torch.linalg.matrix_norm(m, ord=2))  # noqa: E731
            base_norm = norm(self.base) ** 2
            field_norms = [norm(self.decoders[f]) * max(norm(w) for w in self.heads[f].weight) ** 2
                           * norm(self.encoders[f]) for f in range(len(cardinalities))]
        self.log_scale_base = nn.Parameter(torch.tensor(-math.log(base_norm)))
        self.log_scale = nn.Parameter(torch.tensor([math.log(field_gain / n) for n in field_norms]))

    def base_parameters(self) -> list[nn.Parameter]:
        """The base head (the seed's weight decay 1e-4; the only clamped parameter)."""
        return [self.base, self.log_scale_base]

    def metadata_parameters(self) -> list[nn.Parameter]:
        """The field encoders, decoders, heads and scales (the seed's weight decay 5e-4)."""
        return [*self.encoders, *self.decoders, *(w for h in self.heads for w in h.weight), self.log_scale]

    @torch.no_grad()
    def clamp_(self) -> None:
        """After each optimiser step: the base head non-negative (the README's constraint, base only)."""
        self.base.clamp_(min=0.0)

    def forward(self, x: torch.Tensor, source: torch.Tensor, target: torch.Tensor
                ) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
        """Translate ``x`` from context ``source`` to ``target``.

        Parameters
        ----------
        x
            ``(batch, G)`` log1p-normalised expression.
        source, target
            ``(batch, F)`` int64 context codes.

        Returns
        -------
        tuple
            ``x_st`` ``(batch, G)``; the hidden codes ``[h_base, h_1, …, h_F]`` each ``(batch, L)``; the
            contributions ``[out_base, out_1, …, out_F]`` each ``(batch, G)`` (they sum to ``x_st``).
        """
        h_base = x @ self.base.T
        out = [torch.exp(self.log_scale_base) * (h_base @ self.base)]
        hidden = [h_base]
        scales = torch.exp(self.log_scale)
        for f, heads in enumerate(self.heads):
            h_f = heads(x @ self.encoders[f].T, source[:, f])
            hidden.append(h_f)
            out.append(scales[f] * (heads(h_f, target[:, f]) @ self.decoders[f].T))
        return torch.stack(out).sum(0), hidden, out


class ContextClassifier(nn.Module):
    """``Linear(G → width) + ReLU``, then one linear head per field **in use** (``K_f`` classes: codes ``1..K_f``)."""

    def __init__(self, n_genes: int, cardinalities: list[int], *, width: int = 128) -> None:
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(n_genes, width), nn.ReLU())
        self.heads = nn.ModuleList([nn.Linear(width, k) for k in cardinalities])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``(batch, G)`` → one ``(batch, K_f)`` logit tensor per field."""
        z = self.trunk(x)
        return [head(z) for head in self.heads]


def context_loss(logits: list[torch.Tensor], codes: torch.Tensor, *, label_smoothing: float = 0.0) -> torch.Tensor:
    """Mean over fields of the cross-entropy of ``codes`` ``(batch, F)``; code-0 (null) rows are left out.

    ``label_smoothing`` ε asks for probability ``1 − ε`` on the coded value (``0``: the seed's plain cross-entropy).
    """
    terms = []
    for f, logit in enumerate(logits):
        known = codes[:, f] > 0
        if known.any():
            terms.append(F.cross_entropy(logit[known], codes[known, f] - 1, label_smoothing=label_smoothing))
    return torch.stack(terms).mean() if terms else logits[0].sum() * 0.0


def sample_targets(source: torch.Tensor, cardinalities: list[int], *, generator: torch.Generator | None = None,
                   fields: list[int] | None = None) -> torch.Tensor:
    """A target context that differs from ``source`` in **every** field of ``fields`` (default: all).

    Parameters
    ----------
    source
        ``(batch, F)`` codes.
    cardinalities
        ``K_f`` per field.
    generator
        Seeds the draw.
    fields
        Indices of the fields to change; the others keep their source code.

    Returns
    -------
    torch.Tensor
        ``(batch, F)`` int64: for a changed field with known source ``s``, ``1 + (s − 1 + U{1..K−1}) mod K``
        (the seed's rule on codes ``1..K``); for a null source, any value ``1..K``.
    """
    target = source.clone()
    for f in range(source.shape[1]) if fields is None else fields:
        k = cardinalities[f]
        s = source[:, f]
        shift = torch.randint(1, k, s.shape, generator=generator) if k > 1 else torch.zeros_like(s)
        changed = 1 + (s - 1 + shift) % k
        anything = 1 + torch.randint(0, k, s.shape, generator=generator)
        target[:, f] = torch.where(s > 0, changed, anything)
    return target


def generator_losses(module: CycleAEModule, classifier: ContextClassifier, x: torch.Tensor, source: torch.Tensor,
                     target: torch.Tensor, *, cycles: bool = True, integration: str = "relative",
                     target_weight: float = 1.0, label_smoothing: float = 0.0, means: list[torch.Tensor] | None = None,
                     shift_weight: float = 0.0, generator: torch.Generator | None = None,
                     glm: Any = None) -> dict[str, torch.Tensor]:
    """The seed's generator terms: reconstruction, integration, target consistency.

    With ``cycles`` (the method): ``x_st = G(x; s→t)``, ``x_sts = G(x_st; t→s)``; recon ``MSE(x, x_sts)``;
    integration ``Σ_heads MSE(h¹, h²)`` (``integration="relative"``: each head's term divided by the mean square of
    its ``h¹``, without gradient through the divisor, so shrinking the hidden codes does not lower it; ``"mse"``: the
    seed's); target consistency ``mean_f CE(C_f(x_st), t_f)`` with the classifier frozen (its parameters get no
    gradient here), weighted by ``target_weight`` (the seed: 1). Without ``cycles`` (the ablation): recon
    ``MSE(x, G(x; s→s))`` and the same target consistency, no integration. With ``shift_weight`` > 0 (not the
    seed's), :func:`shift_loss` against ``means`` too, on the first forward pass's hidden codes.

    Parameters
    ----------
    x
        ``(batch, G)`` log1p-normalised expression.
    source, target
        ``(batch, F)`` int64 context codes.
    means, shift_weight, generator, glm
        The mean-shift term's training means per field value, its weight, the seed of its target draw and (instead
        of the means) the count model whose per-cell changes it matches (:class:`~._glm.PoissonGLM`).

    Returns
    -------
    dict
        ``{"recon", "integration", "target", "total"}`` scalars (``target`` unweighted; ``total`` weighted), and
        ``"shift"`` when its weight is positive.
    """
    if integration not in ("relative", "mse"):
        raise ValueError(f"integration must be 'relative' or 'mse', got {integration!r}")
    frozen = [p.requires_grad for p in classifier.parameters()]
    for p in classifier.parameters():
        p.requires_grad_(False)
    try:
        x_st, hidden_1, _ = module(x, source, target)
        if cycles:
            x_sts, hidden_2, _ = module(x_st, target, source)
            recon = F.mse_loss(x_sts, x)
            terms = [F.mse_loss(a, b) for a, b in zip(hidden_1, hidden_2, strict=True)]
            if integration == "relative":
                terms = [t / a.detach().pow(2).mean().clamp_min(1e-12) for t, a in zip(terms, hidden_1, strict=True)]
            integ = torch.stack(terms).sum()
        else:
            recon = F.mse_loss(module(x, source, source)[0], x)
            integ = x.new_zeros(())
        consistency = context_loss(classifier(x_st), target, label_smoothing=label_smoothing)
    finally:
        for p, flag in zip(classifier.parameters(), frozen, strict=True):
            p.requires_grad_(flag)
    out = {"recon": recon, "integration": integ, "target": consistency,
           "total": recon + integ + target_weight * consistency}
    if shift_weight > 0:
        if means is None and glm is None:
            raise ValueError("shift_weight > 0 needs the training means per field value or a count model")
        out["shift"] = shift_loss(module, x, source, means, generator=generator, hidden=hidden_1, glm=glm)
        out["total"] = out["total"] + shift_weight * out["shift"]
    return out


def shift_loss(module: CycleAEModule, x: torch.Tensor, source: torch.Tensor, means: list[torch.Tensor] | None, *,
               generator: torch.Generator | None = None, hidden: list[torch.Tensor] | None = None,
               glm: Any = None) -> torch.Tensor:
    """The mean-shift term: each field's predicted change, averaged per pair of values, against the training means.

    For every field ``f`` with two values or more, each cell with a known value ``a`` is moved to another value ``b``
    in that field only (:func:`sample_targets`); its change is field ``f``'s contribution in ``b`` minus that in
    ``a`` (the other fields' contributions do not change). Per pair ``(a, b)`` present in the batch, the mean change
    is compared with ``means[f][b] − means[f][a]``; the term is the MSE, averaged over genes, pairs and fields. Each
    cell's own change stays free around that mean.

    Parameters
    ----------
    module
        The generator.
    x
        ``(batch, G)`` log1p-normalised expression.
    source
        ``(batch, F)`` int64 codes.
    means
        Per field ``(K_f + 1, G)``: per code, the training cells' mean expression or its additive effect (row 0:
        null or unseen, unused; only differences within a field are read).
    generator
        Seeds the target draw.
    hidden
        The hidden codes of a forward pass from ``source`` (``module(x, source, ·)[1]``): each field's ``h_f``
        is taken from there instead of encoding ``x`` again.
    glm
        A count model (:class:`~._glm.PoissonGLM`): then each moved cell's own change is compared with the model's
        change at the cell's context (MSE over cells and genes) and ``means`` is not read.

    Returns
    -------
    torch.Tensor
        A scalar (0 when no field has a known value in the batch).

    Notes
    -----
    The maps are linear, so each pair's mean change is decoded from its mean latent change: one ``L × G`` product
    per pair, not per cell.
    """
    scales = torch.exp(module.log_scale)
    terms = []
    for f, heads in enumerate(module.heads):
        k = module.cardinalities[f]
        known = source[:, f] > 0
        if k < 2 or not bool(known.any()):
            continue
        s = source[known, f]
        t = sample_targets(source[known], module.cardinalities, generator=generator, fields=[f])[:, f]
        h = hidden[f + 1][known] if hidden is not None else heads(x[known] @ module.encoders[f].T, s)
        latent = heads(h, t) - heads(h, s)
        if glm is not None:
            terms.append(F.mse_loss(scales[f] * (latent @ module.decoders[f].T), glm.change(source[known], f, t)))
            continue
        pairs, index = torch.unique(s * (k + 1) + t, return_inverse=True)
        sums = latent.new_zeros(len(pairs), latent.shape[1]).index_add(0, index, latent)
        counts = latent.new_zeros(len(pairs)).index_add(0, index, torch.ones_like(index, dtype=latent.dtype))
        change = scales[f] * ((sums / counts[:, None]) @ module.decoders[f].T)
        mean = means[f].to(change.device)
        observed = mean[pairs % (k + 1)] - mean[pairs // (k + 1)]
        terms.append(F.mse_loss(change, observed))
    return torch.stack(terms).mean() if terms else x.new_zeros(())


def log_normalize(counts: torch.Tensor, *, target_sum: float = 1e4) -> torch.Tensor:
    """``log1p(target_sum · counts / total)`` per cell: ``(batch, G)`` raw counts → the model's input space.

    A cell with no counts stays all zeros.
    """
    total = counts.sum(dim=1, keepdim=True)
    return torch.log1p(counts * (target_sum / total.clamp_min(1e-12)))


def optimizers(module: CycleAEModule, classifier: ContextClassifier, *, lr: float = 1e-4,
               weight_decay_base: float = 1e-4, weight_decay_metadata: float = 5e-4,
               weight_decay_classifier: float = 0.0) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
    """The seed's optimisers: AdamW for the generator (two weight decays), Adam for the classifier, same lr
    (``weight_decay_classifier`` > 0: AdamW with that decay)."""
    gen = torch.optim.AdamW([{"params": module.base_parameters(), "weight_decay": weight_decay_base},
                             {"params": module.metadata_parameters(), "weight_decay": weight_decay_metadata}], lr=lr)
    if weight_decay_classifier > 0:
        return gen, torch.optim.AdamW(classifier.parameters(), lr=lr, weight_decay=weight_decay_classifier)
    return gen, torch.optim.Adam(classifier.parameters(), lr=lr)


def train_step(module: CycleAEModule, classifier: ContextClassifier, opt_gen: torch.optim.Optimizer,
               opt_cls: torch.optim.Optimizer, x: torch.Tensor, source: torch.Tensor, *,
               generator: torch.Generator | None = None, clip: float = 10.0, cycles: bool = True,
               integration: str = "relative", target_weight: float = 1.0, label_smoothing: float = 0.0,
               means: list[torch.Tensor] | None = None, shift_weight: float = 0.0) -> dict[str, float]:
    """One batch as the seed trains it: the generator step, then the classifier step on the real cells.

    Generator: targets that change every field, :func:`generator_losses` (plus ``shift_weight`` × :func:`shift_loss`
    against ``means`` when ``shift_weight`` > 0; the seed: 0), gradient-norm clip ``clip``, AdamW, then the base head
    clamped ≥ 0. Classifier: ``mean_f CE(C_f(x), s_f)`` on the real cells, Adam.

    Returns
    -------
    dict
        The loss values (``recon``, ``integration``, ``target``, ``total``, ``classifier``).
    """
    target = sample_targets(source, module.cardinalities, generator=generator)
    losses = generator_losses(module, classifier, x, source, target, cycles=cycles, integration=integration,
                              target_weight=target_weight, label_smoothing=label_smoothing, means=means,
                              shift_weight=shift_weight, generator=generator)
    opt_gen.zero_grad(set_to_none=True)
    losses["total"].backward()
    torch.nn.utils.clip_grad_norm_(module.parameters(), clip)
    opt_gen.step()
    module.clamp_()
    cls_loss = context_loss(classifier(x), source, label_smoothing=label_smoothing)
    opt_cls.zero_grad(set_to_none=True)
    cls_loss.backward()
    opt_cls.step()
    return {**{k: float(v.detach()) for k, v in losses.items()}, "classifier": float(cls_loss.detach())}
