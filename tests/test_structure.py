"The package's structure: notebooks import only from lower-numbered ones, no import circle, no module uses another's private names."

import ast, json, re, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
LIB = ROOT / "jobrec"


def _modules() -> dict:
    "module name -> (path, source notebook stem) of every generated jobrec module."
    out = {}
    for p in sorted(LIB.glob("*.py")):
        m = re.search(r"File to edit: \.\./nbs/(\w+)\.ipynb", p.read_text())
        if m:
            out[p.stem] = (p, m.group(1))
    return out


MODULES = _modules()


def _imports(path) -> list[tuple[str, list[str], int]]:
    "(jobrec module, imported names, line) of every import of a jobrec module in `path`, at module level or inside functions."
    out = []
    for n in ast.walk(ast.parse(path.read_text())):
        if isinstance(n, ast.ImportFrom) and (n.level == 1 or (n.module or "").startswith("jobrec.")):
            out.append(((n.module or "").split(".")[-1], [a.name for a in n.names], n.lineno))
        elif isinstance(n, ast.Import):
            out += [(a.name.split(".")[1], [], n.lineno) for a in n.names if a.name.startswith("jobrec.")]
    return out


def _graph() -> dict:
    return {m: {t for t, _, _ in _imports(p) if t in MODULES and t != m} for m, (p, _) in MODULES.items()}


def test_every_module_found():
    assert {
        "core",
        "schema",
        "data",
        "metrics",
        "experts",
        "calibration",
        "training",
        "fusion",
        "card",
        "recommend",
        "cli",
    } <= set(MODULES)


# none: the dataset card, which reads the metrics, the baselines and the narratives, is jobrec.card (nbs/07b_card)
KNOWN_UPWARD = set()


def test_notebooks_import_only_lower_numbered():
    "A module imports (even lazily, inside a function) only modules whose notebook sorts before its own."
    up = {(m, t) for m, (_, nb) in MODULES.items() for t in _graph()[m] if MODULES[t][1] >= nb}
    assert up - KNOWN_UPWARD == set(), sorted(up - KNOWN_UPWARD)
    assert KNOWN_UPWARD <= up, (
        f"{sorted(KNOWN_UPWARD - up)} no longer import upwards: remove them from KNOWN_UPWARD"
    )


def test_import_graph_acyclic():
    g, state = _graph(), {}

    def visit(m, path):
        if state.get(m) == "done":
            return
        assert state.get(m) != "open", f"import circle: {' -> '.join(path + [m])}"
        state[m] = "open"
        for t in sorted(g[m]):
            visit(t, path + [m])
        state[m] = "done"

    for m in g:
        visit(m, [])


@pytest.mark.parametrize("mod", sorted(MODULES))
def test_import_in_fresh_process_loads_only_lower_modules(mod):
    "Importing a module and calling nothing loads no jobrec module of a higher notebook (in particular not jobrec.cli)."
    code = f"import sys, json, jobrec.{mod}; print(json.dumps(sorted(m.split('.')[1] for m in sys.modules if m.startswith('jobrec.') and m.count('.') == 1)))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    loaded = [m for m in json.loads(r.stdout.strip().splitlines()[-1]) if m in MODULES]
    assert mod in loaded
    above = [m for m in loaded if MODULES[m][1] > MODULES[mod][1]]
    assert not above, f"importing jobrec.{mod} loaded {above}"
    if mod != "cli":
        assert "cli" not in loaded


def _defined(path) -> set:
    "Names a module defines: functions, classes, module-level and attribute assignments."
    out = set()
    for n in ast.walk(ast.parse(path.read_text())):
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.add(n.name)
        elif isinstance(n, ast.Attribute) and isinstance(n.ctx, ast.Store):
            out.add(n.attr)
        elif isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store):
            out.add(n.id)
    return out


def test_no_module_uses_another_modules_private_names():
    "No `from jobrec.x import _name`, and no `obj._name` where `_name` is defined by another jobrec module only."
    defined = {m: _defined(p) for m, (p, _) in MODULES.items()}
    bad = []
    for m, (p, _) in MODULES.items():
        bad += [
            f"{m}:{line} imports {t}.{n}"
            for t, names, line in _imports(p)
            for n in names
            if n.startswith("_") and not n.startswith("__")
        ]
        others = set().union(*(d for k, d in defined.items() if k != m)) - defined[m]
        for n in ast.walk(ast.parse(p.read_text())):
            if (
                isinstance(n, ast.Attribute)
                and n.attr.startswith("_")
                and not n.attr.startswith("__")
                and n.attr in others
            ):
                bad.append(f"{m}:{n.lineno} uses {ast.unparse(n)}")
    assert not bad, bad


