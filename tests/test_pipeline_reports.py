"The experiment pipeline on a smoke configuration, and every report template executed by papermill on its output."
import json
from pathlib import Path
import numpy as np, pandas as pd, pytest

from jobrec.core import load_config
from jobrec.pipeline import run_experiment, load_run, load_ablations
from jobrec.report import list_templates, run_report, report_name, run_reports, ReportError, load_params

ROOT = Path(__file__).resolve().parents[1]
SMOKE_ABLATIONS = ["no_stage2", "no_lagrangian", "no_calibration"]

def smoke_config(**over):
    return load_config("cpu-small", ROOT/"experiments"/"smoke.yaml", over or None)

@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")/"smoke"
    run_experiment(smoke_config(), out, ablation_names=SMOKE_ABLATIONS)
    return out

@pytest.fixture(scope="session")
def smoke_seed8(smoke_run):
    "The smoke experiment again with training seed 8 (same data), where `jobrec reports --seeds 7,8` looks for it."
    from jobrec.seeds import seed_config, seed_run_dir
    from jobrec.pipeline import load_data
    cfg = smoke_config(); out = seed_run_dir(smoke_run, 8, cfg.seed)
    run_experiment(seed_config(cfg, 8), out, ablation_names=SMOKE_ABLATIONS, data=load_data(cfg))
    return out

@pytest.fixture(scope="session")
def quick_bench(tmp_path_factory):
    from jobrec.bench import run_benchmarks
    return run_benchmarks(load_config("cpu-small"), tmp_path_factory.mktemp("bench"), quick=True)

def test_run_folder_complete(smoke_run):
    run = load_run(smoke_run)
    assert (smoke_run/"config.yaml").exists() and run.config.backbone.name == "tiny"
    systems = set(run.main.system)
    assert {"jobrec", "jobrec_pref_only", "conflated", "random", "popularity"} <= systems
    # the expensive zero-shot LLM scores a seeded subset, evaluated beside jobrec on the same candidates
    sub = run.main[run.main.system.isin(["llm_zero_shot (subset)", "jobrec (subset)"])]
    assert set(sub.system) == {"llm_zero_shot (subset)", "jobrec (subset)"}
    assert sub[(sub.side == "candidate") & (sub.protocol == "full")]["n"].max() <= run.config.baselines.llm_max_candidates
    assert "llm_zero_shot (subset)" in set(run.paired.b_system)
    assert set(run.main.side) == {"candidate", "employer"} and set(run.main.protocol) == {"sampled", "full", "warm"}
    from jobrec.pipeline import qualification_auc
    a_label, a_rule = qualification_auc(run, "jobrec")  # the employer side's AUC over all test pairs, against label and rule
    assert 0 <= a_label <= 1 and 0 <= a_rule <= 1 and qualification_auc(run, "random")[1] < a_rule
    assert (run.main["lo"] <= run.main["mean"] + 1e-12).all() and (run.main["mean"] <= run.main["hi"] + 1e-12).all()
    assert set(run.ablations.ablation) == {"jobrec", *SMOKE_ABLATIONS}
    assert {"inference_served", "fixed", "conflated"} <= set(run.sweep.system)
    s = run.scores("jobrec")
    n_test = int((run.data.split == "test").sum())
    assert s["cand"].shape == (n_test, len(run.data.jobs)) and np.isfinite(s["cand"]).all()
    assert "preference_expert" in run.experts["cross_evaluation"]

def test_no_lagrangian_ablation_reuses_experts_but_changes_ranking(smoke_run):
    ab = load_run(smoke_run).ablations
    emp = ab[(ab.side == "employer") & (ab.protocol == "full") & (ab.metric == "ndcg@10")].set_index("ablation")["mean"]
    assert emp["no_lagrangian"] == pytest.approx(emp["jobrec"])  # same qualification expert: fusion-only delta

def test_same_seed_same_numbers(smoke_run, tmp_path):
    cfg = smoke_config()
    out = run_experiment(cfg, tmp_path/"again", ablations=False, systems=["random", "popularity"])
    a, b = load_run(smoke_run).main, load_run(out).main
    key = ["system", "side", "protocol", "metric"]
    m = a.merge(b, on=key, suffixes=("_a", "_b"))
    assert len(m) == len(b) and len(m) > 50
    np.testing.assert_allclose(m["mean_a"], m["mean_b"], rtol=0, atol=1e-9)

def test_ablations_file_is_checked():
    abl = load_ablations()
    assert all(set(a) == {"description", "delta"} for a in abl.values())

