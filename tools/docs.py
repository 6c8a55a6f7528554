"""The README, the pages rendered from the committed reports, and the static documentation site, built offline
(no Quarto, no network).

`python tools/docs.py readme` writes README.md from nbs/index.ipynb (the README's source: edit the notebook, not README.md),
and the pages of `PAGES` from their templates in tools/pages/: the results (reports/index.md) and the scaling
measurements (docs/scaling.md). Their figures are not typed: a `{{name}}` in a template is the figure `name` of
tools/readme_figures.yaml, read from the committed reports (`reports/REPORT/metrics.json`) when the page is built, and
`{{table:NAME}}` is a table of that file; a key the reports lack stops the build, naming the figure and the key.
`python tools/docs.py site [OUT] [--no-execute]` writes a static HTML site (default `_docs/`): every notebook of nbs/
as a page (executed first unless --no-execute), an API page per module of jobrec/ rendered from its docments
(`nbdev.showdoc`), every page of docs/, every report of reports/ with its figures, and an index page."""

import argparse, html, os, re, shutil, sys, time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NBS, REPORTS = ROOT / "nbs", ROOT / "reports"
FIGURES = ROOT / "tools" / "readme_figures.yaml"
# the pages rendered from the committed reports: output -> template
PAGES = {"reports/index.md": "tools/pages/reports_index.md", "docs/scaling.md": "tools/pages/scaling.md"}
LISTING = (
    "{{reports_listing}}"  # where the results page holds the list of reports (`jobrec.report.index_listing`)
)
SKIP_FLAGS = (
    "slow",
    "gpu",
)  # settings.ini tst_flags: cells nbdev_test skips are not executed for the site either


def _source(cell) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def _directives(src: str) -> set:
    "The `#| word` directives at the top of a cell."
    out = set()
    for line in src.splitlines():
        if not line.startswith("#|"):
            break
        out.update(line[2:].split())
    return out


class FigureError(KeyError):
    "A README figure whose key the committed reports lack, or a placeholder the figures file does not name."

    def __str__(self):
        return str(self.args[0])


def report_json(report: str, reports: Path = REPORTS) -> dict:
    "`reports/REPORT/metrics.json`, or `reports/REPORT/FILE.json` for 'REPORT/FILE.json'."
    import json

    p = reports / report if report.endswith(".json") else reports / report / "metrics.json"
    if not p.exists():
        raise FigureError(
            f"{p.relative_to(reports.parent) if p.is_relative_to(reports.parent) else p} does not exist"
        )
    return json.loads(p.read_text(encoding="utf-8"))


def _step(x, part: str, where: str):
    "One step of a key path: a dict key, or `[field=value,...]`, the record of a list whose fields have those values."
    m = re.fullmatch(r"(.*?)\[(.+)\]", part)
    key, sel = (m.group(1), m.group(2)) if m else (part, None)
    if key:
        if not isinstance(x, dict) or key not in x:
            raise FigureError(f"{where}: no key {key!r}")
        x = x[key]
    if sel is None:
        return x
    want = dict(kv.split("=", 1) for kv in sel.split(","))
    hits = [
        r
        for r in (x if isinstance(x, list) else [])
        if isinstance(r, dict)
        and all(k in r and (str(r[k]) == v or _number_equal(r[k], v)) for k, v in want.items())
    ]
    if len(hits) != 1:
        raise FigureError(f"{where}: {len(hits)} records with {want} (one needed)")
    return hits[0]


def _number_equal(a, text: str) -> bool:
    try:
        return isinstance(a, (int, float)) and float(text) == float(a)
    except ValueError:
        return False


def lookup(at: str, reports: Path = REPORTS, cache: dict | None = None):
    "The value at 'REPORT:key.key[field=value].key' in the committed reports; a `FigureError` naming what is missing."
    report, _, path = at.partition(":")
    cache = {} if cache is None else cache
    if report not in cache:
        cache[report] = report_json(report, reports)
    x = cache[report]
    for part in [
        p for p in re.split(r"\.(?![^\[]*\])", path) if p
    ]:  # dots inside [...] belong to a value (tau=0.5)
        x = _step(x, part, f"{report}: {path}")
    if x is None:
        raise FigureError(f"{report}: {path} is null")
    return x


