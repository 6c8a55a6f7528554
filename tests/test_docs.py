"README.md is rendered from nbs/index.ipynb, and `make docs` builds a site with every notebook and every report figure."
import importlib.util, json, re, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("jobrec_docs_tool", ROOT/"tools"/"docs.py")
docs = importlib.util.module_from_spec(_spec); sys.modules[_spec.name] = docs  # its functions pickle to the site's worker processes
_spec.loader.exec_module(docs)

def test_readme_is_rendered_from_index():
    "Edits go to nbs/index.ipynb: README.md is exactly what it renders to (`make readme`)."
    assert (ROOT/"README.md").read_text(encoding="utf-8") == docs.render_readme(), "README.md differs from nbs/index.ipynb: edit the notebook, then `make readme`"

def test_readme_render_keeps_code_and_drops_hidden_cells(tmp_path):
    cell = lambda t, s: {"cell_type": t, "metadata": {}, "source": s, **({"outputs": [], "execution_count": None} if t == "code" else {})}
    nb = {"cells": [cell("markdown", "# t\n\n> s"), cell("code", "x = 1"), cell("code", "#| hide\nassert x == 1"), cell("markdown", ["a\n", "b"])],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (tmp_path/"i.ipynb").write_text(json.dumps(nb))
    assert docs.render_readme(tmp_path/"i.ipynb") == "# t\n\n> s\n\n```python\nx = 1\n```\n\na\nb\n"

def test_index_is_not_a_module():
    src = "".join("".join(c["source"]) for c in json.loads((ROOT/"nbs"/"index.ipynb").read_text())["cells"])
    assert "default_exp" not in src and "#| export" not in src

def _check_site(out, res):
    pages = {Path(p).stem for p in res["notebooks"]}
    assert pages == {p.stem for p in (ROOT/"nbs").glob("*.ipynb")}
    for p in res["notebooks"]: assert "<html" in (out/p).read_text(encoding="utf-8")[:2000].lower(), p
    figs = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT/"reports").rglob("*.png"))
    assert figs and all((out/f).read_bytes() == (ROOT/f).read_bytes() for f in figs)
    # every report page shows its figures, and every image a page names is in the site
    for md in (ROOT/"reports").rglob("*.md"):
        page = out/"reports"/md.relative_to(ROOT/"reports").with_suffix(".html")
        srcs = re.findall(r'<img src="([^"]+)"', page.read_text(encoding="utf-8"))
        assert len(srcs) == len(re.findall(r"!\[", md.read_text(encoding="utf-8"))), page
        assert all((page.parent/s).exists() for s in srcs), page
    gallery = (out/"reports"/"figures.html").read_text(encoding="utf-8")
    assert all(f"reports/bench/{p.name}" in gallery for p in (ROOT/"reports"/"bench").glob("*.png"))
    index = (out/"index.html").read_text(encoding="utf-8")
    assert all(f'href="{p}"' in index for p in res["notebooks"]) and "reports/index.html" in index

def test_site_has_every_notebook_and_figure(tmp_path):
    "The site (notebooks unexecuted, as committed) has a page per notebook of nbs/ and every png of reports/."
    res = docs.build_site(tmp_path/"site", execute=False)
    _check_site(tmp_path/"site", res)

def test_site_notebooks_carry_their_outputs():
    "Executed for the site, a notebook keeps its outputs (slow/gpu cells are skipped as nbdev_test skips them)."
    name, nb, _ = docs._execute(str(ROOT/"nbs"/"index.ipynb"))
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert name == "index.ipynb" and all(c.execution_count for c in code)

@pytest.mark.slow
def test_site_executes_every_notebook(tmp_path):
    res = docs.build_site(tmp_path/"site", execute=True)
    _check_site(tmp_path/"site", res)
    print("seconds per notebook:", res["seconds"])

def _results_section(text:str)->str:
    "The README's results section: from its heading to the next second-level heading."
    start = text.index("## Results")
    end = text.find("\n## ", start + 1)
    return text[start:] if end < 0 else text[start:end]

# a figure: a number standing alone (not part of a name such as NDCG@10, SmolLM2, r08 or 06b_warm)
FIGURE = re.compile(r"(?<![\w@./\-])(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(?![\w@])")

def _metric_leaves(reports:Path)->list:
    def walk(x):
        if isinstance(x, dict):
            for v in x.values(): yield from walk(v)
        elif isinstance(x, list):
            for v in x: yield from walk(v)
        elif isinstance(x, (int, float)) and not isinstance(x, bool): yield abs(float(x))
    return [v for p in sorted(reports.glob("*/metrics.json")) for v in walk(json.loads(p.read_text(encoding="utf-8")))]

