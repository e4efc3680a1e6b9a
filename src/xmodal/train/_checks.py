"""Checks of every piece of a checkpoint before the engine or Lightning puts it back.

A checkpoint is read with ``weights_only=True``, so it holds only tensors and plain values, but any of them may
be damaged (a hand edit, a bad copy, a file of another program). Each function here checks one piece against
what the fresh run expects and raises :class:`Damaged` naming the piece and what is wrong; the engine turns
that into an :class:`~xmodal.errors.XmodalInputError` naming the file (exit 2) before anything is restored or
written.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch


class Damaged(ValueError):
    """A piece of a checkpoint that cannot be restored.

    Parameters
    ----------
    piece
        Where in the checkpoint (``optimizer_states[1]``, ``callbacks/xmodal_engine/rng/numpy``).
    problem
        What is wrong with it.
    """

    def __init__(self, piece: str, problem: str) -> None:
        self.piece, self.problem = piece, problem
        super().__init__(f"{piece}: {problem}")


def _kind(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)} ({value.dtype})"
    return f"a {type(value).__name__}"


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _count(piece: str, value: Any, *, low: int = 0, high: int | None = None) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise Damaged(piece, f"expected a whole number, found {_kind(value)}")
    if value < low or (high is not None and value > high):
        raise Damaged(piece, f"{value} is outside {low}..{'' if high is None else high}")
    return value


def _finite_tensor(piece: str, value: Any, *, shape: tuple[int, ...] | None = None,
                   dtype: torch.dtype | None = None) -> None:
    if not isinstance(value, torch.Tensor):
        raise Damaged(piece, f"expected a tensor, found {_kind(value)}")
    if shape is not None and tuple(value.shape) != tuple(shape):
        raise Damaged(piece, f"expected shape {tuple(shape)}, found {tuple(value.shape)}")
    if dtype is not None and value.dtype != dtype:
        raise Damaged(piece, f"expected {dtype}, found {value.dtype}")
    if value.is_floating_point() and not bool(torch.isfinite(value).all()):
        raise Damaged(piece, "holds NaN or infinite values")


# ---------------------------------------------------------------------- weights
def check_weights(piece: str, state: Any, reference: Mapping[str, torch.Tensor]) -> None:
    """``state`` holds exactly ``reference``'s keys, each a finite tensor of the same shape and dtype."""
    if not isinstance(state, Mapping):
        raise Damaged(piece, f"expected a mapping of tensors, found {_kind(state)}")
    missing = [k for k in reference if k not in state]
    extra = [k for k in state if k not in reference]
    if missing or extra:
        raise Damaged(piece, f"does not fit the model (missing {missing[:3]}, unexpected {extra[:3]})")
    for key, ref in reference.items():
        _finite_tensor(f"{piece}/{key}", state[key], shape=tuple(ref.shape), dtype=ref.dtype)


# ---------------------------------------------------------------------- optimisers and schedulers
def fresh_optimizers(module: torch.nn.Module) -> tuple[list[torch.optim.Optimizer], list[Any]]:
    """The optimisers and LR schedulers ``module.configure_optimizers()`` makes (Lightning's parsing), unused."""
    from lightning.pytorch.core.optimizer import _configure_optimizers

    optimizers, schedulers, _ = _configure_optimizers(module.configure_optimizers())
    return list(optimizers), [s["scheduler"] if isinstance(s, dict) else s for s in schedulers]


def _same_kind(piece: str, saved: Any, fresh: Any) -> None:
    """A hyper-parameter of the saved state has the kind the fresh one has (numbers finite)."""
    if isinstance(fresh, bool) or fresh is None:
        if not (saved is None or isinstance(saved, bool)):
            raise Damaged(piece, f"expected true/false, found {_kind(saved)}")
    elif _number(fresh):
        if not _number(saved) or not math.isfinite(saved):
            raise Damaged(piece, f"expected a finite number, found {saved!r}" if _number(saved)
                          else f"expected a number, found {_kind(saved)}")
    elif isinstance(fresh, list | tuple):
        if not isinstance(saved, list | tuple) or len(saved) != len(fresh):
            raise Damaged(piece, f"expected {len(fresh)} values, found {_kind(saved)}"
                          + (f" of {len(saved)}" if isinstance(saved, list | tuple) else ""))
        for i, (s, f) in enumerate(zip(saved, fresh, strict=True)):
            _same_kind(f"{piece}[{i}]", s, f)
    elif isinstance(fresh, str):
        if not isinstance(saved, str):
            raise Damaged(piece, f"expected text, found {_kind(saved)}")
    elif isinstance(fresh, torch.Tensor):
        _finite_tensor(piece, saved, shape=tuple(fresh.shape))


