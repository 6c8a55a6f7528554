"""Bad input: property-based tests of the readers and the config, and a seeded corpus of malformed files and calls
through `read_entities`, `Recommender.recommend` and the CLI (0 crashes, 0 silent acceptances).

The corpus alone: `pytest -q -s tests/test_bad_input.py -k corpus` (prints the counts by category)."""

import contextlib, csv, io, json, math, os, random, re, tempfile, time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from jobrec.core import load_config, JobrecError, ConfigError, CONSTRAINTS, check_allowed
from jobrec.schema import (
    ACADEMIC_LEVELS,
    IN_PERSON_MODES,
    BOUNDS,
    LIMITS,
    Candidate,
    Job,
    candidate_from_row,
    job_from_row,
    candidate_to_row,
    job_to_row,
)
from jobrec.data import generate_synthetic
from jobrec.recommend import Recommender, read_entities, write_entities
from jobrec.cli import main
from conftest import run_cli

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SEED = 20240518
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LONG = settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def data():
    return generate_synthetic(seed=5, n_candidates=40, n_jobs=12)


# --- what each field must never accept ------------------------------------------------------------
NUMBER_BAD = [
    "1_2",
    "inf",
    "-inf",
    "Infinity",
    "1e400",
    "0x10",
    "3,5",
    "12 abc",
    "１２",
    "True",
    "[]",
    "{}",
    "--1",
    "1e",
    True,
    False,
    {"a": 1},
    [3.0],
    10**400,
    -(10**400),
    float("inf"),
]
LIST_BAD = [
    "['Python' 'SQL']",
    "Python, SQL",
    "['a', 1]",
    "[['a']]",
    "['a', None]",
    "{'a'}",
    "['a'",
    "[1, 2]",
    "['a' + 'b']",
    "[" * 3000 + "]" * 3000,
    '["a", {"b": 1}]',
    "['a', b'x']",
    "[f'a']",
    "['a'] ['b']",
    5,
    True,
    {"skills": ["a"]},
    [["a"]],
    ["a", 2],
    # over `LIMITS` (an item, the items of a list, a list string longer than any within them) and control characters
    "['" + "k" * 201 + "']",
    repr(["s"] * 101),
    "['" + "k" * 25_000 + "']",
    "['a', 'b\x00']",
    '["a", "b\\u0000"]',
    "['a\tb']",
    ["k" * 201],
    ["a\x07"],
    ["s"] * 101,
]
ID_BAD = [{"a": 1}, ["x"], True, False, 1.5, "", "   ", None, "S" * 129, "S\x001", "S\t1", "S\x851", 10**200]
TEXT_BAD = [{"a": 1}, ["x"], True, 3.5, 7, "x" * 10_001, "a\x00b", "ok\x1b[2J", "bell\x07", "\x7f"]
CHOICE_BAD = ["PhD", "", "UG 9", {"a": 1}, ["MS1"], 3, True]
BOOL_BAD = ["maybe", 2, -1, {"a": 1}, ["yes"], "ja"]
MAJOR_BAD = [{"a": 1}, ["CS"], 4, True, "m" * 201, "CS\x00", "Math\nStats"]


def _range_bad(lo, hi, integer=False):
    return [lo - 1, hi + 1, str(hi * 10 + 1), -0.5] + ([1.5, "2.5"] if integer else [])


CAND_FIELDS = {
    "student_id": ID_BAD,
    "gpa": NUMBER_BAD + _range_bad(*BOUNDS["gpa"]) + [""],
    "months_experience": NUMBER_BAD + _range_bad(*BOUNDS["months"]),
    "num_publications": NUMBER_BAD + _range_bad(*BOUNDS["publications"], integer=True),
    "undergrad_gpa": NUMBER_BAD + _range_bad(*BOUNDS["gpa"]),
    "hours_per_week": NUMBER_BAD + _range_bad(*BOUNDS["hours"]),
    "length_of_commitment": NUMBER_BAD + _range_bad(*BOUNDS["length"]),
    "skills": LIST_BAD,
    "interests": LIST_BAD,
    "academic_level": CHOICE_BAD,
    "in_person_commitment": CHOICE_BAD,
    "commit_to_summer": BOOL_BAD,
    "masters_major": MAJOR_BAD,
    "second_major": MAJOR_BAD,
    "undergrad_major": MAJOR_BAD,
    "student_llm_output": TEXT_BAD,
    "proj_1": TEXT_BAD,
    "extrac_1": TEXT_BAD,
    "row_id": [{"a": 1}, ["r"], True, 2.5, "r" * 129, "r\x00"],
}
JOB_FIELDS = {
    "job_id": ID_BAD,
    "industry": TEXT_BAD + ["", None, "i" * 201, "Robo\ttics"],
    "required_skills": LIST_BAD,
    "acceptable_majors": LIST_BAD,
    "min_gpa": NUMBER_BAD + _range_bad(*BOUNDS["gpa"]),
    "min_months_experience": NUMBER_BAD + _range_bad(*BOUNDS["months"]),
    "min_academic_level": CHOICE_BAD,
    "min_hours_per_week": NUMBER_BAD + _range_bad(*BOUNDS["hours"]),
    "min_length_of_commitment": NUMBER_BAD + _range_bad(*BOUNDS["length"]),
    "job_in_person_commitment": CHOICE_BAD,
    "min_num_publications": NUMBER_BAD + _range_bad(*BOUNDS["publications"], integer=True),
    "job_llm_output": TEXT_BAD,
}
KINDS = {
    "candidate": (CAND_FIELDS, candidate_to_row, "student_id"),
    "job": (JOB_FIELDS, job_to_row, "job_id"),
}

