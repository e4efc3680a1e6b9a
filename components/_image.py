"""The one place that names the images every component runs in (pinned to the package version)."""

from __future__ import annotations

import os
from importlib.metadata import PackageNotFoundError, version

try:
    VERSION = version("xmodal")
except PackageNotFoundError:  # pragma: no cover - running from a source tree that is not installed
    VERSION = "0.0.0"

#: image repository; override with ``XMODAL_IMAGE_REPOSITORY`` when compiling
REPOSITORY = os.environ.get("XMODAL_IMAGE_REPOSITORY", "ghcr.io/xmodal/xmodal")
#: CPU image (``docker/Dockerfile``); ``XMODAL_IMAGE`` overrides the whole reference
IMAGE = os.environ.get("XMODAL_IMAGE", f"{REPOSITORY}:{VERSION}")
#: CUDA image (``docker/Dockerfile.gpu``) for tasks that request an accelerator
GPU_IMAGE = os.environ.get("XMODAL_GPU_IMAGE", f"{REPOSITORY}:{VERSION}-gpu")