def check_optimizer(piece: str, saved: Any, fresh: torch.optim.Optimizer) -> None:
    """``saved`` is a state of ``fresh``: as many parameter groups of as many parameters, the same kinds of
    hyper-parameters, and every per-parameter tensor shaped like its parameter (scalars like Adam's ``step``
    aside), all finite."""
    if not isinstance(saved, Mapping) or not isinstance(saved.get("state"), Mapping) \
            or not isinstance(saved.get("param_groups"), list):
        raise Damaged(piece, "expected {'state': {...}, 'param_groups': [...]}")
    groups, fresh_groups = saved["param_groups"], fresh.param_groups
    if len(groups) != len(fresh_groups):
        raise Damaged(f"{piece}/param_groups", f"{len(groups)} parameter group(s); the model's optimiser has "
                      f"{len(fresh_groups)}")
    params_of: dict[Any, torch.Tensor] = {}
    for g, (group, fresh_group) in enumerate(zip(groups, fresh_groups, strict=True)):
        where = f"{piece}/param_groups[{g}]"
        if not isinstance(group, Mapping) or not isinstance(group.get("params"), list):
            raise Damaged(where, f"expected a group with its 'params', found {_kind(group)}")
        if len(group["params"]) != len(fresh_group["params"]):
            raise Damaged(where, f"{len(group['params'])} parameters; the model's group has "
                          f"{len(fresh_group['params'])}")
        for key, value in fresh_group.items():
            if key == "params":
                continue
            if key not in group:
                raise Damaged(f"{where}/{key}", "missing")
            _same_kind(f"{where}/{key}", group[key], value)
        for key, value in group.items():
            if key != "params" and key not in fresh_group and not (_number(value) and math.isfinite(value)):
                raise Damaged(f"{where}/{key}", f"unexpected entry ({_kind(value)})")
        for pid, param in zip(group["params"], fresh_group["params"], strict=True):
            if not isinstance(pid, int) or isinstance(pid, bool) or pid in params_of:
                raise Damaged(f"{where}/params", f"parameter ids must be distinct whole numbers; found {pid!r}")
            params_of[pid] = param
    for pid, entry in saved["state"].items():
        where = f"{piece}/state[{pid!r}]"
        if pid not in params_of:
            raise Damaged(where, "belongs to no parameter of the parameter groups")
        if not isinstance(entry, Mapping):
            raise Damaged(where, f"expected a mapping, found {_kind(entry)}")
        shape = tuple(params_of[pid].shape)
        for key, value in entry.items():
            if isinstance(value, torch.Tensor):
                _finite_tensor(f"{where}/{key}", value, shape=None if value.dim() == 0 else shape)
            elif not (_number(value) and math.isfinite(value)) and value is not None and not isinstance(value, bool):
                raise Damaged(f"{where}/{key}", f"expected a tensor or a number, found {_kind(value)}")
    try:
        fresh.load_state_dict(saved)  # torch's own checks, on a copy the run does not use
    except (ValueError, KeyError, TypeError, RuntimeError, IndexError) as exc:
        raise Damaged(piece, f"{type(exc).__name__}: {str(exc)[:200]}") from None


def check_scheduler(piece: str, saved: Any, fresh: Any) -> None:
    """``saved`` holds exactly the entries of ``fresh.state_dict()`` (a scheduler restores by setting its
    attributes from them), each of the same kind."""
    reference = fresh.state_dict()
    if not isinstance(saved, Mapping):
        raise Damaged(piece, f"expected a mapping, found {_kind(saved)}")
    extra = [k for k in saved if k not in reference]
    if extra:
        raise Damaged(piece, f"unexpected entries {extra[:3]} for a {type(fresh).__name__}")
    for key, value in reference.items():
        if key not in saved:
            if key.startswith("_"):
                continue  # private bookkeeping another torch version may lack
            raise Damaged(f"{piece}/{key}", "missing")
        _same_kind(f"{piece}/{key}", saved[key], value)


# ---------------------------------------------------------------------- loops
LOADER = "combined_loader"


