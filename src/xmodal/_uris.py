"""Store URIs from params (MLflow tracking, Optuna storage): relative sqlite paths under the project, and checks."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from urllib.parse import urlparse

from xmodal.errors import ConfigError

SQLITE = "sqlite:///"


def store_uri(uri: str, *, root: str | Path, source: str, schemes: Collection[str], what: str) -> str:
    """``uri`` with a relative ``sqlite:///file.db`` made absolute under ``root``, checked to be openable.

    Parameters
    ----------
    uri
        The configured URI.
    root
        Project root for relative sqlite paths.
    source
        Where the URI came from, for messages (``register.tracking_uri``, ``$MLFLOW_TRACKING_URI``).
    schemes
        Schemes the store accepts (a database scheme may name its driver: ``postgresql+psycopg2``).
    what
        The store, for messages (``"an MLflow tracking store"``).

    Raises
    ------
    ConfigError
        An unknown scheme, an sqlite URI naming no file, or one whose folder does not exist.
    """
    if uri.startswith(SQLITE) and not uri[len(SQLITE):].startswith("/"):
        uri = SQLITE + str((Path(root) / uri[len(SQLITE):]).resolve())
    scheme = urlparse(uri).scheme.split("+", 1)[0].lower()
    if scheme not in schemes:
        raise ConfigError(f"{source}: {uri!r} is not {what} (scheme {scheme or 'none'!r}; accepted: "
                          f"{', '.join(sorted(schemes))}); e.g. sqlite:///file.db, a file under the project root")
    if scheme == "sqlite":
        file = Path(uri[len(SQLITE):]) if uri.startswith(SQLITE) else None
        if file is None or file.name in ("", ":memory:"):
            raise ConfigError(f"{source}: {uri!r} names no database file; use sqlite:///<file>.db")
        if not file.parent.is_dir():
            raise ConfigError(f"{source}: {uri!r}: the folder {file.parent} does not exist; create it, or use a "
                              "relative sqlite:///<file>.db (under the project root)")
    return uri
