"Experts: losses, calibration, training, determinism, exact resume, checkpoint errors, save/load, cold start, modes and ablations."

import json, math, os, subprocess, sys, textwrap, time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
import numpy as np, pytest, torch
from jobrec.core import load_config, has_module
from jobrec.data import generate_synthetic
from jobrec.calibration import fit_calibration, apply_calibration, ece, sigmoid
from jobrec.experts import ExpertSystem, info_nce
from jobrec.training import train_experts, train_conflated, evaluate_experts, group_mrr, config_fingerprint
from conftest import tiny_cfg


@pytest.fixture(scope="module")
def data():
    return generate_synthetic({"n_candidates": 40, "n_jobs": 12}, 0)


@pytest.fixture(scope="module")
def full(data, tmp_path_factory):
    d = tmp_path_factory.mktemp("full")
    s = train_experts(data, tiny_cfg(), d / "run", progress=False)
    return d, s, s.score_all(data)


def test_info_nce_matches_formula():
    z = torch.tensor([[1.0, 0.5, -1.0]])
    ref = -1 + math.log(math.exp(1) + math.exp(0.5) + math.exp(-1))
    assert abs(info_nce(z).item() - ref) < 1e-6
    assert abs(info_nce(z * 2, temperature=2.0).item() - ref) < 1e-6
    w = torch.tensor([[1.0, 1e-9]])
    assert abs(info_nce(z, neg_weight=w).item() - (-1 + math.log(math.exp(1) + math.exp(0.5)))) < 1e-4
    assert info_nce(z, bce_weight=1.0).item() > info_nce(z).item()


def test_calibration_improves_ece():
    rng = np.random.default_rng(1)
    t = rng.normal(0, 2, 5000)
    y = (rng.random(5000) < sigmoid(t)).astype(float)
    z = 0.5 * t - 4
    for m in ("platt", "temperature"):
        c = fit_calibration(z, y, m)
        assert ece(apply_calibration(z, c), y) < ece(sigmoid(z), y) / 3
    with pytest.raises(ValueError, match="calibration.method"):
        fit_calibration(z, y, "isotonic")
    assert abs(group_mrr(np.array([[1.0, 1.0]])) - 1 / 1.5) < 1e-9


def test_training_outputs_and_report(full, data):
    d, s, sc = full
    C, J = len(data.candidates), len(data.jobs)
    for k in ("s_pref", "q_logit", "p_qual"):
        assert sc[k].shape == (C, J) and sc[k].dtype == np.float32 and np.isfinite(sc[k]).all()
    assert ((sc["p_qual"] > 0) & (sc["p_qual"] < 1)).all()
    phases = [h["phase"] for h in s.report["history"] if "best_step" in h]
    assert phases == ["pref1", "qual1", "coop2"]
    assert "ece_val_observed" in s.report and set(s.report["ece_val_observed"]) == {"before", "after", "n"}
    assert abs(sum(s.report["task_weights"]) - 1) < 1e-6
    assert s.calibration["qualification"]["method"] == "temperature" and "apply" in s.calibration
    for f in ("experts.safetensors", "config.json", "meta.json"):
        assert (d / "run" / "system" / f).exists()
    sub = s.score_all(data, [3, 1])
    np.testing.assert_allclose(sub["s_pref"], sc["s_pref"][[3, 1]], atol=1e-5)
    ev = evaluate_experts(s, data, "test", seed=0)
    assert set(ev["random"]) == {"preference", "qualification"}


def test_same_seed_same_scores(full, data, tmp_path):
    _, _, sc = full
    again = train_experts(data, tiny_cfg(), tmp_path / "again", progress=False).score_all(data)
    for k in sc:
        np.testing.assert_array_equal(again[k], sc[k])


@pytest.mark.parametrize("k", [2, 4, 8])
def test_resume_after_interruption_gives_same_scores(full, data, tmp_path, k):
    _, _, sc = full
    cut = train_experts(data, tiny_cfg(), tmp_path / "cut", progress=False, max_steps=k)
    assert (tmp_path / "cut" / "checkpoint.safetensors").exists() and not (
        tmp_path / "cut" / "system"
    ).exists()
    res = train_experts(data, tiny_cfg(), tmp_path / "cut", progress=False).score_all(data)
    for key in sc:
        np.testing.assert_allclose(res[key], sc[key], atol=1e-6, rtol=0)


