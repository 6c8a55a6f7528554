"""Serving: `jobrec recommend` / `jobrec rank-candidates` and the `Recommender` API on a tiny model, good and bad input."""

import json, os, subprocess, sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from jobrec.core import load_config
from jobrec.data import generate_synthetic, DataError
from jobrec.schema import SchemaError, candidate_to_row, job_to_row
from jobrec.recommend import Recommender, init_run, read_entities, write_entities, find_system
from conftest import TINY, run_cli

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="session")
def data():
    return generate_synthetic(seed=11, n_candidates=40, n_jobs=60)


@pytest.fixture(scope="session")
def model_run(tmp_path_factory, data):
    "A tiny-backbone system in the run-folder layout of `jobrec train` (untrained: the tests check mechanics, not quality)."
    return init_run(load_config(None, TINY), tmp_path_factory.mktemp("run") / "tiny", data)


@pytest.fixture(scope="session")
def files(tmp_path_factory, data):
    d = tmp_path_factory.mktemp("files")
    write_entities(data.jobs, d / "jobs.csv")
    write_entities(data.jobs, d / "jobs.json")
    write_entities(data.candidates[:2], d / "cands.csv")
    write_entities(data.candidates[:3], d / "cands.json")
    write_entities(data.jobs[:1], d / "job.json")
    write_entities(data.jobs[:2], d / "two_jobs.csv")
    return d


@pytest.fixture(scope="session")
def rec(model_run):
    return Recommender.load(model_run)


# --- good input -------------------------------------------------------------------------------------


def test_cli_recommend_table(model_run, files):
    rc, out, err = run_cli(
        "recommend",
        "--model",
        model_run,
        "--candidate",
        files / "cands.csv",
        "--jobs",
        files / "jobs.csv",
        "--k",
        5,
        "--tau",
        0.5,
    )
    assert rc == 0, err
    assert out.count("candidate S00") == 2 and "tau 0.5" in out and "why" in out
    assert sum(1 for line in out.splitlines() if line.strip().startswith(("1 ", "5 "))) == 4


def test_cli_recommend_json_out(model_run, files, tmp_path):
    dest = tmp_path / "res.json"
    rc, out, err = run_cli(
        "recommend",
        "--model",
        model_run,
        "--candidate",
        files / "cands.json",
        "--jobs",
        files / "jobs.json",
        "--k",
        4,
        "--tau",
        0.6,
        "--format",
        "json",
        "--out",
        dest,
    )
    assert rc == 0, err
    assert f"to {dest}" in out
    js = json.loads(dest.read_text())
    assert len(js["results"]) == 3
    for r in js["results"]:
        assert r["mode"] == "tau" and r["tau"] == 0.6 and len(r["items"]) == 4
        assert [i["rank"] for i in r["items"]] == [1, 2, 3, 4]
        fused = [i["fused"] for i in r["items"]]
        assert fused == sorted(fused, reverse=True)
        for i in r["items"]:
            assert 0 <= i["p_qual"] <= 1 and {"preference", "fused", "why"} <= set(i)
            assert set(i["explanation"]) >= {"domain", "capability", "logistics", "narrative"}
            assert {"skills_matched", "skills_missing", "requirements"} <= set(i["explanation"]["capability"])
        if r["attainable"]:
            assert r["eligibility_at_k"] >= 0.6 - 1e-9
        else:
            assert any("unattainable" in n for n in r["notes"])


def test_cli_hard_mode_says_so(model_run, files):
    rc, out, err = run_cli(
        "recommend",
        "--model",
        model_run,
        "--candidate",
        files / "cands.csv",
        "--jobs",
        files / "jobs.csv",
        "--k",
        5,
        "--hard",
        "--format",
        "json",
    )
    assert rc == 0, err
    r = json.loads(out)["results"][0]
    assert r["mode"] == "hard" and any(n.startswith("hard mode") for n in r["notes"])
    assert r["backfilled"] == any("back-filled" in n for n in r["notes"])


@pytest.mark.parametrize("threshold,backfilled", [(1.0, True), (0.0, False)])
def test_hard_mode_backfills_when_too_few_jobs_pass(model_run, data, threshold, backfilled):
    "Forced both ways: no job reaches p_Q >= 1, so the top-k is back-filled and says so; every job reaches 0, so none is."
    from jobrec.recommend import Recommender

    rec = Recommender.load(model_run, fusion={"hard_threshold": threshold})
    a = rec.recommend(data.candidates[0], rec.catalogue(data.jobs), k=5, hard=True)[0].attrs
    assert a["mode"] == "hard" and a["backfilled"] is backfilled
    assert any("back-filled" in n for n in a["notes"]) is backfilled


def test_unattainable_tau_is_reported(model_run, files):
    rc, out, err = run_cli(
        "recommend",
        "--model",
        model_run,
        "--candidate",
        files / "cands.csv",
        "--jobs",
        files / "jobs.csv",
        "--k",
        10,
        "--tau",
        1.0,
    )
    assert rc == 0, err
    assert "UNATTAINABLE" in out and "best reachable" in out