LINE_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
TEXT_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


def _fits(x, limit, control):
    return isinstance(x, str) and len(x) <= LIMITS[limit] and not control.search(x)


def _valid(r):
    "Invariants of a validated record: what the readers promise to return."
    ids = [r.candidate_id] if isinstance(r, Candidate) else [r.job_id, r.industry]
    assert all(isinstance(x, str) and x for x in ids)
    lists = (
        [r.skills, r.interests, r.projects, r.activities]
        if isinstance(r, Candidate)
        else [r.required_skills, r.acceptable_majors]
    )
    assert all(
        isinstance(xs, tuple) and all(isinstance(x, str) and x and x == x.strip() for x in xs) for xs in lists
    )
    # within `LIMITS`, and no control character but a text's tabs and line breaks
    ident = [r.candidate_id, r.row_id] if isinstance(r, Candidate) else [r.job_id]
    assert all(x is None or _fits(x, "id", LINE_CONTROL) for x in ident)
    assert all(
        _fits(x, "item", LINE_CONTROL) for x in (r.majors if isinstance(r, Candidate) else [r.industry])
    )
    assert all(len(xs) <= LIMITS["items"] for xs in lists)
    assert all(_fits(x, "item", LINE_CONTROL) for xs in lists[:2] for x in xs)
    texts = [r.statement, *r.projects, *r.activities] if isinstance(r, Candidate) else [r.description]
    assert all(_fits(x, "text", TEXT_CONTROL) for x in texts)
    if isinstance(r, Candidate):
        nums = [
            (r.gpa, "gpa"),
            (r.months_experience, "months"),
            (r.num_publications, "publications"),
            (r.hours_per_week, "hours"),
            (r.length_of_commitment, "length"),
        ] + ([(r.undergrad_gpa, "gpa")] if r.undergrad_gpa is not None else [])
        assert (
            r.academic_level in ACADEMIC_LEVELS
            and r.in_person in IN_PERSON_MODES
            and isinstance(r.statement, str)
        )
        assert isinstance(r.num_publications, int) and isinstance(r.commit_to_summer, bool)
    else:
        nums = [
            (r.min_gpa, "gpa"),
            (r.min_months_experience, "months"),
            (r.min_num_publications, "publications"),
            (r.min_hours_per_week, "hours"),
            (r.min_length_of_commitment, "length"),
        ]
        assert (
            r.min_academic_level in ACADEMIC_LEVELS
            and r.in_person in IN_PERSON_MODES
            and isinstance(r.description, str)
        )
    for v, b in nums:
        assert (
            isinstance(v, (int, float))
            and not isinstance(v, bool)
            and math.isfinite(v)
            and BOUNDS[b][0] <= v <= BOUNDS[b][1]
        )


# --- property-based: validated records or the package's own error, never anything else --------------
CONTROLS = ["\x00", "\t", "\n", "\r", "\x0b", "\x1b", "\x7f", "\x85", "\ud800"]
junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.from_regex(r"\[('[a-zA-Z ]{0,6}'[, ]{0,2}){0,3}\]?", fullmatch=True),
    st.from_regex(r"[ +-]?[0-9_]{0,4}\.?[0-9_]{0,3}([eE][+-]?[0-9]{1,4})?", fullmatch=True),
    st.lists(st.one_of(st.text(max_size=5), st.integers()), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    # control characters, alone or inside text, and strings at and past the lengths of `LIMITS`
    st.text(alphabet=st.characters(max_codepoint=0xA0), max_size=12),
    st.builds(lambda a, c, b: a + c + b, st.text(max_size=5), st.sampled_from(CONTROLS), st.text(max_size=5)),
    st.sampled_from([128, 129, 200, 201, 10_000, 10_001, 30_000]).map(lambda n: "x" * n),
    st.lists(st.sampled_from(["a", "b", "k" * 201]), min_size=99, max_size=102),
)


def _check_row(kind, base, edits):
    fields, _, _ = KINDS[kind]
    row = {**base, **{k: v for k, v in edits}}
    try:
        r = (candidate_from_row if kind == "candidate" else job_from_row)(row, 0, "x.csv")
    except JobrecError as e:
        assert len(str(e)) < 400
        return
    _valid(r)


def _row_property(data, kind, fieldnames):
    base = KINDS[kind][1]((data.candidates if kind == "candidate" else data.jobs)[0])
    return given(st.lists(st.tuples(st.sampled_from(fieldnames), junk), min_size=1, max_size=3))(
        lambda edits: _check_row(kind, base, edits)
    )


@pytest.mark.parametrize("kind", ["candidate", "job"])
def test_rows_validated_or_own_error(data, kind):
    FAST(_row_property(data, kind, sorted(KINDS[kind][0])))()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["candidate", "job"])
def test_rows_validated_or_own_error_long(data, kind):
    LONG(_row_property(data, kind, sorted(KINDS[kind][0])))()


