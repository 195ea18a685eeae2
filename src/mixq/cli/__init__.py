"""The ``mixq`` command (see main.py for the subcommands)."""
from .main import main

__all__ = ["main"]
