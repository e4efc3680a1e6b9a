# xmodal — the two commands that matter:
#   make demo   set up .venv and run the whole lifecycle on the embedded default (no network)
#   make test   set up .venv and run the test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.xmodal-installed
PYTEST_ARGS ?=
# pytest workers: one per core (each test runs single-threaded); `make test PYTEST_WORKERS=0` runs in one process
PYTEST_WORKERS ?= auto

.PHONY: install demo test test-all lint bench peers clean-outputs lock help images push-images image gpu-image base-image \
	container-tools build-extras wheelhouse test-containers

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml requirements/lock.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check "pip>=25"
	# torch first: the CPU wheel is on local disk; anything looser pulls a CUDA build.
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -c requirements/lock.txt -e ".[all,test,dev]"
	touch $(STAMP)

install: $(STAMP)  ## create .venv with the locked dependencies

demo: install  ## dvc repro (ingest → preprocess → train → evaluate), register in MLflow, print the summary
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/dvc repro
	$(BIN)/xmodal register --all
	$(BIN)/xmodal report
	@echo "MLflow UI (runs, models, champion/challenger aliases):"
	@echo "  $(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db --port 5000"

test: install  ## run the default test suite (about 18 min on 2 cores: one worker per core)
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

test-all: install  ## run every test, slow ones included
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile --slow $(PYTEST_ARGS)

test-containers: install container-tools  ## build the CPU image in a real dockerd and run the container tests (root; CI runs it)
	$(BIN)/python -m pytest --containers -n 0 tests/containers $(PYTEST_ARGS)

lint: install  ## ruff
	$(BIN)/ruff check src tests benchmarks

bench: install peers  ## run every benchmark at full size (writes benchmarks/results/*.json; `make test` runs each --quick)
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/gwot_diagnosis.py
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/counts_rule.py
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/alignment_peers.py
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/gwot_scaling.py
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/geoadvae_speed.py
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/census_loader.py
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/cycleae_speed.py
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/counterfactual_peers.py
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/counterfactual_ceiling.py
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/dualdann_speed.py
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/dualdann_pbmc68k_phase.py
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/foundation_embed.py
	OMP_NUM_THREADS=1 $(BIN)/python benchmarks/gpu_check.py  # records "no CUDA device" on a CPU machine
	OMP_NUM_THREADS=1 PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python benchmarks/pipeline_overhead.py --repeats 3
	$(BIN)/python benchmarks/image_build.py  # root: its own dockerd (make container-tools)

peers: benchmarks/.peers/.installed  ## the alignment peers' own environment (the `peers` extra, outside the lock)

benchmarks/.peers/.installed: pyproject.toml
	python3 -m venv benchmarks/.peers
	benchmarks/.peers/bin/python -m pip install -q "pip>=25"
	benchmarks/.peers/bin/python -m pip install -q $$(python3 -c "import tomllib; print(' '.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['peers']))")
	touch $@

lock:  ## regenerate requirements/lock.txt from the current .venv
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^-e ' > requirements/lock.txt

clean-outputs:  ## remove pipeline outputs (data/, models/, reports/, mlflow.db)
	rm -rf data/ingested data/processed models reports mlflow.db mlflow.db.lock mlartifacts

# Project images (docker/): ghcr.io/xmodal/xmodal:<version> (CPU) and :<version>-gpu, <version> = xmodal.__version__.
IMAGE_REPOSITORY ?= ghcr.io/xmodal/xmodal
DOCKER ?= docker
XMODAL_VERSION = $(shell PYTHONPATH=src $(PYTHON) -c 'import xmodal; print(xmodal.__version__)')
IMAGE = $(IMAGE_REPOSITORY):$(XMODAL_VERSION)
GPU_IMAGE = $(IMAGE_REPOSITORY):$(XMODAL_VERSION)-gpu
IMAGE_BUILD_ARGS = --build-arg XMODAL_VERSION=$(XMODAL_VERSION) --build-arg IMAGE_REPOSITORY=$(IMAGE_REPOSITORY) \
	--label org.opencontainers.image.revision=$$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
NEED_DOCKER = command -v $(DOCKER) >/dev/null 2>&1 || { echo "make: Docker is needed to build/push the images: '$(DOCKER)' is not on PATH (install Docker, or set DOCKER=podman)" >&2; exit 1; }; \
	$(DOCKER) info >/dev/null 2>&1 || { echo "make: Docker is needed to build/push the images: '$(DOCKER)' is on PATH but no Docker engine answers (start the daemon)" >&2; exit 1; }