def test_private_name_check_catches_a_violation(tmp_path):
    "The checks above read real imports: a module importing a private name is seen."
    p = tmp_path / "x.py"
    p.write_text("def f():\n    from jobrec.experts import _adapter_of\n    from .core import get_logger\n")
    assert _imports(p) == [("experts", ["_adapter_of"], 2), ("core", ["get_logger"], 3)]


def test_no_test_skips_a_missing_requirement():
    "A missing test dependency makes `make test` fail: no import-or-skip call in the suite (optional environments use explicit skips with a reason)."
    words = (
        "import" + "orskip",
        "skipif(not " + "has_module",
    )  # optional modules: @pytest.mark.needs (fails under `make test`)
    bad = [
        f"{p.name}:{i}"
        for p in sorted((ROOT / "tests").glob("*.py"))
        for i, l in enumerate(p.read_text().splitlines(), 1)
        if any(w in l for w in words)
    ]
    assert not bad, bad


# A cell teaches one concept. Its size is counted in statements (every `ast.stmt`, nested ones included), which neither
# line wrapping nor `;` changes, and its breadth in the public names it defines at top level (a function with its variants,
# a save/load pair, a class), which no layout changes either.
MAX_CELL_STATEMENTS = 60
MAX_CELL_PUBLIC_NAMES = 4


def _exported_cells():
    "(notebook, cell id, source) of every exported code cell."
    for nb in sorted((ROOT / "nbs").glob("*.ipynb")):
        for c in json.loads(nb.read_text())["cells"]:
            src = "".join(c["source"])
            if c["cell_type"] == "code" and any(
                l.strip() in ("#| export", "#| exporti") for l in src.splitlines()
            ):
                yield f"nbs/{nb.name}", c.get("id"), src


def _statements(src: str) -> int:
    return sum(isinstance(n, ast.stmt) for n in ast.walk(ast.parse(src)))


def _public_names(src: str) -> list:
    "Public functions and classes a cell defines at top level."
    defs = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    return [n.name for n in ast.parse(src).body if isinstance(n, defs) and not n.name.startswith("_")]


def test_cell_measures_ignore_layout():
    packed, spread = (
        "def f(x): y = x; return y\nz = f(1); w = 2\n",
        "def f(x):\n    y = x\n    return y\n\n\nz = f(\n    1\n)\nw = 2\n",
    )
    assert _statements(packed) == _statements(spread) == 5
    assert _public_names("def f(): pass\ndef _g(): pass\nclass C: pass\n") == ["f", "C"]


# each is one concept all the same; splitting it is the way off this list
KNOWN_LARGE = {
    ("nbs/05_experts.ipynb", "c025"): "ExpertSystem: the constructor reading the expert settings",
    ("nbs/10_recommend.ipynb", "c005"): "the entity file format, read and written with its column checks",
}
KNOWN_BROAD = {
    ("nbs/00_core.ipynb", "c019b"): "the error hierarchy: four exception classes and the value they show",
    (
        "nbs/04b_distributed.ipynb",
        "c005",
    ): "the process group's lifecycle: seven one-line accessors of one world",
    ("nbs/10b_rationale.ipynb", "c017"): "the rationale pipeline: prompt, decisions, write, add, print",
}


def _check_known(found: dict, known: dict, what: str):
    assert set(known) <= set(found), (
        f"{sorted(set(known) - set(found))} are no longer {what}: remove them from the list"
    )
    bad = {k: v for k, v in found.items() if k not in known}
    assert not bad, f"exported cells {what} (split them): " + ", ".join(
        f"{nb} {cid} ({v})" for (nb, cid), v in sorted(bad.items())
    )


def test_no_exported_cell_over_60_statements():
    "No exported code cell holds over 60 statements, but the known ones."
    found = {(nb, cid): _statements(src) for nb, cid, src in _exported_cells()}
    _check_known(
        {k: n for k, n in found.items() if n > MAX_CELL_STATEMENTS},
        KNOWN_LARGE,
        f"over {MAX_CELL_STATEMENTS} statements",
    )


def test_no_exported_cell_defines_over_4_public_names():
    "No exported code cell defines over 4 public functions or classes at top level, but the known ones."
    found = {(nb, cid): _public_names(src) for nb, cid, src in _exported_cells()}
    broad = {k: ", ".join(v) for k, v in found.items() if len(v) > MAX_CELL_PUBLIC_NAMES}
    _check_known(broad, KNOWN_BROAD, f"defining over {MAX_CELL_PUBLIC_NAMES} public names")


def _own_bases(tree) -> dict:
    "class name -> its bases that are classes of the same module."
    own = {n.name for n in tree.body if isinstance(n, ast.ClassDef)}
    return {
        n.name: [b.id for b in n.bases if isinstance(b, ast.Name) and b.id in own]
        for n in ast.walk(tree)
        if isinstance(n, ast.ClassDef)
    }


