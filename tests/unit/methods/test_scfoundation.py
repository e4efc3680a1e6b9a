"""scFoundation through its real loading path: a tiny random checkpoint in the released layout (weights under
the released key names, a decoder to ignore) and a gene list written to disk; the value tokenisation, cell
embeddings checked against a one-cell-at-a-time computation written out here, the cache, the ensemble with
Geneformer, and clear errors."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from xmodal.errors import XmodalInputError
from xmodal.methods.dualdann._scfoundation import ScFoundationEncoder

LISTED = [f"GENE{i}" for i in range(10)]  # the model's gene list
DIM, DEPTH, HEADS, BINS = 16, 2, 2, 10


def _weights(n_genes: int = len(LISTED)) -> dict[str, torch.Tensor]:
    """Encoder weights under the released checkpoint's names, plus decoder weights the encoder ignores."""
    gen = torch.Generator().manual_seed(0)
    seq_len = n_genes + 2
    state = {
        "token_emb.mlp.weight": torch.randn(BINS, 1, generator=gen),
        "token_emb.mlp.bias": torch.randn(BINS, generator=gen),
        "token_emb.mlp2.weight": torch.randn(BINS, BINS, generator=gen) / 3,
        "token_emb.mlp2.bias": torch.randn(BINS, generator=gen),
        "token_emb.emb.weight": torch.randn(BINS, DIM, generator=gen),
        "token_emb.emb_mask.weight": torch.randn(1, DIM, generator=gen),
        "token_emb.emb_pad.weight": torch.randn(1, DIM, generator=gen),
        "pos_emb.weight": torch.randn(seq_len + 1, DIM, generator=gen),
        "encoder.norm.weight": 1 + 0.1 * torch.randn(DIM, generator=gen),
        "encoder.norm.bias": 0.1 * torch.randn(DIM, generator=gen),
    }
    for i in range(DEPTH):
        layer = nn.TransformerEncoderLayer(DIM, HEADS, dim_feedforward=4 * DIM, batch_first=True)
        for name, value in layer.state_dict().items():
            scale, centre = (0.3, 0.0) if value.ndim > 1 else (0.1, float("norm" in name and "weight" in name))
            state[f"encoder.transformer_encoder.{i}.{name}"] = centre + scale * torch.randn(value.shape, generator=gen)
    state["decoder.layers.0.weight"] = torch.randn(3, 3, generator=gen)  # performer decoder: not used
    state["decoder_embed.weight"] = torch.randn(8, DIM, generator=gen)
    state["to_final.weight"] = torch.randn(1, 8, generator=gen)
    return state


def _config(n_genes: int = len(LISTED)) -> dict[str, object]:
    return {"model": "mae_autobin", "model_config": {"mae_autobin": {
        "encoder": {"hidden_dim": DIM, "depth": DEPTH, "heads": HEADS, "module_type": "transformer"},
        "decoder": {"hidden_dim": 8, "depth": 1, "heads": 2, "module_type": "performer"},
        "n_class": 104, "pad_token_id": 103, "mask_token_id": 102, "bin_num": BINS, "bin_alpha": 1.0}},
        "dataset_config": {"rnaseq": {"seq_len": n_genes + 2}}}


def _model(folder: Path, *, genes: list[str] = LISTED, seq_len_of: int | None = None) -> Path:
    """A released-layout checkpoint for ``genes`` (``seq_len_of``: build it for that many genes instead)."""
    folder.mkdir(parents=True, exist_ok=True)
    n = len(genes) if seq_len_of is None else seq_len_of
    entry = {"config": _config(n), "state_dict": {f"model.{k}": v for k, v in _weights(n).items()}}
    torch.save({"gene": entry, "cell": entry, "rde": entry}, folder / "models.ckpt")
    pd.DataFrame({"index": range(len(genes)), "gene_name": genes}).to_csv(
        folder / "OS_scRNA_gene_index.19264.tsv", sep="\t", index=False)
    return folder


