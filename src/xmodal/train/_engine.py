"""The training engine: one Lightning ``Trainer`` set up the same way for every deep method.

What every method gets from :func:`fit`:

* determinism under a seed on CPU (batches are a pure function of the step, the RNG state travels in
  every checkpoint and is put back before the next step, so nothing depends on when it was saved);
* atomic checkpoints every ``checkpoint_every`` steps (temporary file, then rename), holding only
  tensors and plain values, read back with ``weights_only=True``; a digest of the settings, shapes, seed,
  process count and the training data's content hash is checked first, then every piece (weights,
  optimisers, schedulers, loops, history, best state, RNG states, the method's own values) before any is
  used (:mod:`xmodal.train._checks`); the checkpoint folder must be a real folder, never a symbolic link;
* resume that ends bit-identical to an uninterrupted run (model, optimisers, schedulers, loader
  position, RNG, history, best-model state and the method's own running values);
* a progress bar, a history record per logged step, live metrics from rank 0 to a :class:`LiveLogger`;
* NaN/inf losses stopping with an error naming the term (methods call ``check_finite``; the engine
  checks the returned loss too);
* best-model selection and early stopping on a validation metric (:class:`Selection`);
* ``device``, ``precision``, ``strategy: ddp`` with ``devices`` × ``num_nodes`` from the method's
  :class:`~xmodal.train.EngineSettings`, with DDP started by ``torchrun`` (or Kubeflow's trainer).
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np
import torch

from xmodal.errors import ConfigError, XmodalInputError, first_line
from xmodal.train._config import EngineSettings
from xmodal.train._loader import StepLoader

if TYPE_CHECKING:  # Lightning is imported when training starts, not by this module
    from xmodal.train._module import XmodalModule

log = logging.getLogger(__name__)
CHECKPOINT = "checkpoint.pt"
STATE_KEY = "xmodal_engine"
_CHECKPOINT_KEYS = ("state_dict", "optimizer_states", "lr_schedulers", "loops", "callbacks")
_FIX = "train without --resume to start over (the checkpoint is then rewritten)"


class LiveLogger(Protocol):
    """Where rank 0 sends each record while training runs (e.g. an MLflow run)."""

    def log_metrics(self, metrics: dict[str, float], *, step: int) -> None:
        """Log one step's values."""

    def flush(self) -> None:
        """Send anything buffered."""


@dataclass(frozen=True)
class Selection:
    """Best-model selection and early stopping on a validated value.

    Attributes
    ----------
    monitor
        The key of the validation record (``val_macro_f1``).
    mode
        ``max`` or ``min``.
    patience
        Stop after this many validations without improvement (``None``: never).
    """

    monitor: str
    mode: Literal["max", "min"] = "max"
    patience: int | None = None


@dataclass
class FitResult:
    """What :func:`fit` returns.

    Attributes
    ----------
    history
        One record per logged step: ``{"step": s, <name>: value, ...}``.
    summary
        ``steps_run``, ``stopped`` (why), ``world_size``, ``device``, ``precision`` and, with a
        :class:`Selection`, ``best_step`` and ``best_<monitor>``.
    rank
        This process's global rank (0 writes files).
    """

    history: list[dict[str, float]]
    summary: dict[str, Any]
    rank: int = 0
    world: int = 1


@dataclass(frozen=True)
class Layout:
    """Where training runs: accelerator, processes per node, nodes and the world size."""

    accelerator: Literal["cpu", "cuda"]
    devices: int
    num_nodes: int
    distributed: bool

    @property
    def world(self) -> int:
        """Processes in all."""
        return self.devices * self.num_nodes


