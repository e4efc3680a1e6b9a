"""Messages name the file and the bad value: the first part of every exit-2 message is the offending file.

Code that sees only arrays (peak parsing, gene alignment, a preprocessor) raises without a file; the stage
that read the data places the error in its file (:func:`xmodal.errors.reading`), so no message says
``<input>`` or names the wrong file.
"""

from __future__ import annotations

from pathlib import Path

import mudata as md
import numpy as np
import pandas as pd
import pytest
import yaml
from _cli import assert_refused, xmodal

from _files import small_multiome, write_10x, write_multiome_csv


def _dataset(root: Path, name: str, config: dict) -> None:
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["datasets"][name] = config
    (root / "params.yaml").write_text(yaml.safe_dump(params))


def _first_part(message: str) -> str:
    return message.split(": error: ", 1)[1].split(": ", 1)[0]


def _h5mu(path: Path, data) -> Path:
    md.MuData({"rna": data.rna, "atac": data.atac}).write(path)
    return path


def _domains(*files: tuple[str, str, Path]) -> dict:
    return {"family": "multiome", "source": {"kind": "files", "domains": [
        {"name": name, "format": fmt, "path": str(path)} for name, fmt, path in files]}}


def test_a_bad_peak_name_in_an_h5mu_names_that_file_and_the_peak(tiny_project: Path) -> None:
    data = small_multiome()
    names = list(map(str, data.atac.var_names))
    names[3] = "chr1_not_a_peak"
    data.atac.var_names = names
    path = _h5mu(tiny_project / "line.h5mu", data)
    _dataset(tiny_project, "mo", _domains(("line", "h5mu", path)))
    message = assert_refused(xmodal(tiny_project, "ingest", "--dataset", "mo"),
                             needle=("'chr1_not_a_peak'", "peak 4 of"))
    assert _first_part(message) == str(path)


def test_a_bad_peak_name_in_a_csv_names_the_atac_table(tiny_project: Path) -> None:
    data = small_multiome()
    rna, atac = write_multiome_csv(tiny_project / "raw", data)
    frame = pd.read_csv(atac, index_col=0)
    frame = frame.rename(columns={frame.columns[2]: "peak_three"})
    frame.to_csv(atac, index_label="cell")
    _dataset(tiny_project, "mo", {"family": "multiome", "source": {"kind": "files", "domains": [
        {"name": "line", "format": "csv", "rna": str(rna), "atac": str(atac)}]}})
    message = assert_refused(xmodal(tiny_project, "ingest", "--dataset", "mo"), needle="'peak_three'")
    assert _first_part(message) == str(atac)


def test_a_domain_without_the_reference_genes_names_its_own_file(tiny_project: Path) -> None:
    first = small_multiome(seed=1)
    second = small_multiome(seed=1)
    second.rna.var_names = [f"OTHER{i}" for i in range(second.rna.n_vars)]
    a = write_10x(tiny_project / "a.h5", first)
    b = _h5mu(tiny_project / "b.h5mu", second)
    _dataset(tiny_project, "mo", _domains(("a", "10x_h5", a), ("b", "h5mu", b)))
    message = assert_refused(xmodal(tiny_project, "ingest", "--dataset", "mo"),
                             needle=("domain 'b' measures only 0 of the", "genes of 'a'"))
    assert _first_part(message) == str(b)


def test_new_data_lacking_features_names_the_new_file(tiny_project: Path) -> None:
    root = tiny_project
    for stage in ("ingest", "preprocess"):
        assert xmodal(root, stage, "--dataset", "tiny").rc == 0
    from xmodal.families.paired._data import read_paired, write_paired

    new = read_paired(root / "data/ingested/tiny")
    new = type(new)(a=new.a[:, 2:].copy(), b=new.b, names=new.names)
    write_paired(new, root / "incoming")
    message = assert_refused(xmodal(root, "monitor", "--dataset", "tiny", "--new", "incoming"),
                             needle=("lacks", "'feat_0'"))
    assert _first_part(message) == str(root / "incoming")


