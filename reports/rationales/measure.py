"""Rationales on recommended pairs of the embedded test candidates, judged by the checker and by a second, independent check.

    python reports/rationales/measure.py RUN_DIR [N_CANDIDATES] [K] [--tau T] [--model smollm2] [--out reports/rationales]

Writes OUT/rationales.json and OUT/README.md (figures and 20 examples with their facts)."""
import argparse, json, time
from collections import Counter
from pathlib import Path

import numpy as np

from jobrec.data import load_embedded
from jobrec.narratives import load_lm
from jobrec.recommend import Recommender
from jobrec.rationale import (all_skills, decisive_gap, rationale_facts, states_gap, words_outside_input, write_rationales,
                              rationale_decisions, LOW_QUAL)


def parse():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run"); ap.add_argument("candidates", nargs="?", type=int, default=20); ap.add_argument("k", nargs="?", type=int, default=10)
    ap.add_argument("--tau", type=float, default=None, help="default: the middle of the run's validated range at k (none: by preference)")
    ap.add_argument("--model", default="smollm2"); ap.add_argument("--out", default="reports/rationales")
    ap.add_argument("--examples", type=int, default=20)
    return ap.parse_args()


def serve(a):
    "The recommended pairs: the first N embedded test candidates, top K each."
    data = load_embedded()
    test = [data.candidates[i] for i in np.flatnonzero(np.asarray(data.split) == "test")][:a.candidates]
    rec = Recommender.load(a.run)
    tau = a.tau
    if tau is None and rec.served is not None:
        r = rec.fusion_model().validated_range(k=a.k)
        tau = None if r is None else (r[0] + r[1]) / 2
    return rec.recommend(test, data.jobs, k=a.k, tau=tau), tau


def judge(tables, model):
    "Every pair's language-model text, the checker's verdict, the second check and the decisive gap; seconds per table."
    lm, skills, out, secs = load_lm(model), all_skills(), [], 0.0
    for t in tables:
        rows, dec = t.to_dict("records"), rationale_decisions(t)
        t0 = time.perf_counter(); w = write_rationales(rows, dec, lm, skills); secs += time.perf_counter() - t0
        for r, d, x in zip(rows, dec, w):
            gap = decisive_gap(r)
            out.append({"candidate": t.attrs["candidate_id"], "job": r["job_id"], "rank": r["rank"], "facts": rationale_facts(r, d),
                        "lm": x["lm"], "checker": x["rejected"], "accepted": x["source"] == "lm",
                        "outside_input": words_outside_input(x["lm"], x["prompt"]), "decisive_gap": None if gap is None else gap["name"],
                        "lm_states_gap": states_gap(x["lm"], r), "shown_states_gap": states_gap(x["rationale"], r),
                        "shown": x["source"], "shown_text": x["rationale"]})
    return out, secs


def share(xs): return round(float(np.mean(xs)), 4) if len(xs) else None


def figures(pairs, secs, a, tau):
    gap = [p for p in pairs if p["decisive_gap"] is not None]
    acc = [p for p in pairs if p["accepted"]]
    reasons = Counter(x.split(":")[0] for p in pairs for x in p["checker"])
    step = max(1, len(pairs) // max(a.examples, 1))
    return {"run": str(a.run), "pairs": len(pairs), "candidates": a.candidates, "k": a.k, "tau": tau,
            "model": f"{a.model} (greedy, CPU)", "low_estimate_below": LOW_QUAL,
            "accepted_by_checker": share([p["accepted"] for p in pairs]),
            "zero_ungrounded_by_second_check": share([not p["outside_input"] for p in pairs]),
            "zero_ungrounded_of_accepted": share([not p["outside_input"] for p in acc]),
            "pairs_with_decisive_gap": len(gap),
            "states_decisive_gap_lm": share([p["lm_states_gap"] for p in gap]),
            "states_decisive_gap_shown": share([p["shown_states_gap"] for p in gap]),
            "seconds_per_rationale": round(secs / max(len(pairs), 1), 3), "seconds": round(secs, 1),
            "rejection_reasons": dict(reasons.most_common()),
            "examples": pairs[::step][:a.examples]}


def pct(x): return "n/a" if x is None else f"{100 * x:.1f}%"


def readme(f):
    served = "by preference" if f["tau"] is None else f"at tau {f['tau']:.3f}"
    lines = [
        "# Rationales a user can trust (`recommend --rationale`)", "",
        f"Written by `python reports/rationales/measure.py {f['run']} {f['candidates']} {f['k']}`: the first {f['candidates']} embedded "
        f"test candidates, top {f['k']} jobs each "
        f"{served} ({f['pairs']} recommended pairs), rationales by {f['model']}.", "",
        "Two checks read every language-model text. The **checker** (`jobrec.rationale.check_rationale`) decides what is shown: it "
        "accepts a text only when every word is a connective, a word of the facts' vocabulary or a term of the pair's explanation, "
        "every sentence states a fact, skills and numbers are the explanation's, and every missed requirement and a low estimate "
        f"(calibrated p_Q below {f['low_estimate_below']}) are said; otherwise the fact-composed template is shown. The **second "
        "check** (`words_outside_input`) shares no code or word list with it: a text passes when none of its content words "
        "(scikit-learn's English stop words left out) is absent, up to a crude stem, from the prompt the model was given.", "",
        "| figure | value |", "|---|---|",
        f"| pairs | {f['pairs']} |",
        f"| language-model rationales accepted by the checker (shown) | {pct(f['accepted_by_checker'])} |",
        f"| language-model rationales with zero ungrounded content words (second check) | {pct(f['zero_ungrounded_by_second_check'])} |",
        f"| accepted rationales with zero ungrounded content words (second check) | {pct(f['zero_ungrounded_of_accepted'])} |",
        f"| pairs with a decisive gap (missed requirement, else low estimate) | {f['pairs_with_decisive_gap']} |",
        f"| language-model rationales stating the decisive gap | {pct(f['states_decisive_gap_lm'])} |",
        f"| shown rationales (language model or template) stating the decisive gap | {pct(f['states_decisive_gap_shown'])} |",
        f"| seconds per rationale (generation and checks) | {f['seconds_per_rationale']} |", "",
        "Checker's reasons (counts over all texts): " + ", ".join(f"{k} {v}" for k, v in f["rejection_reasons"].items()) + ".", "",
        f"## {len(f['examples'])} examples with their facts", ""]
    for i, e in enumerate(f["examples"], 1):
        lines += [f"### {i}. candidate {e['candidate']}, job {e['job']} (rank {e['rank']}), shown: {e['shown']}", "",
                  "Facts: " + "; ".join(e["facts"]) + ".", "", f"Language model: {e['lm']}", "",
                  "Checker: " + ("accepted" if e["accepted"] else "; ".join(e["checker"])), "",
                  "Second check, words outside the input: " + (", ".join(e["outside_input"]) or "none"), "",
                  f"Decisive gap: {e['decisive_gap'] or 'none'}" + ("" if e["decisive_gap"] is None else
                      f" (language model states it: {'yes' if e['lm_states_gap'] else 'no'})"), ""]
        if e["shown"] == "template": lines += [f"Shown instead: {e['shown_text']}", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    a = parse()
    tables, tau = serve(a)
    pairs, secs = judge(tables, a.model)
    f = figures(pairs, secs, a, tau)
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    (out/"rationales.json").write_text(json.dumps(f, indent=2) + "\n"); (out/"README.md").write_text(readme(f) + "\n")
    print(json.dumps({k: v for k, v in f.items() if k != "examples"}, indent=2))