def resolve_layout(settings: EngineSettings, *, what: str) -> Layout:
    """The accelerator and process layout ``settings`` ask for, checked against this machine.

    ``devices``/``num_nodes: auto`` take torchrun's ``LOCAL_WORLD_SIZE`` and ``WORLD_SIZE`` when set.

    Raises
    ------
    ConfigError
        ``device: cuda`` without a CUDA device; ``devices``/``num_nodes`` above 1 without ``strategy: ddp``;
        a layout that disagrees with the torchrun that started this process.
    """
    if settings.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{what}.device is `cuda` but PyTorch sees no CUDA device; use `auto` or `cpu`")
    accelerator: Literal["cpu", "cuda"] = "cuda" if settings.device != "cpu" and torch.cuda.is_available() else "cpu"
    env_world, env_local = os.environ.get("WORLD_SIZE"), os.environ.get("LOCAL_WORLD_SIZE")
    launched = env_world is not None and env_local is not None
    devices = settings.devices if settings.devices != "auto" else (int(env_local) if launched else 1)
    nodes = settings.num_nodes if settings.num_nodes != "auto" else (
        max(1, int(env_world) // max(int(env_local), 1)) if launched else 1)
    if settings.strategy != "ddp":
        if devices * nodes > 1 or (launched and int(env_world) > 1):
            raise ConfigError(f"{what}: {devices} device(s) × {nodes} node(s) (or a torchrun launch) need "
                              f"`{what}.strategy: ddp`")
        return Layout(accelerator, 1, 1, distributed=False)
    if not launched and devices * nodes > 1:
        raise ConfigError(
            f"{what}: strategy ddp with {devices} × {nodes} processes is started by torchrun, one process per device: "
            f"`torchrun --nproc_per_node {devices} --nnodes {nodes} -m xmodal.cli train ...` (or Kubeflow's trainer)")
    if launched and devices * nodes != int(env_world):
        raise ConfigError(f"{what}: devices {devices} × num_nodes {nodes} = {devices * nodes} processes, but torchrun "
                          f"started {env_world}; set both to `auto` or match --nproc_per_node × --nnodes")
    if accelerator == "cuda" and devices > torch.cuda.device_count():
        raise ConfigError(f"{what}.devices is {devices} but this node has {torch.cuda.device_count()} GPU(s)")
    return Layout(accelerator, devices, nodes, distributed=True)


# ---------------------------------------------------------------------- RNG state
def rng_state() -> dict[str, Any]:
    """torch (CPU and CUDA), NumPy's global and Python's ``random`` states as tensors and plain values."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
        "python": _plain(random.getstate()),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Put back what :func:`rng_state` saved."""
    torch.set_rng_state(state["torch"].cpu())
    n = state["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    random.setstate(_tuples(state["python"]))
    if "cuda" in state and torch.cuda.is_available():  # as many devices as both runs have
        for device, saved in enumerate(state["cuda"][:torch.cuda.device_count()]):
            torch.cuda.set_rng_state(saved.cpu(), device)


def _plain(value: Any) -> Any:
    return [_plain(v) for v in value] if isinstance(value, tuple | list) else value


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


# ---------------------------------------------------------------------- callbacks
def _checkpoint_io() -> Any:
    from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

    from xmodal._io import atomic_file

    class AtomicCheckpointIO(TorchCheckpointIO):
        """``torch.save`` to a temporary file renamed onto the checkpoint: a kill never leaves half a file.

        Lightning's read of the checkpoint being resumed gets the state :func:`read_checkpoint` read and checked
        (``preloaded``, filled by :func:`fit` once it is), not the file again: what is restored is what was checked.
        """

        preloaded: list[tuple[Path, dict[str, Any]]]

        def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
            with atomic_file(path) as tmp:
                torch.save(checkpoint, tmp)

        def load_checkpoint(self, path: Any, map_location: Any = None, weights_only: bool | None = None
                            ) -> dict[str, Any]:
            if self.preloaded and Path(path) == self.preloaded[0][0]:
                return self.preloaded.pop()[1]
            raise RuntimeError(f"{path}: the engine resumes only the checkpoint it read and checked")

    io = AtomicCheckpointIO()
    io.preloaded = []
    return io


@dataclass
class _Run:
    """The engine's own state, saved in every checkpoint under ``callbacks/xmodal_engine``."""

    digest: str
    history: list[dict[str, float]] = field(default_factory=list)
    best_step: int | None = None
    best_value: float | None = None
    best_state: dict[str, torch.Tensor] | None = None
    stale: int = 0
    stopped: str | None = None


def _callback_cls() -> type:
    import lightning.pytorch as pl

    class EngineCallback(pl.Callback):
        """Loader position, RNG, history, validation, stopping, checkpoints, progress and live logging."""

        def __init__(self, *, run: _Run, loader: StepLoader, steps: int, every: int, path: Path | None,
                     selection: Selection | None, live: LiveLogger | None, desc: str,
                     on_record: Callable[[int, dict[str, float]], None] | None) -> None:
            self.run, self.loader, self.steps, self.every, self.path = run, loader, steps, every, path
            self.selection, self.live, self.desc, self.on_record = selection, live, desc, on_record
            self._pending_rng: dict[str, Any] | None = None
            self._bar: Any = None

        @property
        def state_key(self) -> str:
            return STATE_KEY

        def state_dict(self) -> dict[str, Any]:
            r = self.run
            return {"digest": r.digest, "history": r.history, "best_step": r.best_step, "best_value": r.best_value,
                    "best_state": r.best_state, "stale": r.stale, "stopped": r.stopped, "rng": rng_state()}

        def load_state_dict(self, state: dict[str, Any]) -> None:
            self.run = _Run(digest=state["digest"], history=list(state["history"]), best_step=state["best_step"],
                            best_value=state["best_value"], best_state=state["best_state"], stale=int(state["stale"]),
                            stopped=state["stopped"])
            self._pending_rng = state["rng"]
            self.loader.finished = self.run.stopped is not None  # resumed from the checkpoint written when it stopped

        def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
            # before Lightning creates the loader's iterator (and prefetches its first batch)
            self.loader.rank, self.loader.world = trainer.global_rank, trainer.world_size

        def on_train_start(self, trainer: Any, pl_module: Any) -> None:
            if trainer.is_global_zero:
                from tqdm.auto import tqdm

                self._bar = tqdm(total=self.steps, initial=self.loader.position, desc=self.desc, unit="step",
                                 disable=None, leave=False)

        def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
            if self._pending_rng is not None:
                set_rng_state(self._pending_rng)
                self._pending_rng = None

        def on_train_batch_end(self, trainer: Any, pl_module: XmodalModule, outputs: Any, batch: Any,
                               batch_idx: int) -> None:
            step = int(batch["step"])
            self.loader.position = step + 1
            record = pl_module.take_record() or {}
            loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
            if isinstance(loss, torch.Tensor):
                pl_module.check_finite("total", loss, where=f"step {step + 1}")
            if pl_module.validation_due(step):
                record.update(self._validate(pl_module, step))
            if record:
                record = {"step": float(step), **record}
                self.run.history.append(record)
                if self.live is not None and trainer.is_global_zero:
                    self.live.log_metrics({k: v for k, v in record.items() if k != "step"}, step=step)
            if self.on_record is not None:
                self.on_record(step + 1, record)
            if self.run.stopped is None:
                reason = None
                if self.selection is not None and self.selection.patience is not None \
                        and self.run.stale >= self.selection.patience:
                    reason = f"no improvement of {self.selection.monitor} in {self.selection.patience} validations"
                reason = reason or pl_module.stop_reason(self.run.history)
                if reason is not None:
                    self.run.stopped = reason
                    trainer.should_stop = True
                    log.info("%s: stopping after step %d: %s", self.desc, step + 1, reason)
            if self._bar is not None:
                self._bar.update(1)
                if record:
                    shown = {k: f"{v:.3g}" for k, v in record.items() if k in ("loss_total", "total")
                             or (self.selection is not None and k == self.selection.monitor)}
                    self._bar.set_postfix(shown, refresh=False)
            done = step + 1 == self.steps or self.run.stopped is not None
            if self.path is not None and ((step + 1) % self.every == 0 or done):
                trainer.save_checkpoint(self.path)

        def _validate(self, module: XmodalModule, step: int) -> dict[str, float]:
            _same_buffers(module)  # every rank validates the same model, so all take the same decisions
            was = module.training
            module.eval()
            try:
                with torch.no_grad():
                    values = module.validate()
            finally:
                module.train(was)
            sel = self.selection
            if sel is not None:
                value = float(values[sel.monitor])
                best = self.run.best_value
                better = best is None or (value > best if sel.mode == "max" else value < best)
                if better:
                    self.run.best_step, self.run.best_value, self.run.stale = step + 1, value, 0
                    self.run.best_state = {k: v.detach().clone() for k, v in module.state_dict().items()}
                else:
                    self.run.stale += 1
            return values

        def on_train_end(self, trainer: Any, pl_module: Any) -> None:
            _same_buffers(pl_module)
            if self._bar is not None:
                self._bar.close()
            if self.live is not None and trainer.is_global_zero:
                self.live.flush()

        def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
            if self._bar is not None:
                self._bar.close()
            if self.live is not None and trainer.is_global_zero:
                with contextlib.suppress(Exception):
                    self.live.flush()

    return EngineCallback


def _same_buffers(module: torch.nn.Module) -> None:
    """Give every rank rank 0's buffers (BatchNorm running statistics).

    DDP broadcasts them at the start of each forward pass, so after the last one each rank holds its own
    update; on GPUs SyncBatchNorm keeps them equal, on CPU (gloo, no SyncBatchNorm) this does.
    """
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return
    for buffer in module.buffers():
        dist.broadcast(buffer.data, src=0)


# ---------------------------------------------------------------------- fit
def read_checkpoint(path: Path, *, digest: str, module: XmodalModule, what: str,
                    loops: dict[str, Any] | None = None) -> dict[str, Any]:
    """Read and check a checkpoint before Lightning restores it.

    Parameters
    ----------
    path
        The checkpoint file.
    digest
        What it must have been written with (:func:`fit`'s digest, the process count included).
    module
        The fresh module: its weights, optimisers, schedulers and extra state are what the saved ones must fit.
    what
        The method's name, for messages.
    loops
        A fresh trainer's loop state, the layout the saved one must have (``None``: only its type is checked).

    Returns
    -------
    dict
        The checkpoint, every piece checked; ``module`` holds its weights.

    Raises
    ------
    XmodalInputError
        Truncated, corrupt or holding anything but tensors and plain values; not an xmodal checkpoint;
        written with other settings, data, seed or process count; a piece that is damaged (naming it): weights
        that do not fit the model, optimiser or scheduler states of other groups, shapes or kinds, loop
        counters, history, best state, RNG states or the method's own values of the wrong kind.
    """
    from xmodal._safe_load import load_torch
    from xmodal.train._checks import Damaged

    state = load_torch(path, what=f"{what} checkpoint", fix=_FIX)
    engine = state.get("callbacks", {}).get(STATE_KEY) if isinstance(state, dict) else None
    missing = [k for k in _CHECKPOINT_KEYS if not isinstance(state, dict) or k not in state]
    if not isinstance(engine, dict) or "digest" not in engine:
        missing.append(f"callbacks/{STATE_KEY}")
    if missing:
        raise XmodalInputError(f"not a {what} checkpoint of the xmodal engine (no {', '.join(missing)})", path=path,
                               fix=_FIX)
    if engine["digest"] != digest:
        raise XmodalInputError(
            "the checkpoint was written with other settings, training data, data shapes, seed or number of "
            "processes", path=path,
            fix="resume with the parameters and data it was started with, or train without --resume to start over")
    try:
        _check_pieces(state, module=module, loops=loops)
    except Damaged as exc:
        doesnt_fit = " (the checkpoint does not fit the model)" if exc.piece.startswith("state_dict") else ""
        raise XmodalInputError(f"the checkpoint's {exc.piece} is damaged: {exc.problem}{doesnt_fit}", path=path,
                               fix=_FIX) from None
    try:
        module.load_state_dict(state["state_dict"])
    except (RuntimeError, ValueError, KeyError, TypeError) as exc:
        raise XmodalInputError(f"the checkpoint does not fit the model ({type(exc).__name__}: "
                               f"{first_line(exc, limit=200)})", path=path, fix=_FIX) from None
    return state


def _check_pieces(state: dict[str, Any], *, module: XmodalModule, loops: dict[str, Any] | None) -> None:
    """Check every piece of ``state`` Lightning or the engine restores (raises :class:`~._checks.Damaged`)."""
    from packaging.version import InvalidVersion, Version

    from xmodal.train import _checks as c

    version = state.get("pytorch-lightning_version")
    try:
        if not isinstance(version, str) or Version(version) < Version("2.0"):
            raise c.Damaged("pytorch-lightning_version", f"expected a Lightning 2 version, found {version!r}")
    except InvalidVersion:
        raise c.Damaged("pytorch-lightning_version", f"not a version: {version!r}") from None
    for key in ("epoch", "global_step"):
        if key in state:
            c._count(key, state[key])
    c.check_weights("state_dict", state["state_dict"], module.state_dict())
    optimizers, schedulers = c.fresh_optimizers(module)
    for key, fresh in (("optimizer_states", optimizers), ("lr_schedulers", schedulers)):
        if not isinstance(state[key], list) or len(state[key]) != len(fresh):
            found = f"{len(state[key])} entries" if isinstance(state[key], list) else c._kind(state[key])
            raise c.Damaged(key, f"expected a list of {len(fresh)} (the model's), found {found}")
    for i, (saved, fresh) in enumerate(zip(state["optimizer_states"], optimizers, strict=True)):
        c.check_optimizer(f"optimizer_states[{i}]", saved, fresh)
    for i, (saved, fresh) in enumerate(zip(state["lr_schedulers"], schedulers, strict=True)):
        c.check_scheduler(f"lr_schedulers[{i}]", saved, fresh)
    if loops is not None:
        c.check_loops("loops", state["loops"], loops)
    elif not isinstance(state["loops"], dict):
        raise c.Damaged("loops", f"expected a mapping, found {c._kind(state['loops'])}")
    c.check_engine_state(f"callbacks/{STATE_KEY}", state["callbacks"][STATE_KEY], module=module)
    if "xmodal_module" not in state:
        raise c.Damaged("xmodal_module", "missing (the method's own values)")
    c.check_extra_state("xmodal_module", state["xmodal_module"], module.extra_state())


def check_checkpoint_place(checkpoint_dir: str | Path, *, resume: bool, what: str = "model") -> Path:
    """Check where :func:`fit` would write and read ``checkpoint.pt``, before any work is done.

    The checkpoint folder must be a real folder (never a link: the engine writes and removes files in it) and
    ``checkpoint.pt`` a regular file or absent; for a resume, not a link either.

    Parameters
    ----------
    checkpoint_dir
        The folder :func:`fit` gets.
    resume
        Whether the checkpoint is to be read.
    what
        The method's name, for messages.

    Returns
    -------
    Path
        The checkpoint file.

    Raises
    ------
    ConfigError
        The folder is a symbolic link.
    XmodalInputError
        ``checkpoint.pt`` is a folder or another non-file, or (resuming) a symbolic link.
    """
    path = Path(checkpoint_dir) / CHECKPOINT
    folder = path.parent
    if folder.is_symlink():
        raise ConfigError(f"{folder}: the {what} checkpoint folder is a symbolic link (to {os.readlink(folder)}); the "
                          "engine writes and removes files in it, and follows no link there: remove the link; "
                          "nothing was written")
    if path.is_symlink():
        if resume:
            raise XmodalInputError("a symbolic link, not a checkpoint file; xmodal reads no checkpoint through a "
                                   "link", path=path, fix="put the file itself here, or train without --resume "
                                   "(the link is then replaced by a new checkpoint)")
        return path
    if path.exists() and not path.is_file():
        kind = "a folder" if path.is_dir() else "not a regular file"
        raise XmodalInputError(f"{kind}, not a checkpoint file; nothing was written", path=path,
                               fix=f"remove it (`rm -r {path}`) and train again")
    return path


@contextlib.contextmanager
def _quiet_lightning() -> Iterator[None]:
    """Lightning's start-up banners go to debug level; its advice on DataLoader workers does not apply here."""
    loggers = [logging.getLogger(n) for n in ("lightning.pytorch", "lightning.fabric", "pytorch_lightning")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
            warnings.filterwarnings("ignore", message=r".*Your `IterableDataset` has `__len__` defined.*")
            warnings.filterwarnings("ignore", message=r".*is an invalid type: .*StepLoader.*")
            warnings.filterwarnings("ignore", message=r".*The number of training batches.*")
            warnings.filterwarnings("ignore", message=r".*gradient_clip_val.*")
            warnings.filterwarnings("ignore", message=r".*LeafSpec.*")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def fit(
    module: XmodalModule,
    loader: StepLoader,
    *,
    settings: EngineSettings,
    digest: str,
    seed: int,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    selection: Selection | None = None,
    live: LiveLogger | None = None,
    gradient_clip: float | None = None,
    what: str = "model",
    on_record: Callable[[int, dict[str, float]], None] | None = None,
) -> FitResult:
    """Train ``module`` on ``loader``'s batches with Lightning; leave the trained (or best) weights in it.

    Parameters
    ----------
    module
        The method's LightningModule (see :class:`XmodalModule`), freshly initialised.
    loader
        The steps' batches; its ``total`` is the number of steps.
    settings
        Device, precision, strategy, devices, nodes, checkpoint interval and threads.
    digest
        What a checkpoint must match to be resumed (the method's settings, data shapes, seed); the
        process count is added here.
    seed
        Seeds the RNG each process starts from (dropout, noise): ``seed`` on rank 0, offset on the others.
    checkpoint_dir
        Where ``checkpoint.pt`` is written every ``settings.checkpoint_every`` steps and at the end;
        ``None``: no checkpoints.
    resume
        Continue from ``checkpoint_dir/checkpoint.pt`` when it exists.
    selection
        Keep the best validated weights and stop early on them.
    live
        Receives every record from rank 0 while training runs.
    gradient_clip
        Clip the gradient norm (automatic optimisation).
    what
        The method's name, for messages and the progress bar.
    on_record
        ``on_record(step, record)`` after every step (``step`` counts from 1; ``record`` is empty on steps
        that recorded nothing), e.g. a tuner's pruning.

    Returns
    -------
    FitResult
        History and summary; ``module`` is left on CPU in eval mode.
    """
    import lightning.pytorch as pl
    from lightning.pytorch.strategies import DDPStrategy

    layout = resolve_layout(settings, what=f"methods.{what}")
    digest = f"{digest}-p{layout.world}"
    threads = torch.get_num_threads()
    if settings.threads:
        torch.set_num_threads(settings.threads)
    path = None if checkpoint_dir is None else Path(checkpoint_dir) / CHECKPOINT
    ckpt_path = None
    run = _Run(digest=digest)
    if resume and path is None:
        raise XmodalInputError("--resume needs a checkpoint folder")
    if checkpoint_dir is not None:
        check_checkpoint_place(checkpoint_dir, resume=resume, what=what)
    resuming = resume and path is not None and path.is_file()
    if resume and not resuming:
        log.warning("%s: no checkpoint at %s; training from the start", what, path)
    callback = _callback_cls()(run=run, loader=loader, steps=loader.total, every=settings.checkpoint_every,
                               path=path, selection=selection, live=live, desc=what, on_record=on_record)
    checkpoint_io = _checkpoint_io()
    if layout.distributed:
        strategy: Any = DDPStrategy(process_group_backend="nccl" if layout.accelerator == "cuda" else "gloo",
                                    find_unused_parameters=not module.automatic_optimization)
    else:
        strategy = "auto"
    try:
        with _quiet_lightning():
            trainer = pl.Trainer(
                accelerator="gpu" if layout.accelerator == "cuda" else "cpu", devices=layout.devices,
                num_nodes=layout.num_nodes, strategy=strategy, precision=settings.precision, max_epochs=1,
                logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                num_sanity_val_steps=0, limit_val_batches=0, use_distributed_sampler=False,
                sync_batchnorm=layout.distributed and layout.world > 1 and layout.accelerator == "cuda",
                callbacks=[callback],
                plugins=[checkpoint_io], gradient_clip_val=gradient_clip if module.automatic_optimization
                else None, default_root_dir=str(path.parent) if path is not None else None,
                deterministic=None)
            if resuming:  # every piece checked against this module and trainer before anything is restored
                state = read_checkpoint(path, digest=digest, module=module, what=what,
                                        loops=trainer._checkpoint_connector._get_loops_state_dict())
                checkpoint_io.preloaded.append((path, state))
                ckpt_path = path
                log.info("%s: resuming from %s", what, path)
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
            rank = trainer.global_rank
            if rank:
                torch.manual_seed(int(seed) * 7919 + rank)  # other dropout masks and noise on each rank
            try:
                trainer.fit(module, train_dataloaders=loader, ckpt_path=ckpt_path, weights_only=True)
            except SystemExit as exc:  # Lightning turns Ctrl-C into exit(1); the CLI reports it as interrupted
                if isinstance(exc.__context__, KeyboardInterrupt):
                    raise KeyboardInterrupt from None
                raise
    finally:
        torch.set_num_threads(threads)
    run = callback.run
    if selection is not None and run.best_state is not None:
        module.load_state_dict(run.best_state)
    module.cpu().eval()
    summary: dict[str, Any] = {"steps_run": loader.position, "stopped": run.stopped or "max_steps",
                               "world_size": layout.world, "device": layout.accelerator,
                               "precision": settings.precision}
    if selection is not None:
        summary["best_step"] = run.best_step
        summary[f"best_{selection.monitor}"] = run.best_value
    return FitResult(history=run.history, summary=summary, rank=rank, world=layout.world)


def global_rank() -> int:
    """This process's rank in a distributed run (0 when not distributed)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank()
    return int(os.environ.get("RANK", "0"))


__all__ = ["CHECKPOINT", "FitResult", "Layout", "LiveLogger", "Selection", "check_checkpoint_place", "fit",
           "global_rank", "read_checkpoint", "resolve_layout", "rng_state", "set_rng_state"]