def _check_file(tmp, kind, text, ext):
    p = tmp / f"f{ext}"
    p.write_bytes(text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text)
    try:
        rs = read_entities(p, kind)
    except JobrecError as e:
        assert len(str(e)) < 600
        return
    for r in rs:
        _valid(r)


def _file_property(tmp, data):
    header = ",".join(candidate_to_row(data.candidates[0]))
    line = st.lists(
        st.one_of(
            st.text(alphabet=st.characters(codec="utf-8"), max_size=8),
            st.sampled_from(["", '"', ",", "3.5", "MS1"]),
        ),
        min_size=0,
        max_size=25,
    ).map(lambda xs: ",".join(xs))
    csv_text = st.lists(line, min_size=1, max_size=3).map(lambda ls: header + "\n" + "\n".join(ls) + "\n")
    js_text = st.recursive(
        junk,
        lambda c: st.one_of(
            st.lists(c, max_size=3),
            st.dictionaries(st.sampled_from(list(candidate_to_row(data.candidates[0]))), c, max_size=6),
        ),
        max_leaves=12,
    ).map(json.dumps)
    text_ext = st.one_of(csv_text.map(lambda t: (t, ".csv")), js_text.map(lambda t: (t, ".json")))
    with_bom = st.tuples(text_ext, st.booleans()).map(
        lambda x: (("\ufeff" if x[1] else "") + x[0][0], x[0][1])
    )  # as Windows writes
    return given(with_bom)(lambda te: _check_file(tmp, "candidate", *te))


def test_files_validated_or_own_error(data, tmp_path):
    FAST(_file_property(tmp_path, data))()


@pytest.mark.slow
def test_files_validated_or_own_error_long(data, tmp_path):
    LONG(_file_property(tmp_path, data))()


def _bom_property(tmp, data):
    "A valid file with a UTF-8 byte-order mark reads as the same file without it, in both formats."

    def check(kind, fmt, n):
        records = (data.candidates if kind == "candidate" else data.jobs)[:n]
        p = tmp / f"bom.{fmt}"
        write_entities(records, p)
        p.write_bytes(b"\xef\xbb\xbf" + p.read_bytes())
        assert read_entities(p, kind) == records

    return given(st.sampled_from(["candidate", "job"]), st.sampled_from(["csv", "json"]), st.integers(1, 6))(
        check
    )


def test_files_with_bom_read_the_same(data, tmp_path):
    FAST(_bom_property(tmp_path, data))()


def _config_property():
    keys = sorted(CONSTRAINTS) + ["seed", "train.lr", "fusion.k", "nosuch.key"]
    value = st.one_of(
        st.integers(-(10**6), 10**6),
        st.floats(allow_nan=True, allow_infinity=True).map(repr),
        st.booleans().map(str),
        st.text(alphabet="abcxyz:_-[], 0123456789.", max_size=12),
        st.sampled_from(["null", "[", "{a: 1}", "hf:", "hf:x", "1_0"]),
    )

    def check(key, v):
        try:
            cfg = load_config(overrides=[f"{key}={v}"])
        except ConfigError as e:
            assert "\n" not in str(e) and len(str(e)) < 400
            return
        for k in CONSTRAINTS:
            check_allowed(k, cfg.get_path(k), "re-check")  # every accepted value is allowed

    return given(st.sampled_from(keys), value)(check)


def test_config_validated_or_own_error():
    FAST(_config_property())()


@pytest.mark.slow
def test_config_validated_or_own_error_long():
    LONG(_config_property())()


# --- the seeded corpus -----------------------------------------------------------------------------
def _classify(call):
    "'rejected' (the package's own error), 'accepted' (a silent acceptance), or 'crash: <type>' (anything else)."
    try:
        call()
    except JobrecError as e:
        return "rejected" if len(str(e)) < 600 else "flooded message"
    except Exception as e:
        return f"crash: {type(e).__name__}: {str(e)[:120]}"
    return "accepted"


def _write(path, rows, fmt):
    if fmt == "json":
        path.write_text(json.dumps(rows))
    else:
        cols = list(dict.fromkeys(k for r in rows for k in r))
        import csv

        with open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(cols)
            for r in rows:
                w.writerow(["" if r.get(c) is None else r.get(c) for c in cols])


