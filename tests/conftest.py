import os
# An accidental hub call must fail fast instead of hanging or downloading.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent/"fixtures"
# A folder of the real released files (Final_items.csv, train/val/test.csv, qual_*.csv), when the user has one.
RELEASE = os.environ.get("JOBREC_RELEASE_DIR")

# `make test` installs the llm extra and Unsloth's CPU backend and sets this: there a test that needs them fails
# when they are missing instead of being skipped (a plain `pytest` on a lighter install skips it, saying which extra).
ALL_EXTRAS = os.environ.get("JOBREC_TEST_ALL_EXTRAS") == "1"

def pytest_runtest_setup(item):
    "`@pytest.mark.needs(module, ..., extra=...)`: skipped without those modules, except under `make test`, where it runs and fails."
    from jobrec.core import has_module
    for m in item.iter_markers("needs"):
        missing = [x for x in m.args if not has_module(x)]
        if missing and not ALL_EXTRAS: pytest.skip(f"needs {', '.join(missing)} (pip install \"jobrec[{m.kwargs.get('extra', 'dev')}]\")")

def pytest_collection_modifyitems(config, items):
    "Tests marked `release` check the real released files: they run only when JOBREC_RELEASE_DIR names a folder of them."
    if RELEASE: return
    keep = [i for i in items if "release" not in i.keywords]
    if len(keep) < len(items):
        config.hook.pytest_deselected(items=[i for i in items if "release" in i.keywords])
        items[:] = keep

@pytest.fixture(scope="session")
def root(): return ROOT

@pytest.fixture(scope="session")
def fixture_release():
    "Hand-written rows in the released format (tests/fixtures/release); the candidates are tests/fixtures/Final_users_small.csv."
    return FIXTURES/"release"

@pytest.fixture(scope="session")
def release_dir():
    p = Path(RELEASE).expanduser()
    if not (p/"Final_items.csv").exists(): raise FileNotFoundError(f"JOBREC_RELEASE_DIR={RELEASE} holds no Final_items.csv")
    return p

@pytest.fixture(scope="module")
def one_torch_thread():
    "The tiny backbone's matrices are too small for intra-op threads (which collapse on a busy machine); restored afterwards."
    import torch
    n = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)

@pytest.fixture(scope="session")
def ray_cluster():
    "One local Ray instance for the whole test session (its start-up takes about a minute on a busy two-core machine)."
    import ray  # the `scale` extra, installed by `make install`
    if not ray.is_initialized(): ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()