# docker/build-extras/ (build stages only, never the runtime image): the CA bundle pip trusts here, when it has
# one of its own (PIP_CERT or pip's `cert` setting), and a wheelhouse (`make wheelhouse`)
BUILD_CA ?= $(or $(PIP_CERT),$(shell $(PYTHON) -m pip config get global.cert 2>/dev/null))
# the base of every stage: the official image by default; `make base-image` makes one without a registry
BASE_IMAGE ?= python:3.11.14-slim-bookworm
LOCAL_BASE_IMAGE ?= localhost/xmodal-python:3.11-bookworm
DEBIAN_MIRROR ?= http://deb.debian.org/debian
# the build stages reach the registries through the host's network (an engine without a bridge has no other)
DOCKER_BUILD = $(DOCKER) build --network host

container-tools:  ## install Debian's docker.io (dockerd) and debootstrap, for the image builds and container tests
	@if command -v dockerd >/dev/null 2>&1 && command -v debootstrap >/dev/null 2>&1; then exit 0; fi; \
	sudo=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	command -v apt-get >/dev/null 2>&1 || { echo "make: container-tools needs apt-get (Debian/Ubuntu): install a Docker engine and debootstrap yourself" >&2; exit 1; }; \
	$$sudo apt-get install -y -q docker.io debootstrap >/dev/null || { $$sudo apt-get update -q && $$sudo apt-get install -y -q docker.io debootstrap >/dev/null; }

build-extras:
	@mkdir -p docker/build-extras/wheelhouse
	@if [ -n "$(BUILD_CA)" ] && [ -f "$(BUILD_CA)" ]; then cp "$(BUILD_CA)" docker/build-extras/ca.crt; else rm -f docker/build-extras/ca.crt; fi

wheelhouse: build-extras  ## put the lock's CPU torch into docker/build-extras/wheelhouse (pip's find-links or PyTorch's CPU index)
	$(PYTHON) -m pip download -q --no-deps --only-binary :all: --dest docker/build-extras/wheelhouse \
		--extra-index-url https://download.pytorch.org/whl/cpu "$$(grep -E '^torch==' requirements/lock.txt)"

base-image:  ## a Debian bookworm + Python 3.11 base from Debian's packages, no registry needed (localhost/xmodal-python)
	@$(NEED_DOCKER)
	@command -v debootstrap >/dev/null 2>&1 || { echo "make: base-image needs debootstrap (make container-tools)" >&2; exit 1; }
	$(DOCKER) image inspect localhost/debian-base:bookworm >/dev/null 2>&1 || { \
		root=$$(mktemp -d) && debootstrap --variant=minbase bookworm "$$root/rootfs" $(DEBIAN_MIRROR) >/dev/null \
		&& tar -C "$$root/rootfs" -c . | $(DOCKER) import - localhost/debian-base:bookworm; rc=$$?; rm -rf "$$root"; exit $$rc; }
	$(DOCKER_BUILD) -t $(LOCAL_BASE_IMAGE) - < docker/Dockerfile.base

# torch from the wheelhouse when it holds the lock's torch (PyTorch's index is then not asked)
TORCH_INDEX_ARG = $$(ls docker/build-extras/wheelhouse/torch-*.whl >/dev/null 2>&1 && echo --build-arg TORCH_INDEX_URL=)

image: build-extras  ## build the CPU image (BASE_IMAGE=localhost/xmodal-python:3.11-bookworm after make base-image)
	@$(NEED_DOCKER)
	@test -n "$(XMODAL_VERSION)" || { echo "make: could not read xmodal.__version__ from src/xmodal" >&2; exit 1; }
	$(DOCKER_BUILD) -f docker/Dockerfile $(IMAGE_BUILD_ARGS) --build-arg BASE_IMAGE=$(BASE_IMAGE) $(TORCH_INDEX_ARG) -t $(IMAGE) .

gpu-image: build-extras  ## build the CUDA image (its nvidia/cuda base must come from a registry)
	@$(NEED_DOCKER)
	@test -n "$(XMODAL_VERSION)" || { echo "make: could not read xmodal.__version__ from src/xmodal" >&2; exit 1; }
	$(DOCKER_BUILD) -f docker/Dockerfile.gpu $(IMAGE_BUILD_ARGS) --build-arg BASE_IMAGE=$(BASE_IMAGE) -t $(GPU_IMAGE) .

images: image gpu-image  ## build both project images (Docker or podman): ghcr.io/xmodal/xmodal:<version>[-gpu]

push-images: images  ## build and push both project images (after `docker login ghcr.io`)
	$(DOCKER) push $(IMAGE)
	$(DOCKER) push $(GPU_IMAGE)
