"The warm protocol end to end on small synthetic data: what the baselines see, what is evaluated, the summary the reports read."

import numpy as np
import pandas as pd
from jobrec.core import load_config
from jobrec.data import generate_synthetic
from jobrec.warm import warm_split, with_history
from jobrec.baselines import make_baseline, observed_signals, write_atomic_files
from jobrec.pipeline import evaluate_systems, warm_summary


def _data():
    return generate_synthetic(n_candidates=60, n_jobs=25, seed=11)


def test_collaborative_baselines_get_the_history_as_training_interactions(tmp_path):
    d = _data()
    H = warm_split(d, 0.5, seed=3)
    w = with_history(d, H)
    cold = make_baseline("popularity").fit(d).pop
    warm = make_baseline("popularity").fit(w).pop
    np.testing.assert_array_equal(warm - cold, H.sum(0))
    a_cold, _ = observed_signals(d)
    a_warm, _ = observed_signals(w)
    assert H.any() and not (a_cold & H).any() and ((a_warm & ~a_cold) == H).all()
    assert (
        observed_signals(w, "val")[0] == observed_signals(d, "val")[0]
    ).all()  # only the training signals grow
    rows = lambda x: (
        len((write_atomic_files(x, tmp_path / str(id(x))) / "jobrec.train.inter").read_text().splitlines())
        - 1
    )
    assert rows(w) - rows(d) == H.sum()


def test_warm_evaluation_leaves_the_history_out():
    "A system that puts the history on top and one that puts it at the bottom rank the evaluated jobs alike: their warm figures agree."
    d = _data()
    cfg = load_config(experiment={"eval": {"bootstrap": 20}})
    H = warm_split(d, 0.5, seed=3)
    t = d.idx("test")
    base = np.random.default_rng(0).random((len(t), 25))
    top, bottom = base + 10 * H[t], base - 10 * H[t]
    sys = {"jobrec": {"cand": top, "emp": top}, "other": {"cand": bottom, "emp": bottom}}
    m, _ = evaluate_systems(sys, d, t, cfg, exclude=H[t], protocols=("full",))
    v = m.pivot_table(index=["side", "metric"], columns="system", values="mean")
    np.testing.assert_allclose(v["jobrec"], v["other"])
    cold, _ = evaluate_systems(sys, d, t, cfg, protocols=("full",))
    c = cold[(cold.side == "candidate") & (cold.metric == "ndcg@10")].set_index("system")["mean"]
    assert (
        c["jobrec"] != c["other"]
    )  # without the exclusion the history's place matters: the test above can fail


def test_warm_summary_compares_jobrec_with_the_best_baseline():
    rows = [
        ("jobrec", 0.7),
        ("jobrec_pref_only", 0.9),
        ("conflated", 0.8),
        ("lightgcn", 0.5),
        ("features_gbdt", 0.6),
    ]
    main = pd.DataFrame(
        [
            dict(system=s, side="candidate", protocol=p, metric="ndcg@10", mean=v)
            for s, v in rows
            for p in ("full", "warm")
        ]
    )
    s = warm_summary(main)
    assert s["best_baseline"] == "features_gbdt" and abs(s["margin"] - 0.1) < 1e-12
    assert warm_summary(main[main.protocol == "full"]) is None
