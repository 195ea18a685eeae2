"""Errors every runtime raises."""


class UnsupportedModelError(ValueError):
    """The model uses ops the mixq runtime cannot execute (listed in the message)."""