def test_cli_rank_candidates(model_run, files):
    rc, out, err = run_cli(
        "rank-candidates",
        "--model",
        model_run,
        "--job",
        files / "job.json",
        "--candidates",
        files / "cands.json",
        "--k",
        2,
        "--format",
        "json",
    )
    assert rc == 0, err
    r = json.loads(out)["results"][0]
    assert r["job_id"] == "J0001" and r["n_candidates"] == 3 and len(r["items"]) == 2
    q = [i["q_logit"] for i in r["items"]]
    assert q == sorted(q, reverse=True)
    rc, out, _ = run_cli(
        "rank-candidates",
        "--model",
        model_run,
        "--job",
        files / "job.json",
        "--candidates",
        files / "cands.csv",
    )
    assert rc == 0 and "ranked by qualification" in out


def test_cold_start_matches_the_experts(rec, data):
    "A candidate and jobs never seen anywhere: scores come from fields and text and equal the system's own pair scoring."
    row = {**candidate_to_row(data.candidates[5]), "student_id": "NEW-1"}
    from jobrec.schema import candidate_from_row, job_from_row

    c = candidate_from_row(row)
    jobs = [job_from_row({**job_to_row(j), "job_id": f"NEWJ{i}"}) for i, j in enumerate(data.jobs[:30])]
    t = rec.recommend(c, jobs, k=30)[0]
    ref = rec.system.score_pairs([c], jobs)
    by_id = dict(zip(t.job_id, t.preference))
    np.testing.assert_allclose([by_id[j.job_id] for j in jobs], ref["s_pref"][0], atol=1e-4)
    assert list(t.fused) == sorted(t.fused, reverse=True)  # no tau: ranked by preference


def test_retrieval_shortlist_and_cache(model_run, data, files):
    rec = Recommender.load(model_run, retrieval={"shortlist": 15})
    t = rec.recommend(data.candidates[0], files / "jobs.csv", k=5, tau=0.5)[0]
    assert t.attrs["n_scored"] == 15 and t.attrs["retrieval"] and t.attrs["n_jobs"] == 60
    cat = rec.catalogue(files / "jobs.csv")
    assert cat.from_cache and (rec.cache_dir() / cat.key / "preference.npy").exists()
    assert not list(rec.cache_dir().glob(".*tmp*"))
    t2 = rec.recommend(data.candidates[0], cat, k=5, tau=0.5)[0]
    assert list(t2.job_id) == list(t.job_id)
    full = rec.recommend(data.candidates[0], cat, k=5, shortlist=60)[0]
    assert not full.attrs["retrieval"] and full.attrs["n_scored"] == 60
    hn = Recommender.load(model_run, retrieval={"shortlist": 15, "index": "hnsw"}).recommend(
        data.candidates[0], cat, k=5
    )[0]
    assert hn.attrs["n_scored"] == 15
    # another catalogue file (different content) gets another cache entry
    write_entities(data.jobs[:50], files / "jobs50.csv")
    assert rec.catalogue(files / "jobs50.csv").key != cat.key


def test_python_api_reads_files(rec, files):
    res = rec.recommend(files / "cands.json", files / "jobs.csv", k=3)
    assert [t.attrs["candidate_id"] for t in res] == ["S0001", "S0002", "S0003"]
    with pytest.raises(ValueError, match="tau"):
        rec.recommend(files / "cands.json", files / "jobs.csv", tau=2.0)
    with pytest.raises(ValueError, match="k must be"):
        rec.recommend(files / "cands.json", files / "jobs.csv", k=0)


# --- bad input --------------------------------------------------------------------------------------


def _bad_file(tmp_path, data, name, content):
    p = tmp_path / name
    if isinstance(content, str):
        p.write_text(content)
    else:
        pd.DataFrame(content).to_csv(p, index=False)
    return p


BAD_CANDIDATES = {
    "unknown_level": ("c.csv", lambda r: [{**r, "academic_level": "PhD"}], "academic_level"),
    "mistyped_gpa": ("c.csv", lambda r: [{**r, "gpa": "three"}], "gpa"),
    "gpa_out_of_range": ("c.csv", lambda r: [{**r, "gpa": 7}], "gpa"),
    "missing_column": ("c.csv", lambda r: [{k: v for k, v in r.items() if k != "skills"}], "skills"),
    "bad_list": ("c.csv", lambda r: [{**r, "interests": "NLP, Vision"}], "interests"),
    "bad_mode": ("c.csv", lambda r: [{**r, "in_person_commitment": "Sometimes"}], "in_person_commitment"),
    "duplicate_id": ("c.csv", lambda r: [r, r], "duplicate id"),
    "empty": ("c.csv", lambda r: "", "empty"),
    "header_only": ("c.csv", lambda r: ",".join(r) + "\n", "no candidates"),
    "malformed_json": ("c.json", lambda r: "{not json", "malformed JSON"),
    "json_not_records": ("c.json", lambda r: "[1, 2]", "expected a JSON object"),
    "unsupported_type": ("c.xlsx", lambda r: "x", "unsupported file type"),
}


