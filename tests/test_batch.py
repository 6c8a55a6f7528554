"""`jobrec score`: the Ray engine writes exactly the local engine's Parquet shards (same candidates, jobs, scores, multipliers),
and a half-written shard never appears."""

import os, time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
import pandas as pd, pytest
from jobrec.core import load_config
from jobrec.data import generate_synthetic
from jobrec.recommend import write_entities
from jobrec.training import train_experts
from jobrec.batch import batch_score, read_results


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("batch")
    cfg = load_config(
        "cpu-small",
        overrides={
            "backbone": {"name": "tiny", "use_unsloth": "false"},
            "device": "cpu",
            "schema": {"max_length": 48},
            "expert": {"head_hidden": [16]},
            "retrieval": {"shortlist": 25},
            "train": {
                "head_steps": 2,
                "stage1_steps": 2,
                "stage2_steps": 1,
                "batch_groups": 4,
                "n_negatives": 3,
            },
        },
    )
    data = generate_synthetic({"n_candidates": 24, "n_jobs": 80}, 3)
    # trained adapters: untrained ('base') ones share frozen phrase encodings per process, and a phrase's encoding then depends
    # (by a float32 ulp) on the batch that first encoded it in that process, so the engines could differ in the last bit
    train_experts(
        generate_synthetic({"n_candidates": 30, "n_jobs": 20}, 0), cfg, d / "run" / "model", progress=False
    )
    run = d / "run"
    write_entities(data.candidates[:13], d / "cands-1.csv")
    write_entities(data.candidates[13:], d / "cands-2.json")
    write_entities(data.jobs, d / "jobs.csv")
    return d, run


@pytest.mark.slow  # Ray start-up: about a minute, and the test 2.5 minutes on a busy two-core machine
def test_ray_matches_local(inputs, ray_cluster):
    d, run = inputs
    t0 = time.perf_counter()
    loc = batch_score(
        run, d / "cands-*", d / "jobs.csv", d / "local", k=5, tau=0.6, shard_size=4, progress=False
    )
    t1 = time.perf_counter()
    ray_ = batch_score(
        run, d / "cands-*", d / "jobs.csv", d / "ray", k=5, tau=0.6, shard_size=4, engine="ray"
    )
    t2 = time.perf_counter()
    assert loc["shards"] == ray_["shards"] == 7 and loc["files"] == ray_["files"]
    a, b = read_results(d / "local"), read_results(d / "ray")
    assert len(a) == 24 * 5 and a["candidate_id"].nunique() == 24
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    for f in loc["files"]:
        assert (d / "local" / f).read_bytes() == (d / "ray" / f).read_bytes(), f
    assert not list((d / "ray").glob(".*tmp*")), "a temporary shard file was left"
    print(f"local {t1 - t0:.1f}s, ray {t2 - t1:.1f}s (the Ray instance already running)")


@pytest.mark.slow
def test_ray_skips_committed_shards(inputs, ray_cluster):
    d, run = inputs
    out = d / "resume"
    first = batch_score(
        run, d / "cands-1.csv", d / "jobs.csv", out, k=5, tau=0.6, shard_size=4, progress=False
    )
    (out / first["files"][1]).unlink()  # as if its worker died before the rename: the shard is simply absent
    again = batch_score(run, d / "cands-1.csv", d / "jobs.csv", out, k=5, tau=0.6, shard_size=4, engine="ray")
    assert (again["shards"], again["shards_run"]) == (4, 1) and again["rows"] == 13 * 5