def test_no_class_is_a_stack_of_mixins():
    "Classes are composed, or grown method by method with `@patch`: none inherits from over two classes of its own module."
    stacks = {
        f"{m}.{c}": b
        for m, (p, _) in MODULES.items()
        for c, b in _own_bases(ast.parse(p.read_text())).items()
        if len(b) > 2
    }
    assert not stacks, stacks


def test_mixin_check_catches_a_stack():
    tree = ast.parse(
        "class _A: pass\nclass _B: pass\nclass _C: pass\nclass S(_A, _B, _C): pass\nclass T(dict): pass\n"
    )
    assert _own_bases(tree) == {"_A": [], "_B": [], "_C": [], "S": ["_A", "_B", "_C"], "T": []}


# modules over about 500 lines, each holding several concerns; the list may only shrink, and a new module stays under
MAX_MODULE_LINES = 550
KNOWN_LONG = {
    "backbones",
    "baselines",
    "bench",
    "cascade",
    "cli",
    "core",
    "data",
    "experts",
    "fusion",
    "metrics",
    "pipeline",
    "recommend",
    "released",
    "report",
    "schema",
    "training",
}


def test_no_new_long_module():
    long = {m for m, (p, _) in MODULES.items() if len(p.read_text().splitlines()) > MAX_MODULE_LINES}
    assert long <= KNOWN_LONG, (
        f"modules over {MAX_MODULE_LINES} lines (split by concern): {sorted(long - KNOWN_LONG)}"
    )
    assert KNOWN_LONG <= long, (
        f"{sorted(KNOWN_LONG - long)} are no longer over {MAX_MODULE_LINES} lines: remove them from KNOWN_LONG"
    )


def _is_exported(src: str) -> bool:
    return any(l.strip() in ("#| export", "#| exporti") for l in src.splitlines())


