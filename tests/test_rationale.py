"""LLM narratives' validators and checked rationales: `--rationale` on `jobrec recommend` / `rank-candidates` with the tiny model."""
import contextlib, io, json

import pytest

from jobrec.core import load_config
from jobrec.data import generate_synthetic, TOPICS
from jobrec.recommend import init_run, write_entities
from jobrec.cli import main
from jobrec.narratives import TOPIC_BRIEFS, TopicScorer, calibrate_threshold, check_narrative
import jobrec.rationale as R

TINY = {"backbone": {"name": "tiny"}, "schema": {"max_length": 64}, "expert": {"head_hidden": [32, 16]}}
pytestmark = pytest.mark.usefixtures("one_torch_thread")

@pytest.fixture(scope="module")
def data(): return generate_synthetic(seed=5, n_candidates=12, n_jobs=10)

@pytest.fixture(scope="module")
def run(tmp_path_factory, data):
    d = tmp_path_factory.mktemp("files")
    write_entities(data.jobs, d/"jobs.csv"); write_entities(data.candidates[:2], d/"cands.csv"); write_entities(data.jobs[:1], d/"job.json")
    return init_run(load_config(None, TINY), d/"run", data), d

def cli(*args):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err): rc = main([str(a) for a in args])
    return rc, out.getvalue(), err.getvalue()

def test_recommend_rationale_falls_back_to_the_template(run):
    m, d = run
    rc, out, err = cli("recommend", "--model", m, "--candidate", d/"cands.csv", "--jobs", d/"jobs.csv", "--k", 3, "--rationale", "--rationale-model", "tiny")
    assert rc == 0, err
    lines = [l for l in out.splitlines() if l.startswith("rationale ")]
    assert len(lines) == 6 and all("(template)" in l and "The employer" in l for l in lines)  # random tiny text fails the checker

def test_rationale_checker_accepts_a_faithful_text_and_rejects_a_false_one(run, monkeypatch):
    m, d = run
    def fake(prompts, lm, **kw):  # the first result gets a faithful text, the others one stating a number found nowhere
        return ["The job is in the candidate's area. The employer would weigh the requirements met."] + \
               ["Your GPA of 9.87 stands out. The employer would accept."] * (len(prompts) - 1)
    monkeypatch.setattr(R, "generate_texts", fake)
    rc, out, err = cli("recommend", "--model", m, "--candidate", d/"cands.csv", "--jobs", d/"jobs.csv", "--k", 3, "--tau", 0.5,
                       "--rationale", "--rationale-model", "tiny", "--format", "json")
    assert rc == 0, err
    items = json.loads(out)["results"][0]["items"]
    assert [i["rationale_source"] for i in items] == ["lm", "template", "template"]
    assert items[0]["rationale"].startswith("The job is in") and items[0]["rationale_rejected"] == []
    assert items[1]["rationale_rejected"] == ["number not in the explanation: 9.87"] and "9.87" not in items[1]["rationale"]

def test_rank_candidates_rationale(run):
    m, d = run
    rc, out, err = cli("rank-candidates", "--model", m, "--job", d/"job.json", "--candidates", d/"cands.csv", "--k", 2,
                       "--rationale", "--rationale-model", "tiny", "--format", "json")
    assert rc == 0, err
    items = json.loads(out)["results"][0]["items"]
    assert len(items) == 2 and all(i["rationale_source"] in ("lm", "template") and i["rationale"] for i in items)

@pytest.fixture(scope="module")
def scorer(): return TopicScorer()

def test_narrative_validators_catch_an_unlisted_skill_and_a_missing_topic(scorer):
    d = generate_synthetic(seed=3, n_candidates=4, n_jobs=2, narrative="llm", narrative_model="tiny")
    meta = d.meta["narratives"]
    assert meta["counts"]["statement"]["generated"] == 4 and meta["counts"]["description"]["generated"] == 2
    thr = calibrate_threshold(scorer, TOPICS)["threshold"]
    vocab = sorted({s for c in d.candidates for s in c.skills} | {s for j in d.jobs for s in j.required_skills})
    c, topics = d.candidates[0], d.meta["candidate_topics"][0]
    good = f"I want to work on {TOPIC_BRIEFS[topics[0]]}. I am also drawn to {TOPIC_BRIEFS[topics[1]]}. I have used {c.skills[0]} in class."
    briefs = [TOPIC_BRIEFS[t] for t in topics]
    assert check_narrative(good, c.skills, vocab, scorer.similarities(good, briefs), thr, (10, 120)) == []
    other = next(s for s in vocab if s not in c.skills)
    bad = good + f" I also know {other}."
    assert check_narrative(bad, c.skills, vocab, scorer.similarities(bad, briefs), thr, (10, 120)) == [f"unlisted skill: {other}"]
    one = f"I want to work on {TOPIC_BRIEFS[topics[0]]}. I have used {c.skills[0]} in class."
    r = check_narrative(one, c.skills, vocab, scorer.similarities(one, briefs), thr, (10, 120))
    assert len(r) == 1 and r[0].startswith("missing topic 2")

@pytest.mark.slow
def test_smollm2_narratives_pass_the_validators(scorer):
    "SmolLM2 writes a small dataset; every text it kept passes the validators again."
    d = generate_synthetic(seed=3, n_candidates=4, n_jobs=2, narrative="llm")
    m = d.meta["narratives"]; thr = m["topic_threshold"]["threshold"]
    vocab = sorted({s for c in d.candidates for s in c.skills} | {s for j in d.jobs for s in j.required_skills})
    for c, t in zip(d.candidates, d.meta["candidate_topics"]):
        if c.statement.startswith("My research interests are"): continue  # dropped: the template kept
        assert check_narrative(c.statement, c.skills, vocab, scorer.similarities(c.statement, [TOPIC_BRIEFS[x] for x in t]), thr, (15, 110)) == []
