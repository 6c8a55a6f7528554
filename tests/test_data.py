import json, shutil
from pathlib import Path
import numpy as np
import pandas as pd
import pytest

from jobrec.card import build_default_dataset, dataset_card
from jobrec.data import (
    DataError,
    JobRecData,
    eval_matrices,
    generate_synthetic,
    hire_groups,
    load_dataset,
    load_embedded,
    load_released,
    preference_groups,
    qualification_groups,
    read_candidates,
    read_interactions,
    read_jobs,
    vocab_from_catalogue,
    TOPICS,
    derive_vocabulary,
    load_vocabulary,
    embedded_path,
    VOCABULARY_KEYS,
)
import jobrec.data
from jobrec.schema import SchemaError, pair_text, resolve_view, default_views

ROOT = Path(__file__).resolve().parents[1]
FIX = Path(__file__).parent / "fixtures" / "Final_users_small.csv"


@pytest.fixture(scope="module")
def small():
    return generate_synthetic(seed=5, n_candidates=80, n_jobs=25)


# ---- released format (hand-written fixtures: tests/fixtures/release) ---------------------------------------------------
def test_fixture_catalogue(fixture_release):
    jobs = read_jobs(fixture_release / "Final_items.csv")
    assert len(jobs) == 8 and {j.industry for j in jobs} == {"Robotics", "NLP", "CV"}
    assert len({s for j in jobs for s in j.required_skills}) == 14
    assert len({m for j in jobs for m in j.acceptable_majors}) == 6
    v = vocab_from_catalogue(fixture_release / "Final_items.csv")
    assert sum(len(x) for x in v["industries"].values()) == 14
    # a skill goes to the industry that requires it most often: Python is asked by 3 CV, 2 NLP and 1 Robotics jobs
    assert "Python" in v["industries"]["CV"] and "Python" not in v["industries"]["NLP"]
    assert v["requirements"]["min_num_publications"] == [0, 0, 0, 0, 1, 1, 2, 3]


def test_fixture_interactions(fixture_release):
    it = read_interactions(fixture_release)
    assert [len(it[k]) for k in ("train", "val", "test", "qual_train", "qual_test")] == [9, 6, 7, 12, 7]
    for k in ("train", "val", "test"):
        assert ((it[k].score >= 14).astype(int) == it[k].label_pref).all()
    negs = [
        set(map(tuple, it[k][it[k].label_pref == 0][["user", "item"]].values))
        for k in ("train", "val", "test")
    ]
    assert negs[0] == negs[1] == negs[2] and len(negs[0]) == 4  # the release's shared negatives
    for k in ("qual_train", "qual_test"):
        assert (it[k].groupby("item").label_qual.sum() == 1).all()  # one selected applicant per job
    assert not set(it["qual_train"].item) & set(it["qual_test"].item)  # job-disjoint


def test_load_released_with_fixture_users(fixture_release):
    with pytest.raises(DataError, match="Final_users.csv"):
        load_released(fixture_release)  # the profiles are not released
    d = load_released(fixture_release, users_csv=FIX)
    assert d.shape == (10, 8)
    assert d.applied.sum() == 12 - 1 + 7 - 1 and ((d.qual >= 0) == d.applied).all()
    assert (d.hired == (d.applied & (d.qual == 1))).all() and d.hired.sum() == 8
    assert d.meta["dropped_interactions_without_profile"] == {
        "train": 1,
        "val": 0,
        "test": 0,
        "qual_train": 1,
        "qual_test": 1,
    }
    assert (
        set(np.unique(d.pref)) == {-1, 0, 1} and (d.pref == 1).sum() == 4 + 2 + 3 and (d.pref == 0).sum() == 4
    )
    c, j = [x.candidate_id for x in d.candidates].index("S0073"), [x.job_id for x in d.jobs].index("J0004")
    assert d.pref[c, j] == 1 and d.arrays["score"][c, j] == np.float32(14.0)  # score 14 is a positive


