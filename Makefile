# The two commands a newcomer runs: `make demo` and `make test`. Each creates .venv when missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-v6
DEMO   := demo_out
# pytest-xdist workers of `make test` (CI has 2 cores; each worker computes on one thread)
TEST_WORKERS ?= 2

.PHONY: demo predict-demo bench bench-peer test lint format model clean help

help:
	@echo "make demo   set up .venv, make a synthetic basemap of COG quads, run the tiled job over it"
	@echo "make predict-demo  the untiled reference path on one scene, scored against its truth"
	@echo "make bench  throughput, read amplification, host CPU per tile (bench/throughput.py, bench/host_ceiling.py)"
	@echo "make bench-peer  the job against MONAI's sliding window (installs the bench extra)"
	@echo "make test   set up .venv, lint, run the whole test suite (slow cases included) on TEST_WORKERS=2 processes"
	@echo "make test-compat  smp_unet/smp_unetplusplus against real segmentation_models_pytorch (builds .venv-compat once, ~5.5 GB)"
	@echo "make model  retrain the demo model and rebuild models/rts-demo (about 4 minutes)"
	@echo "make welllog-demo   three synthetic log scans through tilecast welllog run, scored from the LAS it wrote"
	@echo "make welllog-model  retrain the well-log digitiser, rebuild models/welllog-demo (3-8 minutes)"
	@echo "make classify-demo  200 held-out synthetic chips through tilecast classify, scored from its results CSV"
	@echo "make classify-model retrain the demo chip classifier, rebuild models/classify-demo (2-6 minutes)"

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# The CPU build of torch, pinned so the venv stays small (a plain `torch` pulls CUDA).
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[test,report,serve]'
	touch $@

demo: $(STAMP)
	$(BIN)/python scripts/make_demo_basemap.py --out $(DEMO)
	$(BIN)/tilecast bundle verify models/rts-demo
	$(BIN)/python scripts/inference.py --config configs/inference.yaml --tile-list $(DEMO)/tiles.csv
	$(BIN)/python scripts/score_demo.py --vectors $(DEMO)/inference/vectors/rts_predictions.gpkg --truth $(DEMO)/truth.gpkg

predict-demo: $(STAMP)
	$(BIN)/python scripts/make_demo_scene.py --out $(DEMO)
	$(BIN)/tilecast -v predict models/rts-demo $(DEMO)/scene.tif $(DEMO)/prediction.tif
	$(BIN)/python scripts/score_demo.py --bundle models/rts-demo --prediction $(DEMO)/prediction.tif --truth $(DEMO)/truth.gpkg

bench: $(STAMP)
	$(BIN)/python bench/throughput.py --basemap $(DEMO)/basemap
	$(BIN)/python bench/host_ceiling.py --demo $(DEMO)

# The job against MONAI's sliding window, side by side (installs the `bench` extra: monai).
bench-peer: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	$(BIN)/python bench/vs_monai.py --demo-dir $(DEMO)

# tilecast's smp architectures against real segmentation_models_pytorch, in a side venv that
# has smp (and the CUDA torch it pulls; it runs on the CPU). Built once and kept (5.6 GB; about
# 1.5 minutes to build on a fast network, then about 1.5 minutes per run); `make test` builds
# it too and runs tests/compat with the rest (they skip without it). `tilecast bundle create`
# runs there from this checkout (installed --no-deps, plus its light dependencies). The stamp
# is written only after both installs succeed, so an interrupted build is finished next run.
COMPAT       := .venv-compat
COMPAT_STAMP := $(COMPAT)/.installed-v1
COMPAT_PINS  := torch==2.14.1 torchvision==0.29.1 segmentation-models-pytorch==0.6.0
COMPAT_LIGHT := 'pydantic>=2.6' 'pyyaml>=6.0' 'click>=8.1' 'fsspec>=2024.6' 'numpy>=1.26'

