"""What the wheel carries (the embedded dataset, the vocabulary, the report templates, the examples) and how a command
finds them outside a checkout. The full newcomer path (fresh venv, empty folder) is tests/test_newcomer.py (slow)."""

import subprocess, sys, zipfile
from pathlib import Path
import pytest
import jobrec.data
from jobrec.cli import UsageError, _report_templates

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_carries_the_embedded_files(tmp_path):
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    for f in files:  # a copy of the checkout, as a fresh clone has it
        if (ROOT / f).is_file():
            (tmp_path / "src" / f).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / "src" / f).write_bytes((ROOT / f).read_bytes())
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path / "dist"),
            str(tmp_path / "src"),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    with zipfile.ZipFile(next((tmp_path / "dist").glob("jobrec-*.whl"))) as z:
        names = set(z.namelist())
        for f in (ROOT / "data" / "default").iterdir():
            assert z.read(f"jobrec/_embedded/data/default/{f.name}") == f.read_bytes(), f.name
        assert (
            z.read("jobrec/conf/vocabulary.json")
            == (ROOT / "jobrec" / "conf" / "vocabulary.json").read_bytes()
        )
    want = {
        f"jobrec/_embedded/experiments/{p.parent.name}/{p.name}"
        for p in (ROOT / "experiments").glob("*/*")
        if p.parent.name in ("templates", "params")
    }
    assert want and want <= names
    assert {"jobrec/examples/candidate.csv", "jobrec/examples/jobs.csv"} <= names
    assert not any(
        "Final_items" in n or n.startswith("tests/") for n in names
    )  # the release and the fixtures stay out
    assert not (
        tmp_path / "src" / "jobrec" / "_embedded"
    ).exists()  # copied into the build, never into the source tree


def test_reports_outside_a_checkout_copy_the_packaged_templates(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("JOBREC_ROOT", raising=False)
    monkeypatch.chdir(tmp_path)
    pkg = tmp_path / "site" / "jobrec"
    for d in ("templates", "params"):
        (pkg / "_embedded" / "experiments" / d).mkdir(parents=True)
        for p in (ROOT / "experiments" / d).iterdir():
            (pkg / "_embedded" / "experiments" / d / p.name).write_bytes(p.read_bytes())
    monkeypatch.setattr(jobrec.data, "PACKAGE_DIR", pkg)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    _report_templates(work)
    assert sorted(p.name for p in (work / "experiments" / "templates").iterdir()) == sorted(
        p.name for p in (ROOT / "experiments" / "templates").iterdir()
    )
    assert (
        work / "experiments" / "params" / "cpu-small.yaml"
    ).exists() and "copied the report templates" in capsys.readouterr().out
    _report_templates(work)  # already there: left alone
    assert capsys.readouterr().out == ""
    other = tmp_path / "other"
    other.mkdir()
    monkeypatch.chdir(other)
    monkeypatch.setattr(jobrec.data, "PACKAGE_DIR", tmp_path / "nowhere" / "jobrec")
    with pytest.raises(UsageError, match="experiments/templates"):
        _report_templates(other)