def test_checkpoint_format_and_errors(full, data, tmp_path):
    d, _, _ = full
    from safetensors import safe_open

    with safe_open(str(d / "run" / "checkpoint.safetensors"), "pt") as f:
        meta = f.metadata()
        keys = list(f.keys())
    assert meta["done"] == "True" and meta["fingerprint"] == config_fingerprint(tiny_cfg())
    assert any(k.startswith("cur.lora.preference") for k in keys) and any(
        k.startswith("cur.head.qualification") for k in keys
    )
    assert json.loads((d / "run" / "checkpoint.json").read_text())["done"] == "True"
    # a mid-training checkpoint carries the flattened optimiser state
    train_experts(data, tiny_cfg(), tmp_path / "mid", progress=False, max_steps=2)
    with safe_open(str(tmp_path / "mid" / "checkpoint.safetensors"), "pt") as f:
        assert any(k.startswith("opt.") and k.endswith("exp_avg") for k in f.keys())
        assert json.loads(f.metadata()["optimizer"])["param_groups"]
    with pytest.raises(ValueError, match="different configuration"):
        train_experts(data, tiny_cfg({"lr": 1e-3}), tmp_path / "mid", progress=False)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "checkpoint.safetensors").write_bytes(b"\x00garbage")
    with pytest.raises(ValueError, match="corrupt"):
        train_experts(data, tiny_cfg(), tmp_path / "bad", progress=False)
    with pytest.raises(FileNotFoundError, match="not a saved ExpertSystem"):
        ExpertSystem.load(tmp_path / "bad")


def test_save_load_roundtrip_and_mismatch(full, data, tmp_path):
    d, s, sc = full
    back = ExpertSystem.load(d / "run" / "system")
    for k in sc:
        np.testing.assert_allclose(back.score_all(data)[k], sc[k], atol=1e-5)
    # the employer-history layer travels with the model: the table the experts were trained with, 5 more feature columns
    assert back.job_history == s.job_history and s.job_history["names"] == [
        "skill_coverage",
        "requirements_met_share",
    ]
    assert len(back.feat_mean) == 21 + 5 and set(s.job_history["jobs"]) == {j.job_id for j in data.jobs}
    s.save(tmp_path / "copy")
    cfg = json.loads((tmp_path / "copy" / "config.json").read_text())
    cfg["expert"]["head_hidden"] = [16]
    (tmp_path / "copy" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="does not match"):
        ExpertSystem.load(tmp_path / "copy")


def test_cold_start_score_pairs(full, data):
    _, s, sc = full
    fresh = generate_synthetic({"n_candidates": 8, "n_jobs": 5}, 123)
    out = s.score_pairs(fresh.candidates[:4], fresh.jobs[:3])
    assert out["s_pref"].shape == (4, 3) and np.isfinite(out["p_qual"]).all()
    same = s.score_pairs(data.candidates[:2], data.jobs[:4])
    np.testing.assert_allclose(same["q_logit"], sc["q_logit"][:2, :4], atol=1e-5)


def test_ipw_weights_and_censoring_switch(full, data, tmp_path):
    from jobrec.training import Trainer, ipw_summary

    _, s, _ = full
    tr = Trainer(s, data, tiny_cfg(), tmp_path, progress=False)
    w, w_neg = tr.weights.fit_ipw(tr.groups.pool("qual1"))
    assert (
        w is not None
        and abs(w.mean() - 1) < 1e-5
        and (w > 0).all()
        and w.max() <= 1 / 0.05 / w.min() * 1.0001
    )
    assert w_neg is None and tr.weights.ipw is None and tr.weights.ipw_neg is None
    assert 0 < ipw_summary(w)["ess_share"] <= 1
    tp = Trainer(s, data, tiny_cfg({"censoring": "ipw_pairs"}), tmp_path / "pairs", progress=False)
    pool = tp.groups.pool("qual1")
    wp, nw = tp.weights.fit_ipw(pool)
    np.testing.assert_allclose(wp, w, rtol=1e-6)  # the groups' weights are ipw's; the negatives get their own
    b = np.concatenate([x[2] for x in pool[1]]) if pool[0] == "mix" else pool[2]
    nv = b[:, 1:] >= 0
    assert (
        tp.weights.ipw_neg is None
    )  # the weights are returned; the trainer's state is set by its caller only
    assert nw.shape == nv.shape and (nw[nv] > 0).all() and (nw[~nv] == 1).all()
    per_group = np.where(nv, nw, 0).sum(1) / np.maximum(nv.sum(1), 1)
    np.testing.assert_allclose(per_group[nv.any(1)], 1, rtol=1e-5)
    tr2 = Trainer(s, data, tiny_cfg({"censoring": "none"}), tmp_path, progress=False)
    assert tr2.weights.fit_ipw(tr2.groups.pool("qual1")) == (None, None)
    cw = tr.weights.coop_weights(tr.groups.pool("pref1"))
    assert cw.min() >= 0.1 - 1e-6 and cw.max() <= 1 + 1e-6


