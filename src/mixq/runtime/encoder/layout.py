"""Names of an encoder plan's layers, as a config sets them (module paths of Hugging Face's
BertModel), and the two pseudo-layers (attention matmuls, word embeddings)."""

LINEARS = ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
           "intermediate.dense", "output.dense")
ATTENTION = "attention.matmul"
WORD_EMBEDDINGS = "embeddings.word_embeddings"
_NORMS = ("attention.output.LayerNorm", "output.LayerNorm")


def layer_prefix(i: int) -> str:
    return f"encoder.layer.{i}"


def layer_names(n_layers: int) -> list[str]:
    """Names a config can set, in execution order."""
    names = [WORD_EMBEDDINGS]
    for i in range(n_layers):
        p = layer_prefix(i)
        names += [f"{p}.{LINEARS[0]}", f"{p}.{LINEARS[1]}", f"{p}.{LINEARS[2]}", f"{p}.{ATTENTION}",
                  *(f"{p}.{name}" for name in LINEARS[3:])]
    return names
