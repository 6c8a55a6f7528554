import subprocess, sys

import numpy as np
import pandas as pd
import pytest

from jobrec.core import ConfigError, load_config
from jobrec.fusion import (
    FusionArrays,
    as_arrays,
    constraint_value,
    fit_fusion,
    fusion_settings,
    ndcg_at_k,
    oracle_value,
    smallest_lambda,
    synthetic_fusion_arrays,
    topk_mean,
    train_primal_dual,
    z_values,
)
from jobrec.controllability import (
    compare_controllability,
    controllability_summary,
    controllability_sweep,
    single_score_sweep,
)
from jobrec.bench import benchmark_tau_change


@pytest.fixture(scope="module")
def split():
    "One population of candidates and jobs, split by candidate into validation and test."
    full = synthetic_fusion_arrays(800, 80, seed=11)
    return full.subset(np.arange(400)), full.subset(np.arange(400, 800))


def test_module_imports_without_torch():
    code = "import sys, jobrec.fusion; assert 'torch' not in sys.modules, 'fusion imported torch'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_synthetic_arrays_are_calibrated_and_deterministic():
    a = synthetic_fusion_arrays(500, 100, seed=3)
    bins = np.digitize(a.p_qual, [0.1, 0.3, 0.5, 0.7, 0.9])
    for b in np.unique(bins):
        assert abs(a.qual[bins == b].mean() - a.p_qual[bins == b].mean()) < 0.02
    # the raw logit is not a probability scale: calibration matters
    assert np.abs(1 / (1 + np.exp(-a.q_logit)) - a.p_qual).mean() > 0.1
    b = synthetic_fusion_arrays(500, 100, seed=3)
    assert np.array_equal(a.s_pref, b.s_pref) and np.array_equal(a.qual, b.qual)
    assert np.corrcoef(a.s_pref.ravel(), a.pref.ravel())[0, 1] > 0.3


