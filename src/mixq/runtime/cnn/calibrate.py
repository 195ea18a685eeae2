"""Calibration: run the float model on calibration batches and observe every graph tensor."""
from __future__ import annotations

import numpy as np

from ...progress import progress as progress_bar
from ...quant import make_observer
from .graph import Graph
from .graph_run import run_graph


def calibrate(graph: Graph, gm, batches, observer: str = "minmax", progress: bool = True, **observer_kw) -> dict:
    """Observers (by graph node name) fed with the float model's value of each node's output.

    gm: the torch.fx GraphModule the graph was captured from, or None to run the graph itself
    (frontends without a torch module: ONNX, torch.export programs).
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

    def observe(node, value):
        if node.name in observers:
            observers[node.name].update(value.detach().float().numpy())

    run = Recorder(gm).run if gm is not None else (lambda x: run_graph(graph, x, observe))
    expected = tuple(graph[graph.input].shape[1:])
    with torch.no_grad():
        for batch in progress_bar(batches, total=len(batches), desc="calibrating", unit="batch", enabled=progress):
            if isinstance(batch, (tuple, list)):
                batch = batch[0]
            x = torch.as_tensor(np.asarray(batch, dtype=np.float32))
            if x.ndim != 4 or tuple(x.shape[1:]) != expected:
                raise ValueError(f"calibration batch has shape {tuple(x.shape)}; expected [N, {', '.join(map(str, expected))}]")
            if not torch.isfinite(x).all():
                raise ValueError("calibration batch contains NaN or Inf")
            run(x)
    return observers
