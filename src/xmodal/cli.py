"""``xmodal <stage>``: parse → load params → call the stage → exit code.

Exit codes: 0 success; 2 bad input or parameters (one message on stderr, nothing written);
1 an unexpected error.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from xmodal.errors import ConfigError, XmodalInputError

EPILOG = """examples:
  xmodal ingest --dataset synthetic_paired
  xmodal train --dataset pbmc68k --method gwot --set methods.gwot.epsilon=0.01
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
    sub.add_parser("report", parents=[common], help="write reports/summary.json and print the table")
    sub.add_parser("list", parents=[common], help="list datasets, methods and runs in params")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit code (also used as the console script)."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return _dispatch(args)
    except (XmodalInputError, ConfigError) as exc:
        sys.stderr.write(f"xmodal {args.command}: error: {exc}\n")
        return 2


def _dispatch(args: argparse.Namespace) -> int:
    from xmodal import stages
    from xmodal.config import load_params

    params = load_params(args.params, overrides=args.overrides)
    if args.command in ("ingest", "preprocess"):
        getattr(stages, args.command).run(params, dataset=args.dataset, root=args.root)
    elif args.command in ("train", "evaluate"):
        getattr(stages, args.command).run(params, dataset=args.dataset, method=args.method, root=args.root)
    elif args.command == "register":
        if args.all == bool(args.method):
            raise ConfigError("register: give --dataset with --method, or --all alone")
        pairs = ([(d, m) for g in params.runs.values() for d in g.datasets for m in g.methods] if args.all
                 else [(args.dataset, args.method)])
        for dataset, method in pairs:
            decision = stages.register.run(params, dataset=dataset, method=method, root=args.root).decision
            sys.stdout.write(f"{dataset}/{method}: version {decision['version']} of {decision['model_name']} "
                             f"{decision['decision']}: {'; '.join(decision['reasons'])}\n")
    elif args.command == "report":
        summary = stages.report.run(params, root=args.root)
        sys.stdout.write(stages.report.format_table(summary) + "\n\nwritten: reports/summary.json\n")
    elif args.command == "list":
        from xmodal.methods import METHODS

        sys.stdout.write(f"datasets: {', '.join(params.datasets)}\nmethods: {', '.join(METHODS)}\n")
        for family, group in params.runs.items():
            sys.stdout.write(f"runs.{family}: {group.datasets} × {group.methods}\n")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