def test_ablations_shared_scratch_no_stage2(data, tmp_path):
    sh = train_experts(
        data,
        tiny_cfg({"stage2_init": "scratch", "cooperation": False}, expert={"shared_adapter": True}),
        tmp_path / "sh",
        progress=False,
    )
    assert list(sh.backbone.adapters) == ["shared"] and set(sh.adapters.values()) == {"shared"}
    sc = sh.score_all(data)
    assert not np.allclose(sc["s_pref"], sc["q_logit"])
    n2 = train_experts(
        data, tiny_cfg({"stage2_steps": 0, "bce_weight": 0.5}), tmp_path / "n2", progress=False
    )
    assert "coop2" not in {h["phase"] for h in n2.report["history"]}


def test_ablations_at_equal_updates(data, full, tmp_path):
    "no_stage2 moves stage 2's steps into stage 1, stage 2 from scratch adds stage 1's, the shared model trains both losses at once."
    steps = lambda s: s.report["compute"]["expert_steps"]
    ref = steps(full[1])
    t = tiny_cfg()["train"]
    assert set(ref) == {"preference", "qualification"} and ref["preference"] == ref["qualification"]
    assert (
        ref["preference"] == t["head_steps"] + t["stage1_steps"] + t["stage2_steps"]
        and full[1].report["compute"]["encoded"] > 0
    )
    n2 = train_experts(data, tiny_cfg({"stage2_init": "none"}), tmp_path / "none", progress=False)
    assert steps(n2) == ref and "coop2" not in {h["phase"] for h in n2.report["history"]}
    sc = train_experts(data, tiny_cfg({"stage2_init": "scratch"}), tmp_path / "scratch", progress=False)
    assert steps(sc) == ref and any(h["phase"] == "coop2" and "head_step" in h for h in sc.report["history"])
    sm = train_experts(data, tiny_cfg(expert={"shared_head": True}), tmp_path / "sm", progress=False)
    assert steps(sm) == ref
    joint = [h for h in sm.report["history"] if h["phase"] == "joint1" and "head_step" in h]
    assert joint and all(set(h["val_mrr_per_expert"]) == {"preference", "qualification"} for h in joint)
    assert {"pref1", "qual1"}.isdisjoint(
        h["phase"] for h in sm.report["history"]
    )  # never one task after the other
    ipw = [h["ipw"] for h in full[1].report["history"] if "ipw" in h]
    assert ipw and all(0 < w["ess_share"] <= 1 and w["max_weight"] >= 1 for w in ipw)


def test_shared_model_ablation_trains_one_head(data, tmp_path):
    "The shared-model ablation: one view, one adapter, one head whose two outputs are the two experts; saved once, loaded back."
    s = train_experts(data, tiny_cfg(expert={"shared_head": True}), tmp_path / "sm", progress=False)
    assert s.shared_head and s.shared and s.views["preference"] == s.views["qualification"]
    assert set(s.views["preference"]) >= {"narrative", "requirements", "majors"}
    heads = {k for k in s.trainable() if k.startswith("head.")}
    assert heads and all(k.startswith("head.shared.") for k in heads)
    assert {id(p) for p in s.heads["preference"].parameters()} == {
        id(p) for p in s.heads["qualification"].parameters()
    }
    sc = s.score_all(data)
    assert not np.allclose(sc["s_pref"], sc["q_logit"])
    back = ExpertSystem.load(tmp_path / "sm" / "system")
    assert back.shared_head
    for k in sc:
        np.testing.assert_allclose(back.score_all(data)[k], sc[k], atol=1e-5)


def test_cross_mode_and_flat_prompt(data, tmp_path):
    cfg = tiny_cfg(
        {"stage1_steps": 2, "stage2_steps": 1, "batch_groups": 2, "n_negatives": 3},
        expert={"mode": "cross"},
        schema={"prompt": "flat"},
    )
    s = train_experts(data, cfg, tmp_path / "cross", progress=False)
    sc = s.score_all(data, [0, 1])
    assert sc["s_pref"].shape == (2, len(data.jobs)) and np.isfinite(sc["q_logit"]).all()
    assert s.in_dim == s.backbone.hidden_size + len(s.feat_mean)


def test_conflated_baseline(data, tmp_path):
    c = train_conflated(
        data, tiny_cfg({"stage1_steps": 2, "stage2_steps": 1}), tmp_path / "hire", progress=False
    )
    sc = c.score_all(data)
    np.testing.assert_array_equal(sc["s_pref"], sc["q_logit"])
    assert [h["phase"] for h in c.report["history"] if "best_step" in h] == ["hire1"]
    # equal budget: both experts' adapter steps (stage 2 runs on cached encodings in this profile, so none there) ...
    assert sum(1 for h in c.report["history"] if "step" in h and "loss" in h) == 2 * 2
    # ... and both experts' head steps plus the cached stage-2 steps as head steps
    assert max(h["head_step"] for h in c.report["history"] if "head_step" in h) == 2 * 4 + 1