def test_arrays_validation():
    with pytest.raises(ValueError, match="p_qual has shape"):
        FusionArrays(np.zeros((2, 3)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="calibrated probabilities"):
        FusionArrays(np.zeros((2, 3)), np.full((2, 3), 2.0))
    with pytest.raises(ValueError, match="at least one valid job"):
        FusionArrays(np.zeros((2, 3)), np.zeros((2, 3)), valid=np.array([[True, False, False], [False] * 3]))
    a = as_arrays({"s_pref": np.zeros((2, 3)), "p_qual": np.zeros((2, 3)), "unrelated": 1})
    assert a.n_candidates == 2


def test_topk_and_ndcg_helpers():
    s = np.array([[3.0, 2.0, 1.0, 0.0]])
    y = np.array([[0.0, 1.0, 1.0, 0.0]])
    assert topk_mean(s, y, 2)[0] == 0.5
    assert topk_mean(s, y, 2, valid=np.array([[False, True, True, True]]))[0] == 1.0
    assert np.isclose(ndcg_at_k(s, y, 2)[0], (1 / np.log2(3)) / (1 + 1 / np.log2(3)))
    assert np.isclose(constraint_value(np.zeros((1, 4)), y, constraint="softmax")[0], 0.5)


def test_settings_reject_unknown_and_select_variant_from_config():
    with pytest.raises(ConfigError, match="did you mean 'fusion.k'"):
        fusion_settings(kk=3)
    with pytest.raises(ConfigError, match="fusion.constraint must be one of"):
        fusion_settings(constraint="mass")
    cfg = load_config(overrides=["fusion.variant=fixed", "fusion.fixed_weight=0.25"])
    val = synthetic_fusion_arrays(50, 30, seed=0)
    pol = fit_fusion(val, 0.5, cfg=cfg)
    assert pol.variant == "fixed" and pol.lam == 0.25


def test_inference_meets_constraint_on_val_with_smallest_lambda(split):
    val, _ = split
    z = z_values(val, fusion_settings()["z"])
    for tau in (0.45, 0.55, 0.65):
        pol = fit_fusion(val, tau, "inference")
        assert pol.attainable and pol.value >= tau
        # smallest: a slightly smaller multiplier misses tau
        below = np.nanmean(constraint_value(val.s_pref + 0.99 * pol.lam * z, val.p_qual, 10))
        assert below < tau
    # inactive constraint: the inequality leaves a policy above tau alone
    pol = fit_fusion(val, 0.05, "inference")
    assert pol.lam == 0.0 and pol.value > 0.05


def test_per_candidate_meets_tau_for_every_attainable_candidate(split):
    _, test = split
    res = fit_fusion(test, 0.6, "inference", per_candidate=True).apply(test)
    ok = ~res.unattainable
    assert ok.sum() > 0 and res.n_unattainable > 0
    assert (res.value[ok] >= 0.6 - 1e-12).all() and (res.lam >= 0).all()
    # the unattainable ones could not reach 0.6 under any ranking
    assert (oracle_value(test)[res.unattainable] < 0.6 + 1e-9).all()


def test_unattainable_tau_is_reported(split):
    val, test = split
    pol = fit_fusion(val, 0.99, "inference")
    assert not pol.attainable and pol.value < 0.99
    res = pol.apply(test)
    assert res.n_unattainable == test.n_candidates
    table = controllability_sweep(val, test, [0.5, 0.99], "inference")
    assert table["attainable"].tolist() == [True, False]
    assert table["in_range"].tolist() == [True, False]
    assert table.loc[1, "violation"] > 0


def test_projected_dual_never_negative(split):
    val, _ = split
    for tau in (0.05, 0.5, 0.7):
        fit = train_primal_dual(val, tau, fusion_settings(epochs=10), seed=0)
        assert min(fit["history"]["mu"]) >= 0.0
    low = train_primal_dual(val, 0.05, fusion_settings(epochs=5), seed=0)
    assert max(low["history"]["mu"]) == 0.0 and low["lam"] == 0.0


def test_primal_dual_meets_constraint_on_val_and_tracks_inference(split):
    val, _ = split
    for tau in (0.45, 0.6):
        pol = fit_fusion(val, tau, "primal_dual", seed=0)
        assert pol.attainable and pol.value >= tau
        ref = fit_fusion(val, tau, "inference")
        assert abs(pol.lam - ref.lam) < 0.5 * ref.lam + 0.05
    labels = fit_fusion(val, 0.5, "primal_dual", primal_target="labels", epochs=10)
    assert labels.lam > 0
    with pytest.raises(ValueError, match="needs observed preference labels"):
        fit_fusion(FusionArrays(val.s_pref, val.p_qual), 0.5, "primal_dual", primal_target="labels", epochs=1)


def test_achieved_eligibility_is_monotone_in_tau(split):
    val, test = split
    for kw in ({}, {"global_fit": "served"}, {"per_candidate": True}, {"constraint": "softmax"}):
        t = controllability_sweep(val, test, [0.3, 0.4, 0.5, 0.6, 0.7], "inference", **kw)
        assert (np.diff(t["achieved"]) >= 0).all(), kw
        assert (np.diff(t["lam"]) >= 0).all(), kw
        assert (np.diff(t["ndcg@10"]) <= 1e-12).all(), kw


def test_controllability_within_tolerance_where_in_range():
    full = synthetic_fusion_arrays(1200, 100, seed=1)
    val, test = full.subset(np.arange(600)), full.subset(np.arange(600, 1200))
    t = compare_controllability(
        val,
        test,
        [0.3, 0.4, 0.5, 0.6, 0.7, 0.8],
        systems=("inference_served", "fixed"),
        single_scores=test.s_pref,
    )
    s = controllability_summary(t, tol=0.03).set_index("system")
    assert s.loc["inference_served", "meets"]
    assert not s.loc["fixed", "meets"] and not s.loc["conflated", "meets"]
    assert t[t.system == "conflated"]["achieved"].nunique() == 1
    cols = {
        "system",
        "tau",
        "achieved",
        "eligibility@10",
        "violation",
        "controllability_error",
        "ndcg@10",
        "in_range",
    }
    assert cols <= set(t.columns)


def test_hard_mode_backfills_and_reports(split):
    val, test = split
    pol = fit_fusion(val, variant="hard", hard_threshold=0.85)
    res = pol.apply(test)
    n_el = (test.p_qual >= 0.85).sum(1)
    assert res.n_backfilled == int((n_el < 10).sum()) > 0
    assert np.array_equal(res.backfilled, n_el < 10)
    top = np.argsort(-res.scores, 1)[:, :10]
    got = (np.take_along_axis(test.p_qual, top, 1) >= 0.85).sum(1)
    assert np.array_equal(got, np.minimum(n_el, 10))
    # the back-fill is ordered by preference among the remaining jobs
    c = int(np.flatnonzero(res.backfilled & (n_el > 0))[0])
    rest = [j for j in top[c] if test.p_qual[c, j] < 0.85]
    assert np.all(np.diff(test.s_pref[c, rest]) <= 0)
    t = controllability_sweep(val, test, [0.5, 0.9], "hard")
    assert (t["n_backfilled"] > 0).all() and t.loc[1, "n_backfilled"] >= t.loc[0, "n_backfilled"]


def test_valid_mask_respected():
    a = synthetic_fusion_arrays(100, 40, seed=4, valid_share=0.5)
    for variant, kw in (
        ("inference", {}),
        ("inference", {"per_candidate": True}),
        ("hard", {}),
        ("fixed", {}),
    ):
        res = fit_fusion(a, 0.5, variant, **kw).apply(a)
        top = np.argsort(-res.scores, 1)[:, :5]
        n_valid = a.valid.sum(1)
        picked = np.take_along_axis(a.valid, top, 1)
        assert (picked.sum(1) == np.minimum(n_valid, 5)).all(), variant


def test_same_seed_same_tables(split):
    val, test = split
    a = controllability_sweep(val, test, [0.4, 0.6], "primal_dual", seed=3, epochs=5)
    b = controllability_sweep(val, test, [0.4, 0.6], "primal_dual", seed=3, epochs=5)
    pd.testing.assert_frame_equal(a, b)
    c = compare_controllability(
        val, test, [0.5], systems=("inference_global", "inference_per_candidate", "hard")
    )
    d = compare_controllability(
        val, test, [0.5], systems=("inference_global", "inference_per_candidate", "hard")
    )
    pd.testing.assert_frame_equal(c, d)


def test_lambda_head_trains_and_is_clamped():
    import torch  # a core requirement: its absence is a failure, not a skip
    from jobrec.fusion import lambda_head_forward, train_lambda_head

    full = synthetic_fusion_arrays(300, 40, seed=5, n_features=4)
    val, test = full.subset(np.arange(150)), full.subset(np.arange(150, 300))
    st = fusion_settings(epochs=8, head_lr=1e-2)
    fit = train_lambda_head(val, 0.55, st, seed=0)
    assert min(fit["history"]["mu"]) >= 0
    x = np.asarray(val.features, dtype=np.float32)
    lam = lambda_head_forward(fit["head"], x)
    assert lam.shape == val.s_pref.shape and np.abs(lam).max() <= 5.0
    assert (
        np.nanmean(constraint_value(val.s_pref + lam * z_values(val, fusion_settings()["z"]), val.p_qual))
        > fit["history"]["elig"][0] - 0.05
    )
    natural = np.nanmean(constraint_value(val.s_pref, val.p_qual))
    assert fit["value"] > natural  # training moved eligibility up towards tau
    big = {**fit["head"], "W2": fit["head"]["W2"] * 1e6}
    assert np.abs(lambda_head_forward(big, x)).max() == 5.0
    again = train_lambda_head(val, 0.55, st, seed=0)
    assert np.array_equal(again["head"]["W1"], fit["head"]["W1"])
    pol = fit_fusion(val, 0.55, "lambda_head", epochs=3, head_lr=1e-2)
    res = pol.apply(test)
    assert res.lam.shape == test.s_pref.shape and np.abs(res.lam).max() <= pol.settings["head_clamp"]


def test_single_score_is_one_point():
    full = synthetic_fusion_arrays(200, 50, seed=6)
    val, test = full.subset(np.arange(100)), full.subset(np.arange(100, 200))
    t = single_score_sweep(test.s_pref, test, [0.2, 0.5, 0.8], val=val)
    assert t["achieved"].nunique() == 1 and t["lam"].isna().all()
    assert np.allclose(t["violation"], np.maximum(0, t["tau"] - t["achieved"]))


def test_benchmark_runs():
    out = benchmark_tau_change(100, 30, taus=(0.5,), verbose=False)
    assert out["global_s"] > 0 and out["per_candidate_s"] > 0


@pytest.fixture(scope="module")
def tau_head_split():
    "A small population for the tau head, split by candidate; a head trained once on validation, shared by the tests."
    from jobrec.fusion import FusionModel, system_settings

    full = synthetic_fusion_arrays(240, 50, seed=21)
    val, test = full.subset(np.arange(120)), full.subset(np.arange(120, 240))
    st = system_settings("tau_head", tau_head_steps=30)
    return val, test, st, FusionModel(st, val, seed=0)


def test_tau_head_serves_every_tau_from_one_head(tau_head_split):
    "One head, several taus: its pair factors depend on tau, the policy meets each tau on validation and lands near it on test."
    from jobrec.fusion import tau_head_shape

    val, test, st, model = tau_head_split
    lo, hi = model.validated_range()
    taus = list(np.linspace(lo, hi, 5)[1:-1])
    pols = [model.policy(t) for t in taus]
    assert len(model.tau_heads) == 1 and all(p.head is pols[0].head for p in pols)
    shapes = [tau_head_shape(pols[0].head, val, t, st) for t in taus]
    assert max(np.abs(np.log(shapes[0]) - np.log(g)).max() for g in shapes[1:]) > 1e-3
    for t, p in zip(taus, pols):
        assert (
            p.attainable and t <= p.value <= t + 0.01
        )  # the level is the smallest that reaches tau on validation
        got = float(np.nanmean(p.apply(test).value))  # calibrated eligibility of held-out candidates
        assert abs(got - t) < 0.03, (t, got)
    levels = [p.lam for p in pols]
    assert all(np.diff(levels) >= 0)


def test_tau_head_is_fitted_without_test_labels(tau_head_split):
    "The head and its levels read no test label, and no qualification or preference label of validation either."
    from jobrec.fusion import FusionModel

    val, test, st, model = tau_head_split
    bare = FusionArrays(
        val.s_pref, val.p_qual, val.q_logit, val.valid, observed=val.observed, p_observe=val.p_observe
    )
    unlabelled = FusionModel(st, bare, seed=0)
    tau = float(np.mean(model.validated_range()))
    assert np.array_equal(unlabelled.policy(tau).head["W1"], model.policy(tau).head["W1"])
    rng = np.random.default_rng(0)
    scrambled = FusionArrays(
        test.s_pref,
        test.p_qual,
        test.q_logit,
        qual=rng.integers(0, 2, test.qual.shape),
        pref=rng.integers(0, 2, test.pref.shape),
    )
    assert np.array_equal(model.apply(scrambled, tau).scores, model.apply(test, tau).scores)


def test_head_serving_rule_reads_the_validation_comparison(tau_head_split):
    "Served exactly when the paired interval over validation candidates lies above 0; its difference is the per-tau comparison's mean."
    from jobrec.fusion import FusionModel, system_settings
    from jobrec.controllability import head_serving, head_vs_global

    val, test, st, model = tau_head_split
    models = (model, FusionModel(system_settings("inference_global"), val, seed=0))
    cfg = fusion_settings(tau_head_steps=30)
    rule = head_serving(models, val, cfg, n_boot=200)
    assert rule["taus"] and rule["serve"] == (rule["lo"] > 0) and rule["lo"] <= rule["diff"] <= rule["hi"]
    table = head_vs_global(models, val, rule["taus"], n_boot=200)
    assert abs(rule["diff"] - table["ndcg_diff"].mean()) < 1e-9
    assert not head_serving(models, val, fusion_settings(tau_head_serve="never"))["serve"]
    with pytest.raises(ConfigError, match="tau_head_serve"):
        fusion_settings(tau_head_serve="always")


def test_tau_head_serve_never_trains_no_head(tau_head_split, monkeypatch):
    "With fusion.tau_head_serve never the sweep leaves the tau head out and trains none; with auto it trains one."
    import jobrec.fusion as F
    from jobrec.controllability import compare_controllability

    val, test, st, _ = tau_head_split
    trained = []
    real = F.train_tau_head

    def spy(*a, **kw):
        trained.append(1)
        return real(*a, **kw)

    monkeypatch.setattr(F, "train_tau_head", spy)
    never = compare_controllability(val, test, [0.5], F.fusion_settings(st, tau_head_serve="never"))
    assert trained == [] and "tau_head" not in set(never.system) and "inference_global" in set(never.system)
    auto = compare_controllability(val, test, [0.5], st)
    assert trained and "tau_head" in set(auto.system)