def check_loops(piece: str, saved: Any, reference: Any) -> None:
    """Lightning's loop state has the fresh trainer's layout (``reference``): the same keys, whole numbers ≥ 0
    where it has numbers, true/false where it has flags; the loader's position (``combined_loader``) is
    ``[{"step": ≥ 0, "world": ≥ 1}]`` (a resume may end sooner: ``max_iter`` is not in the digest)."""
    if isinstance(reference, Mapping):
        if not isinstance(saved, Mapping):
            raise Damaged(piece, f"expected a mapping, found {_kind(saved)}")
        for key, ref in reference.items():
            if key not in saved:
                raise Damaged(f"{piece}/{key}", "missing")
            check_loops(f"{piece}/{key}", saved[key], ref)
        for key, value in saved.items():
            if key in reference:
                continue
            if key == LOADER and piece.endswith("fit_loop/state_dict"):
                if not isinstance(value, list) or len(value) != 1 or not isinstance(value[0], Mapping) \
                        or set(value[0]) != {"step", "world"}:
                    raise Damaged(f"{piece}/{key}", "expected [{'step': ..., 'world': ...}] (the loader's position)")
                _count(f"{piece}/{key}/step", value[0]["step"])
                _count(f"{piece}/{key}/world", value[0]["world"], low=1)
            else:
                raise Damaged(f"{piece}/{key}", "unexpected entry")
    elif isinstance(reference, bool):
        if not isinstance(saved, bool):
            raise Damaged(piece, f"expected true/false, found {_kind(saved)}")
    elif isinstance(reference, int):
        _count(piece, saved)
    elif isinstance(reference, float):
        if not _number(saved) or not math.isfinite(saved):
            raise Damaged(piece, f"expected a finite number, found {_kind(saved)}")
    elif reference is None:
        if saved is not None and not _number(saved) and not isinstance(saved, str):
            raise Damaged(piece, f"expected a plain value, found {_kind(saved)}")
    elif type(saved) is not type(reference):
        raise Damaged(piece, f"expected {_kind(reference)}, found {_kind(saved)}")


# ---------------------------------------------------------------------- the engine's state
def check_engine_state(piece: str, state: Any, *, module: torch.nn.Module) -> None:
    """The engine's own state: history records of numbers, best-model state fitting ``module``, counters, RNG."""
    if not isinstance(state, Mapping):
        raise Damaged(piece, f"expected a mapping, found {_kind(state)}")
    for key in ("digest", "history", "best_step", "best_value", "best_state", "stale", "stopped", "rng"):
        if key not in state:
            raise Damaged(f"{piece}/{key}", "missing")
    history = state["history"]
    if not isinstance(history, list):
        raise Damaged(f"{piece}/history", f"expected a list of records, found {_kind(history)}")
    for i, record in enumerate(history):
        if not isinstance(record, Mapping) or "step" not in record:
            raise Damaged(f"{piece}/history[{i}]", f"expected a record with its 'step', found {_kind(record)}")
        for key, value in record.items():
            if not isinstance(key, str) or not _number(value):
                raise Damaged(f"{piece}/history[{i}]/{key}", f"expected a number, found {_kind(value)}")
    best_step, best_value, best_state = state["best_step"], state["best_value"], state["best_state"]
    if (best_step is None) != (best_value is None) or (best_step is None) != (best_state is None):
        raise Damaged(f"{piece}/best_step", "best_step, best_value and best_state must all be set or all be empty")
    if best_step is not None:
        _count(f"{piece}/best_step", best_step, low=1)
        if not _number(best_value):
            raise Damaged(f"{piece}/best_value", f"expected a number, found {_kind(best_value)}")
        check_weights(f"{piece}/best_state", best_state, module.state_dict())
    _count(f"{piece}/stale", state["stale"])
    if state["stopped"] is not None and not isinstance(state["stopped"], str):
        raise Damaged(f"{piece}/stopped", f"expected text or nothing, found {_kind(state['stopped'])}")
    check_rng(f"{piece}/rng", state["rng"])


