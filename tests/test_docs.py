"""README.md is rendered from nbs/index.ipynb, the results (reports/index.md) and the scaling page (docs/scaling.md) from the
committed reports with no typed figure, and `make docs` builds a site with every notebook, an API page per module and every
report figure."""

import importlib.util, json, re, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("jobrec_docs_tool", ROOT / "tools" / "docs.py")
docs = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = docs  # its functions pickle to the site's worker processes
_spec.loader.exec_module(docs)


def test_readme_is_rendered_from_index():
    "Edits go to nbs/index.ipynb: README.md is exactly what it renders to (`make readme`)."
    assert (ROOT / "README.md").read_text(encoding="utf-8") == docs.render_readme(), (
        "README.md differs from nbs/index.ipynb: edit the notebook, then `make readme`"
    )


def test_readme_render_keeps_code_and_drops_hidden_cells(tmp_path):
    cell = lambda t, s: {
        "cell_type": t,
        "metadata": {},
        "source": s,
        **({"outputs": [], "execution_count": None} if t == "code" else {}),
    }
    nb = {
        "cells": [
            cell("markdown", "# t\n\n> s"),
            cell("code", "x = 1"),
            cell("code", "#| hide\nassert x == 1"),
            cell("markdown", ["a\n", "b"]),
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    (tmp_path / "i.ipynb").write_text(json.dumps(nb))
    assert docs.render_readme(tmp_path / "i.ipynb") == "# t\n\n> s\n\n```python\nx = 1\n```\n\na\nb\n"


def test_index_is_not_a_module():
    src = "".join(
        "".join(c["source"]) for c in json.loads((ROOT / "nbs" / "index.ipynb").read_text())["cells"]
    )
    assert "default_exp" not in src and "#| export" not in src


def _check_site(out, res):
    pages = {Path(p).stem for p in res["notebooks"]}
    assert pages == {p.stem for p in (ROOT / "nbs").glob("*.ipynb")}
    for p in res["notebooks"]:
        assert "<html" in (out / p).read_text(encoding="utf-8")[:2000].lower(), p
    figs = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "reports").rglob("*.png"))
    assert figs and all((out / f).read_bytes() == (ROOT / f).read_bytes() for f in figs)
    # every report page shows its figures, and every image a page names is in the site
    for md in (ROOT / "reports").rglob("*.md"):
        page = out / "reports" / md.relative_to(ROOT / "reports").with_suffix(".html")
        srcs = re.findall(r'<img src="([^"]+)"', page.read_text(encoding="utf-8"))
        assert len(srcs) == len(re.findall(r"!\[", md.read_text(encoding="utf-8"))), page
        assert all((page.parent / s).exists() for s in srcs), page
    gallery = (out / "reports" / "figures.html").read_text(encoding="utf-8")
    assert all(f"reports/bench/{p.name}" in gallery for p in (ROOT / "reports" / "bench").glob("*.png"))
    index = (out / "index.html").read_text(encoding="utf-8")
    assert all(f'href="{p}"' in index for p in res["notebooks"] + res["api"] + res["docs"])
    assert "reports/index.html" in index
    assert {Path(p).stem for p in res["docs"]} == {p.stem for p in (ROOT / "docs").glob("*.md")}


def test_site_has_every_notebook_and_figure(tmp_path):
    "The site (notebooks unexecuted, as committed) has a page per notebook of nbs/ and every png of reports/."
    res = docs.build_site(tmp_path / "site", execute=False)
    _check_site(tmp_path / "site", res)


def test_one_api_page_per_module(tmp_path):
    "`make docs` renders an API page for every module nbdev exports, from the docments of what the module exports."
    from jobrec._modidx import d

    pages = docs.build_api(tmp_path)
    assert sorted(Path(p).stem for p in pages) == sorted(d["syms"])
    fusion = (tmp_path / "api" / "jobrec.fusion.html").read_text(encoding="utf-8")
    assert "FusionModel.apply" in fusion and "nbs/06_fusion.html" in fusion
    assert "# a config, its fusion section" in fusion  # a parameter's docment, as the notebook writes it
    for p in pages:
        assert (tmp_path / p).read_text(encoding="utf-8").count("<h3") >= 1, p


def test_site_notebooks_carry_their_outputs():
    "Executed for the site, a notebook keeps its outputs (slow/gpu cells are skipped as nbdev_test skips them)."
    name, nb, _ = docs._execute(str(ROOT / "nbs" / "index.ipynb"))
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert name == "index.ipynb" and all(c.execution_count for c in code)


@pytest.mark.slow
def test_site_executes_every_notebook(tmp_path):
    res = docs.build_site(tmp_path / "site", execute=True)
    _check_site(tmp_path / "site", res)
    print("seconds per notebook:", res["seconds"])