# ---- the real released files (JOBREC_RELEASE_DIR) -------------------------------------------------------------------------
@pytest.mark.release
def test_released_catalogue(release_dir):
    jobs = read_jobs(release_dir / "Final_items.csv")
    assert len(jobs) == 100 and len({j.industry for j in jobs}) == 6
    assert len({s for j in jobs for s in j.required_skills}) == 149
    assert len({m for j in jobs for m in j.acceptable_majors}) == 7
    v = vocab_from_catalogue(release_dir / "Final_items.csv")
    assert sum(len(x) for x in v["industries"].values()) == 149


@pytest.mark.release
def test_released_interactions(release_dir):
    it = read_interactions(release_dir)
    assert [len(it[k]) for k in ("train", "val", "test", "qual_train", "qual_test")] == [
        42573,
        37311,
        37949,
        3157,
        1334,
    ]
    for k in ("train", "val", "test"):
        assert ((it[k].score >= 14).astype(int) == it[k].label_pref).all()
    for k in ("qual_train", "qual_test"):
        assert (it[k].groupby("item").label_qual.sum() == 1).all()
    assert not set(it["qual_train"].item) & set(it["qual_test"].item)


@pytest.mark.release
def test_released_catalogue_gives_the_packaged_vocabulary(release_dir, tmp_path, monkeypatch):
    "The command recorded in jobrec/conf/vocabulary.json, run on the released catalogue, rewrites it byte for byte."
    packaged = ROOT / "jobrec" / "conf" / "vocabulary.json"
    prov = json.loads(packaged.read_text())["provenance"]
    assert (
        prov["command"] == "jobrec vocabulary --catalogue Final_items.csv --out jobrec/conf/vocabulary.json"
    )
    monkeypatch.chdir(tmp_path)
    derive_vocabulary(release_dir / "Final_items.csv", "jobrec/conf/vocabulary.json", date=prov["date"])
    assert (tmp_path / "jobrec" / "conf" / "vocabulary.json").read_bytes() == packaged.read_bytes()


def test_fixture_users_parse():
    cs = read_candidates(FIX)
    assert len(cs) == 10 and all(0 <= c.gpa <= 4 for c in cs)
    assert any(c.second_major is None for c in cs)  # the string "None" is a missing major


def _bad_users(tmp_path, col, val, row=2):
    df = pd.read_csv(FIX, dtype=str, keep_default_na=False)
    df.loc[row, col] = val
    p = tmp_path / "Final_users.csv"
    df.to_csv(p, index=False)
    return p


@pytest.mark.parametrize(
    "col,val",
    [
        ("gpa", "5.1"),
        ("academic_level", "PhD"),
        ("in_person_commitment", "Remote"),
        ("skills", "['a', "),
        ("num_publications", "-1"),
        ("gpa", ""),
    ],
)
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
    p = tmp_path / "u.csv"
    df.to_csv(p, index=False)
    with pytest.raises(DataError, match="academic_level"):
        read_candidates(p, on_error="skip")  # a missing column is never skipped
    q = tmp_path / "items.csv"
    q.write_text("job_id,industry\nJ1,NLP\nJ2,CV,extra,cells\n")
    with pytest.raises(DataError, match="malformed CSV"):
        read_jobs(q)
    r = tmp_path / "train.csv"
    r.write_text("user,item,label_pref,score\nS1,J1,1,15\nS1,J2,maybe,3\n")
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
    assert not any(
        t in s for c in small.candidates for s in c.skills + c.interests for ph in TOPICS for t in ph
    )
    card, _ = dataset_card(small)
    r = card["test_rankers"]
    assert r["ceiling"]["ndcg@10"] > r["fields_heuristic"]["ndcg@10"] + 0.1 > r["random"]["ndcg@10"] + 0.2
    assert card["confounding"]["preferred_not_qualified"] > 0.15