def malformed_files(folder, data, seed=SEED, n_random=700):
    "Yield (category, kind, path): every bad value of every field in CSV and JSON, then seeded random combinations and file-level faults."
    rng = random.Random(seed)
    i = 0

    def new(ext):
        nonlocal i
        i += 1
        return folder / f"m{i:05d}{ext}"

    pools = {
        "candidate": [candidate_to_row(c) for c in data.candidates[:5]],
        "job": [job_to_row(j) for j in data.jobs[:5]],
    }
    text_like = {
        "student_id",
        "job_id",
        "industry",
        "student_llm_output",
        "proj_1",
        "extrac_1",
        "job_llm_output",
        "row_id",
        "masters_major",
        "second_major",
        "undergrad_major",
    }

    def csv_ok(
        f, v, fields
    ):  # a CSV cell is text: objects and bools exist only in JSON, and a number is only bad where text is not wanted
        if v is None:
            return f in ("industry", "job_id", "student_id")
        if isinstance(v, str):
            return True
        return isinstance(v, (int, float)) and not isinstance(v, bool) and f not in text_like

    for kind, (fields, _, _) in KINDS.items():  # every (field, bad value), both formats
        for f, bads in fields.items():
            for v in bads:
                for fmt in ("json", "csv"):
                    if fmt == "csv" and not csv_ok(f, v, fields):
                        continue
                    rows = [dict(r) for r in pools[kind][: rng.randint(1, 3)]]
                    rows[rng.randrange(len(rows))][f] = v
                    p = new(f".{fmt}")
                    _write(p, rows, fmt)
                    yield f"{fmt} field value", kind, p
    for _ in range(n_random):  # seeded: 1-3 bad fields in one of 1-4 rows
        kind = rng.choice(["candidate", "job"])
        fields = KINDS[kind][0]
        fmt = rng.choice(["json", "csv"])
        rows = [dict(r) for r in rng.sample(pools[kind], rng.randint(1, 4))]
        ok = {f: [x for x in fields[f] if fmt == "json" or csv_ok(f, x, fields)] for f in sorted(fields)}
        for f in rng.sample([f for f in ok if ok[f]], rng.randint(1, 3)):
            v = rng.choice(ok[f])
            rows[rng.randrange(len(rows))][f] = v
        p = new(f".{fmt}")
        _write(p, rows, fmt)
        yield f"{fmt} random combination", kind, p
    for kind, rows in pools.items():  # file-level faults
        idc, num = KINDS[kind][2], ("gpa" if kind == "candidate" else "min_gpa")
        good = folder / f"good_{kind}.csv"
        _write(good, rows, "csv")
        lines = good.read_text().splitlines()
        faults = {
            "duplicate column": [lines[0] + f",{lines[0].split(',')[1]}"] + [l + ",9.9" for l in lines[1:]],
            "ragged row (extra field)": lines[:2] + [lines[2] + ",extra"] + lines[3:],
            "ragged row (missing field)": lines[:2] + [lines[2].rsplit(",", 1)[0]] + lines[3:],
            "missing required column": [",".join(c for c in lines[0].split(",") if c != idc)]
            + [l.split(",", 1)[1] for l in lines[1:]],
            "header only": lines[:1],
            "bad quoting": lines[:2] + ['"unclosed,' + lines[2]],
            "duplicate id": lines + [lines[1]],
        }
        for name, ls in faults.items():
            p = new(".csv")
            p.write_text("\n".join(ls) + "\n")
            yield name, kind, p
        for name, blob, ext in [
            ("empty file", b"", ".csv"),
            ("blank file", b"  \n\n", ".json"),
            ("not UTF-8", b"\xff\xfe\x00a,b\n1,2\n", ".csv"),
            ("NUL bytes", good.read_bytes().replace(b",", b"\x00,", 3), ".csv"),
            ("unsupported type", good.read_bytes(), ".xlsx"),
            ("deeply nested JSON", ("[" * 50000 + "]" * 50000).encode(), ".json"),
            (
                "deeply nested JSON record",
                json.dumps({**rows[0]})[:-1].encode() + b', "x": ' + b"[" * 5000 + b"]" * 5000 + b"}",
                ".json",
            ),
            ("JSON NaN", json.dumps({**rows[0], num: float("nan")}).encode(), ".json"),
            ("JSON scalar", b"42", ".json"),
            ("JSON list of non-objects", b'[1, "a", null]', ".json"),
            ("JSON truncated", json.dumps(rows).encode()[:-7], ".json"),
            ("JSON empty list", b"[]", ".json"),
            ("1 MB value", json.dumps({**rows[0], num: "9" * 1_000_000 + "x"}).encode(), ".json"),
        ]:
            p = new(ext)
            p.write_bytes(blob)
            yield name, kind, p
        for name, blob, ext in _last_corners(kind, rows, lines):
            p = new(ext)
            p.write_bytes(blob)
            yield name, kind, p
        d = new(".csv")
        d.mkdir()
        yield "a folder", kind, d
        yield "missing file", kind, folder / "does-not-exist.csv"


MEGA = 1_000_000


