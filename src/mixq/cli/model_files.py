"""`mixq compile|search|profile` on a model file of the user's (ONNX, .pt2) with data files.

Data files are numpy's: `--calib` an .npy of NCHW float images (or an .npz holding one, under
"x" or alone), `--val` an .npz with images "x" and integer labels "y". Inputs are used as given:
preprocess them the way the model expects.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

MODEL_FILE_SUFFIXES = (".onnx", ".pt2")

EXAMPLES = """example (a model of your own):
  python - <<'EOF'                 # calibration and validation data as numpy files
  import numpy as np; from mixq import data
  x, y = data.fashion_mnist("test-subset"); x = data.preprocess(x)
  np.savez("calib.npz", x=x[:256]); np.savez("val.npz", x=x[256:1256], y=y[256:1256]); np.save("x.npy", x[:8])
  EOF
  mixq compile model.onnx --config w8a8 --calib calib.npz -o model.mixq
  mixq run model.mixq --input x.npy --output y.npy
  mixq search model.onnx --calib calib.npz --val val.npz --out best.json
  mixq compile model.onnx --config best.json --calib calib.npz -o best.mixq
  mixq profile model.onnx --config w8a8 --calib calib.npz
model files: .onnx (opset 13+; an already-quantized QDQ model keeps its scales) or .pt2
(torch.export.save). Data: --calib an .npy of NCHW float32 images (or an .npz with "x"),
--val an .npz with "x" and integer labels "y", preprocessed as the model expects."""


def is_model_file(text: str | None) -> bool:
    return text is not None and Path(text).suffix.lower() in MODEL_FILE_SUFFIXES


def _fail(msg: str):
    raise SystemExit(f"mixq: {msg}")


def load_images(path: str, what: str) -> np.ndarray:
    """NCHW float32 images from an .npy, or an .npz's "x" (or its only array)."""
    p = Path(path)
    if not p.is_file():
        _fail(f"{what} file {path} not found")
    try:
        loaded = np.load(p, allow_pickle=False)
    except (OSError, ValueError) as e:
        _fail(f"cannot read {what} file {path} (.npy or .npz expected): {e}")
    if isinstance(loaded, np.lib.npyio.NpzFile):
        keys = list(loaded.keys())
        key = "x" if "x" in keys else (keys[0] if len(keys) == 1 else None)
        if key is None:
            _fail(f"{path} holds {keys}; name the images 'x'")
        loaded = loaded[key]
    x = np.asarray(loaded)
    if x.ndim != 4 or not np.issubdtype(x.dtype, np.number):
        _fail(f"{what} data in {path} has shape {x.shape} ({x.dtype}); expected NCHW float images [N, C, H, W]")
    x = x.astype(np.float32)
    if not np.isfinite(x).all():
        _fail(f"{what} data in {path} contains NaN or Inf")
    return x


def load_labeled(path: str) -> tuple[np.ndarray, np.ndarray]:
    """(images, labels) from an .npz with "x" and "y"."""
    x = load_images(path, "validation")
    with np.load(path, allow_pickle=False) as z:
        if "y" not in z:
            _fail(f"validation file {path} needs integer labels under 'y' (np.savez(path, x=images, y=labels))")
        y = np.asarray(z["y"])
    if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer):
        _fail(f"labels in {path} have shape {y.shape} ({y.dtype}); expected {len(x)} integers")
    return x, y


def calibration_batches(args) -> list[np.ndarray]:
    if args.calib is None:
        _fail("a model file needs calibration data: --calib calib.npz (NCHW float images); see --help")
    x = load_images(args.calib, "calibration")[:args.calibration]
    return [x[i:i + 32] for i in range(0, len(x), 32)]


def compile_file(args):
    from ..runtime.cnn.compile import compile as compile_plan

    batches = calibration_batches(args)
    return compile_plan(args.model, batches[0][:1], args.config, batches, observer=args.observer,
                        progress=not args.quiet), batches


def profile(args) -> int:
    from ..planner.roofline import machine, profile_plan

    plan, batches = compile_file(args)
    x = np.concatenate(batches)[:args.batch]
    prof = profile_plan(plan, x, machine(), measure=True, repeats=args.repeats)
    print(json.dumps(prof.to_dict(), indent=1, default=str) if args.json else prof.table(all_ops=args.all_ops))
    return 0


def search(args) -> int:
    from ..planner.model_search import search as run_search
    from ..planner.roofline import machine

    if args.val is None:
        _fail("searching a model file needs labeled validation data: --val val.npz (x, y); see --help")
    batches = calibration_batches(args)
    x_val, y_val = load_labeled(args.val)
    x_val, y_val = x_val[:args.val_size], y_val[:args.val_size]

    def accuracy(plan) -> float:
        logits = np.concatenate([plan.run(x_val[i:i + 500]) for i in range(0, len(x_val), 500)])
        return 100.0 * float((logits.argmax(1) == y_val).mean())

    result = run_search(args.model, batches[0][:1], batches, accuracy, candidates=tuple(args.candidates.split(",")),
                        algorithm=args.algorithm, objective=args.objective, lam=args.lam, max_drop=args.max_drop,
                        latency="kernels" if args.objective == "latency" else "predicted", latency_input=x_val[:1],
                        machine=machine(), cache_path=args.cache,
                        subset_id=f"{Path(args.val).name}-n{len(x_val)}", progress=not args.quiet)
    return result
