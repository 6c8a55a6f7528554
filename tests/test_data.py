import json
from pathlib import Path
import numpy as np
import pandas as pd
import pytest

from jobrec.data import (DataError, JobRecData, build_default_dataset, dataset_card, eval_matrices, generate_synthetic, hire_groups,
                         load_dataset, load_embedded, load_released, preference_groups, qualification_groups, read_candidates,
                         read_interactions, read_jobs, vocab_from_catalogue, TOPICS)
from jobrec.schema import SchemaError, pair_text, resolve_view, default_views

FIX = Path(__file__).parent/"fixtures"/"Final_users_small.csv"


@pytest.fixture(scope="module")
def small():
    return generate_synthetic(seed=5, n_candidates=80, n_jobs=25)


# ---- released format -------------------------------------------------------------------------------------------------
def test_released_catalogue(release_dir):
    jobs = read_jobs(release_dir/"Final_items.csv")
    assert len(jobs) == 100 and len({j.industry for j in jobs}) == 6
    assert len({s for j in jobs for s in j.required_skills}) == 149
    assert len({m for j in jobs for m in j.acceptable_majors}) == 7
    v = vocab_from_catalogue(release_dir/"Final_items.csv")
    assert sum(len(x) for x in v["industries"].values()) == 149


def test_released_interactions(release_dir):
    it = read_interactions(release_dir)
    assert [len(it[k]) for k in ("train", "val", "test", "qual_train", "qual_test")] == [42573, 37311, 37949, 3157, 1334]
    for k in ("train", "val", "test"):
        assert ((it[k].score >= 14).astype(int) == it[k].label_pref).all()
    for k in ("qual_train", "qual_test"):
        assert (it[k].groupby("item").label_qual.sum() == 1).all()  # one selected applicant per job
    assert not set(it["qual_train"].item) & set(it["qual_test"].item)  # job-disjoint


def test_load_released_with_fixture_users(release_dir):
    with pytest.raises(DataError, match="Final_users.csv"):
        load_released(release_dir)  # the profiles are not released
    d = load_released(release_dir, users_csv=FIX)
    assert d.shape == (10, 100)
    assert d.applied.sum() > 0 and ((d.qual >= 0) == d.applied).all()
    assert (d.hired == (d.applied & (d.qual == 1))).all()
    assert sum(d.meta["dropped_interactions_without_profile"].values()) > 0
    assert set(np.unique(d.pref)) <= {-1, 0, 1}


def test_fixture_users_parse():
    cs = read_candidates(FIX)
    assert len(cs) == 10 and all(0 <= c.gpa <= 4 for c in cs)
    assert any(c.second_major is None for c in cs)  # the string "None" is a missing major


def _bad_users(tmp_path, col, val, row=2):
    df = pd.read_csv(FIX, dtype=str, keep_default_na=False)
    df.loc[row, col] = val
    p = tmp_path/"Final_users.csv"; df.to_csv(p, index=False)
    return p


@pytest.mark.parametrize("col,val", [("gpa", "5.1"), ("academic_level", "PhD"), ("in_person_commitment", "Remote"),
                                     ("skills", "['a', "), ("num_publications", "-1"), ("gpa", "")])
def test_bad_rows_raise_naming_file_row_column(tmp_path, col, val):
    p = _bad_users(tmp_path, col, val)
    with pytest.raises(SchemaError) as e:
        read_candidates(p)
    assert e.value.row == 2 and e.value.column == col and "Final_users.csv" in str(e.value)


def test_bad_rows_skip_is_counted_and_recorded(tmp_path, caplog):
    p = _bad_users(tmp_path, "gpa", "9")
    skipped = []
    cs = read_candidates(p, on_error="skip", skipped=skipped)
    assert len(cs) == 9 and len(skipped) == 1 and skipped[0]["row"] == 2 and skipped[0]["column"] == "gpa"
    assert not any(np.isnan(c.gpa) for c in cs)


def test_missing_column_and_malformed_csv(tmp_path):
    df = pd.read_csv(FIX, dtype=str, keep_default_na=False).drop(columns=["academic_level"])
    p = tmp_path/"u.csv"; df.to_csv(p, index=False)
    with pytest.raises(DataError, match="academic_level"):
        read_candidates(p, on_error="skip")  # a missing column is never skipped
    q = tmp_path/"items.csv"; q.write_text("job_id,industry\nJ1,NLP\nJ2,CV,extra,cells\n")
    with pytest.raises(DataError, match="malformed CSV"):
        read_jobs(q)
    r = tmp_path/"train.csv"; r.write_text("user,item,label_pref,score\nS1,J1,1,15\nS1,J2,maybe,3\n")
    with pytest.raises(DataError) as e:
        read_interactions(tmp_path)
    assert e.value.row == 1 and e.value.column == "label_pref" and "train.csv" in str(e.value)
    sk = []
    assert len(read_interactions(tmp_path, on_error="skip", skipped=sk)["train"]) == 1 and len(sk) == 1