def check_rng(piece: str, state: Any) -> None:
    """torch's, NumPy's and Python's generator states as :func:`xmodal.train._engine.rng_state` saves them, and
    accepted by their setters (tried, then this process's states are put back)."""
    if not isinstance(state, Mapping) or not {"torch", "numpy", "python"} <= set(state):
        raise Damaged(piece, "expected the torch, numpy and python generator states")
    _finite_tensor(f"{piece}/torch", state["torch"], shape=tuple(torch.get_rng_state().shape), dtype=torch.uint8)
    n = state["numpy"]
    if not isinstance(n, Mapping) or set(n) != {"kind", "keys", "pos", "has_gauss", "gauss"}:
        raise Damaged(f"{piece}/numpy", "expected kind, keys, pos, has_gauss and gauss")
    if n["kind"] != "MT19937":
        raise Damaged(f"{piece}/numpy/kind", f"expected 'MT19937', found {n['kind']!r}")
    _finite_tensor(f"{piece}/numpy/keys", n["keys"], shape=(624,), dtype=torch.int64)
    if bool(((n["keys"] < 0) | (n["keys"] >= 2**32)).any()):
        raise Damaged(f"{piece}/numpy/keys", "values outside 0..2³²−1")
    _count(f"{piece}/numpy/pos", n["pos"], high=624)
    _count(f"{piece}/numpy/has_gauss", n["has_gauss"], high=1)
    if not _number(n["gauss"]) or not math.isfinite(n["gauss"]):
        raise Damaged(f"{piece}/numpy/gauss", f"expected a finite number, found {_kind(n['gauss'])}")
    p = state["python"]
    if not isinstance(p, Sequence) or isinstance(p, str) or len(p) != 3 or not isinstance(p[1], Sequence) \
            or len(p[1]) != 625:
        raise Damaged(f"{piece}/python", "expected [version, 625 numbers, gauss] (Python's random.getstate())")
    _count(f"{piece}/python[0]", p[0])
    for i, v in enumerate(p[1]):
        _count(f"{piece}/python[1][{i}]", v, high=2**32 - 1 if i < 624 else 624)
    if p[2] is not None and not (_number(p[2]) and math.isfinite(p[2])):
        raise Damaged(f"{piece}/python[2]", f"expected a number or nothing, found {_kind(p[2])}")
    if "cuda" in state:
        cuda = state["cuda"]
        if not isinstance(cuda, list):
            raise Damaged(f"{piece}/cuda", f"expected a list of tensors, found {_kind(cuda)}")
        for i, s in enumerate(cuda):
            if not isinstance(s, torch.Tensor) or s.dtype != torch.uint8 or s.dim() != 1:
                raise Damaged(f"{piece}/cuda[{i}]", f"expected a byte tensor, found {_kind(s)}")
    before = (torch.get_rng_state(), np.random.get_state(), random.getstate())
    try:
        torch.set_rng_state(state["torch"])
        np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
        random.setstate((p[0], tuple(p[1]), p[2]))
    except (ValueError, TypeError, RuntimeError, OverflowError) as exc:
        raise Damaged(piece, f"refused by the generator ({type(exc).__name__}: {str(exc)[:200]})") from None
    finally:
        torch.set_rng_state(before[0])
        np.random.set_state(before[1])
        random.setstate(before[2])


# ---------------------------------------------------------------------- the method's own state
def check_extra_state(piece: str, saved: Any, fresh: Any) -> None:
    """A method's :meth:`~xmodal.train.XmodalModule.extra_state`: the fresh state's keys with values of the same
    kind; entries the fresh state does not have (running sums keyed by name) hold finite numbers."""
    if isinstance(fresh, Mapping):
        if not isinstance(saved, Mapping):
            raise Damaged(piece, f"expected a mapping, found {_kind(saved)}")
        for key, value in fresh.items():
            if key not in saved:
                raise Damaged(f"{piece}/{key}", "missing")
            check_extra_state(f"{piece}/{key}", saved[key], value)
        for key, value in saved.items():
            if key not in fresh:
                _numbers(f"{piece}/{key}", value)
    elif isinstance(fresh, list | tuple):
        if not isinstance(saved, list | tuple):
            raise Damaged(piece, f"expected a list, found {_kind(saved)}")
        for i, value in enumerate(saved):
            _numbers(f"{piece}[{i}]", value)
    elif fresh is None:
        return
    else:
        _same_kind(piece, saved, fresh)


def _numbers(piece: str, value: Any) -> None:
    if isinstance(value, Mapping):
        for key, v in value.items():
            _numbers(f"{piece}/{key}", v)
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _numbers(f"{piece}[{i}]", v)
    elif isinstance(value, torch.Tensor):
        _finite_tensor(piece, value)
    elif not (_number(value) and math.isfinite(value)):
        raise Damaged(piece, f"expected a finite number, found {_kind(value)}")


__all__ = ["Damaged", "check_engine_state", "check_extra_state", "check_loops", "check_optimizer", "check_rng",
           "check_scheduler", "check_weights", "fresh_optimizers"]
