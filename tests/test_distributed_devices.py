"""Data-parallel training on GPUs: each rank takes the GPU its LOCAL_RANK names, the process group serves CUDA tensors with
NCCL and host tensors with gloo, and the reductions stay on the device of what they reduce. The CPU tests stand in for
the GPU calls (torch.cuda and the process group are replaced by recorders; tensors on the `meta` device stand for tensors
that are not on the host); the `gpu` test runs two processes on two GPUs."""

import json, os, socket, subprocess, sys, textwrap
from pathlib import Path
import pytest, torch
import torch.distributed as dist
import jobrec.distributed as jd

ROOT = Path(__file__).resolve().parents[1]


class Stop(Exception):
    "Raised by the recording all-reduce once it has seen the tensor."


@pytest.fixture
def fake_gpus(monkeypatch):
    "Rank 1 of 2 on a node whose torch sees CUDA GPUs: what init_from_env asks of torch.cuda and the process group."
    calls = {"set_device": [], "backend": []}
    for k, v in {
        "WORLD_SIZE": "2",
        "RANK": "1",
        "LOCAL_RANK": "1",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": "1",
    }.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(
        torch.cuda,
        "set_device",
        lambda d: calls["set_device"].append(
            torch.device("cuda", d) if isinstance(d, int) else torch.device(d)
        ),
    )
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(
        dist, "init_process_group", lambda backend=None, **kw: calls["backend"].append(backend)
    )
    return calls


@pytest.mark.parametrize("device", ["auto", "cuda"])
def test_each_rank_takes_its_local_gpu_and_a_group_for_both_devices(fake_gpus, device):
    jd.init_from_env(device)
    assert fake_gpus["set_device"] == [torch.device("cuda", 1)], (
        f"device {device!r}: rank with LOCAL_RANK=1 set {fake_gpus['set_device']}"
    )
    assert fake_gpus["backend"] == ["cpu:gloo,cuda:nccl"], fake_gpus["backend"]
    assert jd.local_device(device) == "cuda:1"


def test_a_cpu_run_keeps_gloo(fake_gpus):
    jd.init_from_env("cpu")
    assert fake_gpus["set_device"] == [] and fake_gpus["backend"] == ["gloo"]


@pytest.fixture
def two_ranks(monkeypatch):
    "This process as rank 0 of 2, with an all-reduce that records the device of each tensor it is given."
    seen = []
    monkeypatch.setattr(jd, "world", lambda: (0, 2))

    def all_reduce(t, *a, **kw):
        seen.append(t.device)
        if t.device.type == "meta":
            raise Stop  # a meta tensor has no values to go on with

    monkeypatch.setattr(dist, "all_reduce", all_reduce)
    return seen


def test_global_share_reduces_on_the_loss_device(two_ranks):
    with pytest.raises(Stop):
        jd.global_share(torch.tensor(2.0, device="meta"), 3)
    assert two_ranks == [torch.device("meta")]


def test_sync_grads_reduces_on_the_parameters_device(two_ranks):
    p = torch.nn.Parameter(torch.zeros(3, device="meta"))
    p.grad = torch.zeros(3, device="meta")
    with pytest.raises(Stop):
        jd.sync_grads([p], torch.tensor(1.0, device="meta"))
    assert two_ranks == [torch.device("meta")]


def test_cpu_reductions_stay_on_the_host(two_ranks):
    p = torch.nn.Parameter(torch.zeros(3))
    p.grad = torch.ones(3)
    loss = jd.sync_grads([p], jd.global_share(torch.tensor(2.0), 3))
    assert two_ranks == [torch.device("cpu")] * 2 and p.grad.tolist() == [1.0] * 3 and float(loss) == 2.0


WORKER = textwrap.dedent("""
    import json, os, sys, torch
    from jobrec.distributed import init_from_env, global_share, sync_grads, world, shutdown
    r, n = init_from_env("auto")
    dev = torch.device("cuda")  # what the backbone and heads are moved to
    p = torch.nn.Parameter(torch.zeros(4, device=dev))
    loss = global_share((p - (r + 1)).pow(2).sum(), r + 1)
    loss.backward(); loss = sync_grads([p], loss)
    rec = {"rank": r, "world": n, "local_rank": int(os.environ["LOCAL_RANK"]), "current": torch.cuda.current_device(),
           "param": str(p.device), "grad": p.grad.tolist(), "loss": float(loss), "loss_device": str(loss.device)}
    open(os.path.join(sys.argv[1], f"rank{r}.json"), "w").write(json.dumps(rec))
    shutdown()
""")


@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA GPUs")
def test_two_gpus_nccl(tmp_path):
    (tmp_path / "worker.py").write_text(WORKER)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            port,
            str(tmp_path / "worker.py"),
            str(tmp_path),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    recs = [json.loads((tmp_path / f"rank{i}.json").read_text()) for i in (0, 1)]
    for i, rec in enumerate(recs):
        assert rec["world"] == 2 and rec["current"] == rec["local_rank"] == i and rec["param"] == f"cuda:{i}"
        assert rec["loss_device"] == f"cuda:{i}"
    # weights W = 1 + 2 = 3: rank r's share (r+1)/3 of the loss sum((p - (r+1))^2); its gradient -2 (r+1)^2 / 3 per component
    want = -2 * (1 + 4) / 3
    for rec in recs:
        assert rec["grad"] == pytest.approx([want] * 4) and rec["loss"] == pytest.approx(
            (4 * 1 * 1 + 4 * 4 * 2) / 3
        )
