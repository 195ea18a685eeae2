"""Which implementations this process can run: mixq and the optional peers (pip install
".[bench]"). A missing peer is reported once and its rows are skipped, never fatal."""
from __future__ import annotations

import importlib

PEER_MODULES = ("torch", "onnxruntime", "onnx", "openvino")  # nncf: imported when ov-int8 is built
_PEERS: dict = {}


def peers(verbose: bool = True) -> dict:
    """{name: module or None} for mixq and every optional peer; missing ones are printed."""
    for name in ("mixq",) + PEER_MODULES:
        peer(name, verbose)
    return _PEERS


def peer(name: str, verbose: bool = True):
    """One module by name (e.g. a peer only one benchmark runs: llama_cpp, gguf), imported once;
    None and a printed note when it is missing or broken."""
    if name not in _PEERS:
        try:
            _PEERS[name] = importlib.import_module(name)
        except Exception as e:  # ImportError, or a broken native extension
            _PEERS[name] = None
            if verbose:
                print(f"[bench] {name} not available ({type(e).__name__}: {e}); skipping its rows")
    return _PEERS[name]


def set_threads(n: int) -> None:
    """Give mixq and torch the same thread count (ORT and OpenVINO get it per session)."""
    p = peers()
    if p["torch"] is not None:
        p["torch"].set_num_threads(n)
        try:
            p["torch"].set_num_interop_threads(1)
        except RuntimeError:  # only allowed before torch started inter-op work
            pass
    if p["mixq"] is not None:
        p["mixq"].set_num_threads(n)


class MixqUnavailable(Exception):
    """mixq's model API is not there (yet): `permanent` when no config can work in this run."""

    def __init__(self, msg: str, permanent: bool = False):
        super().__init__(msg)
        self.permanent = permanent
