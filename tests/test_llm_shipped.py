"""The shipped fortunes decoder: its files load strictly, its plan matches torch, quantized plans
keep its next-token predictions; `mixq generate` streams text; the corpus split; bf16 safetensors."""
import json
import subprocess
import sys

import numpy as np
import pytest

import mixq

torch = pytest.importorskip("torch")
pytest.importorskip("tokenizers")

from mixq.data.sentences import FORTUNES_DIR  # noqa: E402
from mixq.models.llm import llm_metadata, load_llm  # noqa: E402


@pytest.fixture(scope="module")
def shipped():
    return load_llm()


def test_shipped_files_and_metadata(shipped):
    model, tok = shipped
    meta = llm_metadata()
    assert meta["config"] == model.config.to_dict() and model.config.tie_word_embeddings
    assert tok.get_vocab_size() == model.config.vocab_size and tok.token_to_id("<|endoftext|>") == 0
    assert 1 < meta["heldout_perplexity"] < 1000 and meta["steps"] > 0
    text = "A penny saved is a penny earned."
    assert tok.decode(tok.encode(text).ids) == text  # byte-level BPE round trip


def test_shipped_plan_matches_torch_and_quantized_plans_agree(shipped):
    model, tok = shipped
    ids = np.array(tok.encode("Never put off until tomorrow what you can do the day after tomorrow.").ids)
    with torch.no_grad():
        ref = model(torch.as_tensor(ids)[None])[0].double().numpy()
    fp32 = mixq.compile_decoder(model).logits(ids)
    assert np.abs(fp32 - ref).max() <= 1e-4 * np.abs(ref).max()
    w8 = mixq.compile_decoder(model, "w8a8").logits(ids)
    assert (w8.argmax(1) == ref.argmax(1)).mean() >= 0.9


def test_bf16_safetensors_read_without_torch(tmp_path):
    from mixq.models.registry import read_safetensors

    x = np.array([[1.0, -2.5, 3.140625]], dtype=np.float32)  # exact in bfloat16
    data = (x.view(np.uint32) >> 16).astype("<u2").tobytes()
    header = json.dumps({"x": {"dtype": "BF16", "shape": [1, 3], "data_offsets": [0, len(data)]}}).encode()
    path = tmp_path / "t.safetensors"
    path.write_bytes(len(header).to_bytes(8, "little") + header + data)
    np.testing.assert_array_equal(read_safetensors(path)["x"], x)


@pytest.mark.skipif(not FORTUNES_DIR.is_dir(), reason="needs Debian's fortunes")
def test_corpus_split_is_disjoint_and_deterministic():
    from mixq.data.text_corpus import fortune_documents

    train, held = fortune_documents("train"), fortune_documents("heldout")
    assert len(held) > 300 and len(train) > 15 * len(held)
    assert not set(train) & set(held)
    assert fortune_documents("heldout") == held
    with pytest.raises(ValueError, match="split"):
        fortune_documents("test")


def test_cli_generate_streams_text_and_speed(tmp_path, shipped):
    plan_path = tmp_path / "llm.mixq"
    cmd = [sys.executable, "-m", "mixq", "generate", "--prompt", "The cat", "--max-new-tokens", "12",
           "--config", "w8a8", "--save", str(plan_path)]
    r = subprocess.run(cmd, capture_output=True, text=True, check=True)
    assert r.stdout.startswith("The cat") and len(r.stdout.strip()) > len("The cat")
    assert "decode" in r.stderr and "tok/s" in r.stderr
    # the saved plan gives the same greedy text
    r2 = subprocess.run([sys.executable, "-m", "mixq", "generate", "--prompt", "The cat", "--max-new-tokens", "12",
                         "--plan", str(plan_path)], capture_output=True, text=True, check=True)
    assert r2.stdout == r.stdout
    bad = subprocess.run([sys.executable, "-m", "mixq", "generate", "--prompt", "", "--plan", str(plan_path)],
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "empty" in bad.stderr


@pytest.mark.skipif(not FORTUNES_DIR.is_dir(), reason="needs Debian's fortunes (the calibration text)")
def test_cli_generate_with_outlier_channels(tmp_path, shipped):
    plan_path = tmp_path / "llm_outliers.mixq"
    cmd = [sys.executable, "-m", "mixq", "generate", "--prompt", "The cat", "--max-new-tokens", "6", "--config", "w8a8",
           "--outlier-threshold", "6", "--save", str(plan_path)]
    r = subprocess.run(cmd, capture_output=True, text=True, check=True)
    assert r.stdout.startswith("The cat") and "outlier channels in fp32" in r.stderr
    assert sum(len(c) for c in mixq.load_plan(plan_path).outlier_channels().values()) > 0
    for extra, why in ((["--plan", str(plan_path)], "saved --plan"), (["--config", "fp32"], "int8")):
        bad = subprocess.run(cmd[:-2] + extra, capture_output=True, text=True)
        assert bad.returncode != 0 and why in bad.stderr and "Traceback" not in bad.stderr
