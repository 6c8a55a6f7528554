"Ranking metrics against pytrec_eval, scikit-learn and brute-force expectations over tie-breaking; protocols, eligibility, uncertainty, the summary table and the packaged `evaluate` module."

import itertools, json, os, subprocess, sys
from pathlib import Path

import numpy as np
import pytest

from jobrec.metrics import (
    KS,
    METRIC_MODULE_DIR,
    benchmark_evaluation,
    bootstrap_ci,
    compare_systems,
    controllability_error,
    eligibility_at_k,
    evaluate_two_sided,
    expected_rank,
    full_protocol,
    load_ranking_metric,
    pad_groups,
    paired_test,
    ranking_metrics,
    report_lines,
    sampled_protocol,
    two_sided_values,
    violation,
)

import pytrec_eval  # a dev requirement: missing, the suite fails instead of skipping


def _pytrec(scores, labels, valid, ks=KS):
    "pytrec_eval's per-unit values for the units with a positive."
    qrel, run = {}, {}
    for i in range(scores.shape[0]):
        js = np.flatnonzero(valid[i])
        if not labels[i, js].any():
            continue
        qrel[f"u{i}"] = {f"d{j}": int(labels[i, j]) for j in js}
        run[f"u{i}"] = {f"d{j}": float(scores[i, j]) for j in js}
    kk = ",".join(map(str, ks))
    ev = pytrec_eval.RelevanceEvaluator(
        qrel, {f"recall.{kk}", f"success.{kk}", f"ndcg_cut.{kk}", "recip_rank"}
    )
    res = ev.evaluate(run)
    units = sorted(res, key=lambda q: int(q[1:]))
    out = {"mrr": np.array([res[q]["recip_rank"] for q in units])}
    for k in ks:
        out[f"recall@{k}"] = np.array([res[q][f"recall_{k}"] for q in units])
        out[f"hit@{k}"] = np.array([res[q][f"success_{k}"] for q in units])
        out[f"ndcg@{k}"] = np.array([res[q][f"ndcg_cut_{k}"] for q in units])
    return np.array([int(q[1:]) for q in units]), out


def _random_case(seed, U=40, N=60, rate=0.15):
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=(U, N))  # continuous: no ties (pytrec_eval breaks ties its own way)
    labels = (rng.random((U, N)) < rate).astype(int)
    sizes = rng.integers(5, N + 1, U)  # groups of different sizes
    valid = np.arange(N) < sizes[:, None]
    return scores, labels, valid


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_pytrec_eval_on_tie_free_scores(seed):
    scores, labels, valid = _random_case(seed)
    r = ranking_metrics(scores, labels, valid=valid)
    units, ref = _pytrec(scores, labels, valid)
    np.testing.assert_array_equal(r.units, units)
    assert r.n_dropped == scores.shape[0] - len(units)
    assert any((labels[u] * valid[u]).sum() > 1 for u in units)  # multi-positive units are exercised
    for k, v in ref.items():
        np.testing.assert_allclose(r[k], v, atol=1e-4, err_msg=k)  # trec_eval prints 4 decimals


def test_one_positive_path_matches_pytrec_eval():
    rng = np.random.default_rng(5)
    scores = rng.normal(size=(300, 50))
    labels = np.zeros((300, 50), int)
    labels[:, 0] = 1
    valid = np.arange(50) < rng.integers(2, 51, 300)[:, None]
    r = ranking_metrics(scores, labels, valid=valid)
    _, ref = _pytrec(scores, labels, valid)
    for k, v in ref.items():
        np.testing.assert_allclose(r[k], v, atol=1e-4, err_msg=k)


def test_auc_matches_sklearn_with_ties():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(3)
    for _ in range(30):
        n = rng.integers(3, 40)
        s = rng.integers(0, 4, n).astype(float)  # many ties
        l = (rng.random(n) < 0.3).astype(int)
        if l.all() or not l.any():
            continue
        np.testing.assert_allclose(ranking_metrics(s[None], l[None])["auc"], [roc_auc_score(l, s)])


