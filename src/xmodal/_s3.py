"""``s3://`` inputs: objects are downloaded to a temporary folder and read by the local readers.

Where the objects are and who may read them comes from the environment, as for every AWS client:

* the endpoint: ``AWS_ENDPOINT_URL_S3`` or ``AWS_ENDPOINT_URL`` (botocore reads both itself), else
  ``MLFLOW_S3_ENDPOINT_URL`` (what an MLflow deployment on MinIO/SeaweedFS already sets), else AWS;
* the credentials: botocore's standard chain (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``, a
  profile, an instance role, ...).

Every failure (a missing bucket or object, rejected credentials, an unreachable endpoint) is raised
as :class:`~xmodal.errors.XmodalInputError` naming the ``s3://`` URI and a fix, so the CLI exits 2.
boto3 is imported only when an ``s3://`` URI is actually read.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xmodal.errors import XmodalInputError

__all__ = ["S3Object", "client", "delete_prefix", "download", "download_folder", "downloaded", "is_s3_uri",
           "parse_s3_uri", "upload_folder"]

log = logging.getLogger(__name__)

SCHEME = "s3://"
_ENDPOINT_VARS = ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
_FALLBACK_ENDPOINT_VAR = "MLFLOW_S3_ENDPOINT_URL"
_RETRY_VARS = ("AWS_MAX_ATTEMPTS", "AWS_RETRY_MODE")
_CHUNK = 1 << 20
_MISSING_KEY = frozenset({"NoSuchKey", "404", "NotFound"})
_REJECTED = frozenset({
    "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403", "Forbidden",
    "InvalidToken", "ExpiredToken", "TokenRefreshRequired", "AuthorizationHeaderMalformed",
})
_CREDENTIALS_FIX = ("check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary "
                    "credentials) and that this identity may read the object")


@dataclass(frozen=True)
class S3Object:
    """One object: ``bucket`` and ``key`` of ``s3://bucket/key``."""

    bucket: str
    key: str

    @property
    def uri(self) -> str:
        """``s3://bucket/key``."""
        return f"{SCHEME}{self.bucket}/{self.key}"

    @property
    def name(self) -> str:
        """The last part of the key (the file name the local readers see)."""
        return self.key.rsplit("/", 1)[-1]


def is_s3_uri(value: object) -> bool:
    """Whether ``value`` is a str starting with ``s3://`` (a ``Path`` cannot hold a URI).

    Examples
    --------
    >>> is_s3_uri("s3://bucket/raw/a.csv"), is_s3_uri("raw/a.csv")
    (True, False)
    """
    return isinstance(value, str) and value.startswith(SCHEME)


def parse_s3_uri(uri: str, *, role: str | None = None) -> S3Object:
    """Split ``s3://bucket/key`` into bucket and key.

    Parameters
    ----------
    uri
        The URI; the key must name an object (not end with ``/``).
    role
        The parameter it came from, for the error message (e.g. ``"modality_a"``).

    Returns
    -------
    S3Object

    Raises
    ------
    XmodalInputError
        When the URI has no bucket, no key, or a key that ends with ``/`` (a folder).

    Examples
    --------
    >>> parse_s3_uri("s3://lab-data/multiome/gex.csv")
    S3Object(bucket='lab-data', key='multiome/gex.csv')
    """
    where = f"source.{role}" if role else "the URI"
    if not is_s3_uri(uri):
        raise XmodalInputError(f"{where}: not an s3:// URI", path=uri,
                               fix="write it as s3://bucket/path/to/file")
    bucket, _, key = uri[len(SCHEME):].partition("/")
    if not bucket or not key or key.endswith("/"):
        raise XmodalInputError(
            f"{where}: an s3:// input must name one object (bucket and key)",
            path=uri,
            fix="write it as s3://bucket/path/to/file (a key, not a folder ending in /)",
        )
    return S3Object(bucket=bucket, key=key)


def _endpoint_override() -> str | None:
    """``MLFLOW_S3_ENDPOINT_URL`` when no ``AWS_ENDPOINT_URL*`` is set (botocore reads those itself)."""
    if any(os.environ.get(name) for name in _ENDPOINT_VARS):
        return None
    return os.environ.get(_FALLBACK_ENDPOINT_VAR) or None


def client() -> Any:
    """A new S3 client configured from the environment (see the module docstring).

    A new boto3 session is made on every call, so changed environment variables take effect (the
    default session caches the credentials it found first). Without ``AWS_MAX_ATTEMPTS`` /
    ``AWS_RETRY_MODE``, requests use botocore's ``standard`` retry mode with 3 attempts, so an
    unreachable endpoint fails within seconds.

    Raises
    ------
    XmodalInputError
        When boto3 is missing or the endpoint URL is malformed.
    """
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise XmodalInputError(
            "reading s3:// inputs needs boto3, which is not installed",
            fix="pip install 'xmodal[s3]' (or pip install boto3)",
        ) from None
    options: dict[str, Any] = {"connect_timeout": 10, "read_timeout": 60}
    if not any(os.environ.get(name) for name in _RETRY_VARS):
        options["retries"] = {"mode": "standard", "max_attempts": 3}
    endpoint = _endpoint_override()
    try:
        return boto3.session.Session().client("s3", endpoint_url=endpoint, config=Config(**options))
    except ValueError as exc:  # botocore: "Invalid endpoint: ..."
        raise XmodalInputError(
            f"cannot use the S3 endpoint ({exc})",
            fix=("set AWS_ENDPOINT_URL (or MLFLOW_S3_ENDPOINT_URL) to a full URL such as "
                 "http://127.0.0.1:8333, or unset it for AWS S3"),
        ) from None


