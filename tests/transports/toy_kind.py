"""TEST CODE: a toy device kind, to show that a kind of device is one module plus one entry in farm.inventory.KINDS.

A toy device is this process: it runs the model with LiteRT's Python API in a worker thread and answers in the agent's
format. Everything a kind needs is here: its inventory entry (DEVICE) and its transport (TRANSPORT)."""
from __future__ import annotations

import asyncio
import json
import time
from typing import Literal

from farm.inventory import Device
from farm.results import AGENT, RawResult
from farm.transports import BenchmarkJob


class ToyDevice(Device):
    kind: Literal["toy"]
    colour: str = "red"

    def reached_at(self) -> str:
        return f"a {self.colour} toy in the test process"


class ToyTransport:
    def __init__(self, device: ToyDevice):
        self.device = device
        self.bytes_uploaded = 0

    async def probe(self) -> dict:
        return {"toy": self.device.colour}

    async def run_job(self, job: BenchmarkJob) -> RawResult:
        return RawResult(AGENT, json.dumps(await asyncio.to_thread(self._benchmark, job)), "", 0)

    def _benchmark(self, job: BenchmarkJob) -> dict:
        from ai_edge_litert import __version__ as version
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        start = time.perf_counter()
        # Plain CPU kernels only: a toy offers the `none` delegate and nothing else.
        interpreter = Interpreter(model_path=str(job.model.path), num_threads=job.threads,
                                  experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        interpreter.allocate_tensors()
        init_ms = (time.perf_counter() - start) * 1000
        samples = []
        for _ in range(1 + job.warmup_runs + job.runs):
            tick = time.perf_counter_ns()
            interpreter.invoke()
            samples.append((time.perf_counter_ns() - tick) / 1000)
        first, warmup, measured = samples[0], samples[1:1 + job.warmup_runs], samples[1 + job.warmup_runs:]
        return {"ok": True, "init_ms": init_ms, "first_ms": first / 1000, "warmup_ms": [w / 1000 for w in warmup],
                "samples_us": measured, "runtime": {"name": "ai_edge_litert", "version": version},
                "delegate": {"name": job.delegate.name, "outcome": "cpu"}}

    async def temperatures(self) -> dict[str, float]:
        return {}  # a toy has no thermal zones

    async def governors(self, set_to: dict[str, str] | None = None) -> dict[str, str]:
        return {}  # nor a cpufreq governor

    async def eval_predictions(self, job: BenchmarkJob) -> None:
        return None

    async def reconnect(self) -> None:
        return None

    async def close(self) -> None:
        return None


DEVICE, TRANSPORT = ToyDevice, ToyTransport
