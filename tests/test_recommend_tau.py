"""Tau served as validated, on a small trained run: `jobrec train` saves the fusion, `jobrec recommend --tau` serves it through
`FusionModel.apply` (the experiment's call), refuses a tau outside the validated range, and `served_controllability` measures
the served path on true labels."""

import contextlib, io, json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from jobrec.core import load_config, UsageError
from jobrec.fusion import (
    FusionArrays,
    fit_fusion,
    load_fusion,
    topk_mean,
)
from jobrec.pipeline import load_data, train_run
from jobrec.recommend import Recommender, write_entities, served_controllability
from jobrec.cli import main
from conftest import run_cli

ROOT = Path(__file__).resolve().parents[1]
# the smoke experiment with a few training steps: a real trained and calibrated run in well under a minute
TRAIN = ["train.head_steps=2", "train.stage1_steps=2", "train.stage2_steps=0", "fusion.taus=[0.2, 0.4, 0.6]"]
K = 5

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    cfg = load_config("cpu-small", ROOT / "experiments" / "smoke.yaml", TRAIN)
    data = load_data(cfg)
    run = train_run(cfg, tmp_path_factory.mktemp("tau") / "run", resume=False, data=data)
    d = tmp_path_factory.mktemp("tau_files")
    cand = data.candidates[int(data.idx("test")[0])]
    write_entities(data.jobs, d / "jobs.csv")
    write_entities([cand], d / "cand.csv")
    return run, cfg, data, cand, d


def test_train_saves_the_fusion(trained):
    run, cfg, data, _, _ = trained
    info = json.loads((run / "model" / "fusion.json").read_text())
    assert info["system"] == "inference_global" and info["estimator"] == "dr"
    lo, hi = info["validated_range"]
    assert 0 <= lo < hi <= 1
    with np.load(run / "model" / "fusion_validation.npz", allow_pickle=False) as z:
        assert "qual" not in z.files  # true qualification labels stay out
        val = FusionArrays(**{k: z[k] for k in z.files})
    assert val.n_candidates == len(data.idx("val")) and val.s_pref.shape[1] == len(data.jobs)
    # the multipliers it records are fit_fusion's on those arrays, the call the experiment makes
    assert [p["tau"] for p in info["policies"]] == [0.2, 0.4, 0.6]
    for p in info["policies"]:
        assert p["lambda"] == fit_fusion(val, p["tau"], cfg=cfg, seed=cfg["seed"]).lam


def test_served_tau_is_the_experiments_fusion(trained):
    run, _, _, cand, _ = trained
    rec = Recommender.load(run)
    assert rec.default_fusion == "inference_global"
    cat = rec.catalogue(list(trained[2].jobs), cache=False)
    U = {e: v[0] for e, v in rec.encode_candidates([cand]).items()}
    sc = rec.score(cand, U, cat, np.arange(len(cat)))
    arrays = FusionArrays(sc["s_pref"][None], sc["p_qual"][None], sc["q_logit"][None])
    exp = load_fusion(run / "model")  # the experiment's function, from the saved arrays
    lo, hi = exp.validated_range(k=K)
    lams, elig = [], []
    for t in np.linspace(lo, hi, 6):
        tab = rec.recommend(cand, cat, k=K, tau=float(t), explain=False)[0]
        ref = exp.apply(arrays, float(t), k=K)
        top = np.argsort(-ref.scores[0], kind="stable")[:K]
        assert list(tab.job_id) == [cat.jobs[i].job_id for i in top]
        assert tab.attrs["lambda"] == pytest.approx(float(np.mean(ref.lam)))
        assert tab.attrs["eligibility_at_k"] == pytest.approx(float(ref.value[0]))
        lams.append(tab.attrs["lambda"])
        elig.append(tab.attrs["eligibility_at_k"])
    assert lams[0] == 0.0 and lams[-1] > 0  # the range starts where tau needs no multiplier
    assert all(np.diff(lams) >= 0) and all(np.diff(elig) >= -1e-12), (lams, elig)  # monotone in tau


def test_cli_refuses_a_tau_outside_the_validated_range(trained):
    run, _, _, _, d = trained
    lo, hi = load_fusion(run / "model").validated_range(k=K)
    base = ["recommend", "--model", run, "--candidate", d / "cand.csv", "--jobs", d / "jobs.csv", "--k", K]
    rc, out, err = run_cli(*base, "--tau", round((lo + hi) / 2, 4), "--format", "json")
    assert rc == 0, err
    r = json.loads(out)["results"][0]
    assert r["fusion"] == "inference_global" and r["mode"] == "tau"
    assert any(
        "inference_global" in n and "unmeasured" in n for n in r["notes"]
    )  # a train-only run has no controllability report
    bad = hi + 0.05 if hi <= 0.95 else lo - 0.05
    assert 0 <= bad <= 1
    rc, out, err = run_cli(*base, "--tau", bad)
    lines = err.strip().splitlines()
    line = lines[-1]  # progress logs may precede the one error line
    assert rc == 2 and out == "" and sum(": error: " in l for l in lines) == 1, err
    assert line.startswith("jobrec recommend: error: tau") and "outside the range validated" in line
    assert f"{lo:.3f}" in line and f"{hi:.3f}" in line
    with pytest.raises(UsageError, match="outside the range validated"):
        main([str(a) for a in base] + ["--tau", str(bad), "--debug"])
    # the per-candidate search serves any tau, and says what the run's report measured for it
    (run / "results").mkdir(exist_ok=True)
    pd.DataFrame(
        [{"system": "inference_per_candidate", "n_in_range": 3, "max_error_in_range": 0.0589}]
    ).to_csv(run / "results" / "sweep_summary.csv", index=False)
    try:
        rc, out, err = run_cli(*base, "--tau", bad, "--fusion", "inference_per_candidate")
        assert rc == 0, err
        assert "tau" in out and "inference_per_candidate" in out and "0.059" in out
    finally:
        (run / "results" / "sweep_summary.csv").unlink()


