"""Names of a Llama-style decoder plan: the Hugging Face module paths a config sets, and how the
plan fuses them (Q|K|V and gate|up share their input, so each pair runs as one GEMM)."""
from __future__ import annotations

EMBED = "model.embed_tokens"
FINAL_NORM = "model.norm"
LM_HEAD = "lm_head"
# fused GEMM (its stored name under the layer prefix) -> the linears it holds, in output-column order
FUSED = {
    "self_attn.qkv": ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"),
    "self_attn.o_proj": ("self_attn.o_proj",),
    "mlp.gate_up": ("mlp.gate_proj", "mlp.up_proj"),
    "mlp.down_proj": ("mlp.down_proj",),
}
NORMS = ("input_layernorm", "post_attention_layernorm")


def layer_prefix(i: int) -> str:
    return f"model.layers.{i}"


def linear_names(n_layers: int) -> list[str]:
    """Every linear a config can set a precision for."""
    return [f"{layer_prefix(i)}.{n}" for i in range(n_layers) for group in FUSED.values() for n in group] + [LM_HEAD]


def gemms(n_layers: int) -> list[tuple[str, tuple[str, ...]]]:
    """Every GEMM the plan runs: (its stored name, the linears it holds), the output head last.
    The linears of one GEMM share its input, so they share its outlier channels too."""
    out = [(f"{layer_prefix(i)}.{fused}", tuple(f"{layer_prefix(i)}.{n}" for n in parts))
           for i in range(n_layers) for fused, parts in FUSED.items()]
    return out + [(LM_HEAD, (LM_HEAD,))]
