"""Geneformer through its real loading path: a tiny random BERT and dictionaries written to disk, rank-value
tokenisation (with the seed-001 defects fixed), cell embeddings, the cache, and clear errors."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("transformers")

from xmodal.errors import XmodalInputError  # noqa: E402
from xmodal.methods.dualdann._geneformer import GeneformerEncoder  # noqa: E402

GENES = [f"ENSG{i:05d}" for i in range(12)]
SPECIAL = {"<pad>": 0, "<mask>": 1, "<cls>": 2, "<eos>": 3}


def _model(folder: Path, *, v2: bool = True, input_size: int = 8) -> Path:
    import torch
    from transformers import BertConfig, BertForMaskedLM

    folder.mkdir(parents=True, exist_ok=True)
    special = SPECIAL if v2 else {"<pad>": 0, "<mask>": 1}
    tokens = {**special, **{g: len(special) + i for i, g in enumerate(GENES[:10])}}  # the last two are unknown
    medians = {g: 1.0 + i for i, g in enumerate(GENES[:10])}
    names = {f"GENE{i}": g for i, g in enumerate(GENES)}
    for name, obj in (("token_dictionary.pkl", tokens), ("gene_median_dictionary.pkl", medians),
                      ("gene_name_id_dict.pkl", names)):
        with open(folder / name, "wb") as fh:
            pickle.dump(obj, fh)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(tokens), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=input_size, pad_token_id=0)
    BertForMaskedLM(config).save_pretrained(folder)  # Geneformer ships the masked-LM checkpoint
    return folder


def test_rank_value_encoding_uses_medians_drops_unknown_genes_and_caps_at_the_input_size(tmp_path: Path) -> None:
    enc = GeneformerEncoder(_model(tmp_path / "gf"))
    counts = np.zeros((2, 12))
    # cell 0: gene 0 (median 1) and gene 3 (median 4) with equal counts → gene 0 ranks first; gene 11 unknown
    counts[0, [0, 3, 11]] = [5, 5, 50]
    # cell 1: eight known genes, more than the 6 gene tokens the input size leaves
    counts[1, :8] = [1, 2, 3, 4, 5, 6, 7, 8]
    tok = enc.tokenize(counts, GENES)
    assert tok.input_ids[0, :4].tolist() == [SPECIAL["<cls>"], 4 + 0, 4 + 3, SPECIAL["<eos>"]]
    assert tok.attention_mask[0].tolist() == [1, 1, 1, 1, 0, 0, 0, 0]  # padding is masked (the seed: 1)
    assert tok.input_ids.shape == (2, 8)  # capped at max_position_embeddings (the seed: always 512)
    scaled = counts[1, :8] / counts[1].sum() * 10_000 / (1.0 + np.arange(8))
    expected = [4 + g for g in np.argsort(-scaled, kind="stable")[:6]]
    assert tok.input_ids[1, 1:7].tolist() == expected  # ranked by count / median, not by raw count
    assert tok.n_genes.tolist() == [2, 6]
    # symbols are mapped to Ensembl ids through the name dictionary
    by_symbol = enc.tokenize(counts, [f"GENE{i}" for i in range(12)])
    np.testing.assert_array_equal(by_symbol.input_ids, tok.input_ids)


def test_embeddings_are_deterministic_pooled_and_cached(tmp_path: Path) -> None:
    folder = _model(tmp_path / "gf")
    rng = np.random.default_rng(0)
    counts = rng.poisson(2.0, size=(5, 12))
    assert GeneformerEncoder(folder).batch_size == 1  # on CPU one cell per pass (measured faster than batches)
    enc = GeneformerEncoder(folder, cache_dir=tmp_path / "cache", batch_size=2)
    z = enc.embed(counts, GENES)
    assert z.shape == (5, 16)
    assert np.isfinite(z).all()
    np.testing.assert_array_equal(z, GeneformerEncoder(folder).embed(counts, GENES))  # no cache: same values
    assert len(list((tmp_path / "cache").glob("geneformer-*.npy"))) == 1
    cached = GeneformerEncoder(folder, cache_dir=tmp_path / "cache")
    cached._model = "not loaded"  # a cache hit never touches the model
    np.testing.assert_array_equal(cached.embed(counts, GENES), z)
    mean = GeneformerEncoder(folder, pooling="mean").embed(counts, GENES)
    assert not np.allclose(mean, z)
    # a cell's embedding depends on its own genes only (padding is masked)
    alone = GeneformerEncoder(folder).embed(counts[:1], GENES)
    np.testing.assert_allclose(alone, z[:1], atol=1e-5)


def test_v1_dictionaries_pool_by_mean_and_errors_say_what_to_fix(tmp_path: Path) -> None:
    v1 = GeneformerEncoder(_model(tmp_path / "v1", v2=False))
    assert v1.pooling == "mean"
    assert v1.tokenize(np.eye(12)[:2] * 3, GENES).input_ids[0, 0] == 2  # no <cls>: the first gene token
    with pytest.raises(XmodalInputError, match="needs a <cls> token"):
        GeneformerEncoder(tmp_path / "v1", pooling="cls")
    with pytest.raises(XmodalInputError, match="no config.json"):
        GeneformerEncoder(tmp_path)
    (tmp_path / "v1" / "gene_median_dictionary.pkl").unlink()
    with pytest.raises(XmodalInputError, match="gene median dictionary not found"):
        GeneformerEncoder(tmp_path / "v1")
    v2 = GeneformerEncoder(_model(tmp_path / "v2"))
    with pytest.raises(XmodalInputError, match="none of the 2 genes"):
        v2.tokenize(np.ones((1, 2)), ["X", "Y"])


def test_dualdann_trains_on_geneformer_embeddings_and_round_trips(tmp_path: Path) -> None:
    import torch
    from transformers import BertConfig, BertForMaskedLM

    from xmodal.families.multiome._config import MultiomePreprocessConfig
    from xmodal.families.multiome._data import synthetic_multiome
    from xmodal.families.multiome._evaluate import evaluate_phases
    from xmodal.families.multiome._preprocess import preprocess_multiome, without_test
    from xmodal.methods import load_model
    from xmodal.methods.dualdann import DualDANN, DualDANNConfig

    raw = synthetic_multiome(n_cells=120, n_background_genes=30, n_background_peaks=100, domains=("a", "b"), seed=6)
    data = preprocess_multiome(raw, cfg=MultiomePreprocessConfig(n_top_genes=None))[0]
    assert "counts" in data.rna.layers
    assert "n_counts" in data.rna.obs
    genes = list(map(str, data.rna.var_names))
    folder = tmp_path / "gf"
    folder.mkdir()
    tokens = {**SPECIAL, **{g: 4 + i for i, g in enumerate(genes)}}  # the data's gene names are the ids here
    for name, obj in (("token_dictionary.pkl", tokens), ("gene_median_dictionary.pkl", dict.fromkeys(genes, 2.0))):
        with open(folder / name, "wb") as fh:
            pickle.dump(obj, fh)
    torch.manual_seed(0)
    BertForMaskedLM(BertConfig(vocab_size=len(tokens), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                               intermediate_size=32, max_position_embeddings=64)).save_pretrained(folder)
    cfg = DualDANNConfig(source_encoder="geneformer", geneformer_path=str(folder),
                         embedding_cache=str(tmp_path / "cache"), shared_dim=16, peak_hidden=8,
                         peak_intermediate=16, cls_hidden=8, disc_hidden=8, batch_size=32, epochs=2, eval_every=1)
    model = DualDANN(cfg).fit(without_test(data), seed=0)
    assert list((tmp_path / "cache").glob("geneformer-*.npy"))
    probs = model.predict_proba(data.rna, modality="rna")
    assert probs.shape == (data.rna.n_obs, 3)
    with pytest.raises(XmodalInputError, match="needs raw counts"):
        model.predict_proba(data.rna.X, modality="rna")
    saved = model.save(tmp_path / "m")
    assert not (saved / "source_pca.npz").exists()  # the foundation model stays in its own folder
    loaded = load_model(saved)
    np.testing.assert_allclose(loaded.predict_proba(data.rna, modality="rna"), probs, atol=1e-6)
    metrics = evaluate_phases(loaded, data, split="test")
    assert 0.0 <= metrics["target_rna_macro_f1"] <= 1.0
