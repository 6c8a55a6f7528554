# jobrec score, local against ray: 2,000 candidates x 10,000 distinct jobs on the tiny backbone, briefly trained (throughput and equality).
# usage: python tools/score-bench.py [WORKDIR]   (needs the scale extra)
import json, sys, tempfile, time, os
from pathlib import Path
import pandas as pd
from jobrec.core import load_config
from jobrec.data import generate_synthetic
from jobrec.recommend import init_run, write_entities
from jobrec.batch import batch_score, read_results
d = Path(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp()); d.mkdir(exist_ok=True)
cfg = load_config("cpu-small", overrides={"backbone": {"name": "tiny", "use_unsloth": "false"}, "device": "cpu", "schema": {"max_length": 48},
                                          "expert": {"head_hidden": [32]}})
t = time.time(); data = generate_synthetic({"n_candidates": 2000, "n_jobs": 10000}, 5); print("generated", time.time() - t, flush=True)
print("distinct jobs", len({json.dumps(vars(j), sort_keys=True, default=str) for j in data.jobs}), flush=True)
from jobrec.training import train_experts
import shutil; shutil.rmtree(d/"run", ignore_errors=True); shutil.rmtree(d/"local", ignore_errors=True); shutil.rmtree(d/"ray", ignore_errors=True)
cfg = load_config("cpu-small", overrides={"backbone": {"name": "tiny", "use_unsloth": "false"}, "device": "cpu", "schema": {"max_length": 48},
                                          "expert": {"head_hidden": [32]}, "train": {"head_steps": 4, "stage1_steps": 4, "stage2_steps": 2, "batch_groups": 4, "n_negatives": 5}})
train_experts(generate_synthetic({"n_candidates": 60, "n_jobs": 30}, 0), cfg, d/"run"/"model", progress=False); run = d/"run"
for i in range(4): write_entities(data.candidates[i*500:(i+1)*500], d/f"cands-{i}.csv")
write_entities(data.jobs, d/"jobs.csv")
res = {}
for eng in ("local", "ray"):
    t = time.time(); m = batch_score(run, d/"cands-*.csv", d/"jobs.csv", d/eng, k=10, tau=0.6, shard_size=250, engine=eng, progress=False)
    m["wall_s"] = time.time() - t; res[eng] = {k: v for k, v in m.items() if k != "files"}; print(eng, res[eng], flush=True)
a, b = read_results(d/"local"), read_results(d/"ray")
res["identical"] = bool(a.equals(b)); res["rows"] = len(a)
print(json.dumps(res, indent=1)); (d/"score_bench.json").write_text(json.dumps(res, indent=1))
