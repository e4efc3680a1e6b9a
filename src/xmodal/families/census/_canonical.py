"""Byte-identical TileDB stores: the same cells written twice give the same files, so ``dvc.lock`` reproduces.

TileDB names each fragment, commit, schema, metadata and group file ``__<t1>_<t2>_<label>[_<version>]``: two
timestamps (milliseconds of the wall clock, or the timestamp the writer opened the object at) and a random
32-hex-digit label, and a fragment's metadata names the schema it was written with. So two writes of the same
data differ in every file name and in the fragments' metadata, and DVC, which hashes names and bytes, sees two
different stores.

:func:`canonical_names` renames them after the write: within each TileDB object (an array or a group), the
distinct timestamps become ``10**12 + rank`` (13 digits, in their order) and the labels ``rank`` in 32 hex digits,
ranked by timestamp and then by the bytes each entry holds, never by the old random label. A fragment's data
does not depend on its name, and the one place a name is written inside a file (a fragment's metadata naming its
schema: the same number of ASCII characters before and after) is rewritten with it. TileDB orders fragments by
their names, and the new names keep the old order of timestamps, so what a reader sees does not change.

Two conditions make the result independent of the wall clock, both kept by
:func:`xmodal.families.census._soma.write_store`: every write goes through handles opened at one fixed
timestamp (:data:`WRITE_TIMESTAMP`; only schemas take the wall clock, and each array has one, written before its
data), and no column is a TileDB enumeration (an enumeration file's random name is stored compressed inside the
schema, where it cannot be rewritten).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from xmodal.errors import XmodalInputError

WRITE_TIMESTAMP = 10**12
"""Milliseconds (2001-09-09) every handle of a store written by xmodal is opened at, for writing."""
_BASE = 10**12
_NAME = re.compile(r"^__(\d{13})_(\d{13})_([0-9a-f]{32})(.*)$")
_PARTS = ("__fragments", "__commits", "__schema", "__meta", "__group", "__fragment_meta", "__labels")


def _objects(root: Path) -> list[Path]:
    """Every folder of ``root`` (itself included) that is a TileDB array or group."""
    return [p for p in (root, *sorted(d for d in root.rglob("*") if d.is_dir()))
            if any((p / part).is_dir() for part in _PARTS)]


def _content(entries: list[Path]) -> bytes:
    """What an entry holds, for ranking entries with equal timestamps (a fragment's metadata, which names the
    schema, is left out: its name is what is being chosen)."""
    digest = hashlib.sha256()
    for entry in sorted(entries, key=lambda p: (p.parent.name, p.name)):
        digest.update(entry.parent.name.encode() + b"\0")
        files = sorted(f for f in entry.rglob("*") if f.is_file()) if entry.is_dir() else [entry]
        for f in files:  # named inside the entry, never by the entry's own (random) name
            if f.name != "__fragment_metadata.tdb":
                inside = str(f.relative_to(entry)) if entry.is_dir() else ""
                digest.update(inside.encode() + b"\0" + f.read_bytes())
    return digest.digest()


def _rename_object(obj: Path) -> int:
    entries: dict[tuple[str, str, str], list[Path]] = {}
    for part in _PARTS:
        folder = obj / part
        if not folder.is_dir():
            continue
        if part == "__schema" and any((folder / "__enumerations").glob("*")):
            raise XmodalInputError("the store holds TileDB enumerations, whose file names cannot be made "
                                   "reproducible", path=obj, fix="write categorical columns as plain strings")
        for entry in folder.iterdir():
            found = _NAME.match(entry.name)
            if found is not None:
                entries.setdefault((found[1], found[2], found[3]), []).append(entry)
    stamps = sorted({t for key in entries for t in key[:2]}, key=int)
    new_stamp = {t: str(_BASE + i) for i, t in enumerate(stamps)}
    order = sorted(entries, key=lambda key: (int(key[0]), int(key[1]), _content(entries[key])))
    names = {f"__{t1}_{t2}_{label}": f"__{new_stamp[t1]}_{new_stamp[t2]}_{rank:032x}"
             for rank, (t1, t2, label) in enumerate(order)}
    for file in (f for f in obj.glob("__fragments/*/__fragment_metadata.tdb") if f.is_file()):
        data = file.read_bytes()
        patched = data
        for old, new in names.items():
            patched = patched.replace(old.encode(), new.encode())  # same length: offsets inside stay valid
        if patched != data:
            file.write_bytes(patched)
    for (t1, t2, label), paths in entries.items():
        old = f"__{t1}_{t2}_{label}"
        for path in paths:
            path.rename(path.with_name(names[old] + path.name[len(old):]))
    return len(names)


def canonical_names(root: str | Path) -> int:
    """Give every TileDB file and folder under ``root`` a name that depends only on what was written.

    Parameters
    ----------
    root
        A closed store (no handle open on it), written as the module docstring says.

    Returns
    -------
    int
        How many entries were renamed.

    Raises
    ------
    XmodalInputError
        The store holds TileDB enumerations.
    """
    return sum(_rename_object(obj) for obj in _objects(Path(root)))


__all__ = ["WRITE_TIMESTAMP", "canonical_names"]
