"""compile_decoder: a Llama-style torch decoder -> DecoderPlan (read weights, find outlier
channels if asked, lower, pack)."""
from __future__ import annotations

import time

import numpy as np

from ...quant import QuantConfig
from .layout import gemms
from .lower import lower_decoder
from .outliers import MAX_OUTLIER_FRACTION, check_threshold, find_outliers
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


def compile_decoder(model, config=None, calibration=None, *, kv_cache: str = "fp32",
                    outlier_threshold: float | None = None) -> DecoderPlan:
    """A mixq.models.LlamaForCausalLM -> DecoderPlan.

    config: per-linear precision (None = fp32; names are HF module paths,
    ``model.layers.{i}.self_attn.{q,k,v,o}_proj``, ``model.layers.{i}.mlp.{gate,up,down}_proj``,
    ``lm_head``). int8 activations take dynamic per-token scales, so no calibration is needed.
    kv_cache: "fp32" or "int8" (one symmetric scale per token and KV head: 4x fewer cache bytes
    read per token).

    Outlier channels (LLM.int8()): with ``calibration`` (token ids: one sequence, a [batch, seq]
    array, or a list of either) and ``outlier_threshold`` (e.g. 6.0), the fp32 model runs on the
    calibration tokens; every int8-activation GEMM (fused q|k|v, o, fused gate|up, down, head)
    whose input channel's max |x| exceeds the threshold computes that channel in fp32 and the rest
    in int8 (at most 5 % of its channels, the largest). The two go together: calibration is also
    meant for static activation ranges one day, so it does not imply outliers on its own."""
    t0 = time.perf_counter()
    cfg = QuantConfig.from_any(config)  # a bad config fails before the weights are read
    if (calibration is None) != (outlier_threshold is None):
        raise ValueError("compile_decoder uses calibration for outlier channels only: give calibration and "
                         "outlier_threshold together (int8 activations are otherwise quantized per token at "
                         "run time, without calibration)")
    threshold = None if outlier_threshold is None else check_threshold(outlier_threshold)
    model_cfg, params = decoder_params(model)
    outliers = None
    if threshold is not None:
        int8 = [(g, parts) for g, parts in gemms(model_cfg["num_layers"])
                if cfg.precision_of(parts[0]).int8_activations]
        if not int8:
            raise ValueError("outlier channels split int8-activation linears (w8a8, w4a8, w2a8), and this config "
                             "has none")
        outliers = find_outliers(model, int8, calibration, threshold, model_cfg["vocab_size"],
                                 model_cfg["max_position_embeddings"])
    spec, stored = lower_decoder(model_cfg, params, cfg, kv_cache, outliers)
    meta = dict(config=cfg.to_dict(), kv_cache=kv_cache, compile_seconds=round(time.perf_counter() - t0, 3))
    if threshold is not None:
        meta.update(outlier_threshold=threshold, outlier_max_fraction=MAX_OUTLIER_FRACTION,
                    outlier_channels=int(sum(c.size for c in outliers.values())))
    return DecoderPlan(spec, stored, meta)
