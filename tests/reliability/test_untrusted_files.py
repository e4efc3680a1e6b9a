"""No code runs from a file: every loader of a pickle-based format refuses a payload, unread, with exit 2.

Each payload would create a sentinel file when unpickled; the sentinel must never appear. Truncated and
corrupt files get exit 2 naming the file too.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from _cli import assert_refused, tiny_params, write_params, xmodal

GEOADVAE = {"dim": 16, "latent_dim": 4, "max_iter": 30, "batch_size": 16, "phase_durations": [10, 10, 10],
            "prior_clusters": 4, "prior_loss_warmup": 5, "checkpoint_every": 10, "log_every": 5}


class Payload:
    """Unpickling this runs ``touch <sentinel>``."""

    def __init__(self, sentinel: Path) -> None:
        self.sentinel = sentinel

    def __reduce__(self):
        return os.system, (f"touch {self.sentinel}",)


@pytest.fixture
def sentinel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("payload") / "pwned"
    yield path
    assert not path.exists(), "a file's payload ran"


@pytest.fixture
def geo_project(tiny_project: Path) -> Path:
    params = yaml.safe_load((tiny_project / "params.yaml").read_text())
    params["methods"]["geoadvae"] = GEOADVAE
    (tiny_project / "params.yaml").write_text(yaml.safe_dump(params))
    for stage in ("ingest", "preprocess"):
        assert xmodal(tiny_project, stage, "--dataset", "tiny").rc == 0
    return tiny_project


def _resume(root: Path):
    return xmodal(root, "train", "--dataset", "tiny", "--method", "geoadvae", "--resume")


def test_resume_refuses_a_checkpoint_that_would_run_code(geo_project: Path, sentinel: Path) -> None:
    ckpt = geo_project / "checkpoints/tiny/geoadvae/checkpoint.pt"
    ckpt.parent.mkdir(parents=True)
    torch.save({"digest": "x", "step": 0, "payload": Payload(sentinel)}, ckpt)
    assert_refused(_resume(geo_project), needle=(str(ckpt), "refused to load", "posix.system"))
    assert not (geo_project / "models").exists()


@pytest.fixture(scope="module")
def trained_geo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project with geoadvae trained once (its checkpoint and model), copied by each test that damages them."""
    root = tmp_path_factory.mktemp("trained")
    params = tiny_params()
    params["methods"]["geoadvae"] = GEOADVAE
    write_params(root, params)
    for stage in ("ingest", "preprocess"):
        assert xmodal(root, stage, "--dataset", "tiny").rc == 0
    assert xmodal(root, "train", "--dataset", "tiny", "--method", "geoadvae").rc == 0
    return root


