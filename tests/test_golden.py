"""The golden run (tools/golden.py): a tiny pinned experiment whose figures are committed per CPU vendor in
tests/golden/<vendor_id>.json and compared at tolerance 0, so that a host or a dependency release that moves the numbers is
seen at once: every figure against this vendor's reference, and the figures other than the raw floats (`golden.BITS`) against
every vendor's, so that a claim read off the figures is the same on AMD and Intel hosts.
Refresh, after a change that is meant to move them: `make golden` (python tools/golden.py --refresh) on a host of each vendor,
then commit."""

import fnmatch, json, os, subprocess, sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from golden import BITS, GOLDEN, reference  # noqa: E402


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


def is_bits(path: str) -> bool:
    "Whether a dotted figure path is one of the raw floats that may differ between vendors."
    return any(fnmatch.fnmatchcase(path, p) for p in BITS)


def describe(env: dict) -> str:
    vers = ", ".join(f"{k} {v}" for k, v in env["versions"].items())
    return (
        f"CPU {env.get('cpu_vendor')} {env['cpu_model']!r}, torch kernels {env['torch_cpu_capability']} with {env['torch_threads']} threads, "
        f"kernel variables {env['kernel_env']}; {vers}"
    )


def test_differences_names_each_moved_figure():
    want = {"test": {"a": 0.5, "b": [1.0, 2.0]}}
    assert differences(want, want) == []
    assert differences({"test": {"a": 0.5 + 1e-12, "b": [1.0, 2.0]}}, want) == [
        "test.a: committed 0.5, here 0.500000000001"
    ]
    assert differences({"test": {"a": 0.5, "b": [1.0]}}, want) == ["test.b.1: committed 2.0, here (absent)"]


def test_bits_are_only_the_raw_floats():
    assert (
        is_bits("scores_sha256.s_pref")
        and is_bits("training.3.loss")
        and is_bits("training.7.ipw.max_weight")
    )
    assert not any(is_bits(k) for k in ("test.preference.mrr", "training.3.val_mrr", "training.6.best_step"))


def test_vendor_references_agree_on_every_figure():
    "The committed references: AMD and Intel differ only in the raw floats, and there by little."
    refs = {p.stem: json.loads(p.read_text())["figures"] for p in sorted(GOLDEN.glob("*.json"))}
    assert {"AuthenticAMD", "GenuineIntel"} <= set(refs), sorted(refs)
    amd, intel = flatten(refs["AuthenticAMD"]), flatten(refs["GenuineIntel"])
    assert set(amd) == set(intel)
    moved = [k for k in amd if amd[k] != intel[k]]
    assert all(is_bits(k) for k in moved), [k for k in moved if not is_bits(k)]
    for k in moved:
        if isinstance(amd[k], float):
            assert abs(amd[k] - intel[k]) <= 4e-7 * max(1.0, abs(amd[k])), (k, amd[k], intel[k])


@pytest.fixture(scope="module")
def golden_here(tmp_path_factory) -> dict:
    "The golden run on this host, in a fresh process."
    out = tmp_path_factory.mktemp("golden")
    env = {
        k: v for k, v in os.environ.items() if k not in ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "OMP_NUM_THREADS")
    }
    env["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT)] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    )
    r = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "golden.py"), str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads((out / "metrics.json").read_text())


def moved_message(diff: list, got: dict, want: dict, what: str) -> str:
    return (
        f"the golden run moved on this host: {len(diff)} {what} differ at tolerance 0\n  "
        + "\n  ".join(diff[:20])
        + f"\nhere:      {describe(got['environment'])}"
        + f"\ncommitted: {describe(want['environment'])}"
        + "\nIf the change is meant (a new dependency release, a change of the training), refresh with"
        + " `make golden` on a host of each CPU vendor and commit tests/golden/; if only the host differs, its kernels do."
    )


def test_golden_run_is_bitwise_this_vendors_reference(golden_here):
    vendor = golden_here["environment"].get("cpu_vendor")
    path = reference(vendor)
    assert path.exists(), (
        f"no golden reference for CPU vendor {vendor!r}: run `make golden` on such a host, commit {path}"
    )
    want = json.loads(path.read_text())
    diff = differences(golden_here["figures"], want["figures"])
    assert not diff, moved_message(diff, golden_here, want, "figure(s)")


@pytest.mark.parametrize("vendor", ["AuthenticAMD", "GenuineIntel"])
def test_golden_figures_are_every_vendors(golden_here, vendor):
    "Every figure but the raw floats is the same bits as on a host of either vendor."
    want = json.loads(reference(vendor).read_text())
    diff = [d for d in differences(golden_here["figures"], want["figures"]) if not is_bits(d.split(":")[0])]
    assert not diff, moved_message(diff, golden_here, want, "figure(s) other than the raw floats")
