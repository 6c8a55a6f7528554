"""LLM narratives' validators and checked rationales: `--rationale` on `jobrec recommend` / `rank-candidates` with the tiny model."""

import contextlib, io, json

import pytest

from jobrec.core import load_config
from jobrec.card import rewrite_card, write_card
from jobrec.data import generate_synthetic, save_dataset, TOPICS
from jobrec.recommend import init_run, write_entities
from conftest import TINY, run_cli
from jobrec.narratives import (
    TOPIC_BRIEFS,
    TopicScorer,
    calibrate_threshold,
    check_narrative,
    write_narratives,
)
import jobrec.rationale as R

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data():
    return generate_synthetic(seed=5, n_candidates=12, n_jobs=10)


@pytest.fixture(scope="module")
def run(tmp_path_factory, data):
    d = tmp_path_factory.mktemp("files")
    write_entities(data.jobs, d / "jobs.csv")
    write_entities(data.candidates[:2], d / "cands.csv")
    write_entities(data.jobs[:1], d / "job.json")
    return init_run(load_config(None, TINY), d / "run", data), d


def test_recommend_rationale_falls_back_to_the_template(run):
    m, d = run
    rc, out, err = run_cli(
        "recommend",
        "--model",
        m,
        "--candidate",
        d / "cands.csv",
        "--jobs",
        d / "jobs.csv",
        "--k",
        3,
        "--rationale",
        "--rationale-model",
        "tiny",
    )
    assert rc == 0, err
    lines = [l for l in out.splitlines() if l.startswith("rationale ")]
    assert len(lines) == 6 and all(
        "(template)" in l and "The employer" in l for l in lines
    )  # random tiny text fails the checker


def test_rationale_checker_accepts_a_faithful_text_and_rejects_a_false_one(run, monkeypatch):
    m, d = run

    def fake(
        prompts, lm, **kw
    ):  # the first result restates its facts, the others state a number found nowhere
        facts = [l[2:] for l in prompts[0].splitlines() if l.startswith("- ")]
        return [". ".join(facts) + "."] + ["Your GPA of 9.87 stands out. The employer would accept."] * (
            len(prompts) - 1
        )

    monkeypatch.setattr(R, "generate_texts", fake)
    rc, out, err = run_cli(
        "recommend",
        "--model",
        m,
        "--candidate",
        d / "cands.csv",
        "--jobs",
        d / "jobs.csv",
        "--k",
        3,
        "--tau",
        0.5,
        "--rationale",
        "--rationale-model",
        "tiny",
        "--format",
        "json",
    )
    assert rc == 0, err
    items = json.loads(out)["results"][0]["items"]
    assert [i["rationale_source"] for i in items] == ["lm", "template", "template"]
    assert (
        items[0]["rationale"].startswith(f"job {items[0]['job_id']} is in")
        and items[0]["rationale_rejected"] == []
    )
    assert (
        "number not in the explanation: 9.87" in items[1]["rationale_rejected"]
        and "9.87" not in items[1]["rationale"]
    )
    assert "ungrounded word: stands" in items[1]["rationale_rejected"]
    assert (
        items[1]["rationale"].startswith(f"Job {items[1]['job_id']} is in")
        and "The employer accepts with calibrated" in items[1]["rationale"]
    )


# the three rationales a user was shown as language-model text for a job missing the GPA requirement and 6 of 10 skills
INVENTED = [
    "The student is a skilled robotics engineer with a passion for sustainability but struggles to find employment "
    "due to limited availability of suitable positions.",
    "They have been offered a position at a prestigious tech startup.",
    "They faced challenges due to limited resources and had to work under difficult circumstances. Nevertheless, they "
    "achieved remarkable results.",
]


@pytest.fixture
def gap_row():
    "A robotics job whose GPA requirement the candidate misses by 0.83, with 4 of its 10 skills."
    from jobrec.schema import Candidate, Job, explain_pair

    req = [
        "Python",
        "C++",
        "ROS",
        "Linux",
        "SLAM",
        "OpenCV",
        "PyTorch",
        "MATLAB",
        "Kalman filtering",
        "Motion planning",
    ]
    c = Candidate(
        candidate_id="S1",
        gpa=2.67,
        academic_level="UG3",
        skills=req[:4] + ["SQL"],
        interests=["Robotics"],
        undergrad_major="Computer Science",
    )
    j = Job(
        job_id="J0059",
        industry="Robotics",
        required_skills=req,
        min_gpa=3.5,
        acceptable_majors=["Computer Science"],
    )
    return {
        "job_id": "J0059",
        "rank": 1,
        "p_qual": 0.31,
        "preference": 0.8,
        "explanation": explain_pair(c, j),
    }