def _strict(order_labels, P, ks):
    "Metrics of one strict ordering (labels listed from the top)."
    hits = np.flatnonzero(order_labels)
    ranks = hits + 1
    out = {"mrr": 1 / ranks[0]}
    for k in ks:
        out[f"hit@{k}"] = float(ranks[0] <= k)
        out[f"recall@{k}"] = (ranks <= k).sum() / P
        idcg = sum(1 / np.log2(np.arange(2, min(P, k) + 2)))
        out[f"ndcg@{k}"] = sum(1 / np.log2(r + 1) for r in ranks if r <= k) / idcg
    n_neg = len(order_labels) - P
    negs_below = [(~order_labels[r:].astype(bool)).sum() for r in ranks]
    out["auc"] = sum(negs_below) / (P * n_neg) if n_neg else np.nan
    return out


def test_exact_expectation_over_all_tie_breaks():
    "Every metric equals its average over all orderings consistent with the scores (uniform tie-breaking)."
    rng = np.random.default_rng(11)
    ks = (1, 2, 3, 5)
    for _ in range(25):
        n = int(rng.integers(3, 7))
        s = rng.integers(0, 3, n).astype(float)
        l = np.zeros(n, int)
        l[rng.choice(n, int(rng.integers(1, n)), replace=False)] = 1
        perms = list(itertools.permutations(range(n)))
        acc = {}
        for p in perms:
            order = sorted(range(n), key=lambda i: (-s[i], p[i]))
            for k, v in _strict(l[order], l.sum(), ks).items():
                acc[k] = acc.get(k, 0) + v / len(perms)
        r = ranking_metrics(s[None], l[None], ks=ks)
        for k, v in acc.items():
            np.testing.assert_allclose(r[k][0], v, err_msg=f"{k} s={s} l={l}")
        er = expected_rank(s[None], l[None])[0]
        for i in np.flatnonzero(l):  # expected rank of each positive = average of its rank over tie-breaks
            mean_rank = np.mean([sorted(range(n), key=lambda j: (-s[j], p[j])).index(i) + 1 for p in perms])
            np.testing.assert_allclose(er[i], mean_rank)


def test_hand_computed_ties_and_padding():
    sc = np.array([[0.9, 0.5, 0.5, 0.5, 0.1], [0.9, 0.8, 0.3, 0.3, 0.0], [0.1, 0.2, 0.3, 0.4, 0.5]])
    lb = np.array([[0, 1, 0, 0, 0], [1, 0, 1, 0, 1], [0, 0, 0, 0, 0]])
    va = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 1, 0], [1, 1, 1, 1, 1]], bool)
    r = ranking_metrics(sc, lb, ks=(1, 3, 5), valid=va)
    assert list(r.units) == [0, 1] and r.n_dropped == 1
    # unit 0: the positive's rank is uniform on {2, 3, 4}; the reference would put it at rank 2
    assert expected_rank(sc, lb, va)[0, 1] == 3.0
    np.testing.assert_allclose(
        [r["hit@1"][0], r["hit@3"][0], r["mrr"][0]], [0, 2 / 3, (1 / 2 + 1 / 3 + 1 / 4) / 3]
    )
    np.testing.assert_allclose(r["ndcg@3"][0], (1 / np.log2(3) + 1 / np.log2(4)) / 3)
    np.testing.assert_allclose(r["auc"][0], 2 / 4)
    # unit 1: positives at rank 1 and {3, 4}; the padded item (a positive label) is not there
    np.testing.assert_allclose(r["recall@3"][1], 0.75)
    np.testing.assert_allclose(
        r["ndcg@5"][1], (1 + 0.5 / np.log2(4) + 0.5 / np.log2(5)) / (1 + 1 / np.log2(3))
    )
    np.testing.assert_allclose(r["auc"][1], 2.5 / 4)
    # unknown labels (-1) are ignored like padding
    r2 = ranking_metrics(sc[1:2, :4], np.array([[1, -1, 1, 0]]), ks=(1,))
    np.testing.assert_allclose(r2["auc"], [0.75])


