"""`jobrec cascade`: fits the retrieval cascade of a run folder on its training candidates, saves it beside the experts, and
`jobrec recommend` then shortlists with it; bad arguments are one-line errors."""

import json, os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
from pathlib import Path
import numpy as np
import pytest
from jobrec.pipeline import load_data
from jobrec.recommend import Recommender, init_run, write_entities
from conftest import run_cli, tiny_cfg

pytestmark = pytest.mark.usefixtures("one_torch_thread")
# the recall thresholds below are read on an untrained model: the small model with the narrow head they were set on
CFG = tiny_cfg(expert={"head_hidden": [16]})


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    d = tmp_path_factory.mktemp("cascade")
    run = init_run(CFG, d / "run", load_data(CFG))
    rc, out, err = run_cli("cascade", "--model", run, "--n-jobs", 30, "--steps", 20)
    assert rc == 0, err[-2000:]
    return d, run, json.loads(out)


def test_cascade_saved_with_its_report(fitted):
    d, run, info = fitted
    assert (run / "model" / "cascade" / "ranker.safetensors").exists() and (
        run / "model" / "cascade" / "ranker.json"
    ).exists()
    assert (
        info["jobs"] == 130 and info["candidates"] + info["held_out"] > 100
    )  # the run's 100 jobs and 30 generated; its training candidates
    assert all(0 <= v <= 1 for t in info["held_out_recall"].values() for v in t.values())


def test_recommend_shortlists_with_the_cascade(fitted):
    d, run, _ = fitted
    data = load_data(CFG)
    write_entities(data.candidates[:1], d / "cand.csv")
    write_entities(data.jobs, d / "jobs.csv")
    rec = Recommender.load(run)
    assert rec.query_kind() == "cascade"
    res = rec.recommend(d / "cand.csv", d / "jobs.csv", k=5, shortlist=20, explain=False)[0]
    assert res.attrs["n_scored"] == 20 and "cascade" in res.attrs["notes"][0]
    # the experts' scores of the shortlisted jobs are those of the cosine path's full scoring
    cos = Recommender.load(run, retrieval={"query": "cosine"}).recommend(
        d / "cand.csv", d / "jobs.csv", k=100, shortlist=100, explain=False
    )[0]
    both = res.merge(cos, on="job_id", suffixes=("", "_cos"))
    assert len(both) == len(res)
    np.testing.assert_allclose(both["preference"], both["preference_cos"], atol=1e-4)


def test_bad_arguments(fitted, tmp_path):
    _, run, _ = fitted
    rc, _, err = run_cli("cascade", "--model", run, "--steps", 0)
    assert rc == 2 and "--steps" in err
    rc, _, err = run_cli("cascade", "--model", tmp_path / "nowhere")
    assert rc == 2


def shortlist_recall(rec, cands, cat, M, tau=None, k=10):
    "Mean share of the experts' full fused top-k (every job scored) that the retrieval stage's top-M keeps."
    U, n, out = rec.encode_candidates(cands), len(cat), []
    for i, c in enumerate(cands):
        u = {e: v[i] for e, v in U.items()}
        top = set(rec.fuse(rec.score(c, u, cat, np.arange(n)), k, tau)["top"].tolist())
        out.append(len(top & set(rec.shortlist(u, cat, M, candidate=c, tau=tau, k=k).tolist())) / k)
    return float(np.mean(out))


def test_cascade_recall_beats_cosine(fitted):
    """On candidates it was not fitted on, at tau 0.8 with M=20 of 100 jobs, the cascade keeps at least twice the share of
    the experts' full fused top-10 that a random shortlist keeps (M/N = 0.2); the cosine index keeps less than that."""
    _, run, _ = fitted
    data = load_data(CFG)
    cands = [data.candidates[i] for i in data.idx("test")][:12]
    recall = {}
    for query in ("cascade", "cosine"):
        rec = Recommender.load(run, retrieval={"query": query})
        cat = rec.catalogue(list(data.jobs), cache=False)
        recall[query] = shortlist_recall(rec, cands, cat, 20, tau=0.8)
    threshold = 2 * 20 / len(data.jobs)
    assert recall["cascade"] >= threshold > recall["cosine"], recall


def test_the_first_stage_multiplier_comes_from_the_fusion(fitted, monkeypatch):
    "The cascade's shortlist at tau asks the served `FusionModel` for its multiplier: replace that answer and the shortlist follows it."
    from jobrec.fusion import FusionModel

    _, run, _ = fitted
    data = load_data(CFG)
    c = data.candidates[int(data.idx("test")[0])]
    rec = Recommender.load(run)
    cat = rec.catalogue(list(data.jobs), cache=False)
    u = {e: v[0] for e, v in rec.encode_candidates([c]).items()}
    asked, real = [], FusionModel.multiplier

    def spy(self, s, p, tau, k=10, pool=500):
        lam = real(self, s, p, tau, k, pool)
        asked.append((self, tau, k, lam))
        return lam

    monkeypatch.setattr(FusionModel, "multiplier", spy)
    at_tau = rec.shortlist(u, cat, 20, candidate=c, tau=0.9, k=5)
    assert asked and all(a[0] is rec.fusion_model() and a[1:3] == (0.9, 5) for a in asked)
    assert any(a[3] > 0 for a in asked)  # tau 0.9 needs a multiplier on this candidate's first-stage scores
    asked.clear()
    no_tau = rec.shortlist(u, cat, 20, candidate=c, tau=None)
    assert asked == [] and list(at_tau) != list(no_tau)
    # the fusion's answer is what ranks: a zero multiplier gives the preference-only shortlist
    monkeypatch.setattr(FusionModel, "multiplier", lambda self, s, p, tau, k=10, pool=500: 0.0)
    np.testing.assert_array_equal(rec.shortlist(u, cat, 20, candidate=c, tau=0.9, k=5), no_tau)
