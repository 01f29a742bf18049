"""TEST CODE, not part of tflite-farm: simulated Android phones for the test suite.

A real adb server (Debian's `adb`, on a non-default port) with simulated phones `adb connect`ed to it. Each phone is a
small asyncio program speaking the device side of the real ADB wire protocol over TCP (adbd.py), serving a sandbox
folder as its file system, and the stand-in `benchmark_model` (benchmark_model.py) runs real LiteRT inference on it,
the stand-in `onnxruntime_perf_test` (onnxruntime_perf_test.py) real ONNX Runtime inference.

    from phone import Lab, SimulatedPhone, write_benchmark_model
    pytest fixtures: phone.fixtures (adb_lab, healed_adb_lab, tiny_tflite, benchmark_model_binary)
"""
from .phone import (CPU_ONLY_BUILD, FULL_ANDROID_BUILD, ORT_ANDROID_BUILD, ORT_CPU_ONLY_BUILD, Lab, LabError,
                    SimulatedPhone, find_adb, reap_orphans, write_benchmark_model, write_onnxruntime_perf_test)

__all__ = ["CPU_ONLY_BUILD", "FULL_ANDROID_BUILD", "ORT_ANDROID_BUILD", "ORT_CPU_ONLY_BUILD", "Lab", "LabError",
           "SimulatedPhone", "find_adb", "reap_orphans", "write_benchmark_model", "write_onnxruntime_perf_test"]