def test_ties_never_favour_the_positive():
    r = ranking_metrics(np.zeros((1, 50)), np.eye(1, 50), ks=(1, 5, 10))
    np.testing.assert_allclose([r["hit@1"][0], r["hit@5"][0], r["hit@10"][0]], [0.02, 0.1, 0.2])
    np.testing.assert_allclose(r["mrr"], [np.sum(1 / np.arange(1, 51)) / 50])
    assert r["auc"][0] == 0.5


def test_random_ranker_on_1_plus_49_groups():
    rng = np.random.default_rng(0)
    labels = (rng.random((500, 200)) < 0.06).astype(int)
    r = sampled_protocol(rng.random((500, 200)), labels, n_neg=49, rng=rng)
    assert len(r.units) == labels.sum() > 5000
    m = {k: r[k].mean() for k in ("hit@5", "recall@10", "ndcg@10", "mrr")}
    assert abs(m["hit@5"] - 0.10) < 0.012 and abs(m["recall@10"] - 0.20) < 0.015
    assert abs(m["ndcg@10"] - 0.091) < 0.008 and abs(m["mrr"] - 0.090) < 0.008
    # the exact random-ranker expectations that the simulation approaches
    exact = ranking_metrics(np.zeros((1, 50)), np.eye(1, 50), ks=(10,))
    np.testing.assert_allclose([exact["ndcg@10"][0], exact["mrr"][0]], [0.0909, 0.0900], atol=2e-4)


def test_sampled_group_sizes_and_reproducibility():
    rng = np.random.default_rng(1)
    U, N = 30, 80
    labels = (rng.random((U, N)) < 0.2).astype(int)
    labels[1, :] = 1
    labels[1, :10] = 0  # only 10 negatives: smaller groups
    exclude = rng.random((U, N)) < 0.1
    scores = rng.normal(size=(U, N))
    r = sampled_protocol(scores, labels, n_neg=49, rng=7, exclude=exclude)
    r_again = sampled_protocol(scores, labels, n_neg=49, rng=7, exclude=exclude)
    for k in r:
        np.testing.assert_array_equal(r[k], r_again[k])
    pos = (labels > 0) & ~exclude
    assert len(r.units) == pos.sum() and (pos[r.units, r.positive_items]).all()
    # all tied: hit@1 = 1 / group size, and group size = 1 + min(49, the unit's usable negatives)
    n_u = ((labels == 0) & ~exclude).sum(1)
    tied = sampled_protocol(np.zeros((U, N)), labels, n_neg=49, rng=7, exclude=exclude, ks=(1,))
    np.testing.assert_allclose(1 / tied["hit@1"], 1 + np.minimum(49, n_u[tied.units]))


def test_sampled_negatives_are_valid_and_uniform():
    # negatives never include positives, invalid or excluded items: all of those outrank the positive of item 0
    labels = np.zeros((200, 60), int)
    labels[:, :2] = 1
    scores = -np.ones((200, 60))
    scores[:, 0] = 0
    scores[:, 1] = 1
    scores[:, 50:] = 1
    valid = np.ones((200, 60), bool)
    valid[:, 50:55] = False
    exclude = np.zeros((200, 60), bool)
    exclude[:, 55:] = True
    r = sampled_protocol(scores, labels, n_neg=40, rng=0, valid=valid, exclude=exclude, ks=(1,))
    first = r.positive_items == 0
    assert first.sum() == 200 and (r["hit@1"][first] == 1).all() and (r["auc"][first] == 1).all()
    # uniform: in unit x, only item x outranks the positive; it is drawn in 3 of 11 groups on average
    rows = 11 * 400
    target = 1 + np.arange(rows) % 11
    lab = np.zeros((rows, 12), int)
    lab[:, 0] = 1
    sc = -np.ones((rows, 12))
    sc[:, 0] = 0
    sc[np.arange(rows), target] = 1
    r = sampled_protocol(sc, lab, n_neg=3, rng=1, ks=(1,))
    drawn = np.bincount(target, weights=r["hit@1"] == 0, minlength=12)[1:] / 400
    assert np.all(np.abs(drawn - 3 / 11) < 0.07), drawn


