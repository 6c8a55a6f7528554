"""A newcomer's path, outside any checkout: build the wheel, install it into a fresh venv with only the dependencies it
declares (torch first, the local CPU build; the versions of requirements/lock.txt), and from an empty folder generate the
data, train on a small cut, recommend for the bundled example candidate, run a small experiment and regenerate a report
from the templates the wheel carries. A dependency jobrec imports but does not declare fails here (with nbconvert left
out of the declarations, `jobrec reports` fails). Time: pip installs about 125 packages (2 minutes of CPU); the jobrec
commands take about 3 minutes on 2 idle cores. Under a load of 27 on 2 cores the install alone took 23 minutes."""

import json, os, subprocess, sys, time
from pathlib import Path
import pytest
from conftest import TINY, as_sets

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements" / "lock.txt"

# A small cut: the tiny random backbone, a few steps, a 40 x 12 dataset (the tests' tiny configs, through --set).
CUT = as_sets(TINY) + ["train.stage2_steps=2", "train.checkpoint_every=0", "data.source=small"]
RUN = [
    "eval.bootstrap=50",
    "eval.n_negatives=9",
    "fusion.taus=[0.3,0.6]",
    "fusion.epochs=5",
    "baselines.recbole=[]",
    "baselines.expensive=[]",
]
sets = lambda keys: [a for k in keys for a in ("--set", k)]


def pip(vpy, *args):
    r = subprocess.run(
        [
            str(vpy),
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "-c",
            str(LOCK),
            *map(str, args),
        ],
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert r.returncode == 0, (
        f"pip install {' '.join(map(str, args))} failed:\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
    )


@pytest.fixture(scope="module")
def newcomer(tmp_path_factory):
    "(venv bin folder, an empty working folder, environment, timings): the wheel built from a copy of the checkout, installed."
    t = tmp_path_factory.mktemp("newcomer")
    times = {}
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    src = t / "clone"
    for f in files:
        if (ROOT / f).is_file():
            (src / f).parent.mkdir(parents=True, exist_ok=True)
            (src / f).write_bytes((ROOT / f).read_bytes())
    t0 = time.perf_counter()
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
            str(t / "dist"),
            str(src),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    times["pip wheel"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    base = getattr(
        sys, "_base_executable", sys.executable
    )  # the interpreter under the dev venv: nothing of it leaks in
    subprocess.run([base, "-m", "venv", str(t / "venv")], check=True)
    vpy = t / "venv" / "bin" / "python"
    pip(
        vpy, "torch==2.13.0"
    )  # first: the local CPU build; jobrec's `torch>=2.4` alone could pull a CUDA build
    pip(vpy, next((t / "dist").glob("jobrec-*.whl")))
    times["venv + pip install"] = time.perf_counter() - t0
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "JOBREC_ROOT", "VIRTUAL_ENV", "JUPYTER_PATH")
    }
    env.update(
        PATH=f"{vpy.parent}{os.pathsep}{env['PATH']}",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
    )
    work = t / "empty"
    work.mkdir()
    yield vpy.parent, work, env, times
    print("\nnewcomer timings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in times.items()))


def jobrec(newcomer, name, *args):
    bin_, work, env, times = newcomer
    t0 = time.perf_counter()
    r = subprocess.run(
        [str(bin_ / "jobrec"), *map(str, args)],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    times[name] = time.perf_counter() - t0
    assert r.returncode == 0, (
        f"jobrec {' '.join(map(str, args))} failed:\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
    )
    return r.stdout


def test_newcomer_data_train_recommend_run_reports(newcomer):
    bin_, work, env, times = newcomer
    code = (
        "import jobrec, jobrec.data as d; print(jobrec.__file__); print(d.embedded_path('data', 'default'))"
    )
    where = subprocess.run(
        [str(bin_ / "python"), "-c", code], cwd=work, env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert str(bin_.parent) in where[0] and where[1].endswith("jobrec/_embedded/data/default"), (
        where
    )  # the wheel, not the checkout
    assert (
        subprocess.run([str(bin_ / "python"), "-c", "import nbdev"], env=env, capture_output=True).returncode
        != 0
    )  # no dev venv
    # 1. the default dataset, from the packaged vocabulary: the same bytes as the committed data/default
    jobrec(newcomer, "jobrec data --out d", "data", "--out", "d")
    for f in (ROOT / "data" / "default").iterdir():
        assert (work / "d" / f.name).read_bytes() == f.read_bytes(), f.name
    # 2. a small cut, trained
    jobrec(
        newcomer,
        "jobrec data (40 x 12)",
        "data",
        "--out",
        "small",
        *sets(["data.synthetic.n_candidates=40", "data.synthetic.n_jobs=12"]),
    )
    jobrec(newcomer, "jobrec train", "train", "--out", "runs/x", *sets(CUT))
    assert (work / "runs" / "x" / "model").is_dir() and (work / "runs" / "x" / "config.yaml").exists()
    # 3. the bundled example candidate, recommended
    jobrec(newcomer, "jobrec examples", "examples", "--out", "ex")
    out = jobrec(
        newcomer,
        "jobrec recommend",
        "recommend",
        "--model",
        "runs/x",
        "--candidate",
        "ex/candidate.csv",
        "--jobs",
        "ex/jobs.csv",
        "--k",
        5,
        "--format",
        "json",
    )
    res = json.loads(out)["results"]
    example_jobs = {l.split(",")[0] for l in (work / "ex" / "jobs.csv").read_text().splitlines()[1:]}
    assert [r["candidate_id"] for r in res] == ["EX001"] and res[0]["n_jobs"] == 20
    assert len(res[0]["items"]) == 5 and {i["job_id"] for i in res[0]["items"]} <= example_jobs
    # 4. the experiment and a report from the packaged templates, written under the working folder
    jobrec(
        newcomer,
        "jobrec run (small cut)",
        "run",
        "--out",
        "runs/r",
        "--no-ablations",
        "--systems",
        "random",
        *sets(CUT + RUN),
    )
    out = jobrec(
        newcomer,
        "jobrec reports (dataset_card)",
        "reports",
        "--skip-run",
        "--run",
        "runs/r",
        "--only",
        "dataset_card",
        *sets(CUT + RUN),
    )
    assert "copied the report templates" in out and (work / "experiments" / "templates").is_dir()
    assert (work / "reports" / "dataset_card" / "metrics.json").exists() and (
        work / "reports" / "index.md"
    ).exists()
