"""Every import of mixq's internal modules by the benchmarks, in one place: the package layout
may change, and then only this file follows it. The public API (mixq.compile, mixq.matmul, ...)
is used directly as `mixq.<name>`. Imports are lazy so the harness loads without torch."""
from __future__ import annotations


def cpu_name() -> str:
    from mixq.planner.roofline.machine import cpu_name  # one reader of the CPU's model name

    return cpu_name()


def roofline_machine():
    from mixq.planner.roofline import machine

    return machine()


def registry():
    from mixq.models import registry

    return registry


def bert_large(**kw):
    from mixq.models import bert_large

    return bert_large(**kw)


def load_minilm():
    from mixq.models import load_minilm

    return load_minilm()


def minilm_tokenizer():
    from mixq.models import minilm_tokenizer

    return minilm_tokenizer()


def sentences():
    from mixq.data import sentences

    return sentences()


def fashion_mnist(split: str):
    from mixq.data import fashion_mnist

    return fashion_mnist(split)


def preprocess(images):
    from mixq.data import preprocess

    return preprocess(images)


def embedding_agreement(ref, emb):
    from mixq.planner.text_eval import embedding_agreement

    return embedding_agreement(ref, emb)


def pooled_embeddings(batches, run):
    from mixq.planner.text_study import pooled_embeddings

    return pooled_embeddings(batches, run)


def tokenized_batches(tokenizer, texts):
    from mixq.planner.text_study import tokenized_batches

    return tokenized_batches(tokenizer, texts)


def study():
    """mixq.planner.study (the AIQ study behind bench/aiq.py)."""
    import mixq.planner.study

    return mixq.planner.study


def int8_impl() -> str:
    """The impl name of this CPU's default int8 precision (mixq-w7a8 without VNNI, else mixq-w8a8):
    the int8 row the benchmarks' targets read. mixq-w8a8 when mixq cannot be imported."""
    try:
        from mixq.quant.precisions import default_int8
    except ImportError:
        return "mixq-w8a8"
    return f"mixq-{default_int8()}"


def num_threads() -> int:
    import mixq

    return mixq.get_num_threads()


def search_evaluator(model, x1, calibration, evaluate_plan, candidates):
    """The search's evaluator of one model (config -> Evaluation; see mixq.planner.model_search),
    as the local executor runs it."""
    from mixq.planner.model_search import ModelProblem
    from mixq.runtime.cnn.compile import ModelCompiler

    compiler = ModelCompiler(model, x1, calibration, progress=False)
    return ModelProblem(compiler, evaluate_plan, tuple(candidates), None).evaluator


def evaluate_many(evaluate, configs):
    from mixq.planner.search import evaluate_many

    return evaluate_many(evaluate, configs)


def ray_executor(**kw):
    from mixq.ray import RayExecutor

    return RayExecutor(**kw)


def set_threads(n: int) -> None:
    import mixq

    mixq.set_num_threads(n)