def test_candidate_disjoint_leakage_free_groups(small):
    sets = {s: set(small.idx(s)) for s in ("train", "val", "test")}
    assert (
        not (sets["train"] & sets["test"])
        and not (sets["train"] & sets["val"])
        and not (sets["val"] & sets["test"])
    )
    ci, jg = preference_groups(small, "train", 7, 0, 0.5)
    jj, cg = qualification_groups(small, "train", 5, 0)
    hc, hg = hire_groups(small, "train", 5, 0)
    train_pairs = (
        {(c, j) for c, row in zip(ci, jg) for j in row}
        | {(c, j) for j, row in zip(jj, cg) for c in row}
        | {(c, j) for c, row in zip(hc, hg) for j in row}
    )
    te = eval_matrices(small, "test")
    test_pairs = {(c, j) for c in te["cand_idx"] for j in range(small.shape[1])}
    assert not train_pairs & test_pairs
    assert (small.pref[ci, jg[:, 0]] == 1).all() and (small.pref[ci[:, None], jg[:, 1:]] == 0).all()
    assert (small.qual_observed[cg[:, 0], jj] == 1).all() and (
        small.qual_observed[cg[:, 1:], jj[:, None]] == 0
    ).all()
    # hard negatives: the first half are the candidate's highest-utility non-preferred jobs
    c0 = ci[0]
    negs = np.flatnonzero(small.pref[c0] == 0)
    top = negs[np.argsort(-small.utility[c0, negs], kind="stable")][:4]
    assert list(jg[0, 1:5]) == list(top)


def test_same_seed_byte_identical_files(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for f in (a, b):
        build_default_dataset(f, catalogue=None, seed=11, n_candidates=30, n_jobs=10)
    names = sorted(x.name for x in a.iterdir())
    assert {"candidates.csv", "jobs.csv", "matrices.npz", "meta.json", "CARD.md", "card.json"} <= set(names)
    assert not [n for n in names if n.endswith((".pkl", ".pickle"))]
    for n in names:
        assert (a / n).read_bytes() == (b / n).read_bytes(), n
    c = tmp_path / "c"
    build_default_dataset(c, catalogue=None, seed=12, n_candidates=30, n_jobs=10)
    assert (c / "matrices.npz").read_bytes() != (a / "matrices.npz").read_bytes()
    d = load_dataset(a)
    assert d.shape == (30, 10) and d.utility.dtype == np.float32


def test_catalogue_vocabulary(tmp_path):
    "A catalogue jobrec writes (released columns) is one it can draw a vocabulary from; the generator then keeps to it."
    build_default_dataset(tmp_path / "g", catalogue=None, seed=4, n_candidates=20, n_jobs=60)
    cat = tmp_path / "g" / "jobs.csv"
    d = generate_synthetic(seed=1, n_candidates=30, n_jobs=10, catalogue=str(cat))
    skills = {s for j in read_jobs(cat) for s in j.required_skills}
    assert {s for j in d.jobs for s in j.required_skills} <= skills
    assert d.meta["vocabulary"] == "jobs.csv"
    # the vocabulary file is the vocabulary: fed the file or the catalogue, the generator draws the same dataset
    derive_vocabulary(cat, tmp_path / "v.json")
    f = generate_synthetic(seed=1, n_candidates=30, n_jobs=10, catalogue=str(tmp_path / "v.json"))
    assert (f.pref == d.pref).all() and (f.qual == d.qual).all() and f.meta["vocabulary"] == "jobs.csv"
    assert [j.required_skills for j in f.jobs] == [j.required_skills for j in d.jobs]


def test_unknown_synthetic_key():
    with pytest.raises(DataError, match="unknown data.synthetic"):
        generate_synthetic(seed=0, n_candidatez=3)


# ---- embedded dataset ---------------------------------------------------------------------------------------------------
def test_embedded_dataset_and_card():
    d = load_embedded()
    assert d.shape == (600, 100)
    card = json.loads((Path(__file__).parents[1] / "data" / "default" / "card.json").read_text())
    assert 0.10 <= card["pref_rate"] <= 0.15 and 0.20 <= card["qual_rate"] <= 0.50
    # the two decisions are related but far from the same: most preferred jobs are ones the candidate is not qualified for,
    # so a constraint on eligibility has room to move the ranking (the controllability sweep needs that room)
    assert (
        card["confounding"]["qualified_given_preferred"] < 0.5
        and card["confounding"]["preferred_not_qualified"] > 0.5
    )
    # a platform logs screenings off the preferred set too (stray applications), which the qualification expert learns from
    assert card["funnel"]["apply_rate"] > 0.7 * card["pref_rate"] + 0.05
    r = card["test_rankers"]
    assert r["random"]["ndcg@10"] < r["fields_heuristic"]["ndcg@10"] < r["ceiling"]["ndcg@10"]
    assert "make data" in (Path(__file__).parents[1] / "data" / "default" / "CARD.md").read_text()
    assert abs(d.pref.mean() - card["pref_rate"]) < 1e-9


# ---- the packaged vocabulary and the embedded default, with nothing beside the checkout --------------------------------
def test_packaged_vocabulary_regenerates_the_embedded_default_byte_for_byte(tmp_path):
    "What `make data` does (the cpu-small sizes are the defaults) gives the committed data/default, file for file."
    build_default_dataset(tmp_path / "d")
    names = sorted(p.name for p in (ROOT / "data" / "default").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "d").iterdir())
    for n in names:
        assert (tmp_path / "d" / n).read_bytes() == (ROOT / "data" / "default" / n).read_bytes(), n
    meta = json.loads((tmp_path / "d" / "meta.json").read_text())
    assert meta["vocabulary"] == meta["config"]["catalogue"] == "Final_items.csv"