@pytest.fixture
def geo_trained(trained_geo: Path, tmp_path: Path) -> Path:
    import shutil

    return Path(shutil.copytree(trained_geo, tmp_path / "project", symlinks=True))


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty", "a tensor", "no optimiser"])
def test_a_damaged_checkpoint_is_exit_2_naming_the_file(geo_trained: Path, damage: str) -> None:
    geo_project = geo_trained
    ckpt = geo_project / "checkpoints/tiny/geoadvae/checkpoint.pt"
    good = ckpt.read_bytes()
    if damage == "truncated":
        ckpt.write_bytes(good[: len(good) // 2])
    elif damage == "garbage":
        ckpt.write_bytes(os.urandom(4096))
    elif damage == "empty":
        ckpt.write_bytes(b"")
    elif damage == "a tensor":
        torch.save(torch.zeros(3), ckpt)
    else:
        state = torch.load(ckpt, weights_only=True)
        del state["optimizer_states"]
        torch.save(state, ckpt)
    model = (geo_project / "models/tiny/geoadvae/weights.pt").read_bytes()
    assert_refused(_resume(geo_project), needle=str(ckpt))
    assert (geo_project / "models/tiny/geoadvae/weights.pt").read_bytes() == model


def test_saved_model_weights_that_would_run_code_are_refused(geo_trained: Path, sentinel: Path) -> None:
    geo_project = geo_trained
    weights = geo_project / "models/tiny/geoadvae/weights.pt"
    torch.save({"payload": Payload(sentinel)}, weights)
    assert_refused(xmodal(geo_project, "evaluate", "--dataset", "tiny", "--method", "geoadvae"),
                   needle=(str(weights), "refused to load"))
    weights.write_bytes(b"\x00" * 100)
    assert_refused(xmodal(geo_project, "evaluate", "--dataset", "tiny", "--method", "geoadvae"),
                   needle=str(weights))


# --------------------------------------------------------------------------------------------
# foundation-model source encoders of dualdann: third-party files that are pickles by design
# --------------------------------------------------------------------------------------------
MULTIOME = {"family": "multiome", "source": {"kind": "synthetic_multiome", "n_cells": 60, "n_background_genes": 20,
                                             "n_background_peaks": 60, "domains": ["line_a", "line_b"]}}
SMALL = {"shared_dim": 8, "peak_hidden": 8, "peak_intermediate": 8, "cls_hidden": 8, "disc_hidden": 8,
         "batch_size": 16, "epochs": 1, "eval_every": 1}


@pytest.fixture
def mo_project(tiny_project: Path) -> Path:
    params = yaml.safe_load((tiny_project / "params.yaml").read_text())
    params["datasets"]["mo"] = MULTIOME
    (tiny_project / "params.yaml").write_text(yaml.safe_dump(params))
    for stage in ("ingest", "preprocess"):
        assert xmodal(tiny_project, stage, "--dataset", "mo").rc == 0
    return tiny_project


def _genes(root: Path) -> list[str]:
    from xmodal.families.multiome._io import read_multiome

    return list(map(str, read_multiome(root / "data/processed/mo").rna.var_names))


def _train_dualdann(root: Path, **config: str):
    sets = [f"methods.dualdann.{k}={v}" for k, v in {**SMALL, **config}.items()]
    return xmodal(root, "train", "--dataset", "mo", "--method", "dualdann", *[a for s in sets for a in ("--set", s)])


def test_an_scfoundation_checkpoint_holding_a_payload_is_refused(mo_project: Path, sentinel: Path) -> None:
    folder = mo_project / "scfoundation"
    folder.mkdir()
    (folder / "OS_scRNA_gene_index.19264.tsv").write_text("gene_name\n" + "\n".join(_genes(mo_project)) + "\n")
    torch.save({"cell": {"config": {}, "state_dict": {}, "hparams": Payload(sentinel)}}, folder / "models.ckpt")
    assert_refused(_train_dualdann(mo_project, source_encoder="scfoundation", scfoundation_path=str(folder),
                                   embedding_cache="null"),
                   needle=(str(folder / "models.ckpt"), "refused to load", "posix.system"))
    assert not (mo_project / "models").exists()


@pytest.mark.parametrize("which", ["token_dictionary.pkl", "gene_median_dictionary.pkl", "gene_name_id_dict.pkl"])
def test_a_geneformer_dictionary_holding_a_payload_is_refused(mo_project: Path, sentinel: Path, which: str) -> None:
    folder = mo_project / "geneformer"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    plain = {"token_dictionary.pkl": {"<pad>": 0, "<cls>": 1, "<eos>": 2, "ENSG1": 3},
             "gene_median_dictionary.pkl": {"ENSG1": np.float64(1.5)}, "gene_name_id_dict.pkl": {"A": "ENSG1"}}
    for name, content in plain.items():
        (folder / name).write_bytes(pickle.dumps(Payload(sentinel) if name == which else content))
    assert_refused(_train_dualdann(mo_project, source_encoder="geneformer", geneformer_path=str(folder),
                                   embedding_cache="null"),
                   needle=(str(folder / which), "refused to load"))
    assert not (mo_project / "models").exists()


def test_dualdann_weights_and_source_arrays_holding_a_payload_are_refused(mo_project: Path, sentinel: Path) -> None:
    assert _train_dualdann(mo_project, embedding_cache="null").rc == 0
    folder = mo_project / "models/mo/dualdann"
    torch.save({"payload": Payload(sentinel)}, folder / "weights.pt")
    assert_refused(xmodal(mo_project, "evaluate", "--dataset", "mo", "--method", "dualdann"),
                   needle=(str(folder / "weights.pt"), "refused to load"))
    assert _train_dualdann(mo_project, embedding_cache="null").rc == 0
    np.savez(folder / "source_pca.npz", mean=np.array([Payload(sentinel)], dtype=object), components=np.zeros(2))
    assert_refused(xmodal(mo_project, "evaluate", "--dataset", "mo", "--method", "dualdann"),
                   needle=(str(folder), "cannot load the saved dualdann model"))


def test_geneformer_weights_holding_a_payload_are_refused(mo_project: Path, sentinel: Path) -> None:
    pytest.importorskip("transformers")
    from transformers import BertConfig

    folder = mo_project / "geneformer"
    folder.mkdir()
    BertConfig(vocab_size=8, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, intermediate_size=8,
               max_position_embeddings=16).to_json_file(folder / "config.json")
    genes = _genes(mo_project)
    plain = {"token_dictionary.pkl": {"<pad>": 0, "<cls>": 1, "<eos>": 2, **{g: 3 + i for i, g in enumerate(genes)}},
             "gene_median_dictionary.pkl": dict.fromkeys(genes, 1.0)}
    for name, content in plain.items():
        (folder / name).write_bytes(pickle.dumps(content))
    torch.save({"bert.embeddings.word_embeddings.weight": Payload(sentinel)}, folder / "pytorch_model.bin")
    assert_refused(_train_dualdann(mo_project, source_encoder="geneformer", geneformer_path=str(folder),
                                   embedding_cache="null"),
                   needle=(str(folder), "cannot load the Geneformer weights"))
