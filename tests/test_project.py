"The library matches its notebooks, notebooks and templates are clean, and the light modules stay light."

import configparser, json, shutil, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def test_library_in_sync_with_notebooks(tmp_path):
    "nbdev_export on a copy of the notebooks reproduces jobrec/*.py byte for byte."
    for name in ("settings.ini", "setup.py", "README.md"):
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "nbs", tmp_path / "nbs")
    shutil.copytree(
        ROOT / "jobrec", tmp_path / "jobrec", ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    before = {p.relative_to(tmp_path): p.read_bytes() for p in (tmp_path / "jobrec").rglob("*.py")}
    r = subprocess.run([str(BIN / "nbdev_export")], cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    after = {p.relative_to(tmp_path): p.read_bytes() for p in (tmp_path / "jobrec").rglob("*.py")}
    changed = sorted(str(k) for k in set(before) | set(after) if before.get(k) != after.get(k))
    assert not changed, f"nbdev_export would change {changed}: run `make export` and commit"


def _notebooks(folder):
    return sorted((ROOT / folder).glob("*.ipynb"))


@pytest.mark.parametrize("nb", _notebooks("nbs"), ids=lambda p: p.name)
def test_library_notebook_clean(nb):
    d = json.loads(nb.read_text())
    assert "papermill" not in d.get("metadata", {}), f"{nb.name} carries papermill run metadata"
    for i, c in enumerate(d["cells"]):
        if c["cell_type"] != "code":
            continue
        assert c.get("execution_count") is None, f"{nb.name} cell {i} has an execution count: run nbdev_clean"
        assert not c.get("outputs"), f"{nb.name} cell {i} has outputs: run nbdev_clean"
        assert set(c.get("metadata", {})) <= {"tags"}, f"{nb.name} cell {i} metadata {c['metadata']}"


def test_library_notebooks_numbered_and_titled():
    nbs = _notebooks("nbs")
    assert nbs, "no library notebooks"
    for nb in nbs:
        d = json.loads(nb.read_text())
        first = "".join(d["cells"][0]["source"])
        assert d["cells"][0]["cell_type"] == "markdown" and first.startswith("# "), (
            f"{nb.name}: no markdown title"
        )
        assert "\n> " in first, f"{nb.name}: no one-line '>' summary"


@pytest.mark.parametrize("nb", _notebooks("experiments/templates"), ids=lambda p: p.name)
def test_template_clean_and_parameterised(nb):
    d = json.loads(nb.read_text())
    assert "papermill" not in d.get("metadata", {}), f"{nb.name} carries papermill run metadata"
    tagged = [c for c in d["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{nb.name} needs exactly one cell tagged 'parameters'"
    for c in d["cells"]:
        if c["cell_type"] == "code":
            assert not c.get("outputs") and c.get("execution_count") is None, f"{nb.name} has stale outputs"
            assert "def " not in "".join(c["source"]), f"{nb.name}: templates define no functions"


def test_settings_keep_parameters_tag():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "settings.ini")
    assert cfg["DEFAULT"]["allowed_cell_metadata_keys"].strip() == "tags"


@pytest.mark.parametrize(
    "mod", ["jobrec.core", "jobrec.schema", "jobrec.data", "jobrec.metrics", "jobrec.fusion"]
)
def test_light_modules_do_not_import_torch(mod):
    code = f"import sys, {mod}; bad = [m for m in ('torch', 'transformers', 'peft', 'unsloth') if m in sys.modules]; print(','.join(bad))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "", f"importing {mod} imported {r.stdout.strip()}"


def test_version():
    import jobrec

    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "settings.ini")
    assert jobrec.__version__ == cfg["DEFAULT"]["version"]


def test_config_misspelt_key_is_named():
    from jobrec.core import load_config, ConfigError

    with pytest.raises(ConfigError, match=r"unknown config key 'fusion.tua'; did you mean 'fusion.tau'"):
        load_config("cpu-small", overrides=["fusion.tua=0.5"])
    with pytest.raises(ConfigError, match="must be a number"):
        load_config("cpu-small", experiment={"train": {"lr": "fast"}})


@pytest.mark.parametrize("profile", ["cpu-small", "cpu-llm", "gpu-paper"])
def test_profiles_resolve(profile, tmp_path):
    from jobrec.core import load_config, save_config

    cfg = load_config(profile)
    assert cfg.profile == profile
    p = save_config(cfg, tmp_path)
    assert load_config(experiment=str(p)) == cfg
