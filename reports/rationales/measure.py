"Rationale faithfulness on recommended pairs of the embedded test candidates: python reports/rationales/measure.py RUN_DIR [N_CANDIDATES] [K]"
import json, sys, time
import numpy as np
from jobrec.data import load_embedded
from jobrec.recommend import Recommender
from jobrec.rationale import add_rationales, exact_check, all_skills

run, n, k = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 20, int(sys.argv[3]) if len(sys.argv) > 3 else 10
data = load_embedded(); test = [data.candidates[i] for i in np.flatnonzero(np.asarray(data.split) == "test")][:n]
rec = Recommender.load(run)
tables = rec.recommend(test, data.jobs, k=k, tau=0.5)
info = add_rationales(tables, "smollm2"); sk = all_skills()
rows = [(r, t.attrs) for t in tables for r in t.to_dict("records")]
acc = [(r, a) for r, a in rows if r["rationale_source"] == "lm"]
faithful = [r for r, a in acc if not exact_check(r["rationale"], r, {"tau": a["tau"], "lambda": a["lambda"]}, sk)]
from collections import Counter
reasons = Counter(x.split(":")[0] for r, _ in rows for x in r["rationale_rejected"])
out = {"run": "runs/default (trained, copied read-only)", "pairs": len(rows), "candidates": len(tables), "k": k, "tau": 0.5, "model": "smollm2 (SmolLM2-135M-Instruct, CPU, greedy)",
       "accepted_by_checker": round(len(acc) / len(rows), 4), "accepted_faithful_by_exact_check": round(len(faithful) / max(len(acc), 1), 4),
       "seconds_per_rationale": round(info["seconds"] / len(rows), 3), "seconds": info["seconds"], "rejection_reasons": dict(reasons),
       "examples": {"accepted": [r["rationale"] for r, _ in acc[:3]], "rejected": [{"text_used": r["rationale"], "reasons": r["rationale_rejected"]} for r, _ in rows if r["rationale_source"] == "template"][:3]},
       "note": "measured on a shared 2-core CPU under heavy load (load average > 10): the time is an upper bound"}
json.dump(out, open("reports/rationales/rationales.json", "w"), indent=2); print(json.dumps(out, indent=2))
