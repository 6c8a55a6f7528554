"""The single-GPU path (`tools/gpu-check`): a backbone loaded in 4-bit through Unsloth on CUDA trains both experts,
is calibrated, fused at a tau, saved, reloaded and serves `Recommender.recommend` on 1,000 jobs.

Each scenario runs in a fresh process that imports Unsloth first (Unsloth patches transformers and peft at import),
so that its peak GPU memory and load time are its own. The process prints one JSON record: checks and figures
(load time of the 4-bit model, adapter steps per second, encoder tokens per second in the scenario's mode, peak GPU
memory per phase). The test asserts on it and appends it to the JSON list named by JOBREC_GPU_REPORT.
Without a CUDA GPU every test here is skipped: these tests are about the hardware path, which the CPU suite cannot see
(tests/test_device.py is its CPU-side guard)."""

import json, os, subprocess, sys, time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
CUDA = torch.cuda.is_available()

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        not CUDA, reason="needs a CUDA GPU: run tools/gpu-check (make gpu-check) on a GPU machine"
    ),
]

# (backbone, mode, through Unsloth): both experts' modes on the tiny model and SmolLM2, and the transformers+peft 4-bit path once
SCENARIOS = [
    ("tiny", "dual", True),
    ("tiny", "cross", True),
    ("smollm2", "dual", True),
    ("smollm2", "cross", True),
    ("tiny", "dual", False),
]
TAU, K, N_JOBS = 0.5, 10, 1000
MARK = "JOBREC-GPU-RECORD "


def scenario_config(backbone: str, mode: str, unsloth: bool, device: str = "cuda") -> dict:
    "A small run of the configured path: a few head, stage-1 and stage-2 steps (SmolLM2 with Unsloth's gradient checkpointing, as gpu-paper)."
    from jobrec.core import load_config

    four = device == "cuda"
    return load_config(
        None,
        overrides={
            "seed": 0,
            "device": device,
            "precision": "auto",
            "backbone": {
                "name": backbone,
                "use_unsloth": "true" if unsloth else "false",
                "load_in_4bit": four,
                "gradient_checkpointing": backbone == "smollm2" and unsloth,
            },
            "schema": {"max_length": 128},
            "lora": {"r": 8, "alpha": 16},
            "expert": {"mode": mode, "encoding": "phrases"},
            "train": {
                "head_steps": 10,
                "head_batch_groups": 8,
                "stage1_steps": 3,
                "stage2_steps": 2,
                "batch_groups": 4,
                "n_negatives": 7,
                "eval_every": 0,
                "checkpoint_every": 0,
            },
            "fusion": {"tau": TAU, "k": K},
        },
    ).to_dict()


# --- the scenario, run in its own process -------------------------------------------------------


def _sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def _phase(device, fig, name, fn):
    "Run fn(); record its seconds and its peak GPU memory (GiB) under `name`."
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    _sync(device)
    t0 = time.perf_counter()
    out = fn()
    _sync(device)
    fig[f"{name}_s"] = round(time.perf_counter() - t0, 3)
    if device == "cuda":
        fig[f"{name}_peak_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 3)
    return out


def _on_device(system, device) -> bool:
    ts = list(system.heads.parameters()) + [system.task_logits] + list(system.heads.buffers())
    return all(t.device.type == device for t in ts)


def _encoder_throughput(s, texts, expert, max_length, device) -> dict:
    "Tokens per second of the backbone under `expert`'s adapter on `texts` (eval mode, no gradients), after a warm-up call."
    lens = [
        min(len(x), max_length)
        for x in s.backbone.tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]
    ]
    s.backbone.model.eval()
    s.encode(
        texts[:8], expert, max_length=max_length
    )  # warm-up: kernels compiled and autotuned here, not in the timing
    _sync(device)
    t0 = time.perf_counter()
    E = s.encode(texts, expert, max_length=max_length)
    _sync(device)
    dt = time.perf_counter() - t0
    assert E.shape[0] == len(texts) and E.device.type == device and bool(torch.isfinite(E).all())
    return {
        "texts": len(texts),
        "tokens": int(sum(lens)),
        "seconds": round(dt, 4),
        "tokens_per_s": round(sum(lens) / dt, 1),
    }


