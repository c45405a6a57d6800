"""One request in-process through the served text models (guard on, decision cache warm), one torch thread.

    python benchmarks/bench_text_latency.py [--requests 500]

Prints one JSON object per component: p50/p95/p99 ms of ``ServedModel.predict`` (validation, n-gram ids,
forward pass, facts read and merged, the constitution's explanation query, the runtime guard, the response)
on generated requests, after a warm-up pass over the same requests (what a replica sees once its decision
cache holds the common fact combinations). The weights are freshly initialised: the cost does not depend on
their values.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from acgs_workloads.components import get
from acgs_workloads.constitution import SERVING_CACHE_SIZE, ConstitutionEvaluator, default_constitution
from acgs_workloads.contract import ModelSpec
from acgs_workloads.serving.model import ServedModel

TEXT_COMPONENTS = ("constitutional-ai", "policy-governance", "multi-agent-coordination")


def profile(name: str, requests: int) -> dict[str, float]:
    constitution = default_constitution()
    component = get(name)
    spec = ModelSpec()
    served = ServedModel(component).load_state(component.build_trainable(spec).state_dict(), spec, constitution.hash)
    guard = ConstitutionEvaluator(constitution, cache_size=SERVING_CACHE_SIZE)
    cols = component.generate(requests, 3, spec, constitution)
    bodies = [component.request_for(cols, i, constitution.hash) for i in range(requests)]
    for body in bodies:  # warm-up: decision cache, module verdicts, allocator
        served.predict(body, guard)
    samples = np.empty(requests)
    for i, body in enumerate(bodies):
        start = time.perf_counter()
        served.predict(body, guard)
        samples[i] = time.perf_counter() - start
    return {f"p{q}Ms": round(float(np.percentile(samples, q)) * 1e3, 3) for q in (50, 95, 99)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=500)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(json.dumps({name: profile(name, args.requests) for name in TEXT_COMPONENTS}, indent=2))


if __name__ == "__main__":
    main()
