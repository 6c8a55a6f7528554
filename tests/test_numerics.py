"Pinned numerics: the cpu-small profile's training gives the same bits whatever the CPU's bf16 flags, and never autocasts to bf16."

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
import pytest, torch
import jobrec.core
from jobrec.core import load_config
from jobrec.data import generate_synthetic
from jobrec.training import train_experts
from conftest import tiny_cfg


@pytest.fixture(scope="module")
def trained(tmp_path_factory, one_torch_thread):
    "State tensors and the dtypes of every Linear output seen in training, per (precision, what cpu_has_bf16 answers)."
    data = generate_synthetic({"n_candidates": 24, "n_jobs": 8}, 0)
    out = {}
    for precision in ("fp32", "auto"):
        for has_bf16 in (False, True):
            seen = set()

            def hook(m, inp, o):
                if isinstance(m, torch.nn.Linear) and torch.is_tensor(o):
                    seen.add(o.dtype)

            h = torch.nn.modules.module.register_module_forward_hook(hook)
            try:
                with pytest.MonkeyPatch.context() as mp:
                    mp.setattr(jobrec.core, "cpu_has_bf16", lambda: has_bf16)
                    s = train_experts(
                        data,
                        tiny_cfg(precision=precision),
                        tmp_path_factory.mktemp(f"{precision}{has_bf16}"),
                        progress=False,
                    )
            finally:
                h.remove()
            out[precision, has_bf16] = ({k: v.detach().clone() for k, v in s.state_tensors().items()}, seen)
    return out


def test_profile_pins_fp32():
    assert (
        load_config("cpu-small")["precision"] == "fp32" and load_config("cpu-small")["cpu_kernels"] == "avx2"
    )
    assert load_config()["precision"] == "auto"  # auto stays available


def test_fp32_training_identical_whatever_the_cpu_flags(trained):
    a, _ = trained["fp32", False]
    b, _ = trained["fp32", True]
    assert a.keys() == b.keys() and len(a) > 10
    for k in a:
        assert torch.equal(a[k], b[k]), k
    # the patch does reach training: under `auto` the two answers give different weights
    c, _ = trained["auto", False]
    d, _ = trained["auto", True]
    assert any(not torch.equal(c[k], d[k]) for k in c)
    for k in a:
        assert torch.equal(a[k], c[k]), k  # auto on a CPU without bf16 is fp32


def test_fp32_never_autocasts_to_bf16(trained):
    assert trained["fp32", True][1] == {torch.float32}
    assert torch.bfloat16 in trained["auto", True][1]  # the hook sees bf16 when autocast is on


def test_pin_reaches_mkl_aten_and_threads():
    "MKL's own log shows the vendor-neutral branch and the pinned threads, whatever thread count the process started with."
    import subprocess, sys

    code = (
        "from jobrec.core import pin_cpu_kernels\npin_cpu_kernels('avx2')\nimport torch\na = torch.ones(64, 64)\na @ a\n"
        "print('threads', torch.get_num_threads(), torch.backends.cpu.get_cpu_capability())"
    )
    env = {**os.environ, "MKL_VERBOSE": "1", "OMP_NUM_THREADS": "1", "MKL_CBWR": "AUTO"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    ).stdout
    assert "threads 2 AVX2" in out, out[-2000:]
    sgemm = [l for l in out.splitlines() if "SGEMM" in l]
    assert sgemm and all("CNR:COMPATIBLE,STRICT" in l and "NThr:2" in l for l in sgemm), out[-2000:]