def test_full_protocol_excludes_training_positives():
    s = np.array([[0.9, 0.8, 0.1, 0.05]])
    l = np.array([[1, 0, 1, 0]])
    r = full_protocol(s, l, exclude=np.array([[True, True, False, False]]), ks=(1,))
    np.testing.assert_allclose([r["hit@1"][0], r["auc"][0]], [1.0, 1.0])
    r = full_protocol(s, l, ks=(1,))
    np.testing.assert_allclose(r["recall@1"], [0.5])


def test_eligibility_with_ties_by_brute_force():
    rng = np.random.default_rng(4)
    for _ in range(20):
        n = int(rng.integers(2, 7))
        k = int(rng.integers(1, n + 2))
        s = rng.integers(0, 3, n).astype(float)
        q = rng.integers(0, 2, n)
        perms = list(itertools.permutations(range(n)))
        want = np.mean([q[sorted(range(n), key=lambda i: (-s[i], p[i]))[:k]].mean() for p in perms])
        np.testing.assert_allclose(eligibility_at_k(s[None], q[None], k), [want])
    np.testing.assert_allclose(violation([0.2, 0.6], 0.5), [0.3, 0.0])
    np.testing.assert_allclose(controllability_error([0.1, 0.35, 0.9], [0.1, 0.3, 0.7]), [0.0, 0.05, 0.2])
    with pytest.raises(ValueError, match="known qualification"):
        eligibility_at_k([[0.1, 0.2]], [[1, -1]], 1)


def test_bootstrap_ci_is_reproducible_and_covers():
    rng = np.random.default_rng(0)
    cover = 0
    for _ in range(200):
        m, lo, hi = bootstrap_ci(rng.normal(1.0, 1.0, 60), n_boot=400, rng=rng)
        cover += lo <= 1.0 <= hi
    assert 0.88 <= cover / 200 <= 0.99
    x = rng.random(50)
    assert bootstrap_ci(x, rng=5) == bootstrap_ci(x, rng=5)
    assert bootstrap_ci(x, rng=5)[0] == pytest.approx(x.mean())
    with pytest.raises(ValueError, match="pass rng"):
        bootstrap_ci(x)


def test_cluster_bootstrap_resamples_units():
    # 2 units, many identical values each: group-level resampling would give a tiny interval, unit-level a wide one
    vals = np.r_[np.zeros(100), np.ones(100)]
    groups = np.r_[np.zeros(100, int), np.ones(100, int)]
    m, lo, hi = bootstrap_ci(vals, n_boot=2000, rng=0, groups=groups)
    assert m == 0.5 and lo == 0.0 and hi == 1.0
    m2, lo2, hi2 = bootstrap_ci(vals, n_boot=2000, rng=0)
    assert hi2 - lo2 < 0.2


