"""Device guard: the CPU suite sees one device, so a tensor left on the CPU next to a model on a GPU goes unnoticed.
PyTorch's `meta` device stands in for the second device: the backbone's encodings are moved to `meta`, and any head,
feature matrix, bank or weight still on the CPU raises "Expected all tensors to be on the same device" when it meets them."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
import numpy as np
import pytest
import torch

from jobrec.core import load_config
from jobrec.data import generate_synthetic
from jobrec.experts import ExpertSystem, feature_stats, info_nce
from jobrec.recommend import head_scores
from jobrec.training import Trainer


@pytest.fixture(scope="module")
def on_meta(tmp_path_factory):
    data = generate_synthetic({"n_candidates": 30, "n_jobs": 8}, 0)
    cfg = load_config(
        "cpu-small",
        overrides={
            "backbone": {"name": "tiny", "use_unsloth": "false"},
            "device": "cpu",
            "schema": {"max_length": 48},
            "expert": {"head_hidden": [32]},
            "lora": {"r": 4, "alpha": 8},
            "train": {"batch_groups": 4, "n_negatives": 3},
        },
    ).to_dict()
    real = ExpertSystem(cfg, feat_stats=feature_stats(data)).backbone

    class OnMeta:  # the real backbone, as if it computed on another device: its encodings arrive there
        device = "meta"

        def __getattr__(self, name):
            return getattr(real, name)

        def encode(self, *a, **k):
            return real.encode(*a, **k).to("meta")

    return (
        ExpertSystem(cfg, backbone=OnMeta(), feat_stats=feature_stats(data)),
        data,
        cfg,
        tmp_path_factory.mktemp("meta"),
    )


def test_state_follows_the_backbone(on_meta):
    s, data, _, _ = on_meta
    assert {p.device.type for p in s.heads.parameters()} == {"meta"} and s.task_logits.device.type == "meta"
    assert s.context(data).feats.device.type == "meta"


def test_a_head_step_runs_on_the_device(on_meta):
    s, data, cfg, tmp = on_meta
    tr = Trainer(s, data, cfg, tmp, progress=False)
    side, a, b, _ = tr.groups.batch("pref1", tr.groups.pool("pref1"), 0)
    ci, ji = tr.groups.pairs(side, a, b)
    valid = b >= 0
    z = torch.zeros(b.shape, device="meta").masked_scatter(
        torch.from_numpy(valid).to("meta"),
        s.cached_logits("preference", s.context(data), ci[valid], ji[valid]),
    )
    loss = info_nce(z, valid=torch.from_numpy(valid).to("meta"))
    loss.backward()
    assert all(p.grad is None or p.grad.device.type == "meta" for p in s.heads.parameters())


def test_bank_and_scoring_run_on_the_device(on_meta):
    s, data, cfg, tmp = on_meta
    tr = Trainer(s, data, cfg, tmp, progress=False)
    pool = tr.groups.pool("pref1")
    tr.refresh_bank("pref1", {"preference": pool})
    assert {v.device.type for v in tr.bank.values()} == {"meta"}
    side, a, b, _ = tr.groups.batch("pref1", pool, 0)
    ci, ji = tr.groups.pairs(side, a, b)
    valid = b >= 0
    neg = np.zeros(b.shape, bool)
    neg[:, 1:] = True
    with torch.no_grad():
        z = s.pair_logits(
            "preference",
            s.context(data),
            ci[valid],
            ji[valid],
            bank=tr.bank["preference:j"],
            bank_side="j",
            bank_rows=neg[valid],
        )
    assert z.device.type == "meta"
    sc = s.score_all(data, [0, 1])  # results reach numpy through the one host transfer
    assert sc["s_pref"].shape == (2, len(data.jobs)) and sc["p_qual"].dtype == np.float32
    U = s.encode_entities(s.entity_texts(data.candidates[:1], "preference"), "preference")
    V = s.encode_entities(s.entity_texts(data.jobs[:3], "preference"), "preference")
    assert head_scores(
        s,
        "preference",
        U.float().cpu().numpy() if U.device.type != "meta" else np.zeros(U.shape, np.float32),
        np.zeros(tuple(V.shape), np.float32),
        np.zeros((3, len(s.feat_mean)), np.float32),
    ).shape == (3,)


def test_gpu_paper_takes_unsloths_fast_lora_path():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    assert load_config("gpu-paper")["lora"]["dropout"] == 0
    assert "Unsloth" in (root / "jobrec" / "conf" / "profiles" / "gpu-paper.yaml").read_text()