UNSLOTH_EXPERTS = textwrap.dedent("""
    import unsloth  # first, as Unsloth requires
    import json, sys, numpy as np
    from jobrec.core import load_config
    from jobrec.data import generate_synthetic
    from jobrec.training import train_experts
    data = generate_synthetic({"n_candidates": 30, "n_jobs": 8}, 0)
    cfg = load_config("cpu-small", overrides={"backbone": {"name": "tiny", "use_unsloth": "true"}, "device": "cpu",
        "schema": {"max_length": 48}, "expert": {"head_hidden": [16]}, "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
        "train": {"head_steps": 4, "stage1_steps": 2, "stage2_steps": 1, "batch_groups": 2, "n_negatives": 3}}).to_dict()
    s = train_experts(data, cfg, sys.argv[1], progress=False)
    sc = s.score_all(data)
    print(json.dumps({"unsloth": s.backbone.unsloth, "finite": bool(all(np.isfinite(v).all() for v in sc.values())),
                      "shape": list(sc["p_qual"].shape), "losses": [h["loss"] for h in s.report["history"] if "step" in h and "loss" in h]}))
""")


@pytest.mark.needs("unsloth", extra="unsloth")
def test_experts_train_through_unsloth_cpu(tmp_path):
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    r = subprocess.run(
        [sys.executable, "-c", UNSLOTH_EXPERTS, str(tmp_path / "u")],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr[-4000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["unsloth"] and out["finite"] and out["shape"] == [30, 8] and len(out["losses"]) == 5


@pytest.mark.slow
def test_cpu_small_budget_and_quality(tmp_path):
    "The cpu-small profile on the embedded dataset: both experts, both stages, within 6 minutes, far above random."
    from jobrec.data import load_embedded

    data = load_embedded()
    cfg = load_config("cpu-small").to_dict()
    t = time.time()
    s = train_experts(data, cfg, tmp_path / "run", progress=False)
    el = time.time() - t
    ev = evaluate_experts(s, data, "test")
    print(json.dumps({"seconds": el, "eval": ev}, indent=1))
    assert el < 360
    assert ev["preference_expert"]["preference"]["ndcg@10"] > ev["random"]["preference"]["ndcg@10"] + 0.1
    assert ev["qualification_expert"]["qualification"]["auc"] > ev["random"]["qualification"]["auc"] + 0.1


def test_train_seconds_count_every_process(data, tmp_path):
    train_experts(data, tiny_cfg(), tmp_path / "r", progress=False, max_steps=3)
    first = float(json.loads((tmp_path / "r" / "checkpoint.json").read_text())["train_seconds"])
    t0 = time.time()
    s = train_experts(data, tiny_cfg(), tmp_path / "r", progress=False)
    second = time.time() - t0
    # the resumed run's clock starts from the first run's seconds and adds its own training, never more than its wall time
    # (its set-up before the clock starts, loading the checkpoint and building the system, varies with the host's load)
    assert first > 0.2 and first < s.report["train_seconds"] <= first + second + 0.2


def test_top_layer_adapters_train_and_reload(data, tmp_path):
    "Adapters on the top layer only: they move, only there, the curves carry seconds, and a reloaded system scores alike."
    # select_tol -1: every later validation replaces the kept state, so the adapters trained are the ones kept
    cfg = tiny_cfg({"select_tol": -1.0, "stage2_steps": 0}, lora={"top_layers": 1})
    s = train_experts(data, cfg, tmp_path / "run", progress=False)
    lora = {k: v for k, v in s.state_tensors().items() if "lora_B" in k}
    assert lora and all("layers.1." in k for k in lora)
    assert s.adapter_digest("preference") != "base" and s.adapter_digest("qualification") != "base"
    curve = [h for h in s.report["history"] if h.get("val_mrr") is not None]
    assert all(h["seconds"] >= 0 for h in curve)
    assert [h["seconds"] for h in curve] == sorted(h["seconds"] for h in curve)
    assert {h["phase"] for h in curve if "step" in h and h["step"] > 0} >= {"pref1", "qual1"}
    back = ExpertSystem.load(tmp_path / "run" / "system")
    np.testing.assert_allclose(
        back.score_all(data, [0, 2])["q_logit"], s.score_all(data, [0, 2])["q_logit"], atol=1e-5
    )
