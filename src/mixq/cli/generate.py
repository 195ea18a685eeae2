"""`mixq generate`: text from the shipped decoder (or a saved decoder plan), streamed token by
token, with a progress line of prefill and decode tokens/s on stderr."""
from __future__ import annotations

import sys
import time

from ..models.eval_llm import CALIBRATION_WINDOWS, WINDOW, calibration_ids


def add_parser(sub, config_arg, positive_int) -> None:
    g = sub.add_parser("generate", help="generate text with the shipped decoder (or a decoder plan file)",
                       description="Compiles the shipped fortunes decoder at --config (or loads --plan), "
                                   "tokenizes --prompt, and streams the continuation. One core call for the "
                                   "prompt, one per new token.")
    g.add_argument("--prompt", default="The best way to", help="text to continue")
    g.add_argument("--plan", default=None, help="a saved decoder plan (else the shipped model compiled at --config)")
    g.add_argument("--config", type=config_arg, default="w4a8-g128", help="precision of the compiled model")
    g.add_argument("--max-new-tokens", type=positive_int, default=48)
    g.add_argument("--temperature", type=float, default=0.0, help="0: greedy")
    g.add_argument("--top-k", type=int, default=0)
    g.add_argument("--top-p", type=float, default=1.0)
    g.add_argument("--seed", type=int, default=None)
    g.add_argument("--save", default=None, help="also write the compiled plan to this file")
    g.add_argument("--outlier-threshold", type=float, default=None, metavar="T",
                   help="LLM.int8()-style outlier channels: activation channels whose calibrated max |x| exceeds T "
                        "run in fp32, the rest at --config (int8 activations only; calibrated on "
                        f"{CALIBRATION_WINDOWS} windows of {WINDOW} tokens of the fortunes training text, "
                        "which needs Debian's fortunes package)")
    g.set_defaults(func=cmd_generate)


def decoder_plan(plan_path, config, outlier_threshold=None):
    """A DecoderPlan: loaded from plan_path, or the shipped model compiled at config (with outlier
    channels over outlier_threshold, calibrated on the fortunes training text, if given)."""
    from ..runtime import DecoderPlan, load_plan

    if plan_path:
        if outlier_threshold is not None:
            raise SystemExit("mixq generate: --outlier-threshold applies when compiling; a saved --plan keeps its own")
        plan = load_plan(plan_path)
        if not isinstance(plan, DecoderPlan):
            raise SystemExit(f"mixq generate: {plan_path} is not a decoder plan ({type(plan).__name__})")
        return plan
    from ..models.llm import load_llm
    from ..runtime import compile_decoder

    model, tok = load_llm()
    if outlier_threshold is None:
        return compile_decoder(model, config)
    from ..data import DatasetNotFoundError

    try:
        calib = calibration_ids(tok, CALIBRATION_WINDOWS, WINDOW)
    except DatasetNotFoundError as e:
        raise SystemExit(f"mixq generate: --outlier-threshold calibrates on the fortunes text: {e}") from None
    try:
        return compile_decoder(model, config, calib, outlier_threshold=outlier_threshold)
    except (TypeError, ValueError) as e:
        raise SystemExit(f"mixq generate: {e}") from None


def stream_text(plan, tok, prompt: str, max_new_tokens: int, sampling=None, out=sys.stdout, err=sys.stderr):
    """Writes the prompt and its continuation to `out` as tokens arrive, the speed line to `err`;
    returns the plan's stats."""
    from ..models.train_llm import EOT

    ids = tok.encode(prompt).ids
    if not ids:
        raise SystemExit("mixq generate: the prompt is empty")
    out.write(prompt)
    out.flush()
    made, shown, t0 = [], "", time.perf_counter()
    for i, t in enumerate(plan.stream(ids, max_new_tokens, sampling, eos_id=tok.token_to_id(EOT))):
        made.append(t)
        text = tok.decode(made)
        if not text.endswith("\ufffd"):  # a partial UTF-8 character waits for its next token
            out.write(text[len(shown):])
            out.flush()
            shown = text
        # the running speed only where it cannot interleave with the text on one terminal
        if err is not None and not out.isatty() and (i + 1) % 8 == 0:
            err.write(f"\r[{i + 1}/{max_new_tokens} tokens, {(i + 1) / (time.perf_counter() - t0):.1f} tok/s]")
            err.flush()
    out.write("\n")
    s = plan.last_stats
    if err is not None:
        err.write(f"{'' if out.isatty() else chr(13)}prompt {s['prompt_tokens']} tokens: prefill {s.get('prefill_tok_s', 0):.0f} tok/s; "
                  f"{s['new_tokens']} new tokens: decode {s.get('decode_tok_s', 0):.1f} tok/s\n")
    return s


def cmd_generate(args) -> int:
    from ..models.llm import llm_tokenizer
    from ..runtime.decoder import Sampling

    sampling = Sampling(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, seed=args.seed)
    plan = decoder_plan(args.plan, args.config, args.outlier_threshold)
    if args.save:
        plan.save(args.save)
        print(f"wrote {args.save}", file=sys.stderr)
    n_out = sum(len(c) for c in plan.outlier_channels().values())
    print(f"{plan}" + (f", {n_out} outlier channels in fp32" if n_out else ""), file=sys.stderr)
    stream_text(plan, llm_tokenizer(), args.prompt, args.max_new_tokens, sampling)
    return 0
