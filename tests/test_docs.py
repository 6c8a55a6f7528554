"README.md is rendered from nbs/index.ipynb, and `make docs` builds a site with every notebook and every report figure."
import importlib.util, json, re
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("jobrec_docs_tool", ROOT/"tools"/"docs.py")
docs = importlib.util.module_from_spec(_spec); _spec.loader.exec_module(docs)

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
