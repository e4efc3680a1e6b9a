"""Counterfactual expression on held-out context combinations: cycleae, seed 002's configuration, and the peers
biolord and scVI (``transform_batch``), on the same synthetic Census cells, scored against the planted truth.

The data are the demo's ``synthetic_census`` (``params.yaml``: 12 000 cells, 2 000 genes, 1 000 kept, three
``(cell_type, sex)`` combinations held out of training). Every method trains on the same training cells (raw counts
of the kept genes and the metadata) and moves the same test cells into each held-out combination along ``sex``;
what it predicts is read in one space, ``log1p(10⁴ · counts / total)`` over the kept genes, and scored by the
family's own evaluation (:func:`xmodal.families.census._evaluate.score_predictions`): R² of per-cell changes
against the true ones (all genes; the 50 that change most), R² of the predicted mean change against the observed
one, R² of per-gene means of the prediction; the mean-shift baseline, no change and the additive truth beside them.

* ``cycleae``: xmodal's defaults (``params.yaml: methods.cycleae``);
* ``cycleae_seed``: seed 002's choices where xmodal departs from them (field heads initialised U(0,1) with unit
  columns, plain-MSE integration, no label smoothing, lr 1e-4, no change calibration), the rest as ``cycleae``;
* ``cycleae_no_cycles``: the ablation xmodal trains beside it (reconstruction in the source context only);
* ``scvi``: scvi-tools' SCVI with the changed field as the batch and the other fields as categorical covariates;
  the counterfactual is ``get_normalized_expression(transform_batch=<target>)`` against ``<source>``;
* ``biolord``: biolord with every field as a categorical attribute on log-normalised input;
  ``compute_prediction_adata`` moves the cells to the target value.

The peers run in their own environment (``make peers``: the ``peers`` extra of ``pyproject.toml``), each method in
a fresh process (its seconds and peak RSS are its own). A peer that does not install or run is listed with the
reason.

    make peers && python benchmarks/counterfactual_peers.py    # → results/counterfactual_peers.json
    python benchmarks/counterfactual_peers.py --table          # the README's table from the JSON
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
PEERS_PYTHON = HERE / ".peers" / "bin" / "python"
METHODS = ("cycleae", "cycleae_seed", "cycleae_no_cycles", "scvi", "biolord")
PEERS = {"scvi", "biolord"}
SEED_CHOICES = {"field_init": "seed", "integration": "mse", "label_smoothing": 0.0, "lr": 1e-4, "calibrate": False,
                "shift_weight": 0.0}

# Each child reads the exported cells (inputs.npz + obs_*.csv + spec.json) and writes predictions.npz:
# for case k, change_k (n_k, G) and moved_k (n_k, G) in log1p(target_sum · counts / total) over the kept genes.
CHILD_CYCLEAE = r"""
import json, sys, time
from pathlib import Path
import numpy as np, torch
torch.set_num_threads(1)
from xmodal.families.census import read_processed
from xmodal.families.census._evaluate import model_predictions, read_holdout, _through
from xmodal.families import load_preprocessor
from xmodal.methods.cycleae import CycleAE, CycleAEConfig
folder, out, config = Path(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])
processed = Path(json.loads((folder / "spec.json").read_text())["processed"])
t = time.perf_counter()
model = CycleAE(CycleAEConfig(**config)).fit(read_processed(processed), seed=0)
cells = _through(load_preprocessor(processed / "preprocessor_rna"), read_holdout(processed))
preds = model_predictions(model, cells)
np.savez(out, seconds=time.perf_counter() - t,
         **{f"change_{k}": p["change"] for k, p in enumerate(preds)}, **{f"moved_{k}": p["moved"] for k, p in enumerate(preds)})