def format_figure(value, fmt: str = "{:.3f}", words: dict | None = None) -> str:
    "A figure as printed: `words` for a flag ({true: ..., false: ...}) or a label, `fmt` for a number, 'mean ± sd' for a spread."
    if words is not None:
        if str(value).lower() not in {str(k).lower() for k in words}:
            raise FigureError(f"no words for the value {value!r}")
        return next(v for k, v in words.items() if str(k).lower() == str(value).lower())
    if isinstance(value, dict) and {"mean", "sd"} <= set(value):
        return (
            f"{fmt.format(value['mean'])} ± {fmt.format(value['sd'])}"
            if value["sd"] is not None
            else fmt.format(value["mean"])
        )
    if isinstance(value, list):
        return ", ".join(format_figure(v, fmt) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}: {format_figure(v, fmt)}" for k, v in value.items())
    if isinstance(value, str):
        return value
    return fmt.format(value)


def _figure(spec: dict, name: str, reports: Path, cache: dict, **subst) -> str:
    at = spec["at"].format(**subst) if subst else spec["at"]
    try:
        return format_figure(lookup(at, reports, cache), spec.get("fmt", "{:.3f}"), spec.get("words"))
    except (FigureError, TypeError, ValueError) as e:
        raise FigureError(f"figure {name!r} ({at}): {e}") from None


def _table(spec: dict, name: str, reports: Path, cache: dict) -> str:
    """A markdown table: one row per `rows` entry (its label, and the values its columns' `at` substitute, e.g. `system`),
    one column per `columns` entry (label and `at`; a list of `at` prints its figures joined by ' / ')."""
    cols = spec["columns"]
    lines = [
        "| " + " | ".join([spec.get("corner", ""), *(c["label"] for c in cols)]) + " |",
        "|---" * (len(cols) + 1) + "|",
    ]
    for r in spec["rows"]:
        subst = {k: v for k, v in r.items() if k != "label"}
        cells = [
            " / ".join(
                _figure({**c, "at": at}, f"{name}/{r['label']}/{c['label']}", reports, cache, **subst)
                for at in (c["at"] if isinstance(c["at"], list) else [c["at"]])
            )
            for c in cols
        ]
        lines.append("| " + " | ".join([r["label"], *cells]) + " |")
    return "\n".join(lines)


def render_figures(text: str, figures: Path = FIGURES, reports: Path = REPORTS) -> str:
    "`text` with each `{{name}}` and `{{table:name}}` replaced from the committed reports; any missing key raises `FigureError`."
    if "{{" not in text:
        return text
    import yaml

    spec, cache = yaml.safe_load(Path(figures).read_text(encoding="utf-8")), {}

    def one(m):
        kind, _, name = m.group(1).strip().rpartition(":")
        table = kind == "table"
        pool = spec.get("tables" if table else "figures") or {}
        if name not in pool:
            raise FigureError(f"placeholder {m.group(0)} is not in {Path(figures).name}")
        return (
            _table(pool[name], name, reports, cache) if table else _figure(pool[name], name, reports, cache)
        )

    return re.sub(r"\{\{([^{}]+)\}\}", one, text)


def render_readme(
    nb_path: Path = NBS / "index.ipynb",  # the README's notebook
    figures: Path = FIGURES,  # the figures file its placeholders name
    reports: Path = REPORTS,  # the committed reports they are read from
) -> str:
    "README.md's text: the notebook's markdown cells (figures rendered) and its visible code cells as ```python blocks; `#| hide` cells left out."
    import json

    parts = []
    for c in json.loads(Path(nb_path).read_text(encoding="utf-8"))["cells"]:
        src = _source(c).strip("\n")
        if not src or "hide" in _directives(src):
            continue
        parts.append(
            render_figures(src, figures, reports)
            if c["cell_type"] == "markdown"
            else f"```python\n{src}\n```"
        )
    return "\n\n".join(parts) + "\n"


