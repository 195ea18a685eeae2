"""The harness every benchmark in bench/ uses, one job per module:

  cli            common arguments (--quick, --json [PATH], --threads, --repeats, --models), start()
  peers          which of mixq / torch / onnxruntime / onnx / openvino (or any module: peer) are importable; threads
  timing         the interleaved timer (round-robin blocks, medians, per-round medians) and load probes
  machine        the "machine" dict of the JSON contract (cpu, isa, peaks, DRAM) and cpu_id()
  report         Results rows, side-by-side tables, ratios and their per-round ranges, JSON writing
  onnx_export    torch -> ONNX export, ONNX Runtime sessions
  openvino_peer  OpenVINO fp32 and int8 (nncf.quantize) compiled models
  llamacpp_peer  llama.cpp (llama-cpp-python): the bench decoder as GGUF, quantized, timed (bench/llm.py)
  model_bench    the skeleton of the model benchmarks (e2e.py, bert.py)
  mixq_api       the one place that imports mixq's internal modules
  log            tagged progress lines
"""
import os

# Set before any peer imports torch: idle OpenMP threads that spin take the cores from whoever is
# timed next in this process (measured: mixq plans 1.5-2x slower after a torch call).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