"""

CHILD_SCVI = r"""
import json, sys, time
from pathlib import Path
import anndata as ad, numpy as np, pandas as pd, scipy.sparse as sp, torch
torch.set_num_threads(1)
import scvi
folder, out = Path(sys.argv[1]), sys.argv[2]
spec = json.loads((folder / "spec.json").read_text()); field = spec["field"]
d = np.load(folder / "inputs.npz")
train = ad.AnnData(X=sp.csr_matrix(d["train"]), obs=pd.read_csv(folder / "obs_train.csv", dtype=str, keep_default_na=False))
others = [f for f in spec["fields"] if f != field]
t = time.perf_counter()
scvi.settings.seed = 0
scvi.model.SCVI.setup_anndata(train, batch_key=field, categorical_covariate_keys=others)
model = scvi.model.SCVI(train)
model.train(max_epochs=spec["epochs"], accelerator="cpu", devices=1, enable_progress_bar=False)
res = {}
for k, case in enumerate(spec["cases"]):
    cells = ad.AnnData(X=sp.csr_matrix(d[f"source_{k}"]), obs=pd.read_csv(folder / f"obs_source_{k}.csv", dtype=str, keep_default_na=False))
    preds = {}
    for name, batch in (("moved", case["value"]), ("own", None)):
        parts = []
        for value in sorted(set(cells.obs[field])):  # own: each cell's own value
            rows = np.flatnonzero((cells.obs[field] == value).to_numpy())
            expr = model.get_normalized_expression(cells[rows], transform_batch=batch or value, library_size=1.0,
                                                   return_numpy=True)
            parts.append((rows, expr))
        full = np.zeros((cells.n_obs, cells.n_vars), dtype=np.float64)
        for rows, expr in parts:
            full[rows] = expr
        preds[name] = np.log1p(spec["target_sum"] * full / full.sum(1, keepdims=True))
    res[f"moved_{k}"], res[f"change_{k}"] = preds["moved"], preds["moved"] - preds["own"]
np.savez(out, seconds=time.perf_counter() - t, **res)
"""

CHILD_BIOLORD = r"""
import json, sys, time
from pathlib import Path
import anndata as ad, numpy as np, pandas as pd, torch
torch.set_num_threads(1)
import biolord
folder, out = Path(sys.argv[1]), sys.argv[2]
spec = json.loads((folder / "spec.json").read_text()); field = spec["field"]
d = np.load(folder / "inputs.npz")
def lognorm(x):
    return np.log1p(spec["target_sum"] * x / np.maximum(x.sum(1, keepdims=True), 1e-12)).astype(np.float32)
# biolord 0.0.3 cuts attribute names at "_rep" (self_reported_ethnicity → "self": KeyError): plain names instead
names = {f: f"attribute_{i}" for i, f in enumerate(spec["fields"])}
def frame(path):
    return pd.read_csv(path, dtype=str, keep_default_na=False).rename(columns=names)
train = ad.AnnData(X=lognorm(d["train"]), obs=frame(folder / "obs_train.csv"))
for f in names.values():
    train.obs[f] = pd.Categorical(train.obs[f])
t = time.perf_counter()
biolord.Biolord.setup_anndata(train, categorical_attributes_keys=list(names.values()))
model = biolord.Biolord(adata=train, n_latent=32, model_name="xmodal", train_classifiers=False,
                        module_params={"decoder_width": 512, "decoder_depth": 4, "n_latent_attribute_categorical": 16,
                                       "gene_likelihood": "normal", "reconstruction_penalty": 100.0,
                                       "unknown_attribute_penalty": 10.0, "unknown_attribute_noise_param": 0.1,
                                       "seed": 0})
epochs = spec["epochs"] or int(min(round(20000 / train.n_obs * 400), 400))  # biolord's own default, as an int
model.train(max_epochs=epochs, batch_size=256, accelerator="cpu", early_stopping=False, enable_checkpointing=False,
            enable_progress_bar=False)
res = {}
for k, case in enumerate(spec["cases"]):
    cells = ad.AnnData(X=lognorm(d[f"source_{k}"]), obs=frame(folder / f"obs_source_{k}.csv"))
    for f in names.values():
        cells.obs[f] = pd.Categorical(cells.obs[f], categories=train.obs[f].cat.categories)
    moved_cells = cells.copy()
    moved_cells.obs[names[field]] = pd.Categorical([case["value"]] * cells.n_obs,
                                                   categories=train.obs[names[field]].cat.categories)
    for a in (cells, moved_cells):  # same categories as training, so the same codes
        biolord.Biolord.setup_anndata(a, categorical_attributes_keys=list(names.values()))
    own = model.predict(cells)[0]
    moved = model.predict(moved_cells)[0]
    own, moved = np.asarray(own.X if hasattr(own, "X") else own), np.asarray(moved.X if hasattr(moved, "X") else moved)
    res[f"moved_{k}"], res[f"change_{k}"] = moved, moved - own
