"""llama.cpp peer of bench/llm.py: the bench's random-weight decoder written as a GGUF file,
quantized by llama.cpp's own quantizer and run by llama-cpp-python (pip install ".[llm]").

The GGUF holds the same weights as the mixq rows (bench/llm.py's random_weights: layer 0's
fused Q|K|V and gate|up split back into llama.cpp's separate tensors, copied into every layer,
the same token table and output head), in f16, with llama architecture metadata from the
LlamaConfig and a placeholder vocab of the config's size (the benchmark feeds token ids; no
text is tokenized). llama.cpp's rotary embedding pairs adjacent lanes where Hugging Face pairs
lane i with i + head_dim/2, so the Q and K rows are permuted per head, as a converted HF model
is: the file computes what the mixq plan computes, up to quantization.

Each format is quantized from that f16 file with llama_cpp.llama_model_quantize (llama.cpp's
default tensor choices: e.g. Q4_0 and the K-quants keep the output head at Q6_K), loaded with
use_mmap=False (the weights live in the process's memory like a mixq plan's; a page cache
mapping could be evicted by other jobs) and timed as prefill = one Llama.eval of the prompt,
decode = single-token Llama.eval calls fed their own greedy token.

The functions above LlamaCppRunner need neither gguf nor llama_cpp (tests run them in CI).
"""
from __future__ import annotations

import ctypes
import logging
import os
import time

import numpy as np

from .peers import peer

# impl suffix -> llama.cpp's file type constant (llama_cpp.LLAMA_FTYPE_MOSTLY_<...>)
FORMATS = {"q8_0": "Q8_0", "q4_0": "Q4_0", "q4_k_m": "Q4_K_M", "q2_k": "Q2_K"}
KV_CACHE_BYTES = 2  # llama.cpp's default K and V cache type is f16
INSTALL_HINT = 'pip install ".[llm]" (llama-cpp-python builds llama.cpp with CMake, ~15 min)'


def impl_name(fmt: str) -> str:
    return f"llamacpp-{fmt}"


def missing() -> list[str]:
    """The modules this peer needs that this Python lacks (each reported once by peers.peer)."""
    return [name for name in ("gguf", "llama_cpp") if peer(name) is None]


def require(name: str):
    module = peer(name)
    if module is None:
        raise RuntimeError(f"the llama.cpp peer needs the {name} module: {INSTALL_HINT}")
    return module


def gguf_hparams(cfg) -> dict:
    """The llama architecture metadata of a LlamaConfig: {GGUFWriter method: value}."""
    return {
        "add_context_length": cfg.max_position_embeddings,
        "add_embedding_length": cfg.hidden_size,
        "add_block_count": cfg.num_layers,
        "add_feed_forward_length": cfg.intermediate_size,
        "add_head_count": cfg.num_heads,
        "add_head_count_kv": cfg.num_kv_heads,
        "add_rope_dimension_count": cfg.head_dim,
        "add_rope_freq_base": float(cfg.rope_theta),
        "add_layer_norm_rms_eps": float(cfg.rms_norm_eps),
        "add_vocab_size": cfg.vocab_size,
    }


def placeholder_vocab(n: int) -> tuple[list[str], list[str]]:
    """(tokens, gguf.TokenType names) of an n-token llama (SentencePiece) vocab: <unk>, <s>, </s>,
    the 256 byte tokens llama.cpp looks up (e.g. its newline token), then unique fillers."""
    if n < 3 + 256:
        raise ValueError(f"a llama vocab needs at least 259 tokens (3 special + 256 bytes), got {n}")
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)]
    types = ["UNKNOWN", "CONTROL", "CONTROL"] + ["BYTE"] * 256
    tokens += [f"tok{i}" for i in range(len(tokens), n)]
    types += ["NORMAL"] * (n - len(types))
    return tokens, types