def _adapter_steps(s, data, cfg, out, device, steps=5) -> dict:
    "Timed adapter steps of the preference expert: pair_logits with gradients through the backbone, InfoNCE, AdamW (no negative bank)."
    from jobrec.experts import info_nce
    from jobrec.training import Trainer
    import numpy as np

    tr = Trainer(s, data, cfg, out, progress=False)
    pool = tr.groups.pool("pref1")
    params = list(s.trainable("preference").values())
    opt = torch.optim.AdamW(params, lr=float(cfg["train"]["lr"]))
    pairs = []

    def step(i):
        s.backbone.model.train()
        s.heads.train()
        side, a, b, _ = tr.groups.batch("pref1", pool, i)
        ci, ji = tr.groups.pairs(side, a, b)
        valid = b >= 0
        v = torch.from_numpy(valid).to(s.device)
        z = torch.zeros(b.shape, device=s.device).masked_scatter(
            v, s.pair_logits("preference", tr.ctx, ci[valid], ji[valid], grad=True).float()
        )
        loss = info_nce(z, valid=v)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        pairs.append(int(valid.sum()))
        return float(loss.detach())

    step(0)
    _sync(device)
    t0 = time.perf_counter()
    losses = [step(i + 1) for i in range(steps)]
    _sync(device)
    dt = time.perf_counter() - t0
    assert all(np.isfinite(losses)), losses
    return {
        "steps": steps,
        "seconds_per_step": round(dt / steps, 4),
        "steps_per_s": round(steps / dt, 3),
        "pairs_per_step": float(np.mean(pairs[1:])),
        "pairs_per_s": round(sum(pairs[1:]) / dt, 1),
    }


def _versions() -> dict:
    import importlib.metadata as md

    v = {"python": sys.version.split()[0], "torch": torch.__version__, "torch_cuda": torch.version.cuda}
    for p in ("unsloth", "unsloth_zoo", "bitsandbytes", "transformers", "peft", "triton", "jobrec"):
        try:
            v[p] = md.version(p)
        except md.PackageNotFoundError:
            v[p] = None
    return v