def _unshown(nb: Path) -> list:
    "(notebook, cell id, name) of each public name an exported cell defines that neither of the next two code cells uses."
    cells = [c for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code"]
    out = []
    for i, c in enumerate(cells):
        src = "".join(c["source"])
        if not _is_exported(src):
            continue
        shown = "\n".join(
            s for s in ("".join(d["source"]) for d in cells[i + 1 : i + 3]) if not _is_exported(s)
        )
        out += [
            (f"nbs/{nb.name}", c.get("id"), n)
            for n in _public_names(src)
            if not re.search(r"\b" + re.escape(n) + r"\b", shown)
        ]
    return out


# the notebooks a newcomer reads to learn the experts, their training, the experiment and the recommender
SHOWN_NOTEBOOKS = ("05_experts", "05b_training", "08_pipeline", "10_recommend")
# definitions not yet followed by their example; the list may only shrink
KNOWN_UNSHOWN = {
    ("nbs/08_pipeline.ipynb", "c006", "load_data"),
    ("nbs/08_pipeline.ipynb", "c010", "evaluate_systems"),
    ("nbs/08_pipeline.ipynb", "c018", "save_served_fusion"),
    ("nbs/08_pipeline.ipynb", "c018", "train_run"),
    ("nbs/08_pipeline.ipynb", "c018g", "warm_systems"),
    ("nbs/08_pipeline.ipynb", "c018h", "warm_summary"),
    ("nbs/08_pipeline.ipynb", "c018c", "run_experiment"),
    ("nbs/08_pipeline.ipynb", "c020", "unchanged_sides"),
    ("nbs/08_pipeline.ipynb", "c020", "compute_columns"),
    ("nbs/08_pipeline.ipynb", "c020b", "run_ablations"),
    ("nbs/08_pipeline.ipynb", "c020b", "headline"),
    ("nbs/08_pipeline.ipynb", "c020h", "holm_verdicts"),
    ("nbs/08_pipeline.ipynb", "c022", "Run"),
    ("nbs/08_pipeline.ipynb", "c022", "load_run"),
    ("nbs/08_pipeline.ipynb", "c022r", "qualification_auc"),
    ("nbs/10_recommend.ipynb", "c020f1", "JobRanking"),
    ("nbs/10_recommend.ipynb", "c028f", "cascade_command"),
}


def test_every_definition_is_shown_working_within_two_cells():
    "Each public function or class of these notebooks is used by one of the next two code cells, an example or a test."
    found = {u for nb in SHOWN_NOTEBOOKS for u in _unshown(ROOT / "nbs" / f"{nb}.ipynb")}
    assert found <= KNOWN_UNSHOWN, (
        f"defined without an example in the next two code cells: {sorted(found - KNOWN_UNSHOWN)}"
    )
    assert KNOWN_UNSHOWN <= found, (
        f"{sorted(KNOWN_UNSHOWN - found)} are shown now: remove them from KNOWN_UNSHOWN"
    )


def test_unshown_check_catches_a_bare_definition(tmp_path):
    cell = lambda s: {"cell_type": "code", "id": s[:4], "source": [s]}
    nb = tmp_path / "x.ipynb"
    nb.write_text(
        json.dumps(
            {
                "cells": [
                    cell("#| export\ndef shown(): pass"),
                    cell("shown()"),
                    cell("#| export\ndef bare(): pass"),
                ]
            }
        )
    )
    assert _unshown(nb) == [("nbs/x.ipynb", "#| e", "bare")]


# one home per measure: the arithmetic of each measure, and the identity calibration, written once in the package
RIVALS = {
    "NDCG discount": (r"np\.log2\(", {"metrics"}),
    "AUC": (r"\brankdata\b|\broc_auc_score\b|\bdef roc_auc\(|n1 \* \(n1 \+ 1\)", {"metrics"}),
    "violation": (r"max\(0(\.0)?, *tau\b|np\.maximum\(0(\.0)?, *tau\b", {"metrics"}),
    "controllability error": (r"abs\([^()]* - *(tau|t)\)|abs\(tau - ", {"metrics"}),
    "identity calibration": (r"[\"']a[\"']: *1(\.0)?, *[\"']b[\"']: *0(\.0)?", {"calibration"}),
    "shared helpers": (r"^def (to_host|cfg_get|split_mask)\(", {"core"}),
}


def _homes(pattern: str, sources: dict) -> dict:
    "module -> number of lines of its source matching `pattern`."
    rx = re.compile(pattern)
    code = lambda l: l.split("  # ")[0].split(" # ")[0]  # the arithmetic, not the comments that name it
    out = {m: sum(bool(rx.search(code(l))) for l in s.splitlines()) for m, s in sources.items()}
    return {m: n for m, n in out.items() if n}


@pytest.mark.parametrize("measure", sorted(RIVALS))
def test_one_home_per_measure(measure):
    "A measure is computed in one module, once: a second implementation (another tie rule, another identity map) is a rival."
    pattern, home = RIVALS[measure]
    found = _homes(pattern, {m: p.read_text() for m, (p, _) in MODULES.items()})
    assert set(found) == home, (
        f"{measure} computed in {sorted(found)}, its home is {sorted(home)}: import it from there"
    )
    assert sum(found.values()) == (3 if measure == "shared helpers" else 1), found


def test_rival_check_catches_a_second_ndcg():
    "The check reads the arithmetic: a tie-naive NDCG written in another module is seen."
    rival = {
        "data": "disc = 1 / np.log2(np.arange(2, k + 2))",
        "metrics": "return 1.0 / np.log2(np.arange(2, n + 2))",
    }
    assert _homes(RIVALS["NDCG discount"][0], rival) == {"data": 1, "metrics": 1}
    assert _homes(RIVALS["identity calibration"][0], {"recommend": 'cal.get("q", {"a": 1.0, "b": 0.0})'}) == {
        "recommend": 1
    }
    assert _homes(RIVALS["violation"][0], {"fusion": 'row["violation"] = max(0.0, tau - achieved)'}) == {
        "fusion": 1
    }


def test_defaults_live_in_yaml_only():
    "A default the YAML documents is not written again as a literal default in the code that reads it."
    import yaml

    r = yaml.safe_load((LIB / "conf" / "defaults.yaml").read_text())["retrieval"]
    code = {m: MODULES[m][0].read_text() for m in ("cli", "cascade", "recommend")}
    for key, arg in (("bench_cascade_steps", "steps"), ("bench_cascade_jobs", "n_jobs")):
        rx = re.compile(rf"\b{arg}(:int)? *= *{r[key]}\b|default={r[key]}\b")
        bad = [f"{m}:{i}" for m, s in code.items() for i, l in enumerate(s.splitlines(), 1) if rx.search(l)]
        assert not bad, f"retrieval.{key} ({r[key]}) repeated as a default at {bad}"


def test_one_test_kit():
    "The tests share one small model (TINY, tiny_cfg) and one in-process CLI runner (run_cli), defined in tests/conftest.py."
    rx = re.compile(r"^(def run_cli\(|def tiny_cfg\(|TINY *=|def cli\()", re.M)
    where = {p.name: rx.findall(p.read_text()) for p in sorted((ROOT / "tests").glob("*.py"))}
    where = {k: v for k, v in where.items() if v}
    assert where == {"conftest.py": ["TINY =", "def tiny_cfg(", "def run_cli("]}, where