RESULTS, SCALING = ROOT / "tools" / "pages" / "reports_index.md", ROOT / "tools" / "pages" / "scaling.md"


def _results_section(text: str) -> str:
    "The results page's figures: from its top to the list of reports `jobrec reports` keeps (which quotes timings)."
    for end in (docs.LISTING, "<!-- reports: begin -->"):
        if end in text:
            return text[: text.index(end)]
    return text


# a figure: a number standing alone (not part of a name such as NDCG@10, SmolLM2, r08 or 06b_warm)
FIGURE = re.compile(r"(?<![\w@./\-])(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(?![\w@])")


def _metric_leaves(reports: Path) -> list:
    def walk(x):
        if isinstance(x, dict):
            for v in x.values():
                yield from walk(v)
        elif isinstance(x, list):
            for v in x:
                yield from walk(v)
        elif isinstance(x, (int, float)) and not isinstance(x, bool):
            yield abs(float(x))
        elif isinstance(x, str):  # a sentence a template writes (decoupling_words) quotes figures too
            for m in FIGURE.finditer(x):
                yield float(m.group(1).replace(",", "") + (m.group(2) or ""))

    return [
        v
        for p in sorted(reports.glob("*/metrics.json"))
        for v in walk(json.loads(p.read_text(encoding="utf-8")))
    ]


def untraced_figures(section: str, reports: Path) -> list[str]:
    "Each number of `section` that no figure of `reports/*/metrics.json` rounds to (at the precision it is printed with)."
    leaves, out = _metric_leaves(reports), []
    section = re.sub(r"^\|.*\n(?=\|---)", "", section, flags=re.M)  # a table's header row names its columns
    for m in FIGURE.finditer(section):
        x, d = float(m.group(1).replace(",", "") + (m.group(2) or "")), len(m.group(2) or ".") - 1
        if not any(abs(v - x) <= 0.5 * 10**-d + 1e-9 for v in leaves):
            out.append(m.group(0))
    return out


def typed_figures(text: str) -> list[str]:
    "The numbers a template types itself, outside its placeholders and code."
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    return [m.group(0) for m in FIGURE.finditer(re.sub(r"\{\{[^{}]+\}\}|`[^`]*`", "", text))]


# the report templates' metrics.json on a smoke experiment (tests/fixtures/reports/regenerate.py)
FIXTURE = ROOT / "tests" / "fixtures" / "reports"


def _not_run() -> set:
    "What the fixture's smoke run leaves out: cpu-small's other ablations, the RecBole models (their own environment)."
    from jobrec.core import load_config

    small, ran = load_config("cpu-small"), json.loads((FIXTURE / "ablations.json").read_text())["ran"]
    return {a for a in small.ablations if a not in ran} | set(small.baselines.recbole)


def template_writes(at: str) -> bool:
    """Whether the report templates write the key `at`, as their output for the fixture's smoke run shows: a system or
    ablation it did not run aside, and a value its small data leaves empty (a null figure, a list with no record)."""
    try:
        docs.lookup(at, FIXTURE)
    except docs.FigureError as e:
        if str(e).endswith(" is null"):
            return True
        m = re.search(r"no key '([^'/]+)", str(e))
        if m:
            return m.group(1) in _not_run()
        listed = re.match(r"([^\[]+)\[[^\]]*\]$", at.rsplit(".", 1)[0]) if "0 records" in str(e) else None
        return bool(listed) and docs.lookup(listed.group(1), FIXTURE) == []
    return True


def _figure_keys(template: Path) -> list:
    "Every key path a page's template reads: its figures', and each cell of its tables."
    import yaml

    spec = yaml.safe_load(docs.FIGURES.read_text(encoding="utf-8"))
    out = []
    for m in re.finditer(r"\{\{([^{}]+)\}\}", template.read_text(encoding="utf-8")):
        kind, _, name = m.group(1).strip().rpartition(":")
        if name == "reports_listing":
            continue
        if kind != "table":
            out.append(spec["figures"][name]["at"])
            continue
        t = spec["tables"][name]
        for r in t["rows"]:
            subst = {k: v for k, v in r.items() if k != "label"}
            for c in t["columns"]:
                out += [a.format(**subst) for a in (c["at"] if isinstance(c["at"], list) else [c["at"]])]
    return out


@pytest.mark.parametrize("page", sorted(docs.PAGES))
def test_pages_read_the_keys_the_report_templates_write(page):
    "Each key a rendered page reads is one the current report templates write: checked on their output for a smoke run."
    keys = _figure_keys(ROOT / docs.PAGES[page])
    assert len(keys) > 40 and [k for k in keys if not template_writes(k)] == []