# ---- synthetic generator ----------------------------------------------------------------------------------------------
def test_generator_labels_funnel_and_validator(small):
    C, J = small.shape
    for m in (small.pref, small.qual, small.applied, small.hired, small.utility):
        assert m.shape == (C, J)
    assert set(np.unique(small.pref)) == {0, 1} and set(np.unique(small.qual)) == {0, 1}
    assert (small.hired == (small.applied & (small.qual == 1))).all()
    assert (small.qual_observed[~small.applied] == -1).all()
    # applications are driven by preference
    assert small.applied[small.pref == 1].mean() > 5 * small.applied[small.pref == 0].mean()
    v = small.meta["validator"]
    assert v["candidates_checked"] >= C and v["pairs_checked"] == C * J and isinstance(v["repaired"], dict)
    for c in small.candidates:  # text consistent with fields: every skill the statement names is listed
        named = c.statement.split("hands-on work with ")[1].rstrip(".").split(" and ")
        assert set(named) <= set(c.skills), (named, c.skills)


def test_generator_not_trivial(small):
    # topics live only in text
    assert not any(t in s for c in small.candidates for s in c.skills + c.interests for ph in TOPICS for t in ph)
    card, _ = dataset_card(small)
    r = card["test_rankers"]
    assert r["ceiling"]["ndcg@10"] > r["fields_heuristic"]["ndcg@10"] + 0.1 > r["random"]["ndcg@10"] + 0.2
    assert card["confounding"]["preferred_not_qualified"] > 0.15


def test_candidate_disjoint_leakage_free_groups(small):
    sets = {s: set(small.idx(s)) for s in ("train", "val", "test")}
    assert not (sets["train"] & sets["test"]) and not (sets["train"] & sets["val"]) and not (sets["val"] & sets["test"])
    ci, jg = preference_groups(small, "train", 7, 0, 0.5)
    jj, cg = qualification_groups(small, "train", 5, 0)
    hc, hg = hire_groups(small, "train", 5, 0)
    train_pairs = {(c, j) for c, row in zip(ci, jg) for j in row} | {(c, j) for j, row in zip(jj, cg) for c in row} \
        | {(c, j) for c, row in zip(hc, hg) for j in row}
    te = eval_matrices(small, "test")
    test_pairs = {(c, j) for c in te["cand_idx"] for j in range(small.shape[1])}
    assert not train_pairs & test_pairs
    assert (small.pref[ci, jg[:, 0]] == 1).all() and (small.pref[ci[:, None], jg[:, 1:]] == 0).all()
    assert (small.qual_observed[cg[:, 0], jj] == 1).all() and (small.qual_observed[cg[:, 1:], jj[:, None]] == 0).all()
    # hard negatives: the first half are the candidate's highest-utility non-preferred jobs
    c0 = ci[0]; negs = np.flatnonzero(small.pref[c0] == 0)
    top = negs[np.argsort(-small.utility[c0, negs], kind="stable")][:4]
    assert list(jg[0, 1:5]) == list(top)


def test_same_seed_byte_identical_files(tmp_path):
    a, b = tmp_path/"a", tmp_path/"b"
    for f in (a, b): build_default_dataset(f, catalogue=None, seed=11, n_candidates=30, n_jobs=10)
    names = sorted(x.name for x in a.iterdir())
    assert {"candidates.csv", "jobs.csv", "matrices.npz", "meta.json", "CARD.md", "card.json"} <= set(names)
    assert not [n for n in names if n.endswith((".pkl", ".pickle"))]
    for n in names: assert (a/n).read_bytes() == (b/n).read_bytes(), n
    c = tmp_path/"c"; build_default_dataset(c, catalogue=None, seed=12, n_candidates=30, n_jobs=10)
    assert (c/"matrices.npz").read_bytes() != (a/"matrices.npz").read_bytes()
    d = load_dataset(a)
    assert d.shape == (30, 10) and d.utility.dtype == np.float32


def test_catalogue_vocabulary(release_dir):
    d = generate_synthetic(seed=1, n_candidates=30, n_jobs=10, catalogue=str(release_dir/"Final_items.csv"))
    cat = {s for j in read_jobs(release_dir/"Final_items.csv") for s in j.required_skills}
    assert {s for j in d.jobs for s in j.required_skills} <= cat
    assert d.meta["vocabulary"] == "Final_items.csv"


def test_unknown_synthetic_key():
    with pytest.raises(DataError, match="unknown data.synthetic"):
        generate_synthetic(seed=0, n_candidatez=3)


# ---- embedded dataset ---------------------------------------------------------------------------------------------------
def test_embedded_dataset_and_card():
    d = load_embedded()
    assert d.shape == (600, 100)
    card = json.loads((Path(__file__).parents[1]/"data"/"default"/"card.json").read_text())
    assert 0.10 <= card["pref_rate"] <= 0.15 and 0.20 <= card["qual_rate"] <= 0.50
    # the two decisions are related but far from the same: most preferred jobs are ones the candidate is not qualified for,
    # so a constraint on eligibility has room to move the ranking (the controllability sweep needs that room)
    assert card["confounding"]["qualified_given_preferred"] < 0.5 and card["confounding"]["preferred_not_qualified"] > 0.5
    # a platform logs screenings off the preferred set too (stray applications), which the qualification expert learns from
    assert card["funnel"]["apply_rate"] > 0.7*card["pref_rate"] + 0.05
    r = card["test_rankers"]
    assert r["random"]["ndcg@10"] < r["fields_heuristic"]["ndcg@10"] < r["ceiling"]["ndcg@10"]
    assert "make data" in (Path(__file__).parents[1]/"data"/"default"/"CARD.md").read_text()
    assert abs(d.pref.mean() - card["pref_rate"]) < 1e-9