def download(uri: str, destination: str | Path, *, s3: Any = None, role: str | None = None) -> Path:
    """Download the object ``uri`` to the file ``destination``.

    Parameters
    ----------
    uri
        ``s3://bucket/key``.
    destination
        Local file to write (its folder must exist); overwritten.
    s3
        An S3 client; default: :func:`client`.
    role
        The parameter ``uri`` came from, for error messages.

    Returns
    -------
    Path
        ``destination``.

    Raises
    ------
    XmodalInputError
        Naming ``uri`` and a fix: missing bucket or object, rejected or missing credentials,
        unreachable endpoint, or any other S3 error.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    obj = parse_s3_uri(uri, role=role)
    s3 = client() if s3 is None else s3
    destination = Path(destination)
    try:
        response = s3.get_object(Bucket=obj.bucket, Key=obj.key)
        with response["Body"] as body, destination.open("wb") as out:
            shutil.copyfileobj(body, out, _CHUNK)
    except (BotoCoreError, ClientError) as exc:
        raise _s3_error(exc, obj, endpoint=s3.meta.endpoint_url, role=role) from None
    log.info("downloaded %s (%d bytes)", obj.uri, destination.stat().st_size)
    return destination


def _prefix(uri: str) -> S3Object:
    """``s3://bucket/some/prefix`` → bucket and key prefix (without a trailing ``/``)."""
    if not is_s3_uri(uri):
        raise XmodalInputError("not an s3:// URI", path=uri, fix="write it as s3://bucket/prefix")
    bucket, _, key = uri[len(SCHEME):].partition("/")
    if not bucket or not key.strip("/"):
        raise XmodalInputError("an s3:// prefix needs a bucket and a key prefix", path=uri,
                               fix="write it as s3://bucket/prefix")
    return S3Object(bucket=bucket, key=key.strip("/"))


def upload_folder(folder: str | Path, uri: str) -> int:
    """Upload every file under ``folder`` (recursively) to ``uri/<relative path>``; return the file count.

    Raises
    ------
    XmodalInputError
        Naming the prefix and a fix (missing bucket, credentials, endpoint).
    """
    from botocore.exceptions import BotoCoreError, ClientError

    target, s3 = _prefix(uri), client()
    files = [p for p in sorted(Path(folder).rglob("*")) if p.is_file()]
    for path in files:
        key = f"{target.key}/{path.relative_to(folder).as_posix()}"
        try:
            s3.upload_file(str(path), target.bucket, key)
        except (BotoCoreError, ClientError) as exc:
            raise _s3_error(exc, S3Object(target.bucket, key), endpoint=s3.meta.endpoint_url, role=None) from None
        except Exception as exc:  # boto3's transfer manager wraps client errors  # noqa: BLE001
            cause = exc.__cause__ if isinstance(exc.__cause__, BotoCoreError | ClientError) else exc
            raise _s3_error(cause, S3Object(target.bucket, key), endpoint=s3.meta.endpoint_url, role=None) from None
    log.info("uploaded %d files to %s", len(files), uri)
    return len(files)


def _keys(s3: Any, target: S3Object) -> list[str]:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=target.bucket, Prefix=target.key + "/")
        return [obj["Key"] for page in pages for obj in page.get("Contents", [])]
    except (BotoCoreError, ClientError) as exc:
        raise _s3_error(exc, target, endpoint=s3.meta.endpoint_url, role=None) from None


def download_folder(uri: str, folder: str | Path) -> int:
    """Download every object under the prefix ``uri`` into ``folder`` (keeping the relative paths).

    Raises
    ------
    XmodalInputError
        Nothing under the prefix, or an S3 error (naming the prefix and a fix).
    """
    target, s3 = _prefix(uri), client()
    keys = _keys(s3, target)
    if not keys:
        raise XmodalInputError("nothing under this prefix", path=uri,
                               fix="check the prefix (keys are case-sensitive) and that it was uploaded")
    for key in keys:
        dest = Path(folder) / key[len(target.key) + 1:]
        if ".." in Path(key[len(target.key) + 1:]).parts:
            raise XmodalInputError("an object key leaves its prefix", path=f"s3://{target.bucket}/{key}",
                                   fix="remove objects whose keys contain '..'")
        dest.parent.mkdir(parents=True, exist_ok=True)
        download(f"s3://{target.bucket}/{key}", dest, s3=s3)
    return len(keys)


