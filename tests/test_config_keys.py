"Every key of jobrec/conf/defaults.yaml is read by the code: a key nothing reads would be accepted, type-checked and ignored."

import json, re
from pathlib import Path
import yaml

ROOT = Path(__file__).resolve().parents[1]


def leaf_keys(d: dict, prefix: tuple = ()) -> list[tuple]:
    "Dotted paths (as tuples) of the leaves of a nested config dict."
    out = []
    for k, v in d.items():
        out += leaf_keys(v, prefix + (k,)) if isinstance(v, dict) and v else [prefix + (k,)]
    return out


def sources() -> dict:
    "name -> code of every jobrec module and every report template (the code that reads a resolved config)."
    out = {p.name: p.read_text() for p in sorted((ROOT / "jobrec").glob("*.py")) if p.name != "_modidx.py"}
    for p in sorted((ROOT / "experiments" / "templates").glob("*.ipynb")):
        out[p.name] = "\n".join(
            "".join(c["source"]) for c in json.loads(p.read_text())["cells"] if c["cell_type"] == "code"
        )
    return out


def _lit(s):
    return rf"""['"]{re.escape(s)}['"]"""


def is_read(code: str, path: tuple) -> bool:
    """Whether `code` reads the key at `path`: by its dotted name (`g("train.lr")`), or by its last name
    (`["lr"]`, `.get("lr"`, `.lr`) in a module that also names its section (`"train"` or `.train`); a leaf of a
    section read whole by its dotted name (`g("schema.views")`) is read where its own name appears as a string."""
    *sec, k = path
    if re.search(_lit(".".join(path)), code):
        return True
    if sec and re.search(_lit(".".join(sec)), code) and len(sec) > 1 and re.search(_lit(k), code):
        return True
    if not re.search(rf"""\[\s*['"]{k}['"]\s*\]|\.get\(\s*['"]{k}['"]|\.{k}\b""", code):
        return False
    return not sec or bool(re.search(rf"{_lit(sec[-1])}|\.{sec[-1]}\b", code))


def unread_keys(defaults: dict, code: dict) -> list[str]:
    return [".".join(p) for p in leaf_keys(defaults) if not any(is_read(c, p) for c in code.values())]


DEFAULTS = yaml.safe_load((ROOT / "jobrec" / "conf" / "defaults.yaml").read_text())


def test_every_default_key_is_read():
    assert unread_keys(DEFAULTS, sources()) == []


def test_an_unread_key_is_caught():
    "The check can fail: a key added to the defaults that no code reads is reported, and so is a real key once its reader is gone."
    d = yaml.safe_load((ROOT / "jobrec" / "conf" / "defaults.yaml").read_text())
    d["train"]["never_read_anywhere"] = 1
    d["eval"]["also_unread"] = [1, 2]
    assert unread_keys(d, sources()) == unread_keys(DEFAULTS, sources()) + [
        "train.never_read_anywhere",
        "eval.also_unread",
    ]
    code = sources()
    code["fusion.py"] = code["fusion.py"].replace("fixed_weight", "renamed")
    assert "fusion.fixed_weight" in unread_keys(DEFAULTS, code)


def test_leaf_keys_walks_nested_sections():
    assert leaf_keys({"a": 1, "b": {"c": {"d": 2}, "e": {}}}) == [("a",), ("b", "c", "d"), ("b", "e")]


# --- the keys once accepted and ignored now act ----------------------------------------------------------


def _synthetic(**over):
    from jobrec.core import load_config

    d = {"data": {"source": "synthetic", "synthetic": {"n_candidates": 40, "n_jobs": 10}}}
    for k, v in over.items():
        sec, key = k.split("__")
        d.setdefault(sec, {})[key] = v
    return load_config(experiment=d)


def test_pipeline_data_follows_data_split():
    from jobrec.pipeline import load_data

    counts = lambda cfg: sorted((s, int((load_data(cfg).split == s).sum())) for s in ("train", "val", "test"))
    assert counts(_synthetic(data__split=[0.5, 0.25, 0.25])) == [("test", 10), ("train", 20), ("val", 10)]
    assert counts(_synthetic()) == [("test", 6), ("train", 28), ("val", 6)]


def test_paired_tests_follow_the_eval_section():
    import numpy as np
    from jobrec.pipeline import evaluate_systems, load_data

    cfg = _synthetic(eval__bootstrap=50, eval__protocols=["full"])
    data = load_data(cfg)
    test = np.flatnonzero(data.split == "test")
    rng = np.random.default_rng(0)
    sc = lambda: {"cand": rng.normal(size=(len(test), 10)), "emp": rng.normal(size=(len(test), 10))}
    systems = {"jobrec": sc(), "other": sc()}

    def paired(**over):
        c = _synthetic(
            eval__bootstrap=50, eval__protocols=["full"], **{f"eval__{k}": v for k, v in over.items()}
        )
        return evaluate_systems(systems, data, test, c)[1]

    sf, wx, wide = paired(), paired(paired_test="wilcoxon"), paired(alpha=0.5)
    assert set(sf.method) == {"signflip"} and set(wx.method) == {"wilcoxon"}
    assert not np.allclose(sf.p, wx.p)
    w50, w95 = (
        wide.hi - wide.lo,
        sf.hi - sf.lo,
    )  # a 50% interval is narrower than the 95% one (equal where degenerate)
    assert (w50 <= w95 + 1e-12).all() and (w50 < w95).mean() > 0.5
    main = evaluate_systems(
        systems, data, test, _synthetic(eval__bootstrap=50, eval__protocols=["full"], eval__alpha=0.5)
    )[0]
    main95 = evaluate_systems(systems, data, test, cfg)[0]
    assert ((main.hi - main.lo) <= (main95.hi - main95.lo)).all() and (
        (main.hi - main.lo) < (main95.hi - main95.lo)
    ).any()


def test_jobrec_data_reads_every_synthetic_key(tmp_path):
    import json
    from jobrec.cli import main

    args = [
        "data",
        "--out",
        str(tmp_path / "d"),
        "--catalogue",
        "none",
        "--set",
        "data.synthetic.n_candidates=30",
        "--set",
        "data.synthetic.n_jobs=8",
        "--set",
        "data.synthetic.noise=0.9",
        "--set",
        "data.split=[0.6, 0.2, 0.2]",
    ]
    assert main(args) == 0
    meta = json.loads((tmp_path / "d" / "meta.json").read_text())
    assert (
        meta["config"]["noise"] == 0.9
        and meta["config"]["n_candidates"] == 30
        and meta["split_shares"] == [0.6, 0.2, 0.2]
    )