np.savez(out, seconds=time.perf_counter() - t, **res)
"""


def build(root: Path, *, quick: bool, data_seed: int | None = None, cells: int | None = None) -> Path:
    """The demo's synthetic Census dataset (another experiment with ``data_seed``, another size with ``cells``,
    smaller with ``quick``), ingested and preprocessed under ``root``."""
    import yaml

    from xmodal.config import params_from_dict
    from xmodal.stages import ingest, preprocess

    raw = yaml.safe_load((HERE.parent / "params.yaml").read_text())
    dataset = raw["datasets"]["synthetic_census"]
    source = {**dataset["source"], **({} if data_seed is None else {"seed": data_seed}),
              **({} if cells is None else {"n_cells": cells})}
    dataset = {**dataset, "source": source}
    prep = raw["preprocess"]["census"]
    if quick:
        dataset = {**dataset, "source": {**dataset["source"], "n_cells": 2000, "n_genes": 120}}
        prep = {**prep, "n_top_genes": 80, "chunk_size": 400}
    params = params_from_dict({"datasets": {"c": dataset}, "preprocess": {"census": prep}, "split": raw["split"]})
    ingest.run(params, dataset="c", root=root)
    preprocess.run(params, dataset="c", root=root)
    return root / "data/processed/c"


def export(processed: Path, folder: Path, *, epochs: int | None) -> object:
    """Training cells and each case's source cells (raw counts of the kept genes, metadata) for the peers."""
    from xmodal.families import load_preprocessor
    from xmodal.families.census import read_processed
    from xmodal.families.census._evaluate import _through, read_holdout

    data = read_processed(processed)
    cells = _through(load_preprocessor(processed / "preprocessor_rna"), read_holdout(processed))
    counts, _, obs = data.sample("train", max_cells=None, seed=0)
    arrays = {"train": counts.toarray().astype(np.float32)}
    fields = list(data.vocab.fields)
    obs[fields].astype(str).replace({"None": "", "nan": ""}).to_csv(folder / "obs_train.csv", index=False)
    cases = []
    for k, case in enumerate(cells.cases):
        src = cells.adata[case.sources]
        arrays[f"source_{k}"] = np.asarray(src.X.toarray(), dtype=np.float32)
        src.obs[fields].astype(str).to_csv(folder / f"obs_source_{k}.csv", index=False)
        cases.append({"combo": case.combo, "value": case.value})
    np.savez(folder / "inputs.npz", **arrays)
    (folder / "spec.json").write_text(json.dumps({
        "processed": str(processed), "field": cells.field, "fields": fields, "cases": cases, "epochs": epochs,
        "target_sum": data.target_sum}))
    return cells, data.target_sum