def untraced_figures(section:str, reports:Path)->list[str]:
    "Each number of `section` that no figure of `reports/*/metrics.json` rounds to (at the precision it is printed with)."
    leaves, out = _metric_leaves(reports), []
    for m in FIGURE.finditer(section):
        x, d = float(m.group(1).replace(",", "") + (m.group(2) or "")), len(m.group(2) or ".") - 1
        if not any(abs(v - x) <= 0.5*10**-d + 1e-9 for v in leaves): out.append(m.group(0))
    return out

def test_readme_results_come_from_the_committed_metrics():
    "Every number in the README's results section is a figure of the committed reports/*/metrics.json."
    section = _results_section((ROOT/"README.md").read_text(encoding="utf-8"))
    assert len(FIGURE.findall(section)) > 50  # the table and the bullets are there
    assert untraced_figures(section, ROOT/"reports") == [], "numbers in the README's results that no committed metric gives"

def test_readme_results_are_not_typed():
    "The results section's source (nbs/index.ipynb) has no number of its own: each is a {{figure}} read from the reports."
    cells = [docs._source(c) for c in json.loads((ROOT/"nbs"/"index.ipynb").read_text())["cells"] if c["cell_type"] == "markdown"]
    section = _results_section("\n\n".join(cells))
    typed = [m.group(0) for m in FIGURE.finditer(re.sub(r"\{\{[^{}]+\}\}", "", section))]
    assert "{{table:main}}" in section and typed == [], f"numbers typed into the README's results: {typed}"

def test_untraced_figures_are_found(tmp_path):
    "A typed number is caught, a rounded figure is not, and names with digits are not figures."
    (tmp_path/"main_results").mkdir(); (tmp_path/"main_results"/"metrics.json").write_text(json.dumps({"a": {"b": 0.7789}, "t": [1307.6]}))
    section = "## Results\n\nNDCG@10 0.779, SmolLM2 in `nbs/06b_warm`, 1,308 s; a lead of +0.033 and 0.78."
    assert untraced_figures(section, tmp_path) == ["0.033"]

def _reports(tmp_path, metrics:dict)->Path:
    rd = tmp_path/"reports"
    for name, m in metrics.items(): (rd/name).mkdir(parents=True); (rd/name/"metrics.json").write_text(json.dumps(m))
    return rd

def test_readme_figures_render_from_metrics_and_fail_loudly(tmp_path):
    rd = _reports(tmp_path, {"main_results": {"jobrec": {"candidate_ndcg@10": 0.7789, "ahead": True}, "spread": {"mean": 0.78, "sd": 0.0012},
                             "sweep": [{"system": "g", "tau": 0.5, "achieved": 0.51}, {"system": "g", "tau": 0.6, "achieved": 0.6}]}})
    figs = tmp_path/"figures.yaml"
    figs.write_text("figures:\n  a: {at: 'main_results:jobrec.candidate_ndcg@10'}\n  s: {at: 'main_results:spread'}\n"
                    "  t: {at: 'main_results:sweep[system=g,tau=0.5].achieved', fmt: '{:+.2f}'}\n"
                    "  w: {at: 'main_results:jobrec.ahead', words: {true: 'ahead', false: 'not ahead'}}\n"
                    "  gone: {at: 'main_results:jobrec.employer_ndcg@10'}\n"
                    "tables:\n  m:\n    rows: [{label: jobrec, system: jobrec}]\n    columns: [{label: cand, at: 'main_results:{system}.candidate_ndcg@10'}]\n")
    text = "{{a}} | {{s}} | {{t}} | {{w}}\n\n{{table:m}}"
    assert docs.render_figures(text, figs, rd) == "0.779 | 0.780 ± 0.001 | +0.51 | ahead\n\n|  | cand |\n|---|---|\n| jobrec | 0.779 |"
    with pytest.raises(docs.FigureError, match=r"'gone' \(main_results:jobrec.employer_ndcg@10\): .*no key 'employer_ndcg@10'"):
        docs.render_figures("x {{gone}}", figs, rd)
    with pytest.raises(docs.FigureError, match="not in figures.yaml"): docs.render_figures("{{typo}}", figs, rd)
    with pytest.raises(docs.FigureError, match="does not exist"): docs.render_figures("{{a}}", figs, tmp_path/"none")