def rope_rows_to_ggml(w: np.ndarray, heads: int) -> np.ndarray:
    """Q or K rows [heads * d, K] from Hugging Face's rotate-half order (pair i, i + d/2) to
    llama.cpp's adjacent pairs (2i, 2i + 1), per head."""
    n, k = w.shape
    d = n // heads
    return w.reshape(heads, 2, d // 2, k).swapaxes(1, 2).reshape(n, k)


def gguf_tensors(cfg, weights: dict):
    """(GGUF tensor name, array) for every tensor of the model, arrays as [out, in] like torch's
    (GGUF stores the reversed shape), matrices f16, norms f32. `weights` is bench/llm.py's
    random_weights(cfg): one layer's fused weights, copied into every layer."""
    h, kv, ff = cfg.hidden_size, cfg.kv_dim, cfg.intermediate_size
    f16 = lambda a: np.ascontiguousarray(a, dtype=np.float16)  # noqa: E731
    qkv, gate_up = weights["self_attn.qkv"], weights["mlp.gate_up"]
    layer = {
        "attn_q.weight": f16(rope_rows_to_ggml(qkv[:h], cfg.num_heads)),
        "attn_k.weight": f16(rope_rows_to_ggml(qkv[h:h + kv], cfg.num_kv_heads)),
        "attn_v.weight": f16(qkv[h + kv:]),
        "attn_output.weight": f16(weights["self_attn.o_proj"]),
        "ffn_gate.weight": f16(gate_up[:ff]),
        "ffn_up.weight": f16(gate_up[ff:]),
        "ffn_down.weight": f16(weights["mlp.down_proj"]),
        "attn_norm.weight": np.ones(h, np.float32),
        "ffn_norm.weight": np.ones(h, np.float32),
    }
    yield "token_embd.weight", f16(weights["embed"])
    for i in range(cfg.num_layers):
        for name, a in layer.items():
            yield f"blk.{i}.{name}", a  # the same array: the writer stores one copy a layer
    yield "output_norm.weight", np.ones(h, np.float32)
    yield "output.weight", f16(weights["lm_head"])


def decode_bytes_per_token(tensor_bytes: dict, cfg, mean_context: float, kv_bytes: int = KV_CACHE_BYTES) -> float:
    """Bytes one decode step reads: every tensor but the token table (one row of it is read) and
    the K and V cache of every layer at the mean context length."""
    weights = sum(b for name, b in tensor_bytes.items() if name != "token_embd.weight")
    return weights + cfg.num_layers * 2 * cfg.kv_dim * kv_bytes * mean_context


def write_f16_gguf(path: str, cfg, weights: dict) -> None:
    gguf = require("gguf")
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_name("mixq bench random-weight TinyLlama shape")
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    for method, value in gguf_hparams(cfg).items():
        getattr(writer, method)(value)
    tokens, types = placeholder_vocab(cfg.vocab_size)
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores([0.0] * len(tokens))
    writer.add_token_types([gguf.TokenType[t] for t in types])
    writer.add_unk_token_id(0)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    for name, a in gguf_tensors(cfg, weights):
        writer.add_tensor(name, a)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def quantize(src: str, dst: str, fmt: str, threads: int) -> None:
    """llama.cpp's quantizer: src (f16 GGUF) -> dst in FORMATS[fmt]."""
    llama_cpp = require("llama_cpp")
    # no line per tensor: the level Llama(verbose=False) sets on llama.cpp's log
    logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{FORMATS[fmt]}")
    params.nthread = threads
    rc = llama_cpp.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(params))
    if rc != 0:
        raise RuntimeError(f"llama_model_quantize({src} -> {fmt}) returned {rc}")


def gguf_tensor_bytes(path: str) -> dict:
    """{tensor name: bytes} of a GGUF file, as stored (quantized blocks included)."""
    reader = require("gguf").GGUFReader(path)
    return {t.name: int(t.n_bytes) for t in reader.tensors}


def gguf_files(cfg, weights: dict, formats, directory: str, threads: int, seed: int) -> dict:
    """{fmt: path} of the quantized GGUFs in `directory`, written (f16 first) unless a file of
    the same shape and seed is already there (a --gguf-dir kept from an earlier run)."""
    os.makedirs(directory, exist_ok=True)
    stem = os.path.join(directory, f"tinyllama-{cfg.num_layers}L-h{cfg.hidden_size}-v{cfg.vocab_size}-seed{seed}")
    f16 = f"{stem}-f16.gguf"
    out = {fmt: f"{stem}-{fmt}.gguf" for fmt in formats}
    if not all(os.path.exists(p) for p in out.values()) and not os.path.exists(f16):
        write_f16_gguf(f16 + ".part", cfg, weights)
        os.replace(f16 + ".part", f16)  # a killed run leaves no half file under the real name
    for fmt, path in out.items():
        if not os.path.exists(path):
            quantize(f16, path + ".part", fmt, threads)
            os.replace(path + ".part", path)
    return out


class LlamaCppRunner:
    """One quantized GGUF loaded by llama-cpp-python; a call runs prompt + `new` greedy tokens
    and returns (prefill seconds, seconds per decode step) like the mixq rows."""

    def __init__(self, path: str, threads: int, prompt_len: int, new: int):
        self.llama_cpp = require("llama_cpp")
        self.llm = self.llama_cpp.Llama(model_path=path, n_threads=threads, n_threads_batch=threads,
                                        n_ctx=prompt_len + new, n_batch=prompt_len, use_mmap=False,
                                        verbose=False)
        self.n_vocab = self.llm.n_vocab()

    def next_token(self) -> int:
        """Greedy pick from the last evaluated token's logits (Llama.eval keeps them only in the
        context unless logits_all, which would copy every prompt row)."""
        ptr = self.llama_cpp.llama_get_logits_ith(self.llm.ctx, -1)
        return int(np.argmax(np.ctypeslib.as_array(ptr, shape=(self.n_vocab,))))

    def __call__(self, prompt, new: int) -> tuple[float, float]:
        llm = self.llm
        llm.reset()  # the next eval drops the cache from position 0 on
        t0 = time.perf_counter()
        llm.eval(prompt)
        token = self.next_token()
        t1 = time.perf_counter()
        for _ in range(new - 1):
            llm.eval([token])
            token = self.next_token()
        return t1 - t0, (time.perf_counter() - t1) / (new - 1)