# the released report reads a released-data run, not the smoke run: tests/test_released.py
@pytest.mark.parametrize("template", [t for t in list_templates(ROOT) if report_name(t) != "released"], ids=lambda p: p.stem)
def test_template_runs_on_smoke(template, smoke_run, quick_bench, tmp_path, request):
    params = load_params(ROOT/"experiments"/"params"/"smoke.yaml", report_name(template), ROOT)
    params["run_dir"] = str(smoke_run)
    if report_name(template) == "efficiency": params["bench_json"] = str(quick_bench)
    if report_name(template) == "seed_spread": params["seed_runs"] = [str(smoke_run), str(request.getfixturevalue("smoke_seed8"))]
    out = run_report(template, tmp_path/"reports", params, root=ROOT)
    m = json.loads((out/"metrics.json").read_text())
    assert m, "empty metrics.json"
    figs = list((out/"figures").glob("*.png"))
    assert figs and all(f.stat().st_size > 1000 for f in figs)
    md = (out/"report.md").read_text()
    assert md.startswith("# ") and "import " not in md
    env = json.loads((out/"environment.json").read_text())
    assert env["packages"]["jobrec"] and "git_revision" in env

def test_failed_report_keeps_previous(smoke_run, tmp_path):
    t = [t for t in list_templates(ROOT) if report_name(t) == "main_results"][0]
    good = run_report(t, tmp_path/"reports", {"run_dir": str(smoke_run)}, root=ROOT)
    before = (good/"metrics.json").read_bytes()
    with pytest.raises(ReportError, match="main_results"):
        run_report(t, tmp_path/"reports", {"run_dir": str(tmp_path/"no-such-run")}, root=ROOT)
    assert (good/"metrics.json").read_bytes() == before
    assert sorted(p.name for p in (tmp_path/"reports").iterdir()) == ["main_results"]

def test_run_and_reports_record_numerics(smoke_run, tmp_path):
    num = json.loads((smoke_run/"numerics.json").read_text())
    assert num["precision"] == num["compute_dtype"] == "fp32" and num["torch_threads"] >= 1 and "flags" in num["cpu"]
    t = [t for t in list_templates(ROOT) if report_name(t) == "main_results"][0]
    env = json.loads((run_report(t, tmp_path/"reports", {"run_dir": str(smoke_run)}, root=ROOT)/"environment.json").read_text())
    assert env["precision"] == "fp32" and env["numerics"] == num and env["torch_threads"] >= 1 and env["cpu"]["flags"] == num["cpu"]["flags"]

def test_verify_reports_command(smoke_run, tmp_path, capsys, monkeypatch):
    from jobrec.cli import main
    from jobrec.core import CPU_KERNELS
    import tempfile
    for k in CPU_KERNELS["avx2"]: monkeypatch.setenv(k, ""); monkeypatch.delenv(k)  # restored after the test
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # a failed verification keeps its folder
    committed = tmp_path/"committed"
    args = ["reports", "--config", str(ROOT/"experiments"/"smoke.yaml"), "--params", "smoke", "--skip-run", "--run", str(smoke_run),
            "--only", "main_results", "--reports-dir", str(committed)]
    assert main(args) == 0
    p = committed/"main_results"/"metrics.json"
    m = json.loads(p.read_text()); m["jobrec"]["employer_ndcg@10"] += 0.01; p.write_text(json.dumps(m))
    assert main(args + ["--verify"]) == 1
    out = [l for l in capsys.readouterr().out.splitlines() if l.startswith("main_results:")]
    assert len(out) == 1 and out[0].startswith("main_results: jobrec.employer_ndcg@10: committed")  # every other figure: the same bits
    assert main(args + ["--verify", "--tolerance", "0.02"]) == 0
    assert "reproduced" in capsys.readouterr().out

