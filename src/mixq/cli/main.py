"""The ``mixq`` command.

    mixq demo      the main job: shipped ResNet-20 + Fashion-MNIST -> machine model -> profile ->
                   AIQ search -> compiled plan -> measured run -> report
    mixq machine   the CPU, the kernel path and the measured machine model (cached)
    mixq profile   per-layer roofline table of a model (zoo name or ONNX/.pt2 file) at a config
    mixq search    per-layer precision search (AIQ or latency-aware) of a zoo model or model file
    mixq compile   a zoo model or a model file (ONNX, .pt2) -> a plan file
    mixq run       run a plan file on an .npy input (or score it on Fashion-MNIST)
    mixq generate  text from the shipped decoder (or a decoder plan), with decode tokens/s
    mixq bench     a short GEMM benchmark: one layer at fp32, bf16, int8 and int4 vs numpy
    mixq report    rebuild a report from the results.json a demo or search wrote
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time

import numpy as np

from .. import ops
from ..quant import parse_precision
from . import encoder as cli_encoder
from . import generate as cli_generate
from . import model_files
from .executors import add_executor_args, executor_from_args
from .encoder import ENCODER_MODELS


def _median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def cmd_bench(args) -> int:
    rng = np.random.default_rng(args.seed)
    m, n, k = args.m, args.n, args.k
    w = (rng.standard_normal((n, k)) / np.sqrt(k)).astype(np.float32)
    x = rng.standard_normal((m, k)).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    exact = x.astype(np.float64) @ w.T.astype(np.float64) + bias
    print(f"mixq GEMM demo: y = relu(x @ W.T + b), x [{m}, {k}], W [{n}, {k}], "
          f"{ops.get_num_threads()} threads, ISA {ops.cpu_info()['isa']}")
    rows = []
    for name in ("fp32", "bf16", "w8a8", "w7a8", "w4a8-g128", "w4a32-g128"):
        precision = parse_precision(name)
        p = precision.pack(w)
        act = "fp32" if precision.entry.core_mode == "weight_only" else "int8"
        rows.append((f"mixq {name}", p, (lambda p=p, act=act: ops.matmul(x, p, bias, clamp="relu", act=act)),
                     p.nbytes))
    # numpy last: its BLAS threads keep spinning after a call and would slow whatever runs next.
    rows.append(("numpy fp32", None, lambda: np.maximum(x @ w.T + bias, 0), w.nbytes))
    flops = 2.0 * m * n * k
    print(f"{'path':<22}{'kernel':<36}{'ms':>9}{'GOPS':>9}{'weight MB':>11}{'max rel err':>13}")
    for label, p, fn, nbytes in rows:
        sec = _median_seconds(fn, args.repeats)
        kernel = ops.last_kernel() if p is not None else "-"
        err = np.abs(fn() - np.maximum(exact, 0)).max() / np.abs(exact).max()
        print(f"{label:<22}{kernel:<36}{sec * 1e3:>9.3f}{flops / sec / 1e9:>9.1f}{nbytes / 1e6:>11.2f}{err:>13.2e}")
    return 0


def cmd_machine(args) -> int:
    info = ops.cpu_info()
    peaks, missing = {}, {}
    for kind in ("int8", "fp32", "bf16"):
        try:
            peaks[kind] = round(ops.measure_peak(kind, args.seconds), 1)
        except ValueError as e:  # no such unit on this CPU / path: said in the table
            peaks[kind], missing[kind] = None, str(e)
    info["peak_gops"] = peaks
    info["dram_read_gbs"] = round(ops.measure_bandwidth(), 1)
    from ..planner.roofline import machine

    info["roofline"] = machine(refresh=args.refresh, seconds=args.seconds).to_dict()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    feats = ", ".join(k for k, v in info["features"].items() if v) or "none"
    print(f"ISA in use      {info['isa']} (available: {', '.join(info['available_isas'])})")
    print(f"features        {feats}")
    print(f"kernels         " + ", ".join(k for k in info["kernels"].values() if k and k != "none"))
    print(f"caches          L1d {info['l1d_bytes'] >> 10} KiB, L2 {info['l2_bytes'] >> 10} KiB, "
          f"L3 {info['l3_bytes'] >> 20} MiB")
    print(f"threads         {info['threads']} (physical cores {info['physical_cores']})")
    for kind, v in peaks.items():
        print(f"peak {kind:<10} {f'n/a ({missing[kind]})' if v is None else f'{v:.0f} GOPS'}")
    print(f"DRAM read       {info['dram_read_gbs']:.1f} GB/s")
    r = info["roofline"]
    print(f"machine model   GEMM int8 {r['gemm_int8_gops']:.0f} GOPS, fp32 {r['gemm_fp32_gflops']:.0f} GFLOPS; "
          f"read L2 {r['l2_read_gbs']:.0f}, L3 {r['l3_read_gbs']:.0f}, DRAM {r['dram_read_gbs']:.1f} GB/s "
          f"(measured {r['measured_at']}, cached)")
    return 0


# ---------------------------------------------------------------- model commands
def _zoo_model(name: str, pretrained: bool):
    from ..models import registry

    if name not in registry.available():
        raise SystemExit(f"mixq: unknown model {name!r}; choose from {', '.join(registry.available())}")
    info = registry.info(name)
    if pretrained and not info.has_checkpoint:
        raise SystemExit(f"mixq: {name} has no shipped weights; drop --pretrained (random weights)")
    model = registry.get(name, pretrained=pretrained).eval()
    return model, info


def _model_data(info, n: int, seed: int = 0) -> np.ndarray:
    """n input images for a zoo model: Fashion-MNIST for the 28 px models, else smooth noise."""
    rng = np.random.default_rng(seed)
    if info.dataset == "fashion-mnist":
        from ..data import fmnist

        images, _ = fmnist.fashion_mnist("test", allow_subset=True)
        return fmnist.preprocess(images[rng.choice(len(images), n, replace=False)])
    c, h, w = info.input_shape
    coarse = rng.standard_normal((n, c, max(1, h // 8), max(1, w // 8))).astype(np.float32)
    return np.repeat(np.repeat(coarse, 8, axis=2), 8, axis=3)[:, :, :h, :w].copy()


def _config_arg(text: str):
    """A precision name, inline JSON, or a path to a JSON config file."""
    from pathlib import Path

    if text.lstrip().startswith("{"):
        return json.loads(text)
    if text.endswith(".json") or Path(text).is_file():
        try:
            return json.loads(Path(text).read_text())
        except (OSError, ValueError) as e:
            raise argparse.ArgumentTypeError(f"cannot read config {text}: {e}") from None
    return text


def _compile(args):
    import torch

    from ..runtime.cnn.compile import compile as compile_plan

    model, info = _zoo_model(args.model, args.pretrained)
    calib = _model_data(info, args.calibration, seed=1)
    batches = [torch.from_numpy(calib[i:i + 32]) for i in range(0, len(calib), 32)]
    plan = compile_plan(model, torch.from_numpy(calib[:1]), args.config, batches, observer=args.observer,
                        progress=not args.quiet)
    return plan, model, info


def cmd_compile(args) -> int:
    if model_files.is_model_file(args.model):
        plan, _ = model_files.compile_file(args)
    elif args.model in ENCODER_MODELS:
        plan, _ = cli_encoder.compile_model(args)
    else:
        plan, _, _ = _compile(args)
    plan.save(args.out)
    print(f"{plan}\nwrote {args.out}")
    return 0


def cmd_profile(args) -> int:
    from ..planner.roofline import machine, profile_plan

    if model_files.is_model_file(args.model):
        return model_files.profile(args)
    if args.model in ENCODER_MODELS:
        return cli_encoder.profile(args)
    plan, _, info = _compile(args)
    x = _model_data(info, args.batch, seed=2)
    prof = profile_plan(plan, x, machine(), measure=True, repeats=args.repeats)
    if args.json:
        print(json.dumps(prof.to_dict(), indent=1, default=str))
    else:
        print(prof.table(all_ops=args.all_ops))
    return 0


def cmd_run(args) -> int:
    from ..runtime import EncoderPlan, load_plan

    plan = load_plan(args.plan)
    if isinstance(plan, EncoderPlan):
        return cli_encoder.run(plan, args)
    if args.text:
        raise SystemExit("mixq run: --text is for encoder plans; this plan takes --input x.npy")
    if args.fashion_mnist:
        from ..data import fmnist

        images, labels = fmnist.fashion_mnist("test", allow_subset=True)
        x = fmnist.preprocess(images)
        t0 = time.perf_counter()
        logits = np.concatenate([plan.run(x[i:i + 500]) for i in range(0, len(x), 500)])
        dt = time.perf_counter() - t0
        print(f"top-1 {100 * (logits.argmax(1) == labels).mean():.2f} % on {len(x)} Fashion-MNIST test images, "
              f"{len(x) / dt:.0f} img/s")
        return 0
    if args.input is None:
        raise SystemExit("mixq run: give --input x.npy (NCHW float) or --fashion-mnist")
    x = np.load(args.input)
    t0 = time.perf_counter()
    y = plan.run(x, layout=args.layout)
    print(f"ran {plan} on {x.shape} in {1e3 * (time.perf_counter() - t0):.2f} ms -> {y.shape}")
    if args.output:
        np.save(args.output, y)
        print(f"wrote {args.output}")
    if args.profile:
        for p in plan.profile(x, layout=args.layout):
            print(f"{p['name']:<32}{p['kind']:<10}{p['precision']:<14}{p['seconds'] * 1e6:>10.1f} us")
    return 0


def cmd_search(args) -> int:
    import torch

    from ..planner.model_search import search
    from ..planner.roofline import machine

    executor = executor_from_args(args)
    if model_files.is_model_file(args.model):
        return _print_search_result(model_files.search(args, executor), args)
    model, info = _zoo_model(args.model, True)  # accuracy needs trained weights
    if info.dataset != "fashion-mnist":
        raise SystemExit("mixq search needs a model with a dataset to score accuracy (resnet20, mobilenet_v2_small) "
                         "or a model file with --calib and --val data (see mixq search --help)")
    from ..planner.study import accuracy, fashion_mnist_data

    data = fashion_mnist_data(args.val_size, args.seed)  # seeded validation subset + calibration
    # partial, not a lambda over `data`: with --executor ray this travels to the workers, and
    # should carry the validation images only, not the whole test set
    result = search(model, torch.from_numpy(data.x_val[:1]), data.calibration,
                    functools.partial(accuracy, x=data.x_val, y=data.y_val),
                    candidates=tuple(args.candidates.split(",")), algorithm=args.algorithm, objective=args.objective,
                    lam=args.lam, max_drop=args.max_drop, latency="kernels" if args.objective == "latency" else "predicted",
                    latency_input=data.x_latency, machine=machine(), cache_path=args.cache,
                    subset_id=f"fmnist-test-seed{args.seed}-n{len(data.x_val)}", executor=executor,
                    progress=not args.quiet)
    return _print_search_result(result, args)


def _print_search_result(result, args) -> int:
    config = {"default": "fp32", "layers": result.best}
    e = result.best_eval
    print(f"best: accuracy {e.accuracy:.2f} %, model AI {e.ai:.1f}, latency {1e3 * (e.latency_s or 0):.3f} ms "
          f"({result.evaluations} evaluations)")
    text = json.dumps(config, indent=1)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
        print(f"wrote {args.out}")
    else:
        print(text)
    return 0


def cmd_demo(args) -> int:
    from ..planner.demo import run_demo

    run_demo(args.out, val_size=args.val_size, lam=args.lam, max_drop=args.max_drop, quick=args.quick,
             algorithm=args.algorithm, progress=not args.quiet)
    if not args.no_generate:
        _demo_generation()
    return 0


def _demo_generation() -> None:
    """A short continuation by the shipped decoder at w4a8-g128 (skipped, with the reason, when its
    files or the tokenizer are missing)."""
    from ..models.errors import CheckpointNotFoundError

    print("\nLanguage model: the shipped fortunes decoder at w4a8-g128 (temperature 0.8, top-k 40, seed 0)")
    try:
        from ..models.llm import llm_tokenizer

        plan = cli_generate.decoder_plan(None, "w4a8-g128")
        cli_generate.stream_text(plan, llm_tokenizer(), "The secret of a happy life is", 32,
                                 {"temperature": 0.8, "top_k": 40, "seed": 0})
    except (CheckpointNotFoundError, ImportError) as e:
        print(f"  skipped: {e}")


def cmd_report(args) -> int:
    from pathlib import Path

    from ..planner.report import write_report

    path = Path(args.dir) / "results.json"
    if not path.is_file():
        raise SystemExit(f"mixq report: {path} not found (run `mixq demo --out {args.dir}` first)")
    doc = json.loads(path.read_text())
    print(write_report(args.dir, **doc))
    return 0


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mixq", description="Fast mixed-precision quantized inference on CPUs.")
    p.add_argument("--threads", type=positive_int, default=None, help="threads for the core (default: physical cores)")
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="the main job: ResNet-20 + Fashion-MNIST -> AIQ search -> plan -> report",
                       description="Runs the shipped ResNet-20 on Fashion-MNIST through the whole pipeline: "
                                   "measures the machine, profiles the layers, searches per-layer precisions "
                                   "(AIQ and latency-aware), compiles and times the plans, and writes a report "
                                   "with plots. Takes a few minutes on 2 cores (--quick: about one).")
    d.add_argument("--out", default="mixq-demo", help="output directory (report, plots, plan, cache)")
    d.add_argument("--val-size", type=positive_int, default=500, help="validation images scoring candidates")
    d.add_argument("--lam", type=float, default=0.5, help="AIQ trade-off: 1 = only AI, 0 = only accuracy")
    d.add_argument("--max-drop", type=float, default=1.0, help="accuracy floor: max points below fp32")
    d.add_argument("--algorithm", choices=("coordinate", "greedy"), default="coordinate",
                   help="AIQ search: coordinate descent (~L*C evaluations a sweep) or greedy (~L^2*C, slower)")
    d.add_argument("--quick", action="store_true", help="smaller validation subset and fewer baselines")
    d.add_argument("--quiet", action="store_true", help="no progress bars")
    d.add_argument("--no-generate", action="store_true", help="skip the short text generation at the end")
    d.set_defaults(func=cmd_demo)
    b = sub.add_parser("bench", help="a short GEMM benchmark (fp32, bf16, int8, int4) against numpy",
                       description="Packs one random layer at fp32, bf16, int8 and int4, runs "
                                   "y = relu(x @ W.T + b) on each, and prints time, throughput, weight memory "
                                   "and error vs float64.")
    b.add_argument("--m", type=positive_int, default=256, help="rows of x (batch x tokens)")
    b.add_argument("--n", type=positive_int, default=1024, help="output features")
    b.add_argument("--k", type=positive_int, default=1024, help="input features")
    b.add_argument("--repeats", type=positive_int, default=20, help="timed runs per path (median reported)")
    b.add_argument("--seed", type=int, default=0)
    b.set_defaults(func=cmd_bench)
    cli_generate.add_parser(sub, _config_arg, positive_int)

    def model_file_args(q):
        q.add_argument("model_file", nargs="?", help="a model file: .onnx or .pt2 (torch.export.save); "
                                                      "else --model picks a zoo model")
        q.add_argument("--calib", help="calibration images for a model file: .npy [N, C, H, W] float32, .npz "
                                       "with 'x', or a folder of image files (resized, scaled to [0, 1])")

    def model_args(q, default_config="int8"):
        model_file_args(q)
        q.add_argument("--model", default="resnet20",
                       help="zoo model (resnet20, mobilenet_v2_small, mobilenet_v2, resnet50) or encoder "
                            "(minilm: all-MiniLM-L6-v2's real weights; bert-large: random weights)")
        q.add_argument("--pretrained", action="store_true", help="load the shipped weights (resnet20, mobilenet_v2_small)")
        q.add_argument("--config", type=_config_arg, default=default_config,
                       help="precision: a name (fp32, w8a8, w7a8, w4a8-g128, ...; int8 = this CPU's fastest exact "
                            "int8: w7a8 without VNNI, else w8a8), inline JSON or a .json file "
                            '({"default": ..., "layers": {name or pattern: precision}})')
        q.add_argument("--calibration", type=positive_int, default=256,
                       help="calibration images (encoders: sentences, for SmoothQuant)")
        q.add_argument("--observer", choices=("minmax", "percentile", "mse"), default="minmax")
        q.add_argument("--quiet", action="store_true", help="no progress bars")

    c = sub.add_parser("compile", help="compile a model file (ONNX, .pt2) or a zoo model to a plan file",
                       description="Reads a model file (calibrated on --calib images) or captures a zoo model "
                                   "(calibrated on Fashion-MNIST images for the 28 px models, smooth noise "
                                   "otherwise) and writes the quantized plan.",
                       epilog=model_files.EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    model_args(c)
    c.add_argument("-o", "--out", required=True, help="plan file to write")
    c.set_defaults(func=cmd_compile)
    pr = sub.add_parser("profile", help="per-layer roofline table (FLOPs, bytes, AI, predicted and measured time)",
                        description="Compiles a zoo model at a config and prints, per layer: FLOPs, weight and "
                                    "activation bytes, arithmetic intensity, memory/compute bound under the "
                                    "machine model, roofline-predicted and measured time.",
                        epilog=model_files.EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    model_args(pr)
    pr.add_argument("--batch", type=positive_int, default=1)
    pr.add_argument("--repeats", type=positive_int, default=5)
    pr.add_argument("--all-ops", action="store_true", help="also element-wise, pooling and convert ops")
    pr.add_argument("--json", action="store_true", help="print JSON")
    pr.set_defaults(func=cmd_profile)
    r = sub.add_parser("run", help="run a plan file", description="Loads a plan (numpy + mixq only) and runs it.")
    r.add_argument("plan", help="plan file written by `mixq compile` or Plan.save")
    r.add_argument("--input", help=".npy input, NCHW float (NHWC with --layout nhwc); encoder plans: int token ids "
                                   "[batch, seq]")
    r.add_argument("--mask", help="encoder plans: .npy attention mask (0/1) for --input")
    r.add_argument("--text", action="append", help="encoder plans: a sentence to embed (repeatable; MiniLM's "
                                                   "tokenizer); prints their cosine similarities")
    r.add_argument("--layout", choices=("nchw", "nhwc"), default="nchw")
    r.add_argument("--output", help="write the output here (.npy)")
    r.add_argument("--profile", action="store_true", help="print each op's time")
    r.add_argument("--fashion-mnist", action="store_true", help="score a 28 px classifier plan on Fashion-MNIST")
    r.set_defaults(func=cmd_run)
    se = sub.add_parser("search", help="per-layer precision search (AIQ or latency-aware)",
                        description="Searches per-layer precisions of a model file (scored on --val images "
                                    "and labels) or a Fashion-MNIST zoo model (on a seeded validation subset); "
                                    "evaluations are cached (--cache) so a killed search resumes, also on "
                                    "another executor: --executor ray runs them in parallel on a Ray cluster "
                                    "(docs/ray.md).",
                        epilog=model_files.EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    model_file_args(se)
    se.add_argument("--val", help="validation data for a model file: .npz with images 'x' and integer labels 'y'")
    se.add_argument("--calibration", type=positive_int, default=256, help="calibration images used (of --calib)")
    se.add_argument("--model", default="resnet20")
    se.add_argument("--candidates", default="fp32,int8,w4a8-g128",
                    help="comma list, highest precision first (int8: this CPU's default int8, w7a8 or w8a8)")
    se.add_argument("--algorithm", choices=("greedy", "coordinate"), default="greedy")
    se.add_argument("--objective", choices=("aiq", "latency"), default="aiq")
    se.add_argument("--lam", type=float, default=0.5)
    se.add_argument("--max-drop", type=float, default=1.0)
    se.add_argument("--val-size", type=positive_int, default=1000)
    se.add_argument("--seed", type=int, default=0)
    se.add_argument("--cache", default="mixq-search-cache.jsonl", help="evaluation cache (JSON lines)")
    se.add_argument("--out", help="write the best config (JSON) here")
    se.add_argument("--quiet", action="store_true")
    add_executor_args(se, positive_int)
    se.set_defaults(func=cmd_search)
    rp = sub.add_parser("report", help="rebuild a report from DIR/results.json",
                        description="Re-renders report.md and its plots from the results a demo wrote.")
    rp.add_argument("dir", help="the demo's output directory")
    rp.set_defaults(func=cmd_report)
    mch = sub.add_parser("machine", help="CPU features, kernel path, measured compute peaks and bandwidth",
                         description="Prints the detected CPU features, the kernels in use, the compute "
                                     "roof measured by tight loops of the core and the DRAM read bandwidth "
                                     "measured by a streaming read, at the current thread count.")
    mch.add_argument("--seconds", type=float, default=0.3, help="measuring time per peak")
    mch.add_argument("--json", action="store_true", help="print JSON")
    mch.add_argument("--refresh", action="store_true", help="measure the machine model again (else cached)")
    mch.set_defaults(func=cmd_machine)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "model_file", None) is not None:
        if not model_files.is_model_file(args.model_file):
            raise SystemExit(f"mixq: {args.model_file}: a model file is .onnx or .pt2 (zoo models: --model NAME)")
        args.model = args.model_file
    if args.threads is not None:
        ops.set_num_threads(args.threads)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
