"""The released-data path end to end on the hand-written release fixtures: `jobrec run --set data.source=released` without the
profiles (the release's splits ranked from history) and with them (the content experiment too), and the released report on it."""

import json, shutil
from pathlib import Path
import numpy as np, pandas as pd
import pytest

from jobrec.cli import main
from jobrec.baselines import has_recbole
from jobrec.released import (
    read_released_splits,
    recbole_stages,
    file_checksums,
    evaluate_released,
    history_ranker,
    write_released_atomic,
)
from jobrec.report import list_templates, report_name, run_report

ROOT = Path(__file__).resolve().parents[1]
FIX = Path(__file__).resolve().parent / "fixtures"
TEMPLATE = [t for t in list_templates(ROOT) if report_name(t) == "released"][0]
LIGHT = ["--set", "released.recbole=[]", "--set", "eval.bootstrap=50"]


def _run(folder, out, *extra):
    assert main(
        [
            "run",
            "--set",
            "data.source=released",
            "--set",
            f"data.path={folder}",
            *LIGHT,
            *extra,
            "--out",
            str(out),
        ]
    ) in (0, None)
    return out


@pytest.fixture(scope="module")
def released_run(tmp_path_factory):
    return _run(FIX / "release", tmp_path_factory.mktemp("released") / "run")


def test_run_without_profiles_uses_the_release_splits(released_run):
    tab = pd.read_csv(released_run / "results" / "released.csv")
    m = json.loads((released_run / "metrics.json").read_text())
    assert not (released_run / "content").exists()  # no profiles: no content experiment
    assert m["files"] == file_checksums(FIX / "release") and "Final_users.csv" not in m["files"]
    assert m["shared_negatives"]["test_neg_in_train"] == 1.0
    s = read_released_splits(FIX / "release")
    full = tab[(tab.protocol == "full") & (tab.metric == "ndcg@10")].set_index("system")
    assert full.loc["jobrec_history", "n_units"] == s.pos["test"].any(1).sum()
    # the table's figure is the history ranker's, evaluated again here
    again = np.mean(evaluate_released(history_ranker(s)[0], s, "test", "full")["ndcg@10"])
    assert full.loc["jobrec_history", "mean"] == pytest.approx(again)
    samp = tab[(tab.protocol == "sampled") & (tab.metric == "recall@5")].set_index("system")
    assert samp.loc["popularity+train_negatives_pushed_down", "mean"] == 1.0  # the leak, measured
    assert (tab[tab.protocol == "sampled"].leak != "").all()
    q = pd.read_csv(released_run / "results" / "released_qualification.csv")
    assert set(q.ranker) == {"random", "applicant_popularity", "job_side_history"} and (q.n_jobs == 3).all()


def test_released_report_on_the_fixture_run(released_run, tmp_path):
    out = run_report(TEMPLATE, tmp_path / "reports", {"run_dir": str(released_run)}, root=ROOT)
    m = json.loads((out / "metrics.json").read_text())
    md = (out / "report.md").read_text()
    assert m["files"] == file_checksums(FIX / "release")
    assert all(h in md for h in m["files"].values())  # the report names the files it was made from
    assert "0.827" in md and "unverified" in md
    assert (out / "figures" / "released.png").stat().st_size > 1000


def test_run_with_profiles_runs_the_content_experiment_too(tmp_path):
    folder = tmp_path / "release"
    shutil.copytree(FIX / "release", folder)
    shutil.copyfile(FIX / "Final_users_small.csv", folder / "Final_users.csv")
    small = [
        "--config",
        str(ROOT / "experiments" / "smoke.yaml"),
        "--set",
        "eval.warm.enabled=false",
        "--set",
        "train.head_steps=1",
        "--set",
        "train.stage1_steps=1",
        "--set",
        "train.stage2_steps=1",
        "--set",
        "fusion.epochs=2",
        "--systems",
        "random,popularity",
        "--no-ablations",
    ]
    out = _run(folder, tmp_path / "run", *small)
    content = json.loads((out / "content" / "metrics.json").read_text())
    main_tab = pd.read_csv(out / "content" / "results" / "main.csv")
    assert {"jobrec", "jobrec_pref_only"} <= set(main_tab.system)  # both experts, on the profiles
    assert content and json.loads((out / "released.json").read_text())["profiles"] is True
    assert "Final_users.csv" in json.loads((out / "metrics.json").read_text())["files"]


@pytest.mark.skipif(not has_recbole(), reason="the RecBole environment is absent (make recbole-env)")
def test_recbole_stages_on_the_fixture(tmp_path):
    s = read_released_splits(FIX / "release")
    st, info = recbole_stages(s, "bpr", epochs=2, every=1)
    assert st.shape == (2, *s.shape) and np.isfinite(st).all() and info["every"] == 1
    assert not np.allclose(st[0], st[1])  # a second epoch moved the scores
    st, info = recbole_stages(s, "dcnv2", epochs=1, every=1, negatives="shared")
    d = write_released_atomic(s, tmp_path, "shared")
    assert st.shape == (1, *s.shape) and info["n_train_interactions"] == len(
        pd.read_csv(d / "released.train.inter", sep="\t")
    )
