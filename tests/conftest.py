import os
# An accidental hub call must fail fast instead of hanging or downloading.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
RELEASE = ROOT.parent/"shared"/"data"/"jobrec_release"

@pytest.fixture(scope="session")
def root(): return ROOT

@pytest.fixture(scope="session")
def release_dir():
    if not (RELEASE/"Final_items.csv").exists(): pytest.skip(f"released reference data not found at {RELEASE}")
    return RELEASE

@pytest.fixture(scope="module")
def one_torch_thread():
    "The tiny backbone's matrices are too small for intra-op threads (which collapse on a busy machine); restored afterwards."
    import torch
    n = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
