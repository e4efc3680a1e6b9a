"""What kind of file a user gave: told apart by content, so a wrong ``format:`` gets a precise message."""

from __future__ import annotations

from pathlib import Path

#: what each kind is, for messages, and the ``format`` / source setting that reads it
KINDS = {
    "h5mu": ("an .h5mu (MuData: several modalities)", "format: h5mu (multiome) or kind: anndata with `path`"),
    "h5ad": ("an .h5ad (AnnData: one modality)", "kind: anndata with `path_a`/`path_b` (paired)"),
    "10x_h5": ("a 10x Cell Ranger feature-barcode matrix (.h5)", "format: 10x_h5 (multiome)"),
    "hdf5": ("an HDF5 file of another layout", ""),
    "not_hdf5": ("not an HDF5 file", ""),
}


def sniff_hdf5(path: str | Path) -> str:
    """``h5mu``, ``h5ad``, ``10x_h5``, ``hdf5`` (another layout) or ``not_hdf5``, from the file's content."""
    import h5py

    path = Path(path)
    try:
        if not h5py.is_hdf5(path):
            return "not_hdf5"
        with h5py.File(path, "r") as fh:
            keys = set(fh.keys())
            if "mod" in keys:
                return "h5mu"
            if {"obs", "var"} <= keys or ("X" in keys and ("obs" in keys or "var" in keys)):
                return "h5ad"
            if "matrix" in keys and isinstance(fh["matrix"], h5py.Group) and "barcodes" in fh["matrix"]:
                return "10x_h5"
            if keys and all(isinstance(fh[k], h5py.Group) and "barcodes" in fh[k] for k in keys):
                return "10x_h5"  # Cell Ranger 2: one group per genome
    except (OSError, ValueError, KeyError, TypeError):
        return "hdf5" if _magic(path) else "not_hdf5"
    return "hdf5"


def _magic(path: Path) -> bool:
    try:
        with path.open("rb") as fh:
            return fh.read(8) == b"\x89HDF\r\n\x1a\n"
    except OSError:
        return False


def describe(kind: str) -> str:
    """What a file of ``kind`` is, in words."""
    return KINDS[kind][0]


def require(path: str | Path, kind: str, *, expects: str, fix: str, suggest: bool = True) -> None:
    """Refuse ``path`` unless its content is of ``kind``.

    Raises
    ------
    XmodalInputError
        ``<path>: <expects>, but the file is <what it is>. Fix: <fix>`` (and, with ``suggest``, which setting reads
        a file like it).
    """
    from xmodal.errors import XmodalInputError

    found = sniff_hdf5(path)
    if found != kind:
        raise XmodalInputError(f"{expects}, but the file is {describe(found)}", path=path,
                               fix=fix + (instead(found) if suggest else ""))


def instead(kind: str) -> str:
    """How to go on with a file of ``kind`` given where another kind was expected (for a message's fix)."""
    setting = KINDS[kind][1]
    if setting:
        return f", or read this file with {setting}"
    return " (is the file complete, or another format saved under this name?)"