@pytest.mark.parametrize("where", ["modality_a", "modality_b"])
def test_a_non_numeric_value_in_a_paired_csv_names_file_row_column_and_value(tiny_project: Path, where: str) -> None:
    rng = np.random.default_rng(0)
    folder = tiny_project / "raw"
    folder.mkdir()
    for name in ("modality_a", "modality_b"):
        frame = pd.DataFrame(rng.poisson(2, size=(30, 4)), index=[f"c{i}" for i in range(30)],
                             columns=[f"f{j}" for j in range(4)]).astype(object)
        if name == where:
            frame.iloc[6, 2] = "twelve"
        frame.to_csv(folder / f"{name}.csv", index_label="cell")
    _dataset(tiny_project, "mine", {"family": "paired", "source": {"kind": "csv", "modality_a": str(folder / "modality_a.csv"),
                                               "modality_b": str(folder / "modality_b.csv")}})
    message = assert_refused(xmodal(tiny_project, "ingest", "--dataset", "mine"),
                             needle=("row 8", "column 'f2'", "'twelve'"))
    assert _first_part(message) == str(folder / f"{where}.csv")


def _cell_files(folder: Path, *, drop_from: str | None = None, rename_in: str | None = None) -> dict:
    """A paired CSV set of 30 cells; one file lacks cell c7 (``drop_from``) or writes c5 as 'nobody'."""
    rng = np.random.default_rng(1)
    folder.mkdir()
    for name, width in (("modality_a", 4), ("modality_b", 6)):
        frame = pd.DataFrame(rng.poisson(3, size=(30, width)), index=[f"c{i}" for i in range(30)],
                             columns=[f"{name[-1]}{j}" for j in range(width)])
        if name == drop_from:
            frame = frame.drop(index="c7")
        if name == rename_in:
            frame = frame.rename(index={"c5": "nobody"})
        frame.to_csv(folder / f"{name}.csv", index_label="cell")
    return {"family": "paired", "source": {"kind": "csv", "modality_a": str(folder / "modality_a.csv"),
                                           "modality_b": str(folder / "modality_b.csv")}}


@pytest.mark.parametrize("where", ["modality_a", "modality_b"])
def test_a_file_that_lacks_a_cell_of_the_other_is_the_one_named(tiny_project: Path, where: str) -> None:
    """Both files were named as 'the' file before, the other one's when A lacked the cell (issue 28, point 10)."""
    folder = tiny_project / "raw"
    _dataset(tiny_project, "mine", _cell_files(folder, drop_from=where))
    message = assert_refused(xmodal(tiny_project, "ingest", "--dataset", "mine"),
                             needle=("lacks 1 cell", "'c7', line 9 of"))
    assert _first_part(message) == str(folder / f"{where}.csv")


def test_an_id_written_differently_in_one_file_names_both(tiny_project: Path) -> None:
    """Which of two files misspells an id cannot be told: both are named, each with its odd cell and line."""
    folder = tiny_project / "raw"
    _dataset(tiny_project, "mine", _cell_files(folder, rename_in="modality_a"))
    message = assert_refused(xmodal(tiny_project, "ingest", "--dataset", "mine"),
                             needle=("'nobody', line 7 of modality_a.csv", "'c5', line 7 of modality_b.csv"))
    assert _first_part(message) == f"{folder / 'modality_a.csv'} and {folder / 'modality_b.csv'}"


@pytest.mark.parametrize("where", ["rna", "atac"])
def test_a_multiome_table_that_lacks_a_cell_is_the_one_named(tiny_project: Path, where: str) -> None:
    data = small_multiome()
    rna, atac = write_multiome_csv(tiny_project / "raw", data)
    path = rna if where == "rna" else atac
    frame = pd.read_csv(path, dtype=str)
    frame.drop(index=7).to_csv(path, index=False)
    _dataset(tiny_project, "mo", {"family": "multiome", "source": {"kind": "files", "domains": [
        {"name": "line", "format": "csv", "rna": str(rna), "atac": str(atac)}]}})
    message = assert_refused(xmodal(tiny_project, "ingest", "--dataset", "mo"), needle=(f"{where} lacks 1 cell",))
    assert _first_part(message) == str(path)
