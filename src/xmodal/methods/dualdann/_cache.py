"""The on-disk cache of frozen foundation-model embeddings (Geneformer, scFoundation).

An entry is one ``.npy`` file named ``<model>-<sha256>.npy``; the hash covers the model's files, the
options that change the embedding and the model's exact input, so a hit is only ever the same
computation. Entries are written atomically.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


def files_digest(files: Iterable[Path]) -> bytes:
    """SHA-256 over the names and contents of ``files`` (in sorted order)."""
    h = hashlib.sha256()
    for f in sorted(Path(p) for p in files):
        h.update(f.name.encode())
        with open(f, "rb") as fh:
            for block in iter(lambda fh=fh: fh.read(1 << 20), b""):
                h.update(block)
    return h.digest()


def cache_key(digest: bytes, *parts: bytes | str) -> str:
    """Hex SHA-256 of a model digest and the parts that define one embedding computation."""
    h = hashlib.sha256(digest)
    for part in parts:
        h.update(part.encode() if isinstance(part, str) else part)
        h.update(b"\0")
    return h.hexdigest()


def cached(cache_dir: Path | None, name: str, key: Callable[[], str],
           compute: Callable[[], np.ndarray]) -> np.ndarray:
    """``compute()``, or its result from ``cache_dir`` when the same ``key()`` was computed before.

    Parameters
    ----------
    cache_dir
        The cache folder (``None``: no cache; ``key`` is then never called).
    name
        The model family, the file name's prefix.
    key
        Builds the entry's hash (called only with a cache).
    compute
        Computes the embeddings ``(n, d)``.
    """
    if cache_dir is None:
        return compute()
    path = Path(cache_dir) / f"{name}-{key()}.npy"
    if path.is_file():
        try:
            found = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as exc:  # a damaged entry is computed again, not trusted
            log.warning("%s: the cached embeddings %s cannot be read (%s); computing them again", name, path, exc)
        else:
            log.info("%s: %d cell embeddings from the cache %s", name, len(found), path)
            return found
    out = compute()
    from xmodal._io import atomic_file

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, out)
    return out
