"""LLM narratives' validators and checked rationales: `--rationale` on `jobrec recommend` / `rank-candidates` with the tiny model."""
import contextlib, io, json

import pytest

from jobrec.core import load_config
from jobrec.data import generate_synthetic, rewrite_card, save_dataset, TOPICS
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

@pytest.fixture(scope="module")
def llm_data(): return generate_synthetic(seed=3, n_candidates=4, n_jobs=2, narrative="llm", narrative_model="tiny")

def test_narrative_validators_catch_an_unlisted_skill_and_a_missing_topic(scorer, llm_data):
    d = llm_data
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

def test_the_card_of_an_llm_dataset_carries_the_validators_counts(tmp_path, llm_data):
    "An LLM-narrative dataset's card shows the validators' outcomes, the time and the lexical baselines; a template dataset's card does not."
    f = save_dataset(llm_data, tmp_path/"llm")
    md, card = (f/"CARD.md").read_text(), json.loads((f/"card.json").read_text())
    counts = llm_data.meta["narratives"]["counts"]
    assert card["narratives"]["counts"] == counts and "## LLM narratives (validators)" in md
    for kind, c in counts.items():
        assert f"| {kind} | " + " | ".join(str(c[o]) for o in ("generated", "accepted", "repaired", "regenerated", "dropped")) + " |" in md
    reasons = llm_data.meta["narratives"]["first_pass_reasons"]
    assert reasons and all(f"{k} {v}" in md for k, v in reasons.items())
    assert f"generation time: {llm_data.meta['narratives']['seconds']:.1f} s" in md and "weak evidence" in md
    lex = card["narratives"]["lexical"]  # seed 3 puts one of the four candidates in the test split
    assert lex["n_candidates"] == 1 and {"bm25", "tfidf"} <= set(lex["baselines"]) and "| bm25 | " in md
    before = f.joinpath("CARD.md").read_bytes(); f.joinpath("CARD.md").write_text(""); rewrite_card(f)
    assert f.joinpath("CARD.md").read_bytes() == before  # from the folder's files, texts not regenerated
    t = save_dataset(generate_synthetic(seed=3, n_candidates=4, n_jobs=2), tmp_path/"template")
    assert "LLM narratives" not in (t/"CARD.md").read_text() and "narratives" not in json.loads((t/"card.json").read_text())

@pytest.mark.slow
def test_smollm2_narratives_pass_the_validators(scorer):
    "SmolLM2 writes a small dataset; every text it kept passes the validators again."
    d = generate_synthetic(seed=3, n_candidates=4, n_jobs=2, narrative="llm")
    m = d.meta["narratives"]; thr = m["topic_threshold"]["threshold"]
    vocab = sorted({s for c in d.candidates for s in c.skills} | {s for j in d.jobs for s in j.required_skills})
    for c, t in zip(d.candidates, d.meta["candidate_topics"]):
        if c.statement.startswith("My research interests are"): continue  # dropped: the template kept
        assert check_narrative(c.statement, c.skills, vocab, scorer.similarities(c.statement, [TOPIC_BRIEFS[x] for x in t]), thr, (15, 110)) == []
    # the validators catch what was injected into a text SmolLM2 wrote: an unlisted skill, a topic it does not express
    kept = [(c, t) for c, t in zip(d.candidates, d.meta["candidate_topics"]) if not c.statement.startswith("My research interests are")]
    assert kept, "SmolLM2 kept no statement"
    c, t = kept[0]
    other = next(s for s in vocab if s not in c.skills)
    assert f"unlisted skill: {other}" in check_narrative(c.statement + f" I also know {other}.", c.skills, vocab, [], thr, (15, 130))
    foreign = [i for i in range(len(TOPIC_BRIEFS)) if i not in t]
    sims = scorer.similarities(c.statement, [TOPIC_BRIEFS[x] for x in foreign])
    r = check_narrative(c.statement, c.skills, vocab, [float(min(sims))], thr, (15, 110))
    assert r and r[0].startswith("missing topic 1")

def test_the_experts_report_reads_the_rationale_figures(tmp_path):
    "The experts template's rationale cell takes its figures from rationales.json, and says so when the file is absent."
    import pandas as pd
    from pathlib import Path
    root = Path(__file__).resolve().parents[1]
    nb = json.loads((root/"experiments"/"templates"/"r06_experts.ipynb").read_text())
    cell = "".join(next(c for c in nb["cells"] if c.get("id") == "c008b")["source"])
    shown = []
    r = {"accepted_by_checker": 0.6, "accepted_faithful_by_exact_check": 0.9, "seconds_per_rationale": 2.5, "pairs": 40, "candidates": 4, "k": 10}
    (tmp_path/"r.json").write_text(json.dumps(r))
    for path in (tmp_path/"r.json", tmp_path/"absent.json"):
        ns = {"json": json, "Path": Path, "pd": pd, "Markdown": str, "display": shown.append, "rationales_json": str(path)}
        exec(cell, ns)
        if path.name == "r.json":
            assert ns["rat"]["accepted_share"] == 0.6 and ns["rat"]["faithful_share_of_accepted"] == 0.9 and ns["rat"]["n_pairs"] == 40
            assert ns["rat"]["command"] == "python reports/rationales/measure.py RUN_DIR 4 10" and "2.5" in shown[-1]
        else: assert ns["rat"] is None and "not found" in shown[-1]
    final = "".join(next(c for c in nb["cells"] if c.get("id") == "c009")["source"])
    assert '"rationales": rat' in final
