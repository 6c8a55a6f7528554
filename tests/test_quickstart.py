"The README's front door: its commands are the Makefile's and CI's, and its recommend quickstart runs as printed."

import contextlib, io, os, re
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def readme_block(heading: str, lang: str = "python") -> str:
    "The first ```lang block of the README section that starts with `heading`."
    start = README.index(heading)
    end = README.find("\n## ", start + 1)
    m = re.search(rf"```{lang}\n(.*?)\n```", README[start : end if end > 0 else None], re.S)
    assert m, f"no {lang} block under {heading!r}"
    return m.group(1)


def test_readme_is_short_and_names_the_two_commands():
    assert len(README.splitlines()) <= 150, "the README is the front door: details go to docs/"
    cmds = readme_block("## The two commands", "bash").splitlines()
    assert [c.split("#")[0].strip() for c in cmds] == ["make reports", "make test"]
    make = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert re.search(r"^reports:", make, re.M) and re.search(r"^test:", make, re.M)
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()]
    assert "make test" in ci, "CI must run the README's test command"


def test_readme_links_exist():
    "Every relative link of the README names a file of the checkout."
    links = [m for m in re.findall(r"\]\(([^)#\s]+)", README) if "://" not in m]
    assert links and [p for p in links if not (ROOT / p).exists()] == []


@pytest.fixture
def tiny_default_run(tmp_path):
    "A tiny-backbone run in `runs/default` of an empty folder, its fusion fitted on validation as `jobrec train` saves it."
    from jobrec.core import load_config
    from jobrec.data import generate_synthetic
    from jobrec.pipeline import save_served_fusion
    from jobrec.recommend import init_run, Recommender

    tiny = {"backbone": {"name": "tiny"}, "schema": {"max_length": 64}, "expert": {"head_hidden": [32, 16]}}
    cfg = load_config(None, tiny)
    data = generate_synthetic(seed=11, n_candidates=40, n_jobs=60)
    run = init_run(cfg, tmp_path / "runs" / "default", data)
    save_served_fusion(Recommender.load(run).system, data, cfg, run / "model")
    return tmp_path


@pytest.mark.usefixtures("one_torch_thread")
def test_readme_recommend_quickstart_runs(tiny_default_run):
    "The recommend quickstart, exactly as the README prints it, from a folder holding `runs/default`."
    code = readme_block("## Quickstart: recommend")
    out, cwd = io.StringIO(), os.getcwd()
    try:
        os.chdir(tiny_default_run)
        with contextlib.redirect_stdout(out):
            exec(compile(code, "README.md", "exec"), {"__name__": "readme"})
    finally:
        os.chdir(cwd)
    text = out.getvalue()
    assert re.search(r"tau 0\.\d\d: calibrated eligibility@5 [01]\.\d\d, multiplier \d+\.\d\d", text), text
    assert len(re.findall(r"^\s*[1-5]\s+J\d{4}\s", text, re.M)) == 5, text  # the top-5 jobs, ranked
    assert re.search(r"^\s*1\s+EX\d+\s+0\.\d+", text, re.M), (
        text
    )  # the example candidate, ranked for the first job


@pytest.mark.parametrize(
    "page", sorted((ROOT / "docs").glob("*.md")) + [ROOT / "tests" / "README.md"], ids=lambda p: p.name
)
def test_docs_links_exist(page):
    "The pages the README links to link to files of the checkout."
    links = [m for m in re.findall(r"\]\(([^)#\s]+)", page.read_text(encoding="utf-8")) if "://" not in m]
    assert [p for p in links if not (page.parent / p).exists()] == []


def test_tests_readme_names_every_test_file():
    "tests/README.md maps each test file to the notebooks it exercises."
    text = (ROOT / "tests" / "README.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`(test_\w+\.py)`", text))
    assert named == {p.name for p in (ROOT / "tests").glob("test_*.py")}
    nbs = {p.stem for p in (ROOT / "nbs").glob("*.ipynb")}
    cited = set(re.findall(r"`(\d\d\w*|index)`", text))
    assert cited and cited <= nbs, cited - nbs
