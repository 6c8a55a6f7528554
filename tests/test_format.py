"""One formatter for notebooks and library: the notebooks (the library's source), the report templates, the tools and
the tests are formatted with ruff (ruff.toml), and no statement in the package is joined with `;`."""

import io, subprocess, sys, tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FORMATTED = ["nbs", "experiments/templates", "tools", "tests"]


def test_sources_formatted():
    "`ruff format --check` finds nothing to change (`make format` applies it)."
    r = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", *FORMATTED],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, "not formatted, run `make format`:\n" + r.stdout + r.stderr


def _semicolons(text: str) -> list:
    "Line numbers of `;` tokens that join statements (a `;` inside a string is a string, not a token)."
    toks = tokenize.generate_tokens(io.StringIO(text).readline)
    return [t.start[0] for t in toks if t.type == tokenize.OP and t.string == ";"]


def test_semicolon_detector_sees_joined_statements():
    assert _semicolons("a = 1; b = 2\n") == [1]
    assert _semicolons("s = 'a; b'\n# c; d\n") == []


def test_no_statement_joined_with_semicolon():
    bad = [
        f"{p.name}:{n}" for p in sorted((ROOT / "jobrec").glob("*.py")) for n in _semicolons(p.read_text())
    ]
    assert not bad, "statements joined with `;` (one statement per line): " + ", ".join(bad)


def test_make_format_formats_what_is_checked():
    "`make format` formats the folders checked here, then exports and cleans, so the library follows the notebooks."
    out = subprocess.run(
        ["make", "-n", "-B", "format", "VENV=/nonexistent/venv"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(l for l in out.splitlines() if "ruff format" in l)
    assert line.split("ruff format", 1)[1].split() == FORMATTED
    assert (
        out.index("ruff format")
        < out.index("nbdev_export")
        < out.index("nbdev_clean")
        < out.index("docs.py readme")
    )