def test_reports_with_seed_spread(smoke_run, smoke_seed8, tmp_path):
    "`jobrec reports --seeds`: the spread report, then main results and ablations that show it (and not once the run differs)."
    from jobrec.cli import main
    rd = tmp_path/"reports"
    args = ["reports", "--config", str(ROOT/"experiments"/"smoke.yaml"), "--params", "smoke", "--skip-run", "--run", str(smoke_run), "--reports-dir", str(rd)]
    assert main(args + ["--seeds", "7,8", "--only", "seed_spread,main_results,ablations"]) == 0
    sp = json.loads((rd/"seed_spread"/"metrics.json").read_text())
    assert sp["seeds"] == [7, 8] and sp["reference_seed"] == 7
    a, b = (load_run(d).main.set_index(["system", "side", "protocol", "metric"])["mean"] for d in (smoke_run, smoke_seed8))
    key = ("jobrec", "candidate", "full", "ndcg@10")
    assert sp["systems"]["jobrec"]["candidate_ndcg@10"]["mean"] == pytest.approx((a[key] + b[key])/2)
    assert sp["systems"]["jobrec"]["candidate_ndcg@10"]["sd"] == pytest.approx(abs(a[key] - b[key])/np.sqrt(2))
    assert sp["systems"]["bm25"]["candidate_ndcg@10"]["sd"] == 0 and sp["systems"]["jobrec"]["candidate_ndcg@10"]["sd"] > 0  # a deterministic baseline has no spread
    mr = json.loads((rd/"main_results"/"metrics.json").read_text())
    assert mr["seed_spread"]["jobrec"]["candidate_ndcg@10"] == pytest.approx(sp["systems"]["jobrec"]["candidate_ndcg@10"], abs=1e-12)
    ab = json.loads((rd/"ablations"/"metrics.json").read_text())
    v = ab["paired_vs_jobrec"]["no_stage2/candidate"]
    assert {"seed_mean", "seed_sd"} <= set(v) and v["verdict"] == sp["ablations"]["no_stage2/candidate"]["verdict"]
    # a spread made from other runs is not this run's: the reports say so instead of showing it
    (rd/"seed_spread"/"spread_main.csv").write_text(pd.read_csv(rd/"seed_spread"/"spread_main.csv").assign(reference=lambda d: d.reference + 1e-3).to_csv(index=False))
    assert main(args + ["--only", "main_results"]) == 0
    assert json.loads((rd/"main_results"/"metrics.json").read_text())["seed_spread"] is None

def test_reports_seeds_need_the_reference_seed(capsys):
    from jobrec.cli import main
    assert main(["reports", "--config", str(ROOT/"experiments"/"smoke.yaml"), "--seeds", "8,9", "--skip-run"]) == 2
    assert "configured seed 7" in capsys.readouterr().err
    assert main(["reports", "--config", str(ROOT/"experiments"/"smoke.yaml"), "--seeds", "7", "--skip-run"]) == 2

def test_profile_summary_and_its_report_sections(smoke_run, tmp_path):
    "A run made apart summarised (zero-shot subset included); main_results and experts show it only when the summary exists."
    import yaml
    from jobrec.report import write_profile_summary
    run = load_run(smoke_run)
    f = write_profile_summary(smoke_run, tmp_path/"cpu_llm"/"summary.json", "jobrec run --config experiments/smoke.yaml")
    s = json.loads(f.read_text()); zs = s["zero_shot"]
    full = run.main[(run.main.protocol == "full") & (run.main.metric == "ndcg@10")].set_index(["system", "side"])["mean"]
    assert 0 < len(zs["candidates"]) <= run.config.baselines.llm_max_candidates
    assert set(zs["candidates"]) <= set(run.data.idx("test").tolist())
    assert zs["llm_zero_shot"]["employer_ndcg@10"] == full[("llm_zero_shot (subset)", "employer")]
    assert zs["jobrec"]["candidate_ndcg@10"] == full[("jobrec (subset)", "candidate")]
    assert s["jobrec"]["candidate_ndcg@10"] == full[("jobrec", "candidate")] and s["wall_seconds"] == run.timings["total"]
    assert s["experts"]["qualification_auc"] == run.experts["cross_evaluation"]["qualification_expert"]["qualification"]["auc"]
    assert s["config"] == yaml.safe_load((smoke_run/"config.yaml").read_text()) and s["backbone"] == "tiny"
    t = {report_name(x): x for x in list_templates(ROOT)}
    for present in (True, False):
        params = {"run_dir": str(smoke_run), "llm_summary_json": str(f if present else tmp_path/"absent.json")}
        mr, ex = (run_report(t[n], tmp_path/f"reports_{present}", params, root=ROOT) for n in ("main_results", "experts"))
        m, e = (json.loads((d/"metrics.json").read_text()) for d in (mr, ex))
        assert ("Zero-shot SmolLM2 (seeded subset of" in (mr/"report.md").read_text()) == present
        assert ("The LLM path on CPU" in (ex/"report.md").read_text()) == present
        if not present:
            assert m["zero_shot_subset"] is None and e["cpu_llm"] is None
            continue
        # this run's own jobrec scored again on the summary's subset: the pipeline's subset figures, to the bit
        assert m["zero_shot_subset"]["systems"]["jobrec (this run)"] == zs["jobrec"]
        assert m["zero_shot_subset"]["n_candidates"] == len(zs["candidates"])
        assert e["cpu_llm"]["wall_seconds"] == s["wall_seconds"] and e["cpu_llm"]["qualification AUC"] == s["experts"]["qualification_auc"]