def run_scenario(spec: dict, record: dict):
    "Train, calibrate, fuse, save, reload and serve one configuration; checks and figures go into `record` as they come."
    if spec["unsloth"]:
        import unsloth  # noqa: F401  (before transformers and peft, as Unsloth requires)
    import numpy as np
    from jobrec.backbones import load_backbone, resolve_backbone
    from jobrec.data import generate_synthetic
    from jobrec.core import split_mask
    from jobrec.experts import ExpertSystem
    from jobrec.fusion import fit_fusion, constraint_value
    from jobrec.pipeline import fusion_arrays
    from jobrec.recommend import Recommender
    from jobrec.training import train_experts

    dev, out = spec["device"], Path(spec["out"])
    cfg = scenario_config(spec["backbone"], spec["mode"], spec["unsloth"], dev)
    fig, chk = record["figures"], record["checks"]
    record.update(gpu=torch.cuda.get_device_name(0) if dev == "cuda" else None, versions=_versions())
    resolve_backbone(
        cfg["backbone"]["name"], cfg
    )  # builds or converts the local folder once, outside the load timing

    bb = _phase(dev, fig, "load", lambda: load_backbone(cfg, adapters=("preference", "qualification")))
    if dev == "cuda":
        fig["weights_gb"] = round(torch.cuda.memory_allocated() / 2**30, 3)
    chk["unsloth"], chk["device"], chk["padding_side"] = bb.unsloth, bb.device, bb.tokenizer.padding_side
    if dev == "cuda":
        import bitsandbytes as bnb

        chk["linear4bit_modules"] = sum(isinstance(m, bnb.nn.Linear4bit) for m in bb.model.modules())
        assert chk["linear4bit_modules"] > 0, (
            "the backbone was not loaded in 4-bit (is bitsandbytes' CUDA library usable? see tools/gpu-check)"
        )
    assert bb.unsloth == spec["unsloth"] and bb.device == dev
    # Unsloth drops the padding mask in training mode: only right padding leaves a causal model's last real token untouched
    assert bb.tokenizer.padding_side == "right", bb.tokenizer.padding_side
    assert all(p.device.type == dev for n, p in bb.model.named_parameters() if "lora_" in n)
    chk["empty_encode_device"] = bb.encode([], "preference").device.type
    assert chk["empty_encode_device"] == dev

    data = generate_synthetic(seed=7, n_candidates=60, n_jobs=40)
    s = _phase(
        dev,
        fig,
        "train",
        lambda: train_experts(data, cfg, out / "run", resume=False, progress=False, backbone=bb),
    )
    chk["heads_on_device"] = _on_device(s, dev)
    assert chk["heads_on_device"]
    adapter_steps = [r for r in s.report["history"] if "loss" in r and "step" in r]
    head_steps = [r for r in s.report["history"] if "head_step" in r]
    fig["train_adapter_steps"], fig["train_head_step_records"] = len(adapter_steps), len(head_steps)
    assert len(adapter_steps) == 2 * cfg["train"]["stage1_steps"] + cfg["train"]["stage2_steps"]
    assert all(np.isfinite(r["loss"]) for r in adapter_steps)
    assert (len(head_steps) > 0) == (spec["mode"] == "dual")
    cal = s.calibration["qualification"]
    chk["calibration"] = cal
    assert np.isfinite(cal["a"]) and np.isfinite(cal["b"])

    sc = _phase(dev, fig, "score_all", lambda: s.score_all(data))
    assert sc["s_pref"].shape == (60, 40) and all(np.isfinite(v).all() for v in sc.values())
    assert ((sc["p_qual"] >= 0) & (sc["p_qual"] <= 1)).all()
    val, test = np.flatnonzero(split_mask(data, "val")), np.flatnonzero(split_mask(data, "test"))
    va, te = fusion_arrays(sc, data, val), fusion_arrays(sc, data, test)
    pol = fit_fusion(va, tau=TAU, cfg=cfg)
    res = pol.apply(te)
    natural = float(np.nanmean(constraint_value(te.s_pref, te.p_qual, K)))
    fused = float(np.nanmean(res.value))
    fig["fusion"] = {
        "tau": TAU,
        "lambda": float(pol.lam),
        "val_value": float(pol.value),
        "attainable_on_val": bool(pol.attainable),
        "test_eligibility_at_k": fused,
        "test_eligibility_at_k_lambda0": natural,
    }
    assert (
        np.isfinite(pol.lam) and pol.lam >= 0 and fused >= natural - 1e-9
    )  # a multiplier on p_Q never lowers top-k eligibility

    s2 = ExpertSystem.load(
        out / "run" / "system", backbone=bb
    )  # the saved tensors, read on the host, land on the device
    chk["reloaded_on_device"] = _on_device(s2, dev)
    assert chk["reloaded_on_device"]
    sc2 = s2.score_all(data, test)
    np.testing.assert_allclose(sc2["s_pref"], sc["s_pref"][test], atol=5e-3, rtol=1e-3)

    cands, jobs = [data.candidates[i] for i in test[:5]], data.jobs
    if spec["mode"] == "cross":
        from jobrec.experts import Context

        tc = Context(s2, cands, jobs).texts["preference"]
        texts, L = [tc.pair(a, b) for a in range(len(cands)) for b in range(len(jobs))], s2.max_length
    else:
        texts = sorted({p for e in (cands, jobs) for ps in s2.entity_texts(e, "preference") for p in ps if p})
        L = s2.phrase_max_length
    fig["encode"] = {"mode": spec["mode"], **_encoder_throughput(s2, texts, "preference", L, dev)}
    s2.score_pairs(cands[:1], jobs[:2])
    t = _phase(dev, fig, "score_pairs", lambda: s2.score_pairs(cands, jobs))
    assert t["s_pref"].shape == (len(cands), len(jobs))
    fig["score_pairs_per_s"] = round(len(cands) * len(jobs) / fig["score_pairs_s"], 1)

    big = generate_synthetic(seed=3, n_candidates=10, n_jobs=N_JOBS).jobs
    rec = Recommender(s2, out / "run" / "system")
    cat = _phase(dev, fig, "catalogue", lambda: rec.catalogue(big))
    assert all(v.shape[0] == N_JOBS for v in cat.emb.values())
    tabs = _phase(dev, fig, "recommend", lambda: rec.recommend(cands[:3], cat, k=K, tau=TAU))
    for tb in tabs:
        a = tb.attrs
        assert len(tb) == K and list(tb["rank"]) == list(range(1, K + 1)) and tb["job_id"].is_unique
        assert a["n_jobs"] == N_JOBS and a["retrieval"] and a["n_scored"] == int(rec.retrieval["shortlist"])
        assert list(tb["fused"]) == sorted(tb["fused"], reverse=True)
        if a["attainable"]:
            assert a["eligibility_at_k"] >= TAU - 1e-9
        else:
            assert any("unattainable" in n for n in a["notes"])
    again = rec.recommend(cands[0], rec.catalogue(big), k=K, tau=TAU)[0]
    assert rec.catalogue(big).from_cache and list(again["job_id"]) == list(tabs[0]["job_id"])
    fig["recommend_seconds_per_candidate"] = [t.attrs["seconds"] for t in tabs]

    fig["adapter_steps"] = _phase(
        dev, fig, "adapter_steps", lambda: _adapter_steps(s2, data, cfg, out / "steps", dev)
    )
    record["ok"] = True


