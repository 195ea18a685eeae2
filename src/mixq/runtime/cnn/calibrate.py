"""Calibration: run the float model on calibration batches and observe every graph tensor."""
from __future__ import annotations

import numpy as np

from ...quant import make_observer
from .graph import Graph


def _progress(items, total: int, desc: str, enabled: bool):
    if not enabled:
        return items
    try:
        from tqdm import tqdm
    except ImportError:  # progress bars are a nicety, not a dependency
        return items
    return tqdm(items, total=total, desc=desc, unit="batch", leave=False)


def calibrate(graph: Graph, gm, batches, observer: str = "minmax", progress: bool = True, **observer_kw) -> dict:
    """Observers (by graph node name) fed with the float model's value of each node's output.

    batches: an iterable of NCHW float tensors/arrays (or (input, label) pairs).
    """
    import torch

    batches = list(batches)
    if not batches:
        raise ValueError("calibration needs at least one batch")
    watched = {n.source: n.name for n in graph.nodes if n.op not in ("input", "flatten", "output")}
    watched[graph[graph.input].source] = graph.input
    observers = {name: make_observer(observer, **observer_kw) for name in watched.values()}

    class Recorder(torch.fx.Interpreter):
        def run_node(self, n):
            out = super().run_node(n)
            if n.name in watched and isinstance(out, torch.Tensor):
                observers[watched[n.name]].update(out.detach().float().numpy())
            return out

    recorder = Recorder(gm)
    expected = tuple(graph[graph.input].shape[1:])
    with torch.no_grad():
        for batch in _progress(batches, len(batches), "calibrating", progress):
            if isinstance(batch, (tuple, list)):
                batch = batch[0]
            x = torch.as_tensor(np.asarray(batch, dtype=np.float32))
            if x.ndim != 4 or tuple(x.shape[1:]) != expected:
                raise ValueError(f"calibration batch has shape {tuple(x.shape)}; expected [N, {', '.join(map(str, expected))}]")
            if not torch.isfinite(x).all():
                raise ValueError("calibration batch contains NaN or Inf")
            recorder.run(x)
    return observers