def run_method(method: str, folder: Path, *, config: dict, timeout: float) -> dict:
    """One method in a fresh process; its predictions, seconds and peak RSS (or why it did not run)."""
    python = str(PEERS_PYTHON) if method in PEERS else sys.executable
    if method in PEERS and not PEERS_PYTHON.exists():
        return {"not_runnable": f"no peers environment at {PEERS_PYTHON.relative_to(HERE.parent)} (run `make peers`)"}
    child = CHILD_SCVI if method == "scvi" else CHILD_BIOLORD if method == "biolord" else CHILD_CYCLEAE
    script, out = folder / f"run_{method}.py", folder / f"{method}.npz"  # not <package>.py: it would shadow it
    script.write_text(child)
    cmd = [python, str(script), str(folder), str(out), json.dumps(config)]
    start = time.perf_counter()
    try:
        proc = subprocess.run(["/usr/bin/time", "-f", "%M", *cmd] if Path("/usr/bin/time").exists() else cmd,
                              capture_output=True, text=True, timeout=timeout, env={**os.environ, "OMP_NUM_THREADS": "1"})
    except subprocess.TimeoutExpired:
        return {"not_runnable": f"over the {timeout:.0f} s limit"}
    if proc.returncode != 0:
        tail = [line for line in proc.stderr.strip().splitlines() if line.strip() and not line.strip().isdigit()
                and not line.startswith("Command exited")][-3:]
        return {"not_runnable": f"failed: {' | '.join(tail)[-400:]}"}
    rss = proc.stderr.strip().splitlines()[-1] if Path("/usr/bin/time").exists() else ""
    with np.load(out) as npz:
        preds = [{"change": npz[f"change_{k}"], "moved": npz[f"moved_{k}"]} for k in range(
            sum(1 for name in npz.files if name.startswith("change_")))]
        seconds = float(npz["seconds"])
    return {"predictions": preds, "seconds": seconds, "wall_seconds": time.perf_counter() - start,
            "peak_rss_mib": int(rss) / 1024 if rss.isdigit() else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--epochs", type=int, default=None, help="epochs of the cycleae variants (default: cycleae's)")
    parser.add_argument("--peer-epochs", type=int, default=None, help="epochs of scVI and biolord (default: their "
                        "own, min(400, 20 000 / cells × 400))")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds per method")
    parser.add_argument("--output", default=None, help="default: results/counterfactual_peers.json")
    parser.add_argument("--table", action="store_true", help="print the README's table from the JSON and exit")
    parser.add_argument("--workdir", default=None, help="keep the data and the methods' scripts here (default: a "
                        "temporary folder, removed)")
    parser.add_argument("--data-seed", type=int, default=None, help="another synthetic experiment (default: the demo's)")
    parser.add_argument("--cells", type=int, default=None, help="cells of the synthetic dataset (default: the demo's)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the script runs")
    args = parser.parse_args()
    suffix = "" if args.data_seed is None and args.cells is None else f"_seed{args.data_seed}_cells{args.cells}"
    args.output = args.output or str(HERE / "results" / ("quick" if args.quick else "")
                                     / f"counterfactual_peers{suffix}.json")
    if args.table:
        print(markdown_table(json.loads(Path(args.output).read_text())["rows"]))
        return
    import yaml

    from xmodal.families.census._evaluate import score_predictions

    ours = yaml.safe_load((HERE.parent / "params.yaml").read_text())["methods"]["cycleae"]
    if args.quick:
        ours = {**ours, "latent": 16, "classifier_width": 16, "epochs": 2}
    epochs = args.epochs or ours["epochs"]
    configs = {"cycleae": {**ours, "epochs": epochs}, "cycleae_seed": {**ours, "epochs": epochs, **SEED_CHOICES},
               "cycleae_no_cycles": {**ours, "epochs": epochs, "cycles": False}}
    rows = []
    with tempfile.TemporaryDirectory(prefix="cf-peers-") as scratch:
        tmp = args.workdir or scratch
        processed = build(Path(tmp) / "project", quick=args.quick, data_seed=args.data_seed, cells=args.cells)
        folder = Path(tmp) / "exchange"
        folder.mkdir(parents=True)
        cells, target_sum = export(processed, folder, epochs=2 if args.quick else args.peer_epochs)  # None: theirs
        baselines_done = False
        for method in args.methods:
            print(f"{method} ...", flush=True)
            result = run_method(method, folder, config=configs.get(method, {}), timeout=args.timeout)
            row = {"method": method, "peer": method in PEERS,
                   "epochs": (2 if args.quick else args.peer_epochs or "default") if method in PEERS else epochs}
            if "predictions" in result:
                scores = score_predictions(cells, result.pop("predictions"), target_sum=target_sum,
                                           baselines=not baselines_done)
                if not baselines_done:
                    for name in ("mean_shift", "additive_shift", "no_change", "additive_truth"):
                        rows.append({"method": name, "baseline": True, **{k.removeprefix(f"{name}_"): v
                                                                          for k, v in scores.items()
                                                                          if k.startswith(f"{name}_")}})
                    baselines_done = True
                row |= {k.removeprefix("cf_"): v for k, v in scores.items() if k.startswith("cf_")}
            row |= result
            rows.append(row)
            shown = {k: round(v, 3) for k, v in row.items() if isinstance(v, float)}
            print(f"  {shown or row.get('not_runnable')}", flush=True)
    out = {"benchmark": "counterfactual_peers", "quick": args.quick, "data_seed": args.data_seed, "cells": args.cells,
           "machine": platform.platform(),
           "python": platform.python_version(), "n_cases": len(cells.cases),
           "cases": [{"combo": c.combo, "sources": len(c.sources), "targets": len(c.targets)} for c in cells.cases],
           "rows": rows}
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(out, indent=1) + "\n")
    print(markdown_table(rows))


def markdown_table(rows: list[dict]) -> str:
    """Per-cell change R² (all genes / top 50), mean change vs observed, gene means, seconds, peak RSS."""
    lines = ["| method | per-cell change R² | top-50 genes | mean change vs observed | per-gene means | seconds | peak RSS |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        if "not_runnable" in r:
            lines.append(f"| {r['method']} | not runnable: {r['not_runnable']} | | | | | |")
            continue

        def f(key: str, row: dict = r) -> str:
            v = row.get(key)
            return "" if v is None else f"{v:.3f}"

        seconds = f"{r['seconds']:.0f}" if "seconds" in r else ""
        rss = f"{r['peak_rss_mib']:.0f} MiB" if r.get("peak_rss_mib") else ""
        lines.append(f"| {r['method']} | {f('cell_change_r2')} | {f('cell_change_r2_top50')} | "
                     f"{f('mean_change_r2')} | {f('gene_mean_r2')} | {seconds} | {rss} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