def test_results_render_from_the_templates_output(tmp_path):
    """The results page rendered from the fixture (the rows and figures its smoke run leaves out or empty set aside):
    every number it shows is one of the templates' metrics."""
    import yaml

    spec = yaml.safe_load(docs.FIGURES.read_text(encoding="utf-8"))
    main = spec["tables"]["main"]
    main["rows"] = [r for r in main["rows"] if r["system"] not in _not_run()]
    text, left = RESULTS.read_text(encoding="utf-8"), []
    for name, f in spec["figures"].items():
        try:
            docs.lookup(f["at"], FIXTURE)
        except docs.FigureError:
            text = text.replace("{{" + name + "}}", "")
            left.append(name)
    (tmp_path / "figures.yaml").write_text(yaml.safe_dump(spec))
    (tmp_path / "page.md").write_text(text)
    page = _results_section(docs.render_page(tmp_path / "page.md", tmp_path / "figures.yaml", FIXTURE))
    assert len(left) < 20 and len(FIGURE.findall(page)) > 50
    assert untraced_figures(page, FIXTURE) == []


def test_template_writes_catches_a_wrong_key():
    assert template_writes("ablations:paired_vs_jobrec.shared_model/candidate.lo_holm")
    assert template_writes(
        "main_results:xdeepfm.candidate_ndcg@10"
    )  # RecBole: cpu-small runs it, the smoke run not
    assert not template_writes("ablations:paired_vs_jobrec.shared_model/candidate.lo_bonferroni")
    assert not template_writes("main_results:no_such_system.candidate_ndcg@10")
    assert not template_writes(
        "controllability:sweep[system=inference_global,tau=0.45].achieved"
    )  # a tau not swept


def rendered(page: str) -> str:
    """`page` rendered from the committed reports. Skipped, naming the key, only while the committed reports predate the
    keys the templates write; a key the templates do not write fails."""
    try:
        return docs.page_renderers()[page]()
    except docs.FigureError as e:
        m = re.search(r"figure '[^']*' \(([^()]+)\)", str(e))
        assert m and template_writes(m.group(1)), f"{page} reads a key the report templates do not write: {e}"
        pytest.skip(
            f"the committed reports/*/metrics.json predate the keys {page} reads ({e}): regenerate them "
            "(`make reports`), then `make readme`"
        )


@pytest.mark.parametrize("page", sorted(docs.PAGES))
def test_rendered_pages_match_their_templates(page):
    "Edits go to the template in tools/pages/: the committed page is what it renders to from the committed reports."
    text = rendered(page)
    assert (ROOT / page).read_text(encoding="utf-8") == text, (
        f"{page} differs from {docs.PAGES[page]}: `make readme`"
    )


def test_results_come_from_the_committed_metrics():
    "Every number of the results page is a figure of the committed reports/*/metrics.json."
    section = _results_section(rendered("reports/index.md"))
    assert len(FIGURE.findall(section)) > 50  # the table and the bullets are there
    assert untraced_figures(section, ROOT / "reports") == [], (
        "numbers in the results that no committed metric gives"
    )


def test_results_are_not_typed():
    "The results template has no number of its own: each is a {{figure}} read from the reports."
    text = _results_section(RESULTS.read_text(encoding="utf-8"))
    assert "{{table:main}}" in text and typed_figures(text) == [], (
        f"numbers typed into the results: {typed_figures(text)}"
    )


def _measured(text: str) -> list[str]:
    "The paragraphs of a page that quote measurements: those of its template with a placeholder."
    return [p for p in re.split(r"\n\s*\n", text) if "{{" in p]


def test_scaling_measurements_are_not_typed():
    "Every paragraph of the scaling template that quotes a measurement reads each number from the reports."
    paras = _measured(SCALING.read_text(encoding="utf-8"))
    assert len(paras) >= 5 and [typed_figures(p) for p in paras if typed_figures(p)] == []


def test_scaling_measurements_come_from_the_committed_metrics():
    page = rendered("docs/scaling.md")
    assert len(FIGURE.findall(page)) > 40 and "{{" not in page
    measured = [
        p
        for p in re.split(r"\n\s*\n", page)
        if "Measured by" in p or p.startswith("|") or "Median latency" in p
    ]
    assert len(measured) >= 4 and untraced_figures("\n\n".join(measured), ROOT / "reports") == []


