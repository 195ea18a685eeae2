"""mixq model zoo: plain torch.nn networks, shipped Fashion-MNIST checkpoints, BERT encoders.

    >>> from mixq import models
    >>> models.available()
    ['mobilenet_v2', 'mobilenet_v2_small', 'resnet20', 'resnet50']
    >>> net = models.get("resnet20", pretrained=True)   # trained on Fashion-MNIST
    >>> bert, tok = models.load_minilm()                 # all-MiniLM-L6-v2, real weights
    >>> emb = bert.embed(**{k: torch.from_numpy(v) for k, v in tok(["Hello world"]).items()})

Names are imported on first use, so the torch-free parts (SentenceTokenizer, minilm_dir,
the errors) do not pull in torch; the torch modules import it when first touched.
"""
from importlib import import_module

# public name -> submodule that defines it
_NAMES = {
    "WEIGHTS_DIR": "registry",
    "ModelInfo": "registry",
    "available": "registry",
    "checkpoint_metadata": "registry",
    "get": "registry",
    "info": "registry",
    "load_checkpoint": "registry",
    "read_safetensors": "registry",
    "CheckpointNotFoundError": "errors",
    "MiniLMNotInstalledError": "errors",
    "MobileNetV2": "zoo",
    "ResNet20": "zoo",
    "ResNet50": "zoo",
    "mobilenet_v2": "zoo",
    "resnet20": "zoo",
    "resnet50": "zoo",
    "BertConfig": "bert",
    "BertModel": "bert",
    "bert_large": "bert",
    "hf_encoder_state": "bert",
    "mean_pool": "bert",
    "load_minilm": "minilm",
    "minilm_dir": "minilm",
    "minilm_tokenizer": "minilm",
    "SentenceTokenizer": "tokenizer",
    "LlamaConfig": "llama",
    "LlamaForCausalLM": "llama",
    "hf_decoder_state": "llama",
    "llama2_7b_layer": "llama",
    "tiny_llama_1b": "llama",
    "load_llm": "llm",
    "llm_tokenizer": "llm",
    "llm_metadata": "llm",
}
_SUBMODULES = {"bert", "errors", "evaluate", "llama", "llm", "minilm", "registry", "tokenizer", "train", "train_llm", "zoo"}

__all__ = sorted(_NAMES)


def __getattr__(name):
    if name in _NAMES:
        value = getattr(import_module(f".{_NAMES[name]}", __name__), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    if name in _SUBMODULES:
        return import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_NAMES) | _SUBMODULES)