def test_paired_test():
    from scipy.stats import wilcoxon

    rng = np.random.default_rng(0)
    b = rng.random(80)
    a = b + 0.05 + rng.normal(0, 0.05, 80)
    t = paired_test(a, b, rng=1)
    assert (
        t["diff"] == pytest.approx((a - b).mean())
        and t["lo"] < t["diff"] < t["hi"]
        and t["lo"] > 0
        and t["p"] < 0.001
    )
    tw = paired_test(a, b, method="wilcoxon")
    assert tw["p"] == pytest.approx(wilcoxon(a - b).pvalue)
    # exact sign flip, 4 units with differences 1, 2, 3, -1: |sum| >= 5 for sums +-7 and +-5 (twice): 6 of 16 patterns
    d = np.array([1.0, 2.0, 3.0, -1.0])
    t = paired_test(d, np.zeros(4))
    pats = np.array(list(itertools.product((-1, 1), repeat=4)))
    assert t["p"] == pytest.approx(np.mean(np.abs(pats @ d) >= abs(d.sum()) - 1e-12)) and t["p"] == 6 / 16
    # no effect: the p-value is not small
    c = b + rng.normal(0, 0.05, 80)
    assert paired_test(c, b, rng=2)["p"] > 0.05
    with pytest.raises(ValueError, match="align"):
        paired_test(np.ones(3), np.ones(4))


def _system_data(seed=0, C=50, J=15):
    rng = np.random.default_rng(seed)
    pref = (rng.random((C, J)) < 0.25).astype(int)
    qual = (rng.random((C, J)) < 0.4).astype(int)
    return rng, pref, qual


def test_evaluate_two_sided_table_and_sides():
    rng, pref, qual = _system_data()
    s_cand = pref + rng.normal(0, 1, pref.shape)
    s_emp = qual + rng.normal(0, 1, qual.shape)
    test_c = np.arange(50) >= 20
    train_pos = np.zeros(pref.shape, bool)
    train_pos[:, 0] = pref[:, 0] > 0
    df, vals = evaluate_two_sided(
        s_cand,
        pref,
        s_emp,
        qual,
        candidates=test_c,
        system="sys",
        exclude=train_pos,
        n_boot=200,
        seed=3,
        tau=0.5,
        return_values=True,
    )
    assert list(df.columns)[:8] == ["system", "side", "protocol", "metric", "mean", "lo", "hi", "n"]
    assert set(zip(df.side, df.protocol)) == {
        ("candidate", "sampled"),
        ("candidate", "full"),
        ("employer", "sampled"),
        ("employer", "full"),
    }
    assert {"ndcg@10", "recall@10", "mrr", "auc", "hit@1"} <= set(df.metric)
    assert set(df[df.metric.str.startswith(("eligibility", "violation"))].protocol) == {"full"}
    # employer side = the same function on the transposed matrices, test candidates as columns
    emp = ranking_metrics(s_emp[test_c].T, qual[test_c].T)
    row = df[(df.side == "employer") & (df.protocol == "full") & (df.metric == "ndcg@10")].iloc[0]
    assert row["mean"] == pytest.approx(emp["ndcg@10"].mean()) and row["n"] == len(emp.units)
    cand = full_protocol(s_cand[test_c], pref[test_c], exclude=train_pos[test_c])
    row = df[(df.side == "candidate") & (df.protocol == "full") & (df.metric == "mrr")].iloc[0]
    assert row["mean"] == pytest.approx(cand["mrr"].mean())
    elig = eligibility_at_k(s_cand[test_c], qual[test_c], 10, valid=~train_pos[test_c])
    assert df[df.metric == "eligibility@10"]["mean"].item() == pytest.approx(elig.mean())
    assert df[df.metric == "violation@10"]["mean"].item() == pytest.approx(violation(elig, 0.5).mean())
    # the sampled rows count units (n) and groups (n_groups)
    row = df[(df.side == "candidate") & (df.protocol == "sampled")].iloc[0]
    assert row["n_groups"] == ((pref[test_c] > 0) & ~train_pos[test_c]).sum() and row["n"] <= 30
    # same seed, same table; every report line names side and protocol
    df2 = evaluate_two_sided(
        s_cand,
        pref,
        s_emp,
        qual,
        candidates=test_c,
        system="sys",
        exclude=train_pos,
        n_boot=200,
        seed=3,
        tau=0.5,
    )
    assert df.equals(df2)
    lines = report_lines(df)
    assert len(lines) == len(df) and all(" side | " in x and " protocol | " in x for x in lines)
    assert "49 negatives" in df.attrs["protocols"]["sampled"]