def _reference(counts: np.ndarray, genes: list[str], *, t: float = 4.0) -> list[torch.Tensor]:
    """Each cell on its own, no padding, as scFoundation's get_embedding.py does it: final token states (N, D)."""
    w = _weights()
    layers = []
    for i in range(DEPTH):
        layer = nn.TransformerEncoderLayer(DIM, HEADS, dim_feedforward=4 * DIM, batch_first=True)
        layer.load_state_dict({k.split(f"encoder.transformer_encoder.{i}.", 1)[1]: v for k, v in w.items()
                               if k.startswith(f"encoder.transformer_encoder.{i}.")})
        layers.append(layer.eval())
    aligned = pd.DataFrame(counts, columns=genes).reindex(columns=LISTED, fill_value=0.0).to_numpy(float)
    out = []
    with torch.no_grad():
        for row in aligned:
            total = row.sum()
            x = torch.tensor(list(np.log1p(row / total * 1e4)) + [t, np.log10(total)], dtype=torch.float32)
            keep = torch.nonzero(x > 0).ravel()  # value > 0 tokens, in gene order, T and S last
            v = x[keep].unsqueeze(-1)
            h = nn.functional.leaky_relu(v @ w["token_emb.mlp.weight"].T + w["token_emb.mlp.bias"], 0.1)
            h = h + h @ w["token_emb.mlp2.weight"].T + w["token_emb.mlp2.bias"]
            e = torch.softmax(h, dim=-1) @ w["token_emb.emb.weight"] + w["pos_emb.weight"][keep]
            e = e.unsqueeze(0)
            for layer in layers:
                e = layer(e)
            out.append(nn.functional.layer_norm(e[0], (DIM,), w["encoder.norm.weight"], w["encoder.norm.bias"]))
    return out