$(COMPAT_STAMP):
	test -x $(COMPAT)/bin/python || $(PYTHON) -m venv $(COMPAT)
	$(COMPAT)/bin/python -m pip install --quiet $(COMPAT_PINS) $(COMPAT_LIGHT)
	$(COMPAT)/bin/python -m pip install --quiet --no-deps -e .
	touch $@

test: $(STAMP) $(COMPAT_STAMP)
	$(BIN)/ruff check src tests scripts bench
	$(BIN)/ruff format --check src tests scripts bench
	TILECAST_COMPAT_VENV=$(abspath $(COMPAT)) $(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile

.PHONY: test-compat
test-compat: $(STAMP) $(COMPAT_STAMP)
	TILECAST_COMPAT_VENV=$(abspath $(COMPAT)) $(BIN)/pytest -q -rs tests/compat

lint: $(STAMP)
	$(BIN)/ruff check src tests scripts bench

format: $(STAMP)
	$(BIN)/ruff check --fix src tests scripts bench
	$(BIN)/ruff format src tests scripts bench

model: $(STAMP)
	$(BIN)/python scripts/train_demo_model.py --out build/train/rts-demo
	$(BIN)/tilecast bundle create build/train/rts-demo --out models/rts-demo --overwrite

clean:
	rm -rf $(DEMO) build .pytest_cache .ruff_cache

.PHONY: welllog-demo welllog-model
# Three held-out synthetic scans through the batch job, scored from the LAS files it wrote.
welllog-demo: $(STAMP)
	$(BIN)/python scripts/make_welllog_scans.py --out $(DEMO)/welllog --count 3 --seed 50100
	$(BIN)/tilecast welllog run --scans $(DEMO)/welllog/manifest.csv --bundle models/welllog-demo --out $(DEMO)/welllog/out
	$(BIN)/python scripts/score_welllog.py --scans $(DEMO)/welllog --written $(DEMO)/welllog/out

welllog-model: $(STAMP)
	$(BIN)/python scripts/train_welllog_model.py --out build/train/welllog-demo
	$(BIN)/tilecast bundle create build/train/welllog-demo --out models/welllog-demo --overwrite

.PHONY: classify-demo classify-model
# Held-out synthetic chips (slump, lake, river, tundra) through tilecast classify, scored from
# the results CSV it wrote against the chips' truth; fails below the accuracy floor.
classify-demo: $(STAMP)
	$(BIN)/python scripts/make_classify_chips.py --out $(DEMO)/classify --count 200
	$(BIN)/tilecast classify models/classify-demo $(DEMO)/classify/chips --out $(DEMO)/classify/results.csv
	$(BIN)/python scripts/score_classify.py --results $(DEMO)/classify/results.csv \
		--truth $(DEMO)/classify/truth.csv --min-accuracy 0.9

classify-model: $(STAMP)
	$(BIN)/python scripts/train_classifier.py --out build/train/classify-demo
	$(BIN)/tilecast bundle create build/train/classify-demo --out models/classify-demo --overwrite

.PHONY: image
# The thaw-slump job's container image (Dockerfile; see its header): the CUDA PyTorch base by
# default, TILECAST_BASE=<image> for another; proxy variables set here are passed as build args,
# DOCKER_BUILD_ARGS adds others (e.g. --build-arg PIP_INDEX_URL=https://mirror/simple). Not run
# in CI: tests/container/test_image.py builds the same Dockerfile FROM a local Debian base.
TILECAST_IMAGE ?= tilecast:$(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
IMAGE_PROXY_VARS := HTTP_PROXY HTTPS_PROXY NO_PROXY http_proxy https_proxy no_proxy
image:
	docker build --tag $(TILECAST_IMAGE) $(if $(TILECAST_BASE),--build-arg BASE=$(TILECAST_BASE)) \
		$(foreach v,$(IMAGE_PROXY_VARS),$(if $($(v)),--build-arg $(v))) $(DOCKER_BUILD_ARGS) .
