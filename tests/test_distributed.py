"""Data-parallel training on two gloo processes: the same final weights as one process with the same global batch, identical
replicas, rank 0 the only writer, and a resume mid-run under DDP that reproduces the uninterrupted run exactly."""

import json, os, subprocess, sys, textwrap

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
from pathlib import Path
import pytest, torch
from safetensors.torch import load_file
from jobrec.core import load_config
from jobrec.data import generate_synthetic
from jobrec.training import train_experts
from jobrec.experts import ExpertSystem, EXPERTS, feature_stats

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> str:
    "A port nobody listens on now (several test runs may share this machine)."
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


# dropout off (head and LoRA): with it, each rank draws its own masks, so DDP and one process differ by design
CFG = {
    "backbone": {"name": "tiny", "use_unsloth": "false"},
    "device": "cpu",
    "schema": {"max_length": 48},
    "expert": {"head_hidden": [32], "head_dropout": 0.0},
    "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
    "train": {
        "head_steps": 4,
        "stage1_steps": 4,
        "stage2_steps": 4,
        "batch_groups": 4,
        "head_batch_groups": 8,
        "n_negatives": 5,
        "checkpoint_every": 2,
        "eval_every": 2,
    },
}
DATA = {"n_candidates": 40, "n_jobs": 12}
STOP = 7  # optimiser steps before the interruption: mid-way through qual1, after its checkpoint at step 2
# Tolerance. The two runs follow the same path (same losses to ~1e-5, same validation MRRs and selected steps), but float sums in
# another order (a shard's mean, then the all-reduce) differ by ~1e-7, and AdamW's step m/sqrt(v) is about +-lr whatever the gradient's
# size: on components whose gradient is near zero (biases the InfoNCE loss barely sees) noise flips the step's sign. So: every weight within
# 5e-3 (a few head-lr steps; measured 1.9e-3), and the whole difference under 5% of how far training moved the weights (measured 0.8%).
TOL_ABS, TOL_REL = 5e-3, 0.05

WORKER = textwrap.dedent("""
    import json, sys, torch
    from pathlib import Path
    from safetensors.torch import save_file
    from jobrec.data import generate_synthetic
    from jobrec.training import train_experts
    from jobrec.distributed import world, shutdown
    torch.set_num_threads(1)
    out = Path(sys.argv[1]); cfg = json.loads((out/"cfg.json").read_text()); data = generate_synthetic(json.loads(sys.argv[2]), 0)
    r, n = world()
    s = train_experts(data, cfg, out/"ddp", progress=False); r, n = world()
    save_file(s.state_tensors(), str(out/f"ddp-rank{r}.safetensors"))
    train_experts(data, cfg, out/"cut", progress=False, max_steps=int(sys.argv[3]))
    if r == 0: (out/"stopped.json").write_text((out/"cut"/"checkpoint.json").read_text())
    s = train_experts(data, cfg, out/"cut", progress=False)
    save_file(s.state_tensors(), str(out/f"resumed-rank{r}.safetensors"))
    (out/f"world-rank{r}.json").write_text(json.dumps([r, n]))
    shutdown()
""")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    d = tmp_path_factory.mktemp("ddp")
    cfg = load_config("cpu-small", overrides=CFG).to_dict()
    torch.set_num_threads(1)
    one = train_experts(
        generate_synthetic(DATA, 0), cfg, d / "one", progress=False
    ).state_tensors()  # also builds the tiny backbone's cache
    (d / "cfg.json").write_text(json.dumps(cfg))
    (d / "worker.py").write_text(WORKER)
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        "OMP_NUM_THREADS": "1",
    }
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            free_port(),
            str(d / "worker.py"),
            str(d),
            json.dumps(DATA),
            str(STOP),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return d, one


def test_two_processes_ran(runs):
    d, _ = runs
    assert sorted(json.loads((d / f"world-rank{r}.json").read_text())[0] for r in (0, 1)) == [0, 1]
    assert json.loads((d / "world-rank1.json").read_text())[1] == 2


def test_ddp_matches_one_process(runs):
    d, one = runs
    ddp = load_file(str(d / "ddp-rank0.safetensors"))
    assert set(ddp) == set(one)
    diff = max(float((ddp[k] - one[k]).abs().max()) for k in one)
    assert diff < TOL_ABS, f"largest weight difference {diff:g}"
    init = ExpertSystem(
        load_config("cpu-small", overrides=CFG).to_dict(),
        None,
        EXPERTS,
        feature_stats(generate_synthetic(DATA, 0), load_config("cpu-small", overrides=CFG).to_dict()),
    ).state_tensors()
    norm = lambda a, b: sum(float((a[k] - b[k]).norm()) ** 2 for k in one) ** 0.5
    moved = norm(one, init)
    assert moved > 20 * TOL_ABS, (
        f"training moved the weights by only {moved:g}: the comparison would not tell"
    )
    assert norm(ddp, one) < TOL_REL * moved, (
        f"DDP differs by {norm(ddp, one) / moved:.1%} of the weights' movement"
    )


def test_replicas_identical(runs):
    d, _ = runs
    a, b = (load_file(str(d / f"ddp-rank{r}.safetensors")) for r in (0, 1))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_rank0_writes(runs):
    d, _ = runs
    assert (d / "ddp" / "system").is_dir() and (d / "ddp" / "checkpoint.safetensors").exists()
    assert not list((d / "ddp").glob(".*.tmp*")), "a half-written file was left behind"


def test_resume_under_ddp_is_exact(runs):
    d, _ = runs
    stopped = json.loads((d / "stopped.json").read_text())  # the checkpoint the resumed run started from
    assert stopped["done"] == "False" and (stopped["phase"], stopped["step"]) == ("1", "2"), stopped
    assert json.loads((d / "cut" / "checkpoint.json").read_text())["done"] == "True"
    full, res = load_file(str(d / "ddp-rank0.safetensors")), load_file(str(d / "resumed-rank0.safetensors"))
    assert all(torch.equal(full[k], res[k]) for k in full)


TRAIN_ARGS = [
    "--set",
    "backbone.name=tiny",
    "--set",
    "device=cpu",
    "--set",
    "schema.max_length=48",
    "--set",
    "expert.head_hidden=[16]",
    "--set",
    "lora.r=2",
    "--set",
    "lora.alpha=4",
    "--set",
    "data.source=synthetic",
    "--set",
    "data.synthetic.n_candidates=30",
    "--set",
    "data.synthetic.n_jobs=10",
    "--set",
    "train.head_steps=2",
    "--set",
    "train.stage1_steps=2",
    "--set",
    "train.stage2_steps=1",
    "--set",
    "train.batch_groups=2",
    "--set",
    "train.n_negatives=3",
    "--set",
    "train.checkpoint_every=1",
    "--set",
    "train.eval_every=2",
]


def test_torchrun_jobrec_train(runs, tmp_path):
    "`torchrun --nproc_per_node 2 -m jobrec train`: both ranks train, rank 0 alone writes the run folder and says so."
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        "OMP_NUM_THREADS": "1",
    }
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            free_port(),
            "-m",
            "jobrec",
            "train",
            "--out",
            str(tmp_path / "run"),
            *TRAIN_ARGS,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.count("trained model in") == 1  # rank 0's message only
    assert (tmp_path / "run" / "model" / "system" / "experts.safetensors").exists() and (
        tmp_path / "run" / "config.yaml"
    ).exists()