def delete_prefix(uri: str) -> int:
    """Delete every object under the prefix ``uri``; return how many."""
    target, s3 = _prefix(uri), client()
    keys = _keys(s3, target)
    for start in range(0, len(keys), 1000):
        s3.delete_objects(Bucket=target.bucket, Delete={"Objects": [{"Key": k} for k in keys[start:start + 1000]]})
    return len(keys)


@contextmanager
def downloaded(uris: Mapping[str, str]) -> Iterator[dict[str, Path]]:
    """Download ``s3://`` objects into a temporary folder that is removed on exit.

    Parameters
    ----------
    uris
        ``role → s3://bucket/key`` (e.g. ``{"modality_a": "s3://lab/raw/morpho.csv"}``).

    Yields
    ------
    dict[str, Path]
        ``role → local file``. Each object keeps its file name (the last part of its key), so
        readers that name files by their name or stem behave as for local files.

    Raises
    ------
    XmodalInputError
        From :func:`download`; and any ``XmodalInputError`` raised inside the ``with`` block is
        raised again with every local temporary path replaced by its ``s3://`` URI, so messages
        name the object the user gave, not a file that no longer exists.
    """
    folder = Path(tempfile.mkdtemp(prefix="xmodal-s3-"))
    try:
        s3 = client()
        local: dict[str, Path] = {}
        uri_of: dict[str, str] = {}
        by_uri: dict[str, Path] = {}
        for role, uri in uris.items():
            if uri not in by_uri:
                sub = folder / str(len(by_uri))
                sub.mkdir()
                target = sub / (parse_s3_uri(uri, role=role).name)
                by_uri[uri] = download(uri, target, s3=s3, role=role)
                uri_of[str(target)] = uri
            local[role] = by_uri[uri]
        try:
            yield local
        except XmodalInputError as exc:
            raise _renamed(exc, uri_of) from None
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _renamed(exc: XmodalInputError, uri_of: Mapping[str, str]) -> XmodalInputError:
    """A copy of ``exc`` with each temporary path (key of ``uri_of``) replaced by its URI."""
    def swap(value: Any) -> Any:
        if not isinstance(value, str):
            return value
        for local in sorted(uri_of, key=len, reverse=True):
            value = value.replace(local, uri_of[local])
        return value

    return XmodalInputError(swap(exc.problem), path=swap(exc.path), row=exc.row,
                            column=swap(exc.column), fix=swap(exc.fix))


def _s3_error(exc: Exception, obj: S3Object, *, endpoint: str, role: str | None) -> XmodalInputError:
    """Translate a botocore error on ``obj`` into a message with a fix."""
    from botocore.exceptions import (
        ClientError,
        ConnectTimeoutError,
        EndpointConnectionError,
        NoCredentialsError,
        PartialCredentialsError,
    )

    where = f"source.{role}: " if role else ""
    ls = f"aws s3 ls s3://{obj.bucket}/{obj.key} --endpoint-url {endpoint}"
    if isinstance(exc, NoCredentialsError | PartialCredentialsError):
        return XmodalInputError(
            f"{where}no S3 credentials found ({exc})",
            path=obj.uri,
            fix="set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) for the S3 store",
        )
    if isinstance(exc, EndpointConnectionError | ConnectTimeoutError):
        return XmodalInputError(
            f"{where}cannot reach the S3 endpoint {endpoint} ({exc})",
            path=obj.uri,
            fix=("check AWS_ENDPOINT_URL (or MLFLOW_S3_ENDPOINT_URL) and that the S3 server is "
                 "running and reachable from here"),
        )
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        message = str(error.get("Message", "")).rstrip(".")
        detail = f"{code}: {message}" if message and message != code else code
        if code == "NoSuchBucket":
            return XmodalInputError(
                f"{where}bucket {obj.bucket!r} does not exist at {endpoint}",
                path=obj.uri,
                fix=(f"check the bucket name in the URI and the endpoint; list the buckets with "
                     f"`aws s3 ls --endpoint-url {endpoint}`"),
            )
        if code in _MISSING_KEY:
            return XmodalInputError(
                f"{where}no such object (key {obj.key!r} in bucket {obj.bucket!r})",
                path=obj.uri,
                fix=f"check the key exists: {ls} (keys are case-sensitive), or push the data first",
            )
        if code in _REJECTED:
            return XmodalInputError(
                f"{where}the S3 store rejected the credentials ({detail})",
                path=obj.uri,
                fix=_CREDENTIALS_FIX,
            )
        return XmodalInputError(
            f"{where}S3 error {detail}",
            path=obj.uri,
            fix=f"check the URI, the endpoint {endpoint} and the credentials; try {ls}",
        )
    return XmodalInputError(
        f"{where}S3 download failed ({type(exc).__name__}: {exc})",
        path=obj.uri,
        fix=f"check the endpoint {endpoint} and the network, then retry; try {ls}",
    )
