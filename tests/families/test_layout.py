"""The stages do not know the families: no family name and no ``family ==`` branch outside ``families/``."""

from __future__ import annotations

import io
import re
import tokenize
from pathlib import Path

from xmodal.families import FAMILIES

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "xmodal"
FAMILY_AGNOSTIC = [SRC / "stages", SRC / "tracking", SRC / "cli.py", ROOT / "components", ROOT / "pipelines"]


def _files() -> list[Path]:
    out = []
    for place in FAMILY_AGNOSTIC:
        out += [place] if place.is_file() else sorted(place.rglob("*.py"))
    return out


def _mentions(path: Path, names: list[str], *, base: Path = ROOT) -> list[str]:
    """Lines naming a family anywhere in an identifier, a string or a comment (any case; ``synthetic_<name>``
    counts too)."""
    found = []
    for tok in tokenize.generate_tokens(io.StringIO(path.read_text()).readline):
        text = tok.string
        kinds = (tokenize.NAME, tokenize.STRING, tokenize.COMMENT, getattr(tokenize, "FSTRING_MIDDLE", -1))
        if tok.type in kinds and any(name in text.lower() for name in names):
            found.append(f"{path.relative_to(base)}:{tok.start[0]}: {text.strip()[:80]}")
    return found


def test_no_family_name_in_family_agnostic_code() -> None:
    files = _files()
    assert len(files) > 20, files  # the folders are where this test thinks they are
    names = sorted(FAMILIES)
    found = [line for path in files for line in _mentions(path, names)]
    assert not found, "family names outside families/:\n" + "\n".join(found)


def test_no_branch_on_the_family() -> None:
    branch = re.compile(r"family\s*==|==\s*[\w.()\[\]\"']*family\b")
    found = [f"{path.relative_to(ROOT)}:{i}: {line.strip()}" for path in _files()
             for i, line in enumerate(path.read_text().splitlines(), 1) if branch.search(line)]
    assert not found, "\n".join(found)


def test_the_check_catches_a_family_name(tmp_path: Path) -> None:
    """The scan itself finds a family named in an identifier, a string, a comment and inside a longer word."""
    name = sorted(FAMILIES)[0]
    probe = tmp_path / "probe.py"
    probe.write_text(f"from x import read_{name}\nkind = 'the {name} family'  # {name.upper()} here\nok = 'x_{name}'\n")
    hits = _mentions(probe, [name], base=tmp_path)
    assert [h.split(":")[1] for h in hits] == ["1", "2", "2", "3"], hits


def test_dvc_yaml_has_no_stage_per_family() -> None:
    import yaml

    text = (ROOT / "dvc.yaml").read_text()
    stages = yaml.safe_load(text)["stages"]
    assert set(stages) == {"ingest", "preprocess", "train", "evaluate"}
    assert stages["train"]["foreach"] == stages["evaluate"]["foreach"] == "${runs}"
    assert not [name for name in FAMILIES if name in text.lower()]