def test_vocabulary_from_a_fixture_catalogue(fixture_release, tmp_path):
    import hashlib

    cat = fixture_release / "Final_items.csv"
    f = tmp_path / "v.json"
    d = derive_vocabulary(cat, f, date="2026-02-03")
    first = f.read_bytes()
    derive_vocabulary(cat, f, date="2026-02-03")
    assert f.read_bytes() == first  # deterministic
    v = json.loads(first)
    assert list(v) == ["provenance", *VOCABULARY_KEYS] and set(v["provenance"]["keys"]) == set(
        VOCABULARY_KEYS
    )
    p = v["provenance"]
    assert (p["source"], p["jobs"], p["date"]) == ("Final_items.csv", 8, "2026-02-03")
    assert p["sha256"] == hashlib.sha256(cat.read_bytes()).hexdigest() and p["command"].endswith(f"--out {f}")
    assert load_vocabulary(f) == {"provenance": p, **vocab_from_catalogue(cat)}
    assert load_vocabulary("packaged")["provenance"]["jobs"] == 100 and load_vocabulary(None)["majors"]
    with pytest.raises(DataError, match="not found"):
        load_vocabulary(tmp_path / "missing.json")


def test_load_embedded_from_anywhere(tmp_path, monkeypatch):
    "Outside a checkout the wheel's copy (jobrec/_embedded/data/default) is used; with neither, the error says what to run."
    monkeypatch.delenv("JOBREC_ROOT", raising=False)
    monkeypatch.chdir(tmp_path)
    pkg = tmp_path / "site" / "jobrec"
    shutil.copytree(ROOT / "data" / "default", pkg / "_embedded" / "data" / "default")
    monkeypatch.setattr(jobrec.data, "PACKAGE_DIR", pkg)
    assert embedded_path("data", "default") == pkg / "_embedded" / "data" / "default"
    assert load_embedded().shape == (600, 100)
    (tmp_path / "data" / "default").mkdir(parents=True)
    build_default_dataset(tmp_path / "data" / "default", catalogue=None, seed=1, n_candidates=12, n_jobs=5)
    assert load_embedded().shape == (12, 5)  # a data/default in the project folder comes first
    shutil.rmtree(tmp_path / "data")
    shutil.rmtree(pkg / "_embedded")
    with pytest.raises(DataError, match="jobrec data --out data/default"):
        load_embedded()


def test_llm_narratives_need_their_writer():
    "The data module comes before the language models: an LLM-narrative draw is given its writer, and says so without it."
    with pytest.raises(DataError, match="narrate=jobrec.narratives.write_narratives"):
        generate_synthetic(seed=3, n_candidates=4, n_jobs=2, narrative="llm")