def test_compare_systems_pairs_the_same_groups():
    rng, pref, qual = _system_data(1)
    good = pref + qual + rng.normal(0, 0.7, pref.shape)
    _, va = evaluate_two_sided(good, pref, None, qual, n_neg=5, n_boot=100, return_values=True)
    _, vb = evaluate_two_sided(
        rng.random(pref.shape), pref, None, qual, n_neg=5, n_boot=100, return_values=True
    )
    cmp = compare_systems(va, vb, metrics=("ndcg@10", "mrr"), n_boot=200)
    assert len(cmp) == 8 and (cmp["diff"] > 0).all() and (cmp["p"] < 0.05).all()
    # another seed draws other negatives: the groups differ and pairing them is refused
    _, vc = evaluate_two_sided(good, pref, None, qual, n_neg=5, n_boot=100, seed=9, return_values=True)
    with pytest.raises(ValueError, match="same units"):
        compare_systems(va, vc)


def test_unknown_labels_skip_eligibility_and_are_ignored():
    rng, pref, qual = _system_data(2)
    qual = qual.copy()
    qual[rng.random(qual.shape) < 0.3] = -1
    vals = two_sided_values(rng.random(pref.shape), pref, None, qual, seed=0)
    assert ("candidate", "full", "eligibility") not in vals and ("employer", "full", "ranking") in vals


def test_pad_groups_and_ragged_equivalence():
    rng = np.random.default_rng(8)
    groups = [rng.normal(size=n) for n in (3, 7, 50, 2)]
    labs = [np.eye(1, len(g), int(rng.integers(len(g))))[0].astype(int) for g in groups]
    s, l, v = pad_groups(groups, labs)
    r = ranking_metrics(s, l, valid=v)
    for i, (g, lab) in enumerate(zip(groups, labs)):
        one = ranking_metrics(g[None], lab[None])
        for k in r:
            np.testing.assert_allclose(r[k][i], one[k][0])


def test_evaluate_module_loads_offline_and_matches_numpy():
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    assert (
        METRIC_MODULE_DIR / f"{METRIC_MODULE_DIR.name}.py"
    ).exists()  # evaluate needs file name == folder name
    metric = load_ranking_metric()
    rng = np.random.default_rng(0)
    preds = [list(rng.integers(0, 4, n).astype(float)) for n in (5, 12, 50, 3, 8)]  # ties and ragged groups
    refs = [list((rng.random(len(p)) < 0.3).astype(int)) for p in preds]
    refs[0] = [0] * len(preds[0])
    refs[2][0] = 1
    res = metric.compute(predictions=preds, references=refs, ks=[1, 5, 10])
    s, l, v = pad_groups(preds, refs)
    r = ranking_metrics(s, l, ks=(1, 5, 10), valid=v)
    assert res["n_groups"] == len(r.units) and res["n_dropped"] == 1
    for k in r:
        assert res[k] == pytest.approx(float(np.nanmean(r[k]))), k


def test_metrics_module_imports_light():
    code = (
        "import sys, time; t=time.perf_counter(); import jobrec.metrics; t=time.perf_counter()-t; "
        "print(sorted(m for m in ('torch','pandas','evaluate','datasets','scipy','transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out


def test_benchmark_evaluation_runs():
    b = benchmark_evaluation(60, 20, seed=1, n_boot=50)
    assert b["wall_s"] > 0 and b["rows"] == len(b["table"]) > 0
    assert set(b["table"].protocol) == {"sampled", "full"}


def test_eval_options_follow_the_config():
    from jobrec.core import load_config
    from jobrec.metrics import eval_options

    o = eval_options(load_config())
    assert o == dict(ks=(1, 3, 5, 10, 20), n_neg=49, n_boot=1000, protocols=("sampled", "full"), alpha=0.05)
