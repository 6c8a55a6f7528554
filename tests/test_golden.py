"""The golden run (tools/golden.py): a tiny pinned experiment whose figures are committed in tests/golden/metrics.json and
compared at tolerance 0, so that a host or a dependency release that moves the numbers is seen at once.
Refresh, after a change that is meant to move them: `make golden` (python tools/golden.py --refresh), then commit."""

import json, os, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "golden" / "metrics.json"


def flatten(d, prefix="") -> dict:
    "Dotted paths of the leaves of nested dicts and lists."
    if isinstance(d, dict):
        items = d.items()
    elif isinstance(d, list):
        items = enumerate(d)
    else:
        return {prefix: d}
    out = {}
    for k, v in items:
        out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    return out


def differences(got: dict, want: dict) -> list[str]:
    "Every figure that is not the same bits, missing or new."
    g, w = flatten(got), flatten(want)
    return [
        f"{k}: committed {w.get(k, '(absent)')}, here {g.get(k, '(absent)')}"
        for k in sorted(set(g) | set(w))
        if g.get(k, object()) != w.get(k, object())
    ]


def describe(env: dict) -> str:
    vers = ", ".join(f"{k} {v}" for k, v in env["versions"].items())
    return (
        f"CPU {env['cpu_model']!r}, torch kernels {env['torch_cpu_capability']} with {env['torch_threads']} threads, "
        f"kernel variables {env['kernel_env']}; {vers}"
    )


def test_differences_names_each_moved_figure():
    want = {"test": {"a": 0.5, "b": [1.0, 2.0]}}
    assert differences(want, want) == []
    assert differences({"test": {"a": 0.5 + 1e-12, "b": [1.0, 2.0]}}, want) == [
        "test.a: committed 0.5, here 0.500000000001"
    ]
    assert differences({"test": {"a": 0.5, "b": [1.0]}}, want) == ["test.b.1: committed 2.0, here (absent)"]


def test_golden_run_is_bitwise_the_committed_one(tmp_path):
    env = {
        k: v for k, v in os.environ.items() if k not in ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "OMP_NUM_THREADS")
    }
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    )
    r = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "golden.py"), str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    got = json.loads((tmp_path / "metrics.json").read_text())
    want = json.loads(GOLDEN.read_text())
    diff = differences(got["figures"], want["figures"])
    assert not diff, (
        f"the golden run moved on this host: {len(diff)} figure(s) differ at tolerance 0\n  "
        + "\n  ".join(diff[:20])
        + f"\nhere:      {describe(got['environment'])}"
        + f"\ncommitted: {describe(want['environment'])}"
        + "\nIf the change is meant (a new dependency release, a change of the training), refresh with"
        + " `make golden` and commit tests/golden/metrics.json; if only the host differs, its kernels do."
    )
