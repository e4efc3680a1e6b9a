"""``xmodal <stage>``: parse → load params → call the stage → exit code.

Exit codes: 0 success; 2 bad input or parameters (one message on stderr, nothing written);
1 a failed task of a local pipeline run (one message naming the task), a diverged training (one message
naming the loss term) or an unexpected error; 130 interrupted by Ctrl-C (143 by SIGTERM, as Kubernetes
stops a pod), with nothing half-written left behind and, for a training that checkpoints, how to resume.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from xmodal.errors import (
    ConfigError,
    PipelineRunError,
    TrainingDivergedError,
    XmodalInputError,
    first_line,
)

if TYPE_CHECKING:
    from xmodal.config import Params

EPILOG = """examples:
  xmodal ingest --dataset pbmc68k
  xmodal train --dataset pbmc68k --method gwot --set methods.gwot.epsilon=0.01
  xmodal train --dataset pbmc68k --method geoadvae --resume
  xmodal tune --dataset DATASET --method dualdann --trials 20
  xmodal register --all
  xmodal report
Every command reads params.yaml (--params); --set dotted.key=value overrides it."""


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--params", default="params.yaml", help="parameter file (default: params.yaml)")
    common.add_argument("--root", default=".", help="project root holding data/, models/, reports/")
    common.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a parameter, e.g. --set methods.gwot.epsilon=0.01 (repeatable)")
    common.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser = argparse.ArgumentParser(prog="xmodal", description="Cross-modal single-cell model lifecycle.",
                                     epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("ingest", parents=[common], help="raw data → validated data/ingested/<dataset>")
    p.add_argument("--dataset", required=True)
    p = sub.add_parser("preprocess", parents=[common], help="split + preprocess → data/processed/<dataset>")
    p.add_argument("--dataset", required=True)
    for name, text in (("train", "fit a method → models/<dataset>/<method>"),
                       ("evaluate", "score a model → reports/<dataset>/<method>/metrics.json")):
        p = sub.add_parser(name, parents=[common], help=text)
        p.add_argument("--dataset", required=True)
        p.add_argument("--method", required=True)
        if name == "train":
            p.add_argument("--resume", action="store_true",
                           help="continue from checkpoints/<dataset>/<method>/checkpoint.pt (the deep methods, "
                           "which train through xmodal.train: geoadvae, dualdann); the result is bit-identical to "
                           "an uninterrupted run. Several processes: `torchrun --nproc_per_node N -m xmodal.cli "
                           "train ...` with methods.<method>.strategy: ddp")
            p.add_argument("--best-params", metavar="PATH",
                           help="apply the configuration `xmodal tune` found (its best_params.json) over "
                           "params.yaml; --set still overrides it")
    p = sub.add_parser(
        "tune", parents=[common], help="hyper-parameter search (Optuna) on validation cells → best_params.json",
        description="Search a method's hyper-parameters with Optuna (TPE sampler, median pruner; settings under "
        "`tune:` in params.yaml). Every trial trains on the training cells and is judged on the validation cells "
        "(for dualdann: the target domain's ATAC validation cells); test cells never reach the search. The study is "
        "stored in tune.storage (sqlite:///optuna.db by default, study xmodal-<method>-<dataset>; a second call "
        "continues it), every trial is a nested MLflow run, and the best configuration goes to "
        "reports/tune/<dataset>/<method>/best_params.json with trials.csv and tune_history.png.",
        epilog="example (DATASET: a dataset of params.yaml the method works on):\n"
        "  xmodal tune --dataset DATASET --method dualdann --trials 20\n"
        "  xmodal train --dataset DATASET --method dualdann --best-params reports/tune/DATASET/dualdann/best_params.json",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True)
    p.add_argument("--method", required=True)
    p.add_argument("--trials", type=int, help="trials to run now (default: tune.trials)")
    p.add_argument("--timeout", type=float, help="seconds after which no new trial starts (default: tune.timeout)")
    p = sub.add_parser("register", parents=[common],
                       help="log to MLflow, alias `challenger`, promote to `champion` if it passes the gates",
                       description="Log the trained model to MLflow (params, per-step metrics, plots, model, lineage), "
                       "register it as a new version with alias `challenger`, re-score the current champion on the "
                       "same held-out cells and move `champion` only if the gates in params.yaml pass and the "
                       "primary metric improves. Writes reports/registry/<dataset>/<method>/decision.json.")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--all", action="store_true", help="every (dataset, method) in params.runs")
    which.add_argument("--dataset", help="one dataset (with --method)")
    p.add_argument("--method", help="one method (with --dataset)")
    p.add_argument("--registered-as", metavar="DATASET",
                   help="join this dataset's registered model (xmodal-<method>-<DATASET>) instead of the trained "
                   "dataset's: a model retrained on new cells then challenges the existing champion on them")
    sub.add_parser("report", parents=[common], help="write reports/summary.json and print the table")
    p = sub.add_parser(
        "monitor", parents=[common], help="drift of new data vs the champion's training cells → retrain yes/no",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Compare new data with the reference: the training cells of data/processed/<dataset> (what the "
        "current champion was trained on) in their ingested features. Per modality, a projection (log1p for counts, "
        "z-score, PCA with monitor.n_components) is fitted on reference cells only; Evidently tests every component "
        "(monitor.stattest at monitor.stattest_threshold). Retrain when the drifted share of any modality is >= "
        "monitor.retrain_share. Writes reports/monitor/<dataset>/drift.html (Evidently report) and drift.json "
        "(decision, reasons, per-component scores) and prints one line per modality and `retrain: yes|no`. When "
        "$GITHUB_OUTPUT is set, appends `retrain=true|false` to that file. Exit code 0 with or without drift; "
        "2 for bad input (missing reference: run `dvc repro`; new data lacking features, named; too few cells).",
        epilog="example:\n  xmodal ingest --dataset incoming      # new cells, declared under datasets: in params.yaml\n"
        "  xmodal monitor --dataset pbmc68k --new data/ingested/incoming")
    p.add_argument("--dataset", required=True, help="the dataset the champion was trained on (reference)")
    p.add_argument("--new", required=True, metavar="PATH",
                   help="new data: a folder written like data/ingested/<name> (data.h5mu + schema.json: `xmodal ingest` "
                   "of a dataset of the same family) or its .h5mu file, with the reference's modality and feature names; "
                   "a relative path is taken from --root")
    _pipeline_parser(sub, common)
    sub.add_parser("list", parents=[common], help="list the data families, methods, and the datasets and runs in params")
    return parser


_OUT_OF_MEMORY = ("out of memory; nothing was written. Fix: use less data or smaller models (lower the sizes in "
                  "params.yaml, e.g. the method's widths or batch size), or run on a machine with more memory")


class Terminated(BaseException):
    """SIGTERM arrived (Kubernetes stopping the pod): unwinds like Ctrl-C, so temporaries are removed."""


_SIGNALLED: list[int] = []
"""Signals that arrived during this command. A C extension can turn the KeyboardInterrupt a signal raises into an
error of its own (Cython module initialisation, interrupted mid-import, raises ValueError): with a signal
recorded, any error still ends the command as interrupted (130 / 143)."""


def _on_signal(signum: int, frame: object) -> None:
    import signal

    _SIGNALLED.append(signum)
    if signum == signal.SIGTERM:
        raise Terminated
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None, *, early_signals: Sequence[int] = ()) -> int:
    """Run the CLI; returns the exit code.

    Parameters
    ----------
    argv
        The arguments (default: ``sys.argv[1:]``).
    early_signals
        Signals that arrived before this function ran (the console script, :mod:`xmodal._launch`, records them
        while Python imports the CLI): the command then ends as interrupted before it starts.
    """
    import signal

    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    args.argv = argv
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    _SIGNALLED.clear()
    handled = (signal.SIGTERM, signal.SIGINT) if _main_thread() else ()
    previous = {sig: signal.signal(sig, _on_signal) for sig in handled}
    try:
        if early_signals:
            _SIGNALLED.extend(early_signals)
            return _interrupted(args)
        return _dispatch(args)
    except (XmodalInputError, ConfigError, PipelineRunError, TrainingDivergedError) as exc:
        if _SIGNALLED:
            return _interrupted(args)
        sys.stderr.write(f"xmodal {args.command}: error: {exc}\n")
        return 1 if isinstance(exc, PipelineRunError | TrainingDivergedError) else 2
    except (KeyboardInterrupt, Terminated):
        return _interrupted(args)
    except MemoryError:
        sys.stderr.write(f"xmodal {args.command}: error: {_OUT_OF_MEMORY}\n")
        return 2
    except Exception as exc:
        if _SIGNALLED:  # an extension turned the interrupt into an error of its own
            return _interrupted(args)
        # PyTorch reports a failed allocation as a RuntimeError
        if not isinstance(exc, RuntimeError) or not any(
                text in str(exc) for text in ("can't allocate memory", "out of memory", "not enough memory")):
            raise
        sys.stderr.write(f"xmodal {args.command}: error: {_OUT_OF_MEMORY} ({first_line(exc, limit=200)})\n")
        return 2
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _interrupted(args: argparse.Namespace) -> int:
    """Report an interrupted command: 143 after SIGTERM, 130 after Ctrl-C."""
    import signal

    sys.stderr.write(f"xmodal {args.command}: error: interrupted; {_after_interrupt(args)}\n")
    return 143 if signal.SIGTERM in _SIGNALLED else 130


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _after_interrupt(args: argparse.Namespace) -> str:
    """What an interrupted command left, and how to go on."""
    if args.command == "train":
        import shlex

        from xmodal.methods import METHODS

        spec = METHODS.get(args.method)
        argv = [a for a in getattr(args, "argv", None) or ["train", "--dataset", args.dataset, "--method", args.method]
                if a != "--resume"]
        again = shlex.join(["xmodal", *argv])
        if spec is not None and spec.resumable:
            return f"resume with `{again} --resume` (it continues from the last checkpoint)"
        return f"no model was written; `{again}` starts over ({args.method} does not checkpoint)"
    if args.command == "register":
        return ("the registry may hold a version without its aliases; register again (the same model reuses its "
                "version, and the decision is made again)")
    if args.command == "tune":
        return "the study keeps its finished trials; the same `xmodal tune` command continues it"
    return "nothing was written (outputs are replaced only when a stage completes); run the command again"


def _pipeline_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "pipeline", help="Kubeflow: compile, run locally (kfp.local) or submit the pipelines",
        description="The lifecycle as a Kubeflow Pipelines (v2) pipeline. Resources, the GPU node pool, "
        "secrets and caching come from the `pipeline:` section of params.yaml; the validated params (with any "
        "--set) are compiled in, as one line of JSON, as the default of the pipeline parameter `params_text`.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  xmodal pipeline compile                      # → pipelines/compiled/{training,retraining}.yaml\n"
        "  xmodal pipeline run --local --pipeline retraining  # monitor, retrain only on drift\n"
        "  xmodal pipeline run --local --dataset pbmc68k\n"
        "  xmodal pipeline submit --host https://kubeflow.example.org/pipeline --recurring")
    actions = p.add_subparsers(dest="action", required=True)
    c = actions.add_parser("compile", parents=[common], help="write the IR YAML of each pipeline")
    c.add_argument("--output-dir", default="pipelines/compiled", help="where the YAML goes (default: %(default)s)")
    r = actions.add_parser("run", parents=[common], help="run a pipeline here with kfp.local (needs --local)")
    r.add_argument("--local", action="store_true", required=True,
                   help="SubprocessRunner(use_venv=False): every task in this Python environment")
    s = actions.add_parser("submit", parents=[common], help="upload and start a run on a KFP host")
    s.add_argument("--host", required=True, help="KFP API endpoint, e.g. https://kubeflow.example.org/pipeline")
    s.add_argument("--experiment", default="xmodal", help="KFP experiment (default: %(default)s)")
    s.add_argument("--recurring", action="store_true", help="create a recurring run on pipeline.schedule")
    s.add_argument("--cron", help="6-field cron (seconds first) instead of pipeline.schedule")
    s.add_argument("--namespace", help="Kubeflow namespace (multi-user installs)")
    s.add_argument("--service-account", help="service account of the run's pods")
    s.add_argument("--wait", action="store_true", help="wait for the run to finish")
    c.add_argument("--pipeline", default="all", choices=["training", "retraining", "all"],
                   help="which pipeline (default: %(default)s)")
    for a in (r, s):
        a.add_argument("--pipeline", default="training", choices=["training", "retraining"],
                       help="which pipeline (default: %(default)s)")
    for a in (c, r, s):
        a.add_argument("--dataset", help="default dataset (default: pipeline.dataset or the first of runs)")
        a.add_argument("--new-dataset", help="retraining: dataset of incoming cells (default: pipeline.new_dataset)")


def _pipeline(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from xmodal.config import load_params
    from xmodal.pipelines import run as pipelines

    params = load_params(args.params, overrides=args.overrides)
    if args.action == "compile":
        for name in pipelines.PIPELINES if args.pipeline == "all" else (args.pipeline,):
            out = pipelines.compile_pipeline(name, params, dataset=args.dataset, new_dataset=args.new_dataset,
                                             output=Path(args.output_dir) / f"{name}.yaml")
            sys.stdout.write(f"compiled: {out}\n")
    elif args.action == "run":
        result = pipelines.run_local(args.pipeline, params, root=args.root, dataset=args.dataset,
                                     new_dataset=args.new_dataset)
        sys.stdout.write(f"pipeline {args.pipeline} ran locally in {result.seconds:.1f} s; "
                         f"artifacts under {result.run_dir or result.pipeline_root}\n")
        for path in result.drift:
            drift = json.loads(path.read_text())
            sys.stdout.write(f"monitor: {'; '.join(drift['reasons'])}; retrain: {'yes' if drift['retrain'] else 'no'}\n")
            if not drift["retrain"]:
                sys.stdout.write("no drift: the training branch was skipped, the registry is unchanged\n")
        for path in result.decisions:
            sys.stdout.write(path.read_text())
    else:
        out = pipelines.submit(args.pipeline, params, host=args.host,
                               experiment=args.experiment, dataset=args.dataset, new_dataset=args.new_dataset,
                               recurring=args.recurring,
                               cron=args.cron, namespace=args.namespace, service_account=args.service_account,
                               wait=args.wait)
        sys.stdout.write(f"submitted {out['kind']} {out['id']} to {args.host}\n")
    return 0


def _monitor(params: Params, args: argparse.Namespace) -> None:
    """Run ``monitor``, print the decision, append ``retrain=true|false`` to ``$GITHUB_OUTPUT`` when it is set."""
    import os

    from xmodal.stages import monitor

    result = monitor.run(params, dataset=args.dataset, new=args.new, root=args.root)
    for name, drift in result.modalities.items():
        sys.stdout.write(f"{name}: {len(drift.drifted)}/{drift.n_columns} components drifted "
                         f"(share {drift.drifted_share:.2f}, retrain at >= {result.summary['retrain_share']:g})\n")
    sys.stdout.write(f"retrain: {'yes' if result.retrain else 'no'}\nwritten: {result.output}\n")
    if os.environ.get("GITHUB_OUTPUT"):
        with open(os.environ["GITHUB_OUTPUT"], "a") as fh:
            fh.write(f"retrain={'true' if result.retrain else 'false'}\n")


def _check_names(args: argparse.Namespace) -> None:
    """Names given on the command line become paths and registry entries: check them before anything else."""
    from xmodal._names import check_name
    from xmodal.methods import get_method

    for option in ("dataset", "registered_as", "new_dataset"):
        value = getattr(args, option, None)
        if value is not None:
            check_name(value, what="dataset", where=f"--{option.replace('_', '-')}")
    if getattr(args, "method", None) is not None:
        get_method(args.method)


def _check_root(root: str) -> None:
    """``--root`` must be a folder: stages write ``data/``, ``models/`` and ``reports/`` in it."""
    from pathlib import Path

    path = Path(root)
    if path.is_dir():
        return
    if path.exists() or path.is_symlink():
        kind = "a file" if path.is_file() else ("a broken symbolic link" if path.is_symlink() else "not a folder")
        raise ConfigError(f"--root {root}: {kind}, not a folder; --root names the project folder that holds "
                          "data/, models/ and reports/ (default: the current folder)")
    raise ConfigError(f"--root {root}: no such folder; create it, or pass the project folder that holds data/, "
                      "models/ and reports/")


def _dispatch(args: argparse.Namespace) -> int:
    from xmodal._threads import pinned_threads
    from xmodal.config import load_params

    _check_root(args.root)
    _check_names(args)
    if args.command == "pipeline":
        return _pipeline(args)
    overrides = list(args.overrides)
    if args.command == "train" and args.best_params:
        from xmodal.stages.tune import best_params_overrides

        overrides = best_params_overrides(args.best_params, method=args.method) + overrides
    params = load_params(args.params, overrides=overrides)
    with pinned_threads(params.threads):
        return _run_stage(params, args)


def _run_stage(params: Params, args: argparse.Namespace) -> int:
    """Call the stage ``args.command`` names with ``params``."""
    from xmodal import stages

    if args.command in ("ingest", "preprocess"):
        getattr(stages, args.command).run(params, dataset=args.dataset, root=args.root)
    elif args.command == "train":
        stages.train.run(params, dataset=args.dataset, method=args.method, root=args.root, resume=args.resume)
    elif args.command == "tune":
        result = stages.tune.run(params, dataset=args.dataset, method=args.method, root=args.root,
                                 trials=args.trials, timeout=args.timeout)
        sys.stdout.write(f"best validation value {result.best_value:.4f} after {result.n_trials} trials "
                         f"({result.n_pruned} pruned)\nwritten: {result.output}\n")
    elif args.command == "evaluate":
        stages.evaluate.run(params, dataset=args.dataset, method=args.method, root=args.root)
    elif args.command == "register":
        if args.all == bool(args.method):
            raise ConfigError("register: give --dataset with --method, or --all alone")
        if args.all and args.registered_as:
            raise ConfigError("register: --registered-as names one model: use it with --dataset and --method")
        pairs = (params.run_pairs() if args.all
                 else [(args.dataset, args.method)])
        for dataset, method in pairs:
            decision = stages.register.run(params, dataset=dataset, method=method, root=args.root,
                                           registered_as=args.registered_as).decision
            sys.stdout.write(f"{dataset}/{method}: version {decision['version']} of {decision['model_name']} "
                             f"{decision['decision']}: {'; '.join(decision['reasons'])}\n")
    elif args.command == "monitor":
        _monitor(params, args)
    elif args.command == "report":
        summary = stages.report.run(params, root=args.root)
        sys.stdout.write(stages.report.format_table(summary) + "\n\nwritten: reports/summary.json\n")
    elif args.command == "list":
        from xmodal.families import FAMILIES
        from xmodal.methods import METHODS

        sys.stdout.write(f"families: {', '.join(FAMILIES)}\ndatasets: {', '.join(params.datasets)}\n"
                         f"methods: {', '.join(METHODS)}\n")
        for name, entry in params.runs.items():
            sys.stdout.write(f"runs.{name}: {entry.method} on {entry.dataset}\n")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