@pytest.mark.parametrize("text", INVENTED)
def test_the_checker_refuses_invented_content(gap_row, text):
    "Each invented text is refused for words it cannot ground, and for leaving out the missed GPA and the low estimate."
    d = {"tau": 0.6, "lambda": 0.4, "moved": False, "pref_rank": 1, "n": 3}
    r = R.check_rationale(text, gap_row, d, R.all_skills())
    assert any(x.startswith("ungrounded word: ") for x in r), r
    assert "missed requirement not stated: gpa" in r and "low qualification estimate not stated: 0.31" in r
    for w in ("skilled", "engineer", "passion", "prestigious", "startup", "remarkable"):
        if w in text:
            assert f"ungrounded word: {w}" in r
    t = R.template_rationale(gap_row, d)  # what is shown instead
    assert (
        R.check_rationale(t, gap_row, d, R.all_skills()) == [] and "misses the GPA requirement by 0.83" in t
    )
    assert "J0059" in t and "4 of its 10 required skills" in t and "0.31, low" in t
    assert R.words_outside_input(
        text, R.rationale_prompt(R.rationale_facts(gap_row, d))
    )  # the second check sees it too
    assert R.states_gap(text, gap_row) is False and R.states_gap(t, gap_row) is True


def test_the_cli_shows_the_template_for_invented_text(run, monkeypatch):
    "Fed the invented texts as the language model's output, `recommend --rationale` shows the template for each."
    m, d = run
    monkeypatch.setattr(
        R,
        "generate_texts",
        lambda prompts, lm, **kw: [" ".join(INVENTED[:2]), INVENTED[2], INVENTED[0]][: len(prompts)],
    )
    rc, out, err = run_cli(
        "recommend",
        "--model",
        m,
        "--candidate",
        d / "cands.csv",
        "--jobs",
        d / "jobs.csv",
        "--k",
        3,
        "--tau",
        0.5,
        "--rationale",
        "--rationale-model",
        "tiny",
    )
    assert rc == 0, err
    lines = [l for l in out.splitlines() if l.startswith("rationale ")]
    assert len(lines) == 6 and all("(template)" in l for l in lines), lines
    assert not any(w in out for w in ("prestigious", "remarkable", "passion"))


def test_rank_candidates_rationale(run):
    m, d = run
    rc, out, err = run_cli(
        "rank-candidates",
        "--model",
        m,
        "--job",
        d / "job.json",
        "--candidates",
        d / "cands.csv",
        "--k",
        2,
        "--rationale",
        "--rationale-model",
        "tiny",
        "--format",
        "json",
    )
    assert rc == 0, err
    items = json.loads(out)["results"][0]["items"]
    assert len(items) == 2 and all(
        i["rationale_source"] in ("lm", "template") and i["rationale"] for i in items
    )


@pytest.fixture(scope="module")
def scorer():
    return TopicScorer()


@pytest.fixture(scope="module")
def llm_data():
    return generate_synthetic(
        seed=3, n_candidates=4, n_jobs=2, narrative="llm", narrative_model="tiny", narrate=write_narratives
    )


def test_narrative_validators_catch_an_unlisted_skill_and_a_missing_topic(scorer, llm_data):
    d = llm_data
    meta = d.meta["narratives"]
    assert meta["counts"]["statement"]["generated"] == 4 and meta["counts"]["description"]["generated"] == 2
    thr = calibrate_threshold(scorer, TOPICS)["threshold"]
    vocab = sorted(
        {s for c in d.candidates for s in c.skills} | {s for j in d.jobs for s in j.required_skills}
    )
    c, topics = d.candidates[0], d.meta["candidate_topics"][0]
    good = f"I want to work on {TOPIC_BRIEFS[topics[0]]}. I am also drawn to {TOPIC_BRIEFS[topics[1]]}. I have used {c.skills[0]} in class."
    briefs = [TOPIC_BRIEFS[t] for t in topics]
    assert check_narrative(good, c.skills, vocab, scorer.similarities(good, briefs), thr, (10, 120)) == []
    other = next(s for s in vocab if s not in c.skills)
    bad = good + f" I also know {other}."
    assert check_narrative(bad, c.skills, vocab, scorer.similarities(bad, briefs), thr, (10, 120)) == [
        f"unlisted skill: {other}"
    ]
    one = f"I want to work on {TOPIC_BRIEFS[topics[0]]}. I have used {c.skills[0]} in class."
    r = check_narrative(one, c.skills, vocab, scorer.similarities(one, briefs), thr, (10, 120))
    assert len(r) == 1 and r[0].startswith("missing topic 2")