# --- the tests ------------------------------------------------------------------------------------


def _append_report(record: dict):
    "Append one record to the JSON list named by JOBREC_GPU_REPORT (nothing when it is unset)."
    path = os.environ.get("JOBREC_GPU_REPORT")
    if not path:
        return
    p = Path(path)
    items = json.loads(p.read_text()) if p.exists() and p.read_text().strip() else []
    items.append(record)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(json.dumps(items, indent=1))
    os.replace(tmp, p)


@pytest.mark.parametrize(
    "backbone,mode,unsloth", SCENARIOS, ids=[f"{b}-{m}-{'unsloth' if u else 'peft'}" for b, m, u in SCENARIOS]
)
def test_4bit_experts_train_fuse_and_serve_on_cuda(backbone, mode, unsloth, tmp_path):
    spec = {"backbone": backbone, "mode": mode, "unsloth": unsloth, "device": "cuda", "out": str(tmp_path)}
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    r = subprocess.run(
        [sys.executable, __file__, json.dumps(spec)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=1800,
    )
    lines = [l[len(MARK) :] for l in r.stdout.splitlines() if l.startswith(MARK)]
    try:
        rec = json.loads(lines[-1])
    except (
        IndexError,
        ValueError,
    ):  # the process died before printing (a crash in native code, killed for memory)
        rec = {"backbone": backbone, "mode": mode, "unsloth": unsloth, "ok": False, "error": r.stderr[-3000:]}
    _append_report(rec)
    if r.returncode != 0:
        pytest.fail(f"scenario {backbone}/{mode} failed (exit {r.returncode}):\n{r.stderr[-6000:]}")
    f = rec["figures"]
    assert rec["ok"] and rec["checks"]["device"] == "cuda" and rec["checks"]["linear4bit_modules"] > 0
    assert rec["checks"]["unsloth"] is unsloth
    assert f["load_s"] > 0 and f["weights_gb"] > 0 and f["peak_gb"] >= f["train_peak_gb"] >= f["weights_gb"]
    assert (
        f["adapter_steps"]["steps_per_s"] > 0
        and f["encode"]["tokens_per_s"] > 0
        and f["encode"]["tokens"] > 0
    )


def main(spec: dict) -> int:
    "Run a scenario; print its record (partial, with the error, when it fails) as the last line of stdout."
    import traceback

    record = {
        "backbone": spec["backbone"],
        "mode": spec["mode"],
        "unsloth": spec["unsloth"],
        "ok": False,
        "checks": {},
        "figures": {},
    }
    try:
        run_scenario(spec, record)
    except Exception:
        record["error"] = traceback.format_exc()[-3000:]
        traceback.print_exc()
    peaks = [v for k, v in record["figures"].items() if k.endswith("_peak_gb")]
    if peaks:
        record["figures"]["peak_gb"] = max(peaks)
    print(MARK + json.dumps(record, default=str), flush=True)  # marked: Unsloth and tqdm print to stdout too
    return 0 if record["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(json.loads(sys.argv[1])))