@pytest.mark.parametrize("case", sorted(BAD_CANDIDATES))
def test_cli_bad_candidate_file(case, model_run, files, data, tmp_path):
    name, make, expect = BAD_CANDIDATES[case]
    p = _bad_file(tmp_path, data, name, make(candidate_to_row(data.candidates[0])))
    dest = tmp_path / "out.json"
    rc, out, err = run_cli(
        "recommend", "--model", model_run, "--candidate", p, "--jobs", files / "jobs.csv", "--out", dest
    )
    assert rc == 2 and expect in err and err.startswith("jobrec recommend: error:"), err
    assert not dest.exists() and not list(tmp_path.glob(".out.json.tmp*"))


@pytest.mark.parametrize(
    "field,value",
    [
        ("min_academic_level", "Postdoc"),
        ("min_gpa", "n/a"),
        ("required_skills", "Python"),
        ("job_in_person_commitment", "Mars"),
    ],
)
def test_cli_bad_job_catalogue(field, value, model_run, files, data, tmp_path):
    rows = [job_to_row(j) for j in data.jobs[:5]]
    rows[3][field] = value
    p = _bad_file(tmp_path, data, "jobs.csv", rows)
    rc, out, err = run_cli("recommend", "--model", model_run, "--candidate", files / "cands.csv", "--jobs", p)
    assert rc == 2 and field in err and "row 3" in err, err


def test_cli_bad_arguments(model_run, files, tmp_path):
    base = [
        "recommend",
        "--model",
        model_run,
        "--candidate",
        files / "cands.csv",
        "--jobs",
        files / "jobs.csv",
    ]
    rc, _, err = run_cli(*base, "--k", 0)
    assert rc == 2 and "--k" in err
    rc, _, err = run_cli(*base, "--tau", 1.5)
    assert rc == 2 and "--tau" in err
    rc, _, err = run_cli(
        "recommend",
        "--model",
        tmp_path / "nothing",
        "--candidate",
        files / "cands.csv",
        "--jobs",
        files / "jobs.csv",
    )
    assert rc == 2 and "does not exist" in err
    (tmp_path / "emptyrun").mkdir()
    rc, _, err = run_cli(
        "recommend",
        "--model",
        tmp_path / "emptyrun",
        "--candidate",
        files / "cands.csv",
        "--jobs",
        files / "jobs.csv",
    )
    assert rc == 2 and "no trained model" in err
    rc, _, err = run_cli(
        "recommend",
        "--model",
        model_run,
        "--candidate",
        tmp_path / "missing.csv",
        "--jobs",
        files / "jobs.csv",
    )
    assert rc == 2 and "file not found" in err and "missing.csv" in err
    rc, _, err = run_cli(
        "rank-candidates",
        "--model",
        model_run,
        "--job",
        files / "two_jobs.csv",
        "--candidates",
        files / "cands.csv",
    )
    assert rc == 2 and "exactly one job" in err
    (tmp_path / "e.json").write_text("")
    rc, _, err = run_cli(
        "rank-candidates",
        "--model",
        model_run,
        "--job",
        files / "job.json",
        "--candidates",
        tmp_path / "e.json",
    )
    assert rc == 2 and "empty" in err


def test_console_script_exit_status(model_run, files, data, tmp_path):
    "The installed `jobrec` command exits 2 on bad input, before any model is loaded."
    exe = Path(sys.executable).parent / "jobrec"
    assert exe.exists(), "the jobrec console script is not installed (pip install -e .)"
    p = _bad_file(
        tmp_path, data, "c.csv", [{**candidate_to_row(data.candidates[0]), "academic_level": "PhD"}]
    )
    r = subprocess.run(
        [
            str(exe),
            "recommend",
            "--model",
            str(model_run),
            "--candidate",
            str(p),
            "--jobs",
            str(files / "jobs.csv"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 2 and "academic_level" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow
def test_trained_smoke_model_end_to_end(tmp_path, files):
    "Train the smoke model with `jobrec train` and recommend with it through the console script."
    root = Path(__file__).resolve().parents[1]
    exe = Path(sys.executable).parent / "jobrec"
    run = tmp_path / "smoke"
    subprocess.run(
        [
            str(exe),
            "train",
            "--profile",
            "cpu-small",
            "--config",
            str(root / "experiments" / "smoke.yaml"),
            "--out",
            str(run),
        ],
        check=True,
        capture_output=True,
        timeout=900,
    )
    r = subprocess.run(
        [
            str(exe),
            "recommend",
            "--model",
            str(run),
            "--candidate",
            str(files / "cands.csv"),
            "--jobs",
            str(files / "jobs.csv"),
            "--k",
            "5",
            "--tau",
            "0.5",
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert len(json.loads(r.stdout)["results"]) == 2