def test_untraced_figures_are_found(tmp_path):
    "A typed number is caught, a rounded figure is not, and names with digits are not figures."
    (tmp_path / "main_results").mkdir()
    (tmp_path / "main_results" / "metrics.json").write_text(json.dumps({"a": {"b": 0.7789}, "t": [1307.6]}))
    (tmp_path / "controllability").mkdir()
    (tmp_path / "controllability" / "metrics.json").write_text(json.dumps({"w": "a 95% interval"}))
    section = (
        "## Results\n\nNDCG@10 0.779, SmolLM2 in `nbs/06b_warm`, 1,308 s; a lead of +0.033 and 0.78, at 95%.\n\n"
        "| M=50 |\n|---|\n| 0.78 |"
    )
    assert untraced_figures(section, tmp_path) == ["0.033"]


def _reports(tmp_path, metrics: dict) -> Path:
    rd = tmp_path / "reports"
    for name, m in metrics.items():
        (rd / name).mkdir(parents=True)
        (rd / name / "metrics.json").write_text(json.dumps(m))
    return rd


def test_readme_figures_render_from_metrics_and_fail_loudly(tmp_path):
    rd = _reports(
        tmp_path,
        {
            "main_results": {
                "jobrec": {"candidate_ndcg@10": 0.7789, "ahead": True},
                "spread": {"mean": 0.78, "sd": 0.0012},
                "sweep": [
                    {"system": "g", "tau": 0.5, "achieved": 0.51},
                    {"system": "g", "tau": 0.6, "achieved": 0.6},
                ],
            }
        },
    )
    figs = tmp_path / "figures.yaml"
    figs.write_text(
        "figures:\n  a: {at: 'main_results:jobrec.candidate_ndcg@10'}\n  s: {at: 'main_results:spread'}\n"
        "  t: {at: 'main_results:sweep[system=g,tau=0.5].achieved', fmt: '{:+.2f}'}\n"
        "  w: {at: 'main_results:jobrec.ahead', words: {true: 'ahead', false: 'not ahead'}}\n"
        "  gone: {at: 'main_results:jobrec.employer_ndcg@10'}\n"
        "tables:\n  m:\n    rows: [{label: jobrec, system: jobrec}]\n    columns: [{label: cand, at: 'main_results:{system}.candidate_ndcg@10'}]\n"
    )
    text = "{{a}} | {{s}} | {{t}} | {{w}}\n\n{{table:m}}"
    assert (
        docs.render_figures(text, figs, rd)
        == "0.779 | 0.780 ± 0.001 | +0.51 | ahead\n\n|  | cand |\n|---|---|\n| jobrec | 0.779 |"
    )
    with pytest.raises(
        docs.FigureError,
        match=r"figure 'gone' \(main_results:jobrec.employer_ndcg@10\): .*no key 'employer_ndcg@10'",
    ):
        docs.render_figures("x {{gone}}", figs, rd)
    with pytest.raises(docs.FigureError, match="not in figures.yaml"):
        docs.render_figures("{{typo}}", figs, rd)
    with pytest.raises(docs.FigureError, match="does not exist"):
        docs.render_figures("{{a}}", figs, tmp_path / "none")


def test_tables_substitute_row_values_and_join_figures(tmp_path):
    "A row's values fill its columns' keys; a column of two keys prints 'a / b'."
    rd = _reports(
        tmp_path,
        {
            "efficiency": {
                "recall": [
                    {"q": "cos", "tau": 0.8, "r": {"50": 0.52}},
                    {"q": "cos", "tau": None, "r": {"50": 0.71}},
                ]
            }
        },
    )
    figs = tmp_path / "figures.yaml"
    figs.write_text(
        "tables:\n  t:\n    corner: M\n    rows: [{label: cosine, q: cos}]\n    columns:\n"
        "      - {label: '50', fmt: '{:.1f}', at: ['efficiency:recall[q={q},tau=0.8].r.50', 'efficiency:recall[q={q},tau=None].r.50']}\n"
    )
    assert docs.render_figures("{{table:t}}", figs, rd) == "| M | 50 |\n|---|---|\n| cosine | 0.5 / 0.7 |"


def test_results_page_keeps_the_list_of_reports(tmp_path):
    "The results template's `{{reports_listing}}` is the list `jobrec reports` rewrites between its markers."
    from jobrec.report import INDEX_BEGIN, INDEX_END

    rd = _reports(tmp_path, {"demo": {"a": 0.25}})
    (rd / "demo" / "report.md").write_text("# demo\n")
    figs = tmp_path / "figures.yaml"
    figs.write_text("figures:\n  a: {at: 'demo:a'}\n")
    (tmp_path / "page.md").write_text("# Results\n\n{{a}}\n\n{{reports_listing}}\n")
    page = docs.render_page(tmp_path / "page.md", figs, rd)
    assert page.startswith("# Results\n\n0.250\n\n" + INDEX_BEGIN) and page.endswith(INDEX_END + "\n")
    assert "[demo](demo/report.md)" in page