def render_page(
    template: Path,  # a page's template (markdown with placeholders)
    figures: Path = FIGURES,  # the figures file its placeholders name
    reports: Path = REPORTS,  # the committed reports they are read from
) -> str:
    "A page rendered from the committed reports; `{{reports_listing}}` is the list of reports `jobrec reports` keeps."
    text = Path(template).read_text(encoding="utf-8")
    head, sep, tail = text.partition(LISTING)
    out = render_figures(head, figures, reports)
    if sep:
        from jobrec.report import index_listing

        out += index_listing(reports) + render_figures(tail, figures, reports)
    return out


def page_renderers(figures: Path = FIGURES, reports: Path = REPORTS, root: Path = ROOT) -> dict:
    "{path: function rendering it} for README.md and every page of `PAGES`, as `make readme` writes them."
    out = {"README.md": lambda: render_readme(root / "nbs" / "index.ipynb", figures, reports)}
    for page, template in PAGES.items():
        out[page] = lambda t=template: render_page(root / t, figures, reports)
    return out


def _execute(nb_path: str) -> tuple:
    "Execute one notebook in nbs/ as nbdev_test does (cells flagged slow/gpu skipped); (name, notebook, seconds)."
    import nbformat
    from nbconvert.preprocessors import ExecutePreprocessor

    nb = nbformat.read(nb_path, as_version=4)
    t0 = time.perf_counter()
    for c in nb.cells:
        if c.cell_type == "code" and _directives(c.source) & set(SKIP_FLAGS):
            c.metadata.setdefault("tags", []).append("skip-execution")
    ExecutePreprocessor(timeout=900, kernel_name="python3").preprocess(
        nb, {"metadata": {"path": str(Path(nb_path).parent)}}
    )
    return Path(nb_path).name, nb, time.perf_counter() - t0


def module_notebooks(nbs: Path = NBS) -> dict:
    "{module: notebook stem} for every notebook of nbs/ that exports a module (`#| default_exp`)."
    out = {}
    for nb in sorted(nbs.glob("*.ipynb")):
        m = re.search(r"#\|\s*default_exp\s+([\w.]+)", nb.read_text(encoding="utf-8"))
        if m:
            out[f"jobrec.{m.group(1)}"] = nb.stem
    return out


def _members(mod) -> list:
    "(name, object) of what `mod` exports: its functions and classes, each class followed by its public methods."
    import inspect

    out = []
    for name in getattr(mod, "__all__", []):
        obj = getattr(mod, name, None)
        mine = getattr(obj, "__module__", None) == mod.__name__
        if not (mine and (inspect.isfunction(obj) or inspect.isclass(obj))):
            continue
        out.append((name, obj))
        if inspect.isclass(obj):  # methods of the class and of the bases it composes in the same module
            seen = set()
            for base in obj.__mro__:
                if base.__module__ != mod.__name__:
                    continue
                for m, f in vars(base).items():
                    if m.startswith("_") or m in seen:
                        continue
                    f = f.__func__ if isinstance(f, (classmethod, staticmethod)) else f
                    if inspect.isfunction(f):
                        seen.add(m)
                        out.append((f"{name}.{m}", f))
    return out


def api_markdown(module: str, notebook: str) -> str:
    "`module`'s API page in markdown: each exported function, class and method, its signature and docments (nbdev.showdoc)."
    import importlib
    from nbdev.showdoc import show_doc, BasicMarkdownRenderer

    mod = importlib.import_module(module)
    summary = (mod.__doc__ or "").strip().splitlines()
    source = f"Source: the notebook [`nbs/{notebook}`](../nbs/{notebook}.html)."
    parts = [f"# {module}", "", source + (f" {summary[0]}" if summary else "")]
    for name, obj in _members(mod):
        try:
            md = show_doc(obj, name=name, renderer=BasicMarkdownRenderer)._repr_markdown_()
        except NameError:
            md = _plain_doc(name, obj)  # an annotation naming what the module imports lazily
        parts.append(
            re.sub(r"^\[source\]\(.*$\n?", "", md, flags=re.M)
        )  # its links point at a hosted repository
    return "\n\n".join(parts) + "\n"


