# The two commands a newcomer runs: `make demo` and `make test`. Each creates .venv when missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-v1
DEMO   := demo_out

.PHONY: demo test lint format model clean help

help:
	@echo "make demo   set up .venv, make a synthetic basemap scene, run the demo model over it"
	@echo "make test   set up .venv, lint, run the whole test suite (slow cases included)"
	@echo "make model  retrain the demo model and rebuild models/rts-demo (about 5 minutes)"

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# The CPU build of torch, pinned so the venv stays small (a plain `torch` pulls CUDA).
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

demo: $(STAMP)
	$(BIN)/python scripts/make_demo_scene.py --out $(DEMO)
	$(BIN)/tilecast bundle verify models/rts-demo
	$(BIN)/tilecast -v predict models/rts-demo $(DEMO)/scene.tif $(DEMO)/prediction.tif
	$(BIN)/python scripts/score_demo.py --bundle models/rts-demo --prediction $(DEMO)/prediction.tif --truth $(DEMO)/truth.gpkg
	@echo "outputs in $(DEMO)/: scene.tif, truth.gpkg, prediction.tif"

test: $(STAMP)
	$(BIN)/ruff check src tests scripts
	$(BIN)/ruff format --check src tests scripts
	$(BIN)/pytest -q

lint: $(STAMP)
	$(BIN)/ruff check src tests scripts

format: $(STAMP)
	$(BIN)/ruff check --fix src tests scripts
	$(BIN)/ruff format src tests scripts

model: $(STAMP)
	$(BIN)/python scripts/train_demo_model.py --out build/train/rts-demo
	$(BIN)/tilecast bundle create build/train/rts-demo --out models/rts-demo --overwrite

clean:
	rm -rf $(DEMO) build .pytest_cache .ruff_cache