def test_served_controllability(trained):
    run, cfg, data, _, _ = trained
    lo, hi = load_fusion(run / "model").validated_range()
    taus = [lo, (lo + hi) / 2, hi, min(hi + 0.05, 1.0)]
    sv = served_controllability(run, taus, data=data)
    assert list(sv["in_range"]) == [True, True, True, hi + 0.05 > 1.0]
    assert sv["n_candidates"].iloc[0] == len(data.idx("test"))
    # the served eligibility@k on true labels is the experiment's fusion applied to the served candidates' arrays
    rec = Recommender.load(run)
    test = data.idx("test")
    cat = rec.catalogue(list(data.jobs), cache=False)
    U = rec.encode_candidates([data.candidates[i] for i in test])
    sc = [
        rec.score(data.candidates[c], {e: v[i] for e, v in U.items()}, cat, np.arange(len(cat)))
        for i, c in enumerate(test)
    ]
    arrays = FusionArrays(*(np.stack([s[x] for s in sc]) for x in ("s_pref", "p_qual", "q_logit")))
    exp = load_fusion(run / "model")
    k = cfg["fusion"]["k"]
    q = np.asarray(data.qual, dtype=np.float64)[test]
    q[q < 0] = np.nan
    for t, achieved in zip(taus[:3], sv["achieved"][:3]):
        assert achieved == pytest.approx(float(np.nanmean(topk_mean(exp.apply(arrays, t).scores, q, k))))


def test_the_tau_note_speaks_of_the_users_k(trained):
    "`recommend --tau` says tau is met on average over candidates, with the validated range and this candidate's own eligibility at --k."
    run, cfg, _, _, d = trained
    k, rk = 3, cfg["fusion"]["k"]
    lo, hi = load_fusion(run / "model").validated_range(k=k)
    tau = round((lo + hi) / 2, 4)
    base = [
        "recommend",
        "--model",
        run,
        "--candidate",
        d / "cand.csv",
        "--jobs",
        d / "jobs.csv",
        "--k",
        k,
        "--tau",
        tau,
    ]
    (run / "results").mkdir(exist_ok=True)
    pd.DataFrame(
        [
            {"system": "inference_global", "n_in_range": 3, "max_error_in_range": 0.0213},
            {"system": "inference_per_candidate", "n_in_range": 3, "max_error_in_range": 0.0589},
        ]
    ).to_csv(run / "results" / "sweep_summary.csv", index=False)
    try:
        rc, out, err = run_cli(*base)
        assert rc == 0, err
        rc, js, err = run_cli(*base, "--format", "json")
        e = json.loads(js)["results"][0]["eligibility_at_k"]
        assert f"tau {tau:g} is met on average over candidates, not for each: fusion inference_global" in out
        assert f"(validated for taus {lo:.3f} to {hi:.3f} at k={k})" in out
        assert (
            f"this candidate's own calibrated eligibility@{k} is {e:.3f}, {'at or above' if e >= tau - 1e-9 else 'below'} tau"
            in out
        )
        assert f"calibrated eligibility@{k} {e:.3f}" in out  # the table's head line
        assert (
            "0.021" in out
            and f"at k={rk}" in out
            and f"not at k={k}" in out
            and f"eligibility@{rk}" not in out
        )
        rc, out, err = run_cli(*base, "--fusion", "inference_per_candidate", "--format", "json")
        assert rc == 0, err
        r = json.loads(out)["results"][0]
        note = r["notes"][0]
        assert note.startswith(
            f"tau {tau:g} at k={k}: fusion inference_per_candidate searches a multiplier for this candidate alone"
        )
        assert f"own calibrated eligibility@{k} is {r['eligibility_at_k']:.3f}" in note and any(
            "0.059" in n for n in r["notes"]
        )
    finally:
        (run / "results" / "sweep_summary.csv").unlink()
    help_out = io.StringIO()
    with contextlib.redirect_stdout(help_out), pytest.raises(SystemExit):
        main(["recommend", "--help"])
    words = " ".join(help_out.getvalue().split())
    assert "meets it ON AVERAGE over candidates" in words and "own calibrated eligibility@k" in words


def test_tau_is_checked_once_per_call(trained, monkeypatch):
    "One `recommend` call over several candidates checks tau against the validated range once, before any candidate is scored."
    from jobrec.fusion import FusionModel

    run, _, data, _, _ = trained
    rec = Recommender.load(run)
    lo, hi = load_fusion(run / "model").validated_range(k=K)
    cands = [data.candidates[i] for i in data.idx("test")[:4]]
    calls, real = [], FusionModel.require
    monkeypatch.setattr(
        FusionModel,
        "require",
        lambda self, tau, **kw: calls.append((self.system, tau)) or real(self, tau, **kw),
    )
    tabs = rec.recommend(cands, list(data.jobs), k=K, tau=(lo + hi) / 2, explain=False)
    assert len(tabs) == 4 and calls == [("inference_global", (lo + hi) / 2)]
    calls.clear()
    rec.recommend(cands, list(data.jobs), k=K, explain=False)
    assert calls == []  # no tau, nothing to check
    # a direct `fuse` still checks: served_controllability reads a refusal from it
    sc = rec.score(
        cands[0],
        {e: v[0] for e, v in rec.encode_candidates(cands[:1]).items()},
        rec.catalogue(list(data.jobs)),
        np.arange(5),
    )
    with pytest.raises(UsageError, match="outside the range validated"):
        rec.fuse(sc, K, min(hi + 0.05, 1.0) if hi <= 0.95 else lo - 0.05)
