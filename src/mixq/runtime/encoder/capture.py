"""Capture of a BERT-style encoder: its sizes and float weights, read by module path.

Works on mixq.models.BertModel and on any module with the same structure (Hugging Face's
BertModel has it): ``embeddings.{word,position,token_type}_embeddings``, ``embeddings.LayerNorm``,
``encoder.layer[i].attention.self.{query,key,value}``, ``.attention.output.{dense,LayerNorm}``,
``.intermediate.dense``, ``.output.{dense,LayerNorm}``; exact-erf GELU.
"""
from __future__ import annotations

import numpy as np

from ..errors import UnsupportedModelError
from .layout import LINEARS, layer_prefix


def _config_value(cfg, *names):
    for n in names:
        if cfg is not None and getattr(cfg, n, None) is not None:
            return getattr(cfg, n)
    return None


def capture_encoder(model) -> tuple[dict, dict[str, np.ndarray]]:
    """(spec, float32 arrays by parameter name) of a BERT encoder; UnsupportedModelError lists
    what does not fit."""
    import torch

    problems = []
    emb, enc = getattr(model, "embeddings", None), getattr(model, "encoder", None)
    layers = list(getattr(enc, "layer", [])) if enc is not None else []
    if emb is None or not layers:
        raise UnsupportedModelError("mixq cannot compile this model as an encoder: it needs .embeddings and "
                                    ".encoder.layer (a BERT-style module)")
    cfg = getattr(model, "config", None)
    heads = _config_value(cfg, "num_heads", "num_attention_heads")
    act = _config_value(cfg, "hidden_act")
    if heads is None:
        problems.append("config: number of attention heads (num_heads / num_attention_heads) not found")
    if act not in (None, "gelu"):
        problems.append(f"config.hidden_act: {act!r} (the runtime runs exact-erf 'gelu' only)")
    params = {k: v.detach().to(torch.float32).contiguous().numpy() for k, v in model.state_dict().items()
              if v.dtype.is_floating_point}
    hidden = params["embeddings.word_embeddings.weight"].shape[1]
    for i in range(len(layers)):
        for local in LINEARS:
            if f"{layer_prefix(i)}.{local}.weight" not in params:
                problems.append(f"{layer_prefix(i)}.{local}: missing linear layer")
    for path, mod in model.named_modules():
        if isinstance(mod, torch.nn.LayerNorm) and not mod.elementwise_affine:
            problems.append(f"{path}: LayerNorm without affine parameters")
    if problems:
        raise UnsupportedModelError("mixq cannot compile this encoder:\n  " + "\n  ".join(problems))
    eps = float(emb.LayerNorm.eps)
    spec = dict(kind="encoder", hidden=int(hidden), heads=int(heads), layers=len(layers), eps=eps,
                intermediate=int(params[f"{layer_prefix(0)}.intermediate.dense.weight"].shape[0]),
                vocab=int(params["embeddings.word_embeddings.weight"].shape[0]),
                max_positions=int(params["embeddings.position_embeddings.weight"].shape[0]),
                model=type(model).__name__)
    return spec, params


def _batch_arrays(batch):
    """(input_ids, attention_mask) of a calibration batch: a dict with those keys, an (ids, mask)
    pair, or an (index, ids, mask) triple as mixq.planner.text_study.tokenized_batches makes."""
    if isinstance(batch, dict):
        return batch["input_ids"], batch.get("attention_mask")
    if isinstance(batch, (tuple, list)) and len(batch) in (2, 3):
        return batch[-2], batch[-1]
    raise TypeError("a calibration batch is a dict with input_ids/attention_mask, (ids, mask) or (index, ids, mask)")


def input_ranges(model, calibration) -> dict[str, np.ndarray]:
    """Per-input-channel max |x| of every linear layer's input over the calibration batches
    (real tokens only): what SmoothQuant's per-channel factors are made of."""
    import torch

    ranges: dict[str, torch.Tensor] = {}
    current_mask: list = [None]

    def hook(name):
        def record(_module, inputs):
            x = inputs[0].detach()
            m = current_mask[0]
            rows = x.reshape(-1, x.shape[-1]) if m is None else x[m.bool()]
            amax = rows.abs().amax(0) if len(rows) else torch.zeros(x.shape[-1])
            ranges[name] = amax if name not in ranges else torch.maximum(ranges[name], amax)
        return record

    handles = [mod.register_forward_pre_hook(hook(name)) for name, mod in model.named_modules()
               if isinstance(mod, torch.nn.Linear)]
    try:
        with torch.no_grad():
            for batch in calibration:
                ids, mask = _batch_arrays(batch)
                ids = torch.as_tensor(np.asarray(ids, dtype=np.int64))
                mask = None if mask is None else torch.as_tensor(np.asarray(mask, dtype=np.int64))
                current_mask[0] = mask
                model(ids, mask)
    finally:
        for h in handles:
            h.remove()
    if not ranges:
        raise ValueError("calibration gave no batches")
    return {k: v.to(torch.float32).numpy() for k, v in ranges.items()}