def test_the_card_of_an_llm_dataset_carries_the_validators_counts(tmp_path, llm_data):
    "An LLM-narrative dataset's card shows the validators' outcomes, the time and the lexical baselines; a template dataset's card does not."
    f = save_dataset(llm_data, tmp_path / "llm")
    write_card(llm_data, f)
    md, card = (f / "CARD.md").read_text(), json.loads((f / "card.json").read_text())
    counts = llm_data.meta["narratives"]["counts"]
    assert card["narratives"]["counts"] == counts and "## LLM narratives (validators)" in md
    for kind, c in counts.items():
        assert (
            f"| {kind} | "
            + " | ".join(str(c[o]) for o in ("generated", "accepted", "repaired", "regenerated", "dropped"))
            + " |"
            in md
        )
    reasons = llm_data.meta["narratives"]["first_pass_reasons"]
    assert reasons and all(f"{k} {v}" in md for k, v in reasons.items())
    assert f"generation time: {llm_data.meta['narratives']['seconds']:.1f} s" in md and "weak evidence" in md
    lex = card["narratives"]["lexical"]  # seed 3 puts one of the four candidates in the test split
    assert lex["n_candidates"] == 1 and {"bm25", "tfidf"} <= set(lex["baselines"]) and "| bm25 | " in md
    before = f.joinpath("CARD.md").read_bytes()
    f.joinpath("CARD.md").write_text("")
    rewrite_card(f)
    assert f.joinpath("CARD.md").read_bytes() == before  # from the folder's files, texts not regenerated
    template = generate_synthetic(seed=3, n_candidates=4, n_jobs=2)
    t = write_card(template, save_dataset(template, tmp_path / "template")).parent
    assert "LLM narratives" not in (t / "CARD.md").read_text() and "narratives" not in json.loads(
        (t / "card.json").read_text()
    )


@pytest.mark.slow
def test_smollm2_narratives_pass_the_validators(scorer):
    "SmolLM2 writes a small dataset; every text it kept passes the validators again."
    d = generate_synthetic(seed=3, n_candidates=4, n_jobs=2, narrative="llm", narrate=write_narratives)
    m = d.meta["narratives"]
    thr = m["topic_threshold"]["threshold"]
    vocab = sorted(
        {s for c in d.candidates for s in c.skills} | {s for j in d.jobs for s in j.required_skills}
    )
    for c, t in zip(d.candidates, d.meta["candidate_topics"]):
        if c.statement.startswith("My research interests are"):
            continue  # dropped: the template kept
        assert (
            check_narrative(
                c.statement,
                c.skills,
                vocab,
                scorer.similarities(c.statement, [TOPIC_BRIEFS[x] for x in t]),
                thr,
                (15, 110),
            )
            == []
        )
    # the validators catch what was injected into a text SmolLM2 wrote: an unlisted skill, a topic it does not express
    kept = [
        (c, t)
        for c, t in zip(d.candidates, d.meta["candidate_topics"])
        if not c.statement.startswith("My research interests are")
    ]
    assert kept, "SmolLM2 kept no statement"
    c, t = kept[0]
    other = next(s for s in vocab if s not in c.skills)
    assert f"unlisted skill: {other}" in check_narrative(
        c.statement + f" I also know {other}.", c.skills, vocab, [], thr, (15, 130)
    )
    foreign = [i for i in range(len(TOPIC_BRIEFS)) if i not in t]
    sims = scorer.similarities(c.statement, [TOPIC_BRIEFS[x] for x in foreign])
    r = check_narrative(c.statement, c.skills, vocab, [float(min(sims))], thr, (15, 110))
    assert r and r[0].startswith("missing topic 1")


def test_the_experts_report_reads_the_rationale_figures(tmp_path):
    "The experts template's rationale cell takes its figures from rationales.json, and says so when the file is absent."
    import pandas as pd
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    nb = json.loads((root / "experiments" / "templates" / "r06_experts.ipynb").read_text())
    cell = "".join(next(c for c in nb["cells"] if c.get("id") == "c008b")["source"])
    shown = []
    r = {
        "accepted_by_checker": 0.6,
        "zero_ungrounded_by_second_check": 0.3,
        "states_decisive_gap_lm": 0.2,
        "seconds_per_rationale": 2.5,
        "pairs": 40,
        "candidates": 4,
        "k": 10,
    }
    (tmp_path / "r.json").write_text(json.dumps(r))
    for path in (tmp_path / "r.json", tmp_path / "absent.json"):
        ns = {
            "json": json,
            "Path": Path,
            "pd": pd,
            "Markdown": str,
            "display": shown.append,
            "rationales_json": str(path),
        }
        exec(cell, ns)
        if path.name == "r.json":
            assert (
                ns["rat"]["accepted_share"] == 0.6
                and ns["rat"]["zero_ungrounded_share"] == 0.3
                and ns["rat"]["n_pairs"] == 40
            )
            assert ns["rat"]["states_decisive_gap_share"] == 0.2
            assert (
                ns["rat"]["command"] == "python reports/rationales/measure.py RUN_DIR 4 10"
                and "2.5" in shown[-1]
            )
        else:
            assert ns["rat"] is None and "not found" in shown[-1]
    final = "".join(next(c for c in nb["cells"] if c.get("id") == "c009")["source"])
    assert '"rationales": rat' in final