def _counts(seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """Three cells of different depth and gene count; two data genes are not in the list, GENE9 is missing."""
    rng = np.random.default_rng(seed)
    genes = [*LISTED[:9][::-1], "OTHER1", "OTHER2"]
    counts = rng.poisson(3.0, size=(3, len(genes))).astype(float)
    counts[1, :6] = 0  # fewer gene tokens
    counts[2] *= 20
    return counts, genes


def test_tokens_are_log_normalised_listed_genes_then_the_two_depth_tokens(tmp_path: Path) -> None:
    enc = ScFoundationEncoder(_model(tmp_path / "sf"))
    counts, genes = _counts()
    tok = enc.tokenize(counts, genes)
    aligned = pd.DataFrame(counts, columns=genes).reindex(columns=LISTED, fill_value=0.0).to_numpy()
    for i in range(3):
        n = int((~tok.padding[i]).sum())
        expressed = np.flatnonzero(aligned[i])
        assert tok.positions[i, :n].tolist() == [*expressed.tolist(), 10, 11]  # list order, then T and S
        total = aligned[i].sum()  # over the listed genes only: OTHER1/2 are left out
        np.testing.assert_allclose(tok.values[i, :n - 2], np.log1p(aligned[i, expressed] / total * 1e4), rtol=1e-6)
        np.testing.assert_allclose(tok.values[i, n - 2:n], [4.0, np.log10(total)], rtol=1e-6)
        assert (tok.positions[i, n:] == 12).all()
        assert tok.n_genes[i] == len(expressed)
    assert tok.padding[1].sum() > 0
    fold = ScFoundationEncoder(tmp_path / "sf", resolution="f2").tokenize(counts, genes)
    n = int((~fold.padding[0]).sum())
    assert fold.values[0, n - 2] == pytest.approx(np.log10(2 * aligned[0].sum()), rel=1e-6)


@pytest.mark.parametrize("pooling", ["max", "all"])
def test_batched_embeddings_equal_the_one_cell_at_a_time_reference(tmp_path: Path, pooling: str) -> None:
    counts, genes = _counts()
    z = ScFoundationEncoder(_model(tmp_path / "sf"), pooling=pooling, batch_size=2).embed(counts, genes)
    ref = _reference(counts, genes)
    if pooling == "max":
        expected = torch.stack([r.max(dim=0).values for r in ref])
    else:  # [S, T, max over genes, mean over genes]
        expected = torch.stack([torch.cat([r[-1], r[-2], r[:-2].max(dim=0).values, r[:-2].mean(dim=0)])
                                for r in ref])
    assert z.shape == (3, DIM if pooling == "max" else 4 * DIM)
    np.testing.assert_allclose(z, expected.numpy(), atol=2e-5)


def test_embeddings_are_deterministic_and_cached(tmp_path: Path) -> None:
    folder = _model(tmp_path / "sf")
    counts, genes = _counts()
    assert ScFoundationEncoder(folder).batch_size == 1  # on CPU one cell per pass: no padding to compute
    z = ScFoundationEncoder(folder, cache_dir=tmp_path / "cache").embed(counts, genes)
    np.testing.assert_array_equal(z, ScFoundationEncoder(folder).embed(counts, genes))
    assert len(list((tmp_path / "cache").glob("scfoundation-*.npy"))) == 1
    hit = ScFoundationEncoder(folder, cache_dir=tmp_path / "cache")
    hit._model = "not loaded"  # a cache hit never touches the model
    np.testing.assert_array_equal(hit.embed(counts, genes), z)
    other = ScFoundationEncoder(folder, cache_dir=tmp_path / "cache", resolution="t5").embed(counts, genes)
    assert not np.allclose(other, z)  # another T token is another cache entry
    assert len(list((tmp_path / "cache").glob("scfoundation-*.npy"))) == 2


def test_a_converted_single_model_checkpoint_loads_the_same(tmp_path: Path) -> None:
    released = _model(tmp_path / "released")
    flat = _model(tmp_path / "flat")
    cfg = _config()
    merged = {**cfg["model_config"]["mae_autobin"], **cfg["dataset_config"]["rnaseq"], "model": "mae_autobin"}
    torch.save({"config": merged, "model_state_dict": _weights()}, flat / "models.ckpt")
    counts, genes = _counts()
    np.testing.assert_array_equal(ScFoundationEncoder(flat).embed(counts, genes),
                                  ScFoundationEncoder(released).embed(counts, genes))


class _Note:
    """A Python object in a checkpoint (as Lightning-era checkpoints hold): not loadable with weights_only."""

    def __init__(self, text: str) -> None:
        self.text = text


def test_a_checkpoint_with_python_objects_is_refused_unread_and_numpy_scalars_are_read(tmp_path: Path) -> None:
    folder = _model(tmp_path / "sf")
    counts, genes = _counts()
    expected = ScFoundationEncoder(folder).embed(counts, genes)
    entry = {"config": _config(), "state_dict": {f"model.{k}": v for k, v in _weights().items()}}
    torch.save({"cell": {**entry, "note": _Note("trainer state")}}, folder / "models.ckpt")
    with pytest.raises(XmodalInputError, match=r"models.ckpt: .*refused to load: the file holds .*_Note"):
        ScFoundationEncoder(folder).embed(counts, genes)
    # plain data beyond weights_only's defaults (NumPy scalars and arrays, as configs often hold) is read
    torch.save({"cell": {**entry, "epoch": np.int64(3), "loss": np.float32(0.5), "bins": np.arange(4)}},
               folder / "models.ckpt")
    np.testing.assert_array_equal(ScFoundationEncoder(folder).embed(counts, genes), expected)


def test_errors_name_the_file_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(XmodalInputError, match="checkpoint not found"):
        ScFoundationEncoder(tmp_path)
    folder = _model(tmp_path / "sf")
    counts, genes = _counts()
    with pytest.raises(XmodalInputError, match="none of the 2 genes"):
        ScFoundationEncoder(folder).tokenize(np.ones((1, 2)), ["ENSG1", "ENSG2"])
    with pytest.raises(ValueError, match="resolution 'x4'"):
        ScFoundationEncoder(folder, resolution="x4")
    entry = {"config": _config(), "state_dict": {f"model.{k}": v for k, v in _weights().items()}}
    torch.save({"gene": entry}, folder / "models.ckpt")
    with pytest.raises(XmodalInputError, match="no 'cell' model .*it has: gene"):
        ScFoundationEncoder(folder).embed(counts, genes)
    state = {k: v for k, v in entry["state_dict"].items() if "pos_emb" not in k}
    torch.save({"cell": {**entry, "state_dict": state}}, folder / "models.ckpt")
    with pytest.raises(XmodalInputError, match="lacks 1 encoder weights .*pos_emb.weight"):
        ScFoundationEncoder(folder).embed(counts, genes)
    short = _model(tmp_path / "short", genes=LISTED[:8], seq_len_of=len(LISTED))
    with pytest.raises(XmodalInputError, match="seq_len 12 is not the gene list's 8 genes"):
        ScFoundationEncoder(short).embed(counts, genes)
    (folder / "models.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(XmodalInputError, match="cannot read the scFoundation checkpoint"):
        ScFoundationEncoder(folder).embed(counts, genes)


def test_dualdann_trains_on_scfoundation_and_on_the_ensemble_and_round_trips(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    from transformers import BertConfig, BertForMaskedLM

    from xmodal.errors import ConfigError
    from xmodal.families.multiome._config import MultiomePreprocessConfig
    from xmodal.families.multiome._data import synthetic_multiome
    from xmodal.families.multiome._preprocess import preprocess_multiome, without_test
    from xmodal.methods import load_model
    from xmodal.methods.dualdann import DualDANN, DualDANNConfig
    from xmodal.methods.dualdann._source import EnsembleSource

    raw = synthetic_multiome(n_cells=120, n_background_genes=30, n_background_peaks=100, domains=("a", "b"), seed=6)
    data = preprocess_multiome(raw, cfg=MultiomePreprocessConfig(n_top_genes=None))[0]
    genes = list(map(str, data.rna.var_names))
    sf = _model(tmp_path / "sf", genes=genes[:-3])  # the model knows all but three of the data's genes
    gf = tmp_path / "gf"
    gf.mkdir()
    tokens = {"<pad>": 0, "<mask>": 1, "<cls>": 2, "<eos>": 3, **{g: 4 + i for i, g in enumerate(genes)}}
    for name, obj in (("token_dictionary.pkl", tokens), ("gene_median_dictionary.pkl", dict.fromkeys(genes, 2.0))):
        with open(gf / name, "wb") as fh:
            pickle.dump(obj, fh)
    torch.manual_seed(0)
    BertForMaskedLM(BertConfig(vocab_size=len(tokens), hidden_size=12, num_hidden_layers=1, num_attention_heads=2,
                               intermediate_size=24, max_position_embeddings=64)).save_pretrained(gf)
    small = {"shared_dim": 16, "peak_hidden": 8, "peak_intermediate": 16, "cls_hidden": 8, "disc_hidden": 8,
             "batch_size": 32, "epochs": 2, "eval_every": 1, "embedding_cache": str(tmp_path / "cache")}
    with pytest.raises(ConfigError, match="scfoundation_path: set it"):
        DualDANN(DualDANNConfig(source_encoder="scfoundation", **small)).fit(without_test(data), seed=0)
    for kind, width in (("scfoundation", DIM), ("ensemble", 12 + DIM)):
        cfg = DualDANNConfig(source_encoder=kind, scfoundation_path=str(sf), geneformer_path=str(gf), **small)
        model = DualDANN(cfg).fit(without_test(data), seed=0)
        assert model.source_encoder is not None
        assert model.source_encoder.dim == width
        if kind == "ensemble":  # Geneformer's columns, then scFoundation's
            assert isinstance(model.source_encoder, EnsembleSource)
            z = model.source_encoder.transform(data.rna)
            np.testing.assert_array_equal(z[:, 12:], model.source_encoder.parts[1].transform(data.rna))
        probs = model.predict_proba(data.rna, modality="rna")
        assert probs.shape == (data.rna.n_obs, 3)
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
        loaded = load_model(model.save(tmp_path / kind))
        np.testing.assert_allclose(loaded.predict_proba(data.rna, modality="rna"), probs, atol=1e-6)
    assert list((tmp_path / "cache").glob("scfoundation-*.npy"))
