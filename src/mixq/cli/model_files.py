"""`mixq compile|search|profile` on a model file of the user's (ONNX, .pt2) with data files.

Data files are numpy's: `--calib` an .npy of NCHW float images (or an .npz holding one, under
"x" or alone) or a folder of image files, `--val` an .npz with images "x" and integer labels "y".
Arrays are used as given (preprocess them the way the model expects); folder images are only
resized to the model's input and scaled to [0, 1].
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
  mixq search model.onnx --calib calib.npz --val val.npz --executor ray --address ray://HEAD:10001
  mixq compile model.onnx --config best.json --calib calib.npz -o best.mixq
  mixq profile model.onnx --config w8a8 --calib calib.npz
model files: .onnx (opset 13+; an already-quantized QDQ model keeps its scales) or .pt2
(torch.export.save). Data: --calib an .npy of NCHW float32 images (or an .npz with "x", or a
folder of image files, resized to the model's input and scaled to [0, 1]),
--val an .npz with "x" and integer labels "y", preprocessed as the model expects."""


def is_model_file(text: str | None) -> bool:
    return text is not None and Path(text).suffix.lower() in MODEL_FILE_SUFFIXES


def _fail(msg: str):
    raise SystemExit(f"mixq: {msg}")


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")


def model_input_shape(model_path: str) -> tuple[int, int, int]:
    """(C, H, W) the model file takes."""
    if Path(model_path).suffix.lower() == ".pt2":
        from ..runtime.cnn.export_frontend import load_exported

        shape = tuple(load_exported(model_path).example_inputs[0][0].shape)
    else:
        from ..runtime.cnn.onnx_frontend import example_shape, load_onnx

        shape = example_shape(load_onnx(model_path))
    if len(shape) != 4:
        _fail(f"{model_path} takes input of shape {shape}; mixq compiles NCHW image models")
    return tuple(int(v) for v in shape[1:])


def load_image_folder(folder: Path, shape: tuple[int, int, int]) -> np.ndarray:
    """The folder's images (sorted by name) resized to (H, W), grey or RGB as C says, scaled to [0, 1]."""
    try:
        from PIL import Image
    except ImportError:
        _fail("reading an image folder needs Pillow (pip install pillow); or give an .npy of NCHW images")
    c, h, w = shape
    if c not in (1, 3):
        _fail(f"the model takes {c} channels; an image folder gives 1 (grey) or 3 (RGB): give an .npy instead")
    files = sorted(f for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        _fail(f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    out = np.empty((len(files), c, h, w), np.float32)
    for i, f in enumerate(files):
        try:
            with Image.open(f) as im:
                im = im.convert("L" if c == 1 else "RGB").resize((w, h), Image.BILINEAR)
                a = np.asarray(im, dtype=np.float32) / 255.0
        except OSError as e:
            _fail(f"cannot read image {f}: {e}")
        out[i] = a[None] if c == 1 else a.transpose(2, 0, 1)
    return out


def load_images(path: str, what: str, model_path: str | None = None) -> np.ndarray:
    """NCHW float32 images from an .npy, an .npz's "x" (or its only array), or a folder of images
    (resized to the model's input, scaled to [0, 1]: no other normalization)."""
    p = Path(path)
    if p.is_dir() and model_path is not None:
        return load_image_folder(p, model_input_shape(model_path))
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
    x = load_images(args.calib, "calibration", args.model)[:args.calibration]
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


def search(args, executor="local"):
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
                        subset_id=f"{Path(args.val).name}-n{len(x_val)}", executor=executor,
                        progress=not args.quiet)
    return result
