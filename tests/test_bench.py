"""`jobrec bench --quick`: runs end to end and writes its json and figures (no timing assertions)."""

import contextlib, io, json
from pathlib import Path

import numpy as np
import pytest

from jobrec.cli import main

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def quick_bench(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(["bench", "--quick", "--out", str(out)])
    assert rc == 0
    return out, json.loads((out / "bench.json").read_text())


def test_bench_json_has_every_measure(quick_bench):
    out, b = quick_bench
    assert b["quick"] is True
    modes = {(r["backbone"], r["mode"]) for r in b["training"]["runs"]}
    assert {("tiny", "dual"), ("tiny", "cross")} <= modes
    assert all(r["pairs_per_s"] > 0 for r in b["training"]["runs"])
    for m in ("cross", "dual", "cached"):
        assert b["scoring"][m]["pairs_per_s"] > 0
    assert b["scoring"]["cross"]["ratio_vs_cross"] == 1.0
    lat = b["latency"]["runs"]
    assert {(r["n_jobs"], r["retrieval"]) for r in lat} == {
        (300, True),
        (300, False),
        (3000, True),
        (3000, False),
    }
    assert all(r["median_s"] > 0 for r in lat)
    big = [r for r in lat if r["n_jobs"] == 3000]
    assert {r["shortlist"] for r in big} == {200, 3000}
    assert b["encoding"]["texts_per_s"] > 0 and "extrapolated" in b["encoding"]["note"]
    for r in b["recall"]["runs"]:
        assert set(r["recall"]) == {"20", "40", "100", "200"}
        assert all(0 <= v <= 1 for v in r["recall"].values())
        assert r["random"]["200"] == pytest.approx(200 / 300)
    assert b["tau_change"]["global_s"] > 0 and b["tau_change"]["one_candidate_shortlist_s"] > 0
    assert b["memory"]["peak_rss_mb"] > 0 and b["memory"]["traced_peak_mb_recommend_without_retrieval"] > 0
    # the bench fits the retrieval cascade of a model that holds none, measures it beside the cosine index, and serves with it
    assert b["cascade"]["fitted_now"] is True and set(b["cascade"]["held_out_recall"]) == {"0.8", "None"}
    assert {r["query"] for r in b["recall"]["runs"]} == {"cosine", "cascade"} and b["latency"][
        "query"
    ] == "cascade"
    # quick mode leaves out what takes minutes: the two-process training and Ray's start-up
    assert b["ddp"] is None and b["engines"]["local"]["candidates_per_s"] > 0 and "ray" not in b["engines"]
    assert (
        b["engines"]["local"]["cores"] == 1 and b["machine"]["cpu_model"]
    )  # every timing says what it ran on


def test_bench_measures_catalogue_encoding_on_long_descriptions(quick_bench):
    "Released-style descriptions (about 15 phrases) beside generated ones (about 7), in reading order and by token length."
    _, b = quick_bench
    ce = {r["label"]: r for r in b["catalogue_encoding"]["runs"]}
    assert set(ce) == {"released-style", "generated"}
    assert (
        ce["released-style"]["description_phrases_median"]
        >= 12
        >= ce["generated"]["description_phrases_median"]
    )
    assert ce["released-style"]["distinct_phrases"] > ce["generated"]["distinct_phrases"]
    for r in ce.values():
        assert set(r["runs"]) == {"reading_order", "by_length"} and set(r["projected_100k_s"]) == set(
            r["runs"]
        )
        assert r["runs"]["by_length"]["padded_tokens"] < r["runs"]["reading_order"]["padded_tokens"]
        assert all(v["jobs_per_s"] > 0 for v in r["runs"].values())


def test_bench_figures_written(quick_bench):
    out, b = quick_bench
    assert sorted(b["figures"]) == [
        "latency.png",
        "recall.png",
        "scoring_throughput.png",
        "training_throughput.png",
    ]
    for f in b["figures"]:
        assert (out / f).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_tiled_catalogue_reuses_encodings():
    from jobrec.recommend import Catalogue
    from jobrec.bench import tiled_catalogue
    from jobrec.data import generate_synthetic

    jobs = generate_synthetic(seed=0, n_candidates=10, n_jobs=7).jobs
    emb = {"preference": np.arange(7 * 3, dtype=np.float32).reshape(7, 3)}
    t = tiled_catalogue(Catalogue(jobs, "k", emb), 20)
    assert len(t) == 20 and len({j.job_id for j in t.jobs}) == 20
    np.testing.assert_array_equal(t.emb["preference"][15], emb["preference"][1])
    np.testing.assert_array_equal(t.emb["preference"][[15, 3]], emb["preference"][[1, 3]])
    assert t.emb["preference"].shape == (20, 3)
    assert t.jobs[15].required_skills == jobs[1].required_skills and jobs[1].job_id == "J0002"
    assert len(tiled_catalogue(Catalogue(jobs, "k", emb), 5)) == 5