def _megabyte_rows(kind, rows):
    "(name, rows): one megabyte-long id, list item, list, name and text."
    idc, lst, name, text = (
        ("student_id", "skills", "masters_major", "student_llm_output")
        if kind == "candidate"
        else ("job_id", "required_skills", "industry", "job_llm_output")
    )
    for what, field, v in [
        ("id", idc, "x" * MEGA),
        ("list item", lst, repr(["k" * MEGA])),
        ("list", lst, repr(["s"] * (MEGA // 5))),
        ("name", name, "m" * MEGA),
        ("text", text, "word " * (MEGA // 5)),
    ]:
        yield f"1 MB {what}", [{**rows[0], field: v}] + rows[1:]


def _last_corners(kind, rows, lines):
    "(name, bytes, ext): NUL bytes and control characters in rows and headers, megabyte fields, a BOM before bad content."
    text = "student_llm_output" if kind == "candidate" else "job_llm_output"
    nul_id = lines[:1] + [lines[1][:2] + "\x00" + lines[1][2:]] + lines[2:]
    nul_item = lines[:2] + [lines[2].replace("'", "'\x00", 1)] + lines[3:]
    head = [lines[0].replace(text, text + "\x00")] + lines[1:]
    out = [
        ("NUL byte in a CSV id", "\n".join(nul_id) + "\n", ".csv"),
        ("NUL byte in a CSV list", "\n".join(nul_item) + "\n", ".csv"),
        ("NUL byte in a CSV header", "\n".join(head) + "\n", ".csv"),
        ("control character in a JSON text", json.dumps([{**rows[0], text: "ok\x1b[2J"}]), ".json"),
        ("NUL escape in a JSON text", json.dumps([{**rows[0], text: "a\x00b"}]), ".json"),
        ("lone surrogate in a JSON text", json.dumps([{**rows[0], text: "a\ud800b"}]), ".json"),
        ("control character in a JSON key", json.dumps([{**rows[0], "x\x07": 1}]), ".json"),
        ("BOM before malformed JSON", "\ufeff{not json", ".json"),
        ("BOM before a NUL in a CSV id", "\ufeff" + "\n".join(nul_id) + "\n", ".csv"),
    ]
    for name, rs in _megabyte_rows(kind, rows):
        out.append((name + " (JSON)", json.dumps(rs), ".json"))
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerows([list(rs[0])] + [list(r.values()) for r in rs])
        out.append((name + " (CSV)", buf.getvalue(), ".csv"))
    return [(n, t.encode("utf-8", "surrogatepass"), e) for n, t, e in out]


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    "A tiny model trained for a few steps through `jobrec train`, in a run folder."
    out = tmp_path_factory.mktemp("bad") / "run"
    rc = main(["train", "--out", str(out), *TRAIN_ARGS])
    assert rc == 0 and (out / "model" / "system" / "experts.safetensors").exists()
    return out


TRAIN_ARGS = [
    "--set",
    "backbone.name=tiny",
    "--set",
    "device=cpu",
    "--set",
    "schema.max_length=48",
    "--set",
    "expert.head_hidden=[16]",
    "--set",
    "lora.r=2",
    "--set",
    "lora.alpha=4",
    "--set",
    "data.source=synthetic",
    "--set",
    "data.synthetic.n_candidates=30",
    "--set",
    "data.synthetic.n_jobs=10",
    "--set",
    "train.head_steps=3",
    "--set",
    "train.stage1_steps=2",
    "--set",
    "train.stage2_steps=1",
    "--set",
    "train.batch_groups=2",
    "--set",
    "train.n_negatives=3",
    "--set",
    "train.checkpoint_every=1",
    "--set",
    "train.eval_every=2",
]


def _cli_outcome(rc, err):
    if rc == 0:
        return "accepted"
    lines = err.strip().splitlines()  # progress logs may precede it; the error itself is the one last line
    if (
        rc == 2
        and lines
        and lines[-1].startswith("jobrec ")
        and ": error: " in lines[-1]
        and "Traceback" not in err
        and sum(": error: " in l for l in lines) == 1
        and len(lines[-1]) < 600
    ):
        return "rejected"
    return f"crash: exit {rc}: {err.strip()[-160:]}"


def _cli(*args):
    "The outcome of `jobrec ARGS`: accepted, rejected (one-line error) or a crash."
    rc, _, err = run_cli(*args)
    return _cli_outcome(rc, err)


def bad_calls(rec, data, files, rng):
    "Yield (category, call): one bad argument per call, the others valid."
    c, cands, jobs = data.candidates[0], data.candidates[:2], data.jobs
    bad = {
        "k": [0, -1, 1.5, "5", None, True, float("nan"), 10.0, [3]],
        "tau": [-0.1, 1.5, "0.5", float("nan"), float("inf"), True, [0.5]],
        "shortlist": [0, -3, 1.5, "10", True],
        "hard": ["yes", None, 1],
        "explain": ["no", 0],
        "candidates": [None, 5, "nope.csv", [], [None], [jobs[0]], {"a": 1}, files / "folder", jobs[0]],
        "jobs": [None, [], [c], 3, "nope.json", {"a": 1}, cands],
    }
    for arg, values in bad.items():
        for v in values:
            for _ in range(3):  # the same bad value among different valid company
                kw = {
                    "candidates": rng.choice([c, cands, files / "cands.json"]),
                    "jobs": rng.choice([jobs, files / "jobs.csv"]),
                    "k": rng.randint(1, 5),
                    "tau": rng.choice([None, 0.3]),
                    "shortlist": rng.choice([None, 5]),
                }
                kw[arg] = v
                yield f"recommend({arg}=...)", (lambda kw=kw: rec.recommend(**kw))
    for v in [0, "3", None, 2.5]:
        yield "rank_candidates(k=...)", (lambda v=v: rec.rank_candidates(jobs[0], cands, k=v))
    for v in [None, c, files / "jobs.csv", [jobs[0]]]:
        yield "rank_candidates(job=...)", (lambda v=v: rec.rank_candidates(v, cands))
    for v in [None, [jobs[0]], 7]:
        yield "rank_candidates(candidates=...)", (lambda v=v: rec.rank_candidates(jobs[0], v))


def cli_calls(run, data, files, bad_files, tmp):
    "Yield (category, args or a callable returning (rc, err)): one-line, exit 2 expected."
    for key, rule in sorted(CONSTRAINTS.items()):
        vals = []
        if "each" in rule:
            vals = ["[-5]", "[x]", "7"] if "choices" not in rule["each"] else ["[bogus]"]
        elif "choices" in rule or "registry" in rule:
            vals = ["bogus", "3"]
        else:
            if "min" in rule:
                vals.append(rule["min"] - 1)
            if "above" in rule:
                vals.append(rule["above"])
            if "max" in rule:
                vals.append(rule["max"] + 1)
            vals.append(".nan")
        for v in vals:
            yield "config --set out of range", ["config", "--set", f"{key}={v}"]
    for args in (
        ["--set", "fusion.tau=1.5"],
        ["--set", "fusion.tau=-3"],
        ["--set", "train.stage1_steps=-5"],
        ["--set", "device=tpu"],
        ["--set", "fusion.variant=bogus"],
        ["--set", "backbone.name=nosuch"],
        ["--set", "fusion.taus=[0.5, 2]"],
        ["--profile", str(tmp / "empty.yaml")],
        ["--profile", "nosuch"],
        ["--config", str(tmp / "broken.yaml")],
        ["--config", str(tmp / "list.yaml")],
        ["--config", str(tmp)],
        ["--set", "fusion.tau=[1"],
        ["--set", "nokey"],
    ):
        yield "config (the issue's examples)", ["config", *args]
    for kind, p in bad_files:
        flag = "--candidate" if kind == "candidate" else "--jobs"
        other = (
            ["--jobs", files / "jobs.csv"] if kind == "candidate" else ["--candidate", files / "cands.csv"]
        )
        yield "recommend with a malformed file", ["recommend", "--model", run, flag, p, *other]
    base = ["--model", run, "--candidate", files / "cands.csv", "--jobs", files / "jobs.csv"]
    for extra in (["--k", "0"], ["--tau", "2"], ["--tau", "nan"], ["--out", tmp]):
        yield "recommend bad argument", ["recommend", *base, *extra]
    yield "recommend missing model", ["recommend", "--model", tmp / "nomodel", *base[2:]]
    yield (
        "rank-candidates two jobs",
        ["rank-candidates", "--model", run, "--job", files / "jobs.csv", "--candidates", files / "cands.csv"],
    )
    yield (
        "rank-candidates --out folder",
        [
            "rank-candidates",
            "--model",
            run,
            "--job",
            files / "job.json",
            "--candidates",
            files / "cands.csv",
            "--out",
            tmp,
        ],
    )
    for cat, args in output_calls(run, files, tmp):
        yield cat, args


def unwritable_folder(tmp):
    "A folder this process cannot write in: a read-only one, or for a superuser (who writes anywhere) a read-only system folder."
    ro = tmp / "read-only"
    ro.mkdir(exist_ok=True)
    ro.chmod(0o555)
    for d in (ro, Path("/sys"), Path("/proc")):
        try:
            with tempfile.TemporaryFile(dir=d):
                pass
        except OSError:
            return d
    return None


def output_calls(run, files, tmp):
    "Yield (category, args): every command's output path, bad in each way it can be (checked before anything loads)."
    bad = {
        "a folder": tmp,
        "in a missing folder": tmp / "nowhere" / "r.txt",
        "in a file": files / "cands.csv" / "r.txt",
    }
    ro = unwritable_folder(tmp)
    if ro is not None:
        bad["in an unwritable folder"] = ro / "r.txt"
    serve = {
        "recommend": ["--model", run, "--candidate", files / "cands.csv", "--jobs", files / "jobs.csv"],
        "rank-candidates": ["--model", run, "--job", files / "job.json", "--candidates", files / "cands.csv"],
        "vocabulary": ["--catalogue", files / "jobs.csv"],
    }
    for cmd, args in serve.items():
        for name, p in bad.items():
            yield f"{cmd} --out {name}", [cmd, *args, "--out", p]
    folders = {"a file": files / "cands.csv", "under a file": files / "cands.csv" / "out"}
    if ro is not None:
        folders["in an unwritable folder"] = ro / "out"
    for name, p in folders.items():
        yield (
            f"score --out {name}",
            [
                "score",
                "--model",
                run,
                "--candidates",
                files / "cands.csv",
                "--jobs",
                files / "jobs.csv",
                "--out",
                p,
            ],
        )
        for cmd in ("train", "data", "bench", "examples", "run"):
            yield f"{cmd} --out {name}", [cmd, "--out", p]
    yield "run --summary in a missing folder", ["run", "--summary", tmp / "nowhere" / "s.json"]


def test_bad_input_corpus(data, trained, tmp_path):
    "At least 1,000 seeded malformed files and calls: every one rejected with one line of the package's own error."
    files = tmp_path / "ok"
    files.mkdir()
    (files / "folder").mkdir()
    write_entities(data.jobs, files / "jobs.csv")
    write_entities(data.candidates[:2], files / "cands.csv")
    write_entities(data.candidates[:2], files / "cands.json")
    write_entities(data.jobs[:1], files / "job.json")
    mal = tmp_path / "mal"
    mal.mkdir()
    counts, failures = Counter(), []

    def record(where, cat, outcome, detail=None):
        counts[(where, cat, outcome.split(":")[0])] += 1
        if outcome != "rejected":
            failures.append((where, cat, outcome + (f" [{detail}]" if detail else "")))

    bad_files = []
    for cat, kind, p in malformed_files(mal, data):
        record(
            "read_entities",
            cat,
            _classify(lambda: read_entities(p, kind)),
            p.read_bytes()[:300] if p.is_file() else p,
        )
        bad_files.append((kind, p))
    rec = Recommender.load(trained)
    for cat, call in bad_calls(rec, data, files, random.Random(SEED)):
        record("Recommender", cat, _classify(call))
    cfgdir = tmp_path / "cfg"
    cfgdir.mkdir()
    (cfgdir / "empty.yaml").write_text("")
    (cfgdir / "broken.yaml").write_text("train: {lr: [")
    (cfgdir / "list.yaml").write_text("- 1\n- 2\n")
    rng = random.Random(SEED)
    for cat, args in cli_calls(trained, data, files, rng.sample(bad_files, 150), cfgdir):
        record("cli", cat, _cli(*args))
    for cat, outcome in _model_faults(trained, tmp_path):
        record("cli", cat, outcome)
    total = sum(counts.values())
    by = Counter()
    for (where, cat, outcome), n in counts.items():
        by[(where, cat if outcome == "rejected" else f"{cat} [{outcome}]")] += n
    print(f"\nbad-input corpus (seed {SEED}): {total} malformed files and calls")
    for (where, cat), n in sorted(by.items()):
        print(f"  {where:14s} {cat:45s} {n:5d}")
    outcomes = Counter()
    for (_, _, o), n in counts.items():
        outcomes[o] += n
    print("  outcomes:", dict(outcomes))
    assert total >= 1000
    assert not failures, "\n".join(f"{w} | {c} | {o[:300]}" for w, c, o in failures[:30])


def _model_faults(run, tmp):
    "A corrupt experts.safetensors, a train resume into a changed configuration and into a truncated checkpoint."
    import shutil

    bad = tmp / "corrupt"
    shutil.copytree(run, bad)
    st_ = bad / "model" / "system" / "experts.safetensors"
    st_.write_bytes(st_.read_bytes()[:100])
    yield (
        "recommend corrupt experts.safetensors",
        _cli(
            "recommend",
            "--model",
            bad,
            "--candidate",
            tmp / "ok" / "cands.csv",
            "--jobs",
            tmp / "ok" / "jobs.csv",
        ),
    )
    meta = bad / "model" / "system" / "meta.json"
    shutil.copy(run / "model" / "system" / "experts.safetensors", st_)
    meta.write_text("{not json")
    yield (
        "recommend damaged meta.json",
        _cli(
            "recommend",
            "--model",
            bad,
            "--candidate",
            tmp / "ok" / "cands.csv",
            "--jobs",
            tmp / "ok" / "jobs.csv",
        ),
    )
    changed = tmp / "changed"
    shutil.copytree(run, changed)
    rc, _, err = run_cli("train", "--out", changed, *TRAIN_ARGS, "--set", "train.lr=1e-3")
    assert "--no-resume" in err, err
    yield "train resume, configuration changed", _cli_outcome(rc, err)
    ck = tmp / "trunc"
    shutil.copytree(run, ck)
    c = ck / "model" / "checkpoint.safetensors"
    c.write_bytes(c.read_bytes()[: c.stat().st_size // 2])
    yield "train resume, truncated checkpoint", _cli("train", "--out", ck, *TRAIN_ARGS)


# --- a few named cases, asserted on their messages -------------------------------------------------
def test_named_messages(data, tmp_path):
    row = candidate_to_row(data.candidates[0])
    p = tmp_path / "c.json"
    p.write_text(json.dumps([{**row, "gpa": True}]))
    with pytest.raises(JobrecError, match="column 'gpa': expected a number, got bool True"):
        read_entities(p, "candidate")
    p.write_text(json.dumps([{**row, "gpa": 10**400}]))
    with pytest.raises(JobrecError, match="finite"):
        read_entities(p, "candidate")
    p.write_text(json.dumps([{**row, "student_id": {"a": 1}}]))
    with pytest.raises(JobrecError, match="an id must be a string or a whole number, got dict"):
        read_entities(p, "candidate")
    p.write_text(json.dumps([{**row, "months_experience": "9" * 1_000_000 + "x"}]))
    with pytest.raises(JobrecError) as e:
        read_entities(p, "candidate")
    assert len(str(e.value)) < 200
    q = tmp_path / "c.csv"
    _write(q, [row, {**row, "student_id": "S2"}], "csv")
    lines = q.read_text().splitlines()
    q.write_text("\n".join(lines[:2] + [lines[2] + ",extra"]) + "\n")
    with pytest.raises(JobrecError, match="line 3 has"):
        read_entities(q, "candidate")
    rc, _, err = run_cli("config", "--set", "fusion.tau=1.5")
    assert rc == 2 and err.strip() == "jobrec config: error: override: fusion.tau must be in [0, 1], got 1.5"


def test_every_constraint_names_a_default_key():
    cfg = load_config()
    for k in CONSTRAINTS:
        cfg.get_path(k)  # a misspelt key in constraints.yaml would check nothing


def test_offline_environment_set_by_jobrec():
    import subprocess, sys

    code = (
        "import os, jobrec; print(os.environ.get('HF_HUB_OFFLINE'), os.environ.get('TRANSFORMERS_OFFLINE'))"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    assert subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True
    ).stdout.split() == ["1", "1"]
    env["HF_HUB_OFFLINE"] = "0"
    assert subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True
    ).stdout.split() == ["0", "1"]


# --- the last corners: NUL bytes, a byte-order mark, megabyte fields, an output path ---------------
def test_nul_byte_in_a_csv_row_named(trained, data, tmp_path):
    "A NUL byte inside a CSV cell is refused with its row and column, by the reader and by the CLI (exit 2, one line)."
    p = tmp_path / "c.csv"
    _write(p, [candidate_to_row(c) for c in data.candidates[:3]], "csv")
    lines = p.read_text().splitlines()
    p.write_text("\n".join(lines[:2] + [lines[2].replace("['", "['Py\x00", 1)] + lines[3:]) + "\n")
    with pytest.raises(
        JobrecError, match=r"row 1, column 'interests': control character U\+0000 at character 5 of the list$"
    ):
        read_entities(p, "candidate")
    rc, _, err = run_cli("recommend", "--model", trained, "--candidate", p, "--jobs", p)
    assert _cli_outcome(rc, err) == "rejected" and "row 1, column 'interests'" in err, err


def test_json_and_csv_read_a_byte_order_mark(data, tmp_path):
    for kind, records in (("candidate", data.candidates[:4]), ("job", data.jobs[:4])):
        for fmt in ("json", "csv"):
            p = tmp_path / f"{kind}.{fmt}"
            write_entities(records, p)
            p.write_bytes(b"\xef\xbb\xbf" + p.read_bytes())
            assert read_entities(p, kind) == records, (kind, fmt)


def test_megabyte_fields_refused_in_under_a_second(data, tmp_path, capsys):
    "Each megabyte field (an id, a list item, a list, a name, a text), CSV and JSON, costs under a second to refuse."
    times = {}
    for kind, recs in (("candidate", data.candidates), ("job", data.jobs)):
        rows = [(candidate_to_row if kind == "candidate" else job_to_row)(r) for r in recs[:3]]
        for name, rs in _megabyte_rows(kind, rows):
            for fmt in ("json", "csv"):
                p = tmp_path / f"big.{fmt}"
                _write(p, rs, fmt)
                t0 = time.perf_counter()
                with pytest.raises(JobrecError, match=r"row 0, column '.+'.*jobrec\.schema\.LIMITS"):
                    read_entities(p, kind)
                times[(kind, name, fmt)] = time.perf_counter() - t0
    with capsys.disabled():
        print(
            f"\nslowest refusal of a megabyte field: {max(times.values()):.3f}s ({max(times, key=times.get)})"
        )
    assert max(times.values()) < 1.0, times


def test_cli_refuses_a_megabyte_id_before_the_model(trained, data, tmp_path):
    "The case that took minutes: a 1 MB student_id through `jobrec recommend`, now one line, exit 2, in under a second."
    p = tmp_path / "c.json"
    p.write_text(json.dumps([{**candidate_to_row(data.candidates[0]), "student_id": "x" * MEGA}]))
    write_entities(data.jobs, tmp_path / "jobs.csv")
    t0 = time.perf_counter()
    rc, _, err = run_cli("recommend", "--model", trained, "--candidate", p, "--jobs", tmp_path / "jobs.csv")
    assert (
        time.perf_counter() - t0 < 1.0
        and _cli_outcome(rc, err) == "rejected"
        and "over the limit of 128 for an id" in err
    ), err


def test_outputs_checked_before_any_model_loads(trained, data, tmp_path, monkeypatch):
    "Every bad output path of every command: exit 2, one line naming the path as given (not a temporary one), no model loaded."
    from jobrec.recommend import Recommender

    def no_load(*a, **k):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(Recommender, "load", no_load)
    files = tmp_path / "ok"
    files.mkdir()
    write_entities(data.jobs, files / "jobs.csv")
    write_entities(data.candidates[:2], files / "cands.csv")
    write_entities(data.jobs[:1], files / "job.json")
    cases = list(output_calls(trained, files, tmp_path))
    assert {c.split(" --")[0] for c, _ in cases} >= {
        "recommend",
        "rank-candidates",
        "score",
        "vocabulary",
        "train",
        "run",
    }
    for cat, args in cases:
        t0 = time.perf_counter()
        rc, _, err = run_cli(*args)
        given = str(args[args.index("--summary" if "--summary" in args else "--out") + 1])
        assert _cli_outcome(rc, err) == "rejected" and given in err and ".tmp" not in err, (cat, err)
        assert time.perf_counter() - t0 < 5, cat
    assert not (tmp_path / "nowhere").exists()


def test_usage_states_the_limits():
    "docs/usage.md repeats `LIMITS` for the reader: the figures it gives are the ones enforced."
    readme = " ".join(
        (Path(__file__).resolve().parents[1] / "docs" / "usage.md").read_text(encoding="utf-8").split()
    )
    for says in (
        f"an id {LIMITS['id']} characters",
        f"industry {LIMITS['item']},",
        f"a list {LIMITS['items']} items",
        f"a narrative text {LIMITS['text']:,})",
    ):
        assert says in readme, says
