import os

# An accidental hub call must fail fast instead of hanging or downloading.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import contextlib, copy, io
from pathlib import Path
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
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
        if missing and not ALL_EXTRAS:
            pytest.skip(f'needs {", ".join(missing)} (pip install "jobrec[{m.kwargs.get("extra", "dev")}]")')


def pytest_collection_modifyitems(config, items):
    "Tests marked `release` check the real released files: they run only when JOBREC_RELEASE_DIR names a folder of them."
    if RELEASE:
        return
    keep = [i for i in items if "release" not in i.keywords]
    if len(keep) < len(items):
        config.hook.pytest_deselected(items=[i for i in items if "release" in i.keywords])
        items[:] = keep


# The tests' small model: experiments/tiny.yaml, a layer of overrides on the cpu-small profile (import it from conftest).
TINY_FILE = ROOT / "experiments" / "tiny.yaml"
TINY = yaml.safe_load(TINY_FILE.read_text())


def tiny_cfg(
    train: dict | None = None,  # keys of the train section over TINY's
    **sections,  # a dict: keys of that section over TINY's; anything else: that top-level key's value
) -> dict:
    "The cpu-small profile under TINY and these changes, resolved (unknown keys are refused as in any config)."
    from jobrec.core import load_config

    ov = copy.deepcopy(TINY)
    for k, v in {"train": train or {}, **sections}.items():
        ov[k] = {**ov.get(k, {}), **v} if isinstance(v, dict) else v
    return load_config("cpu-small", overrides=ov).to_dict()


def as_sets(d: dict, prefix: str = "") -> list[str]:
    "The `--set key=value` values of a nested dict (values in YAML flow style)."
    out = []
    for k, v in d.items():
        if isinstance(v, dict):
            out += as_sets(v, f"{prefix}{k}.")
        else:
            out.append(
                f"{prefix}{k}="
                + yaml.safe_dump(v, default_flow_style=True).strip().removesuffix("...").strip()
            )
    return out


def run_cli(*args) -> tuple:
    "`jobrec ARGS` in this process: (exit code, stdout, stderr); an argument error's exit is its code."
    from jobrec.cli import main

    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main([str(a) for a in args])
    except SystemExit as e:
        rc = e.code
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture(scope="session")
def root():
    return ROOT


@pytest.fixture(scope="session")
def fixture_release():
    "Hand-written rows in the released format (tests/fixtures/release); the candidates are tests/fixtures/Final_users_small.csv."
    return FIXTURES / "release"


@pytest.fixture(scope="session")
def release_dir():
    p = Path(RELEASE).expanduser()
    if not (p / "Final_items.csv").exists():
        raise FileNotFoundError(f"JOBREC_RELEASE_DIR={RELEASE} holds no Final_items.csv")
    return p


@pytest.fixture(scope="module")
def one_torch_thread():
    "The tiny backbone's matrices are too small for intra-op threads (which collapse on a busy machine); restored afterwards."
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def ray_cluster():
    "One local Ray instance for the whole test session (its start-up takes about a minute on a busy two-core machine)."
    import ray  # the `scale` extra, installed by `make install`

    if not ray.is_initialized():
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()
