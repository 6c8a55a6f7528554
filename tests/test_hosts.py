"The cross-host comparison (tools/hosts.py, docs/hosts/): generated from the stored metrics, never typed by hand."

import json, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from hosts import compare, flat, vendor_of  # noqa: E402


def test_committed_comparison_is_what_the_tool_writes():
    other = ROOT / "docs" / "hosts" / "GenuineIntel"
    assert (ROOT / "docs" / "hosts" / "comparison.md").read_text() == compare(ROOT / "reports", other), (
        "docs/hosts/comparison.md is stale: python tools/hosts.py compare reports docs/hosts/GenuineIntel"
    )


def test_flat_leaves_out_timings_and_names_list_items():
    assert flat({"a": {"b": [1, {"c": 2}]}, "wall_seconds": 3, "x_ms": 4}) == {"a.b[0]": 1, "a.b[1].c": 2}


def test_vendor_read_off_the_model_of_older_reports():
    assert vendor_of({"model": "AMD EPYC"}) == "AuthenticAMD"
    assert vendor_of({"model": "Intel(R) Xeon(R) Processor @ 2.80GHz"}) == "GenuineIntel"
    assert vendor_of({"vendor": "GenuineIntel", "model": "x"}) == "GenuineIntel"
    assert vendor_of({"model": None}) is None


def test_compare_counts_moves_and_changed_verdicts(tmp_path):
    for host, (v, verdict, model) in {
        "a": (0.5, "helps", "AMD EPYC"),
        "b": (0.75, "hurts", "Intel Xeon"),
    }.items():
        for rep in ("main_results", "controllability", "experts"):
            d = tmp_path / host / rep
            d.mkdir(parents=True)
            (d / "metrics.json").write_text(json.dumps({"x": v, "verdict": verdict, "seconds": 1.0}))
            env = {"git_revision": "abc", "numerics": {"cpu": {"model": model}}}
            (d / "environment.json").write_text(json.dumps(env))
    page = compare(tmp_path / "a", tmp_path / "b")
    assert "| main_results | 2 | 2 | 0.2500 | 1 |" in page
    assert "main_results `verdict`: 'helps' on the reference, 'hurts' on the other" in page
    assert "revisions differ" not in page