def _plain_doc(name: str, obj) -> str:
    "Signature (annotations as written) and docstring, where showdoc cannot evaluate the annotations."
    import inspect

    try:
        sig = str(inspect.signature(obj))
    except (TypeError, ValueError):
        sig = "(...)"
    return f"---\n\n### {name}\n\n```python\n{name.split('.')[-1]}{sig}\n```\n\n*{inspect.getdoc(obj) or ''}*"


def build_api(
    out: Path,  # the site's folder: pages go to out/api/
    nbs: Path = NBS,
) -> list[str]:
    "An API page per module of jobrec/ (out/api/MODULE.html), rendered offline from the docments; the pages' paths."
    (Path(out) / "api").mkdir(parents=True, exist_ok=True)
    pages = []
    for module, nb in module_notebooks(nbs).items():
        page = Path(out) / "api" / f"{module}.html"
        page.write_text(_page(f"api/{module}", _md_html(api_markdown(module, nb))), encoding="utf-8")
        pages.append(page.relative_to(out).as_posix())
    return pages


def _page(title: str, body: str) -> str:
    return (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        "<style>body{max-width:60em;margin:2em auto;font-family:sans-serif;line-height:1.45}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 6px}img{max-width:100%}pre{background:#f6f6f6;padding:.5em;overflow:auto}"
        f'</style></head><body>\n<p><a href="{"../" * title.count("/")}index.html">jobrec</a></p>\n{body}\n</body></html>\n'
    )


def _md_html(text: str) -> str:
    from nbconvert.filters.markdown_mistune import markdown2html_mistune

    # links between the markdown files become links between their pages
    return markdown2html_mistune(re.sub(r"\]\(([^)#:]+?)\.md(#[^)]*)?\)", r"](\1.html\2)", text))


