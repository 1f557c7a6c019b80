# Two commands on a fresh machine: `make run` (the app) and `make test` (the suite).
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: run demo test bench asset

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install -e ".[dev]"
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/streamlit run app.py

demo: $(STAMP)
	$(VENV)/bin/plasticity compare --model lenet5 --dataset mnist-5k --criteria random,l1 --ratios 0.5 --seeds 0 --finetune-epochs 3

test: $(STAMP)
	$(VENV)/bin/python -m pytest -q

bench: $(STAMP)
	$(VENV)/bin/python benchmarks/run_all.py

asset: $(STAMP)
	$(VENV)/bin/python scripts/make_default_asset.py
