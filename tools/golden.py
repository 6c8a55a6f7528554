"""The golden run: a tiny pinned experiment whose figures must be the same bits on every host and dependency set.

    python tools/golden.py OUT_DIR     # run it, write OUT_DIR/metrics.json
    python tools/golden.py --refresh   # run it and overwrite this CPU vendor's reference (then commit it)

There is one reference per CPU vendor, tests/golden/<vendor_id>.json (AuthenticAMD, GenuineIntel): the same commit does not
give the same last bits on both (see `BITS`). `tests/test_golden.py` runs the golden run in a fresh process (the kernels are
pinned before torch computes anything) and compares, at tolerance 0, every figure with this vendor's reference and the
figures that are not `BITS` with every vendor's.
"""

import hashlib, importlib.metadata, json, os, sys, tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden"
# The raw floats of the run, which differ between CPU vendors in their last bits: the training losses, the IPW weights'
# summaries, the digests of the scores (fnmatch patterns of the dotted figure paths). Measured: an AMD EPYC and an Intel Xeon
# agree on every loss within 2 float32 ulp and on every evaluation figure, validation MRR, selected step and task weight exactly.
BITS = ("scores_sha256.*", "training.*.loss", "training.*.ipw.*")


def reference(vendor: str | None) -> Path:
    "The committed golden figures for CPUs of `vendor` (`/proc/cpuinfo`'s vendor_id)."
    return GOLDEN / f"{vendor or 'unknown'}.json"


PACKAGES = ("torch", "numpy", "transformers", "peft", "tokenizers", "safetensors")
# the cpu-small profile (pinned numerics) with the tiny random backbone on a small generated world; a few steps of
# each kind (head steps, adapter steps, cooperative steps) so that every training path is in the figures
OVERRIDES = {
    "backbone": {"name": "tiny", "use_unsloth": "false"},
    "device": "cpu",
    "schema": {"max_length": 32},
    "expert": {"head_hidden": [16]},
    "lora": {"r": 4, "alpha": 8},
    "train": {
        "head_steps": 6,
        "stage1_steps": 2,
        "stage2_steps": 2,
        "batch_groups": 3,
        "n_negatives": 5,
        "checkpoint_every": 0,
        "eval_every": 2,
    },
}
WORLD = {"n_candidates": 40, "n_jobs": 10}
SEED = 3


def environment() -> dict:
    "What the figures were computed with: the CPU, torch's kernels, threads and kernel variables, the package versions."
    import torch
    from jobrec.core import cpu_info, kernel_env

    vers = {}
    for p in PACKAGES:
        try:
            vers[p] = importlib.metadata.version(p)
        except importlib.metadata.PackageNotFoundError:
            vers[p] = None
    return {
        "cpu_vendor": cpu_info()["vendor"],
        "cpu_model": cpu_info()["model"],
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "torch_threads": torch.get_num_threads(),
        "kernel_env": kernel_env(),
        "versions": vers,
    }


def digest(a) -> str:
    "sha256 of an array's float32 bytes: any bit that moves changes it."
    import numpy as np

    return hashlib.sha256(np.ascontiguousarray(a, dtype=np.float32).tobytes()).hexdigest()


def run(out_dir: Path) -> dict:
    "Train and evaluate the golden experiment; the figures, the digests of every score and the environment."
    from jobrec.core import load_config, pin_cpu_kernels

    cfg = load_config("cpu-small", overrides=OVERRIDES).to_dict()
    pin_cpu_kernels(cfg["cpu_kernels"])  # before torch is imported by the training code
    from jobrec.data import generate_synthetic
    from jobrec.training import train_experts, evaluate_experts

    data = generate_synthetic(WORLD, SEED)
    system = train_experts(data, cfg, out_dir / "train", progress=False)
    scores = system.score_all(data)
    ev = evaluate_experts(system, data)
    curve = [{k: v for k, v in h.items() if "second" not in k} for h in system.report["history"]]
    figures = {
        "test": ev,
        "scores_sha256": {k: digest(v) for k, v in sorted(scores.items())},
        "training": curve,
        "task_weights": system.report["task_weights"],
    }
    return {"figures": figures, "environment": environment()}


def main(argv):
    if argv[1:] == ["--refresh"]:
        from jobrec.core import cpu_info

        out, dest = Path(tempfile.mkdtemp()), reference(cpu_info()["vendor"])
    elif len(argv) == 2:
        out = Path(argv[1])
        dest = out / "metrics.json"
    else:
        sys.exit(__doc__)
    res = run(out)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(res, indent=1, sort_keys=True) + "\n")
    print(f"golden run written to {dest}")


if __name__ == "__main__":
    main(sys.argv)