def build_site(
    out: Path = ROOT / "_docs",  # the site's folder (replaced)
    execute: bool = True,  # execute the notebooks first (they are committed without outputs)
    workers: int = 2,  # notebooks executed at once
) -> dict:
    """Write the static site; returns {'notebooks': [page, ...], 'api': [page, ...], 'docs': [page, ...],
    'figures': [path, ...], 'seconds': {notebook: s}}."""
    import nbformat
    from nbconvert import HTMLExporter

    out = Path(out)
    shutil.rmtree(out, ignore_errors=True)
    (out / "nbs").mkdir(parents=True)
    nbs = sorted(NBS.glob("*.ipynb"))
    if execute:
        with ProcessPoolExecutor(workers) as ex:
            done = list(ex.map(_execute, [str(p) for p in nbs]))
    else:
        done = [(p.name, nbformat.read(p, as_version=4), 0.0) for p in nbs]
    exporter, pages = HTMLExporter(), []
    for name, nb, _ in done:
        nb.cells = [
            c for c in nb.cells if "hide" not in _directives(c.source)
        ]  # as nbdev's docs: `#| hide` cells stay out
        body, _ = exporter.from_notebook_node(nb)
        page = out / "nbs" / f"{Path(name).stem}.html"
        page.write_text(body, encoding="utf-8")
        pages.append(page.relative_to(out).as_posix())
    figures = []
    for p in sorted(REPORTS.rglob("*.png")):
        dst = out / "reports" / p.relative_to(REPORTS)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(p, dst)
        figures.append(dst.relative_to(out).as_posix())
    for md in sorted(REPORTS.rglob("*.md")):
        rel = md.relative_to(REPORTS).with_suffix(".html")
        dst = out / "reports" / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_text(
            _page(f"reports/{rel.as_posix()}", _md_html(md.read_text(encoding="utf-8"))), encoding="utf-8"
        )
    # figures that no report page shows (reports/bench) get a gallery page
    shown = {
        (md.parent / m.group(1)).resolve()
        for md in REPORTS.rglob("*.md")
        for m in re.finditer(r"!\[[^\]]*\]\(([^)\s]+)\)", md.read_text(encoding="utf-8"))
    }
    loose = [f for f in figures if (REPORTS / Path(f).relative_to("reports")).resolve() not in shown]
    gallery = "".join(f'<h3>{html.escape(f)}</h3><img src="../{html.escape(f)}">\n' for f in loose)
    (out / "reports" / "figures.html").write_text(
        _page("reports/figures", "<h1>Figures no report shows</h1>\n" + gallery), encoding="utf-8"
    )
    api = build_api(out)
    docs_pages = []
    for md in sorted((ROOT / "docs").glob("*.md")):
        dst = out / "docs" / md.with_suffix(".html").name
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_text(_page(f"docs/{dst.name}", _md_html(md.read_text(encoding="utf-8"))), encoding="utf-8")
        docs_pages.append(dst.relative_to(out).as_posix())
    nav = (
        "<h2>Notebooks</h2><ul>"
        + "".join(f'<li><a href="{p}">{Path(p).stem}</a></li>' for p in pages)
        + "</ul>"
        "<h2>API</h2><ul>" + "".join(f'<li><a href="{p}">{Path(p).stem}</a></li>' for p in api) + "</ul>"
        "<h2>Documentation</h2><ul>"
        + "".join(f'<li><a href="{p}">{Path(p).stem}</a></li>' for p in docs_pages)
        + "</ul>"
        '<h2>Reports</h2><ul><li><a href="reports/index.html">reports/index</a></li>'
        '<li><a href="reports/figures.html">figures no report shows</a></li></ul>'
    )
    (out / "index.html").write_text(_page("jobrec", _md_html(render_readme()) + nav), encoding="utf-8")
    seconds = {n: round(s, 1) for n, _, s in done}
    return {"notebooks": pages, "api": api, "docs": docs_pages, "figures": figures, "seconds": seconds}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="tools/docs.py", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser(
        "readme", help="write README.md from nbs/index.ipynb and the pages rendered from the reports"
    )
    r.add_argument("--check", action="store_true", help="exit 1 if README.md or a rendered page differs")
    s = sub.add_parser("site", help="build the static site")
    s.add_argument("out", nargs="?", default=str(ROOT / "_docs"))
    s.add_argument("--no-execute", action="store_true")
    s.add_argument("--workers", type=int, default=2)
    a = ap.parse_args(argv)
    if a.cmd == "readme":
        pages, failed = {}, []
        for p, render in page_renderers().items():
            try:
                pages[p] = render()
            except FigureError as e:
                failed.append(f"{p}: {e}")
        if a.check:
            stale = [
                p
                for p, text in pages.items()
                if not (ROOT / p).exists() or (ROOT / p).read_text(encoding="utf-8") != text
            ]
            print(
                f"{', '.join(stale)} differ from their sources: `make readme`"
                if stale
                else "the rendered files match their sources"
            )
        else:
            for p, text in pages.items():
                (ROOT / p).parent.mkdir(parents=True, exist_ok=True)
                (ROOT / p).write_text(text, encoding="utf-8")
            print("written: " + ", ".join(pages))
        for f in failed:
            print(f"not rendered: {f}", file=sys.stderr)
        return 1 if failed or (a.check and stale) else 0
    t0 = time.perf_counter()
    res = build_site(Path(a.out), execute=not a.no_execute, workers=a.workers)
    slow = sorted(res["seconds"].items(), key=lambda kv: -kv[1])[:5]
    print(
        f"site: {len(res['notebooks'])} notebooks, {len(res['api'])} API pages, {len(res['figures'])} figures in {a.out} "
        f"({time.perf_counter() - t0:.0f} s; slowest {slow})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
