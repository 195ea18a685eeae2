"""compile_decoder: a Llama-style torch decoder -> DecoderPlan (read weights, lower, pack)."""
from __future__ import annotations

import time

import numpy as np

from ...quant import QuantConfig
from .lower import lower_decoder
from .plan import DecoderPlan


def decoder_params(model) -> tuple[dict, dict[str, np.ndarray]]:
    """(model config as a dict, float32 numpy parameters by HF name) of a mixq.models.LlamaForCausalLM."""
    from ...models.llama import LlamaForCausalLM

    if not isinstance(model, LlamaForCausalLM):
        raise TypeError(f"compile_decoder takes a mixq.models.LlamaForCausalLM (load HF weights into one), "
                        f"got {type(model).__name__}")
    params = {k: v.detach().float().cpu().numpy() for k, v in model.state_dict().items()}
    bad = [k for k, v in params.items() if not np.isfinite(v).all()]
    if bad:
        raise ValueError(f"parameters with NaN or Inf: {bad[:5]}")
    return model.config.to_dict(), params


def compile_decoder(model, config=None, calibration=None, *, kv_cache: str = "fp32") -> DecoderPlan:
    """A mixq.models.LlamaForCausalLM -> DecoderPlan.

    config: per-linear precision (None = fp32; names are HF module paths,
    ``model.layers.{i}.self_attn.{q,k,v,o}_proj``, ``model.layers.{i}.mlp.{gate,up,down}_proj``,
    ``lm_head``). int8 activations take dynamic per-token scales, so no calibration is needed;
    ``calibration`` must be None (reserved for static activation ranges and outlier channels).
    kv_cache: "fp32" or "int8" (one symmetric scale per token and KV head: 4x fewer cache bytes
    read per token)."""
    t0 = time.perf_counter()
    if calibration is not None:
        raise ValueError("compile_decoder quantizes activations per token at run time: calibration must be None")
    cfg = QuantConfig.from_any(config)  # a bad config fails before the weights are read
    model_cfg, params = decoder_params(model)
    spec, stored = lower_decoder(model_cfg, params, cfg, kv_cache)
    meta = dict(config=cfg.to_dict(), kv_cache=kv_cache, compile_seconds=round(time.perf_counter() - t0, 3))
    return DecoderPlan(spec, stored, meta)
