"""Throughput of the P-CoT sandbox: the 3043 SVAMP programs, ours against the reference's approach.

Reference (mwp_ReFT src/python_engine.py): a fresh pool of 8 processes per call, one task per
program with a timeout, ``exec`` in the worker with no other isolation (pebble there; the standard
library's multiprocessing here). Ours: the long-lived sandbox pool (one fresh locked-down fork per
program), warmed up first as it would be in training. Both receive the same programs, the reward's
``import math / import sympy`` prelude included, in calls of ``--call-size`` programs (default 32,
the rollout batch: the reference scores each rollout batch with one call, so pays the pool start
per call) and also all in one call (where the reference's unsandboxed exec is faster than a fork per
program). Prints both; the last lines are for the calls of ``--call-size``:
``sandbox_programs_per_s=<n>`` and ``sandbox_speedup=<ratio>``.

Usage: python benchmarks/bench_sandbox.py [--data ../shared/data/mwp_reft/svamp_python_sdp.json]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import pathlib
import time

from reft_jax.rewards import SandboxPool

DEFAULT_DATA = pathlib.Path(__file__).resolve().parents[1].parent / "shared/data/mwp_reft/svamp_python_sdp.json"
TIMEOUT = 10.0


def _reference_run(code: str):
    import math  # noqa: PLC0415

    import sympy  # noqa: PLC0415

    scope = {"math": math, "sympy": sympy}
    exec(code, scope)  # noqa: S102 - the reference's (unsafe) way, for comparison only
    return scope["solution"]()


def reference(programs: list[str]) -> list:
    with multiprocessing.get_context("fork").Pool(8) as pool:
        futures = [pool.apply_async(_reference_run, (p,)) for p in programs]
        out = []
        for f in futures:
            try:
                out.append(f.get(timeout=TIMEOUT))
            except Exception:  # noqa: BLE001
                out.append(None)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=pathlib.Path, default=DEFAULT_DATA)
    parser.add_argument("--call-size", type=int, default=32)
    args = parser.parse_args()
    records = json.loads(args.data.read_text())
    programs = ["import math\nimport sympy\n" + r["answer_cot"] for r in records]
    gold = [float(r["answer_value"]) for r in records]

    def correct(results):
        return sum(v is not None and abs(float(v) - g) <= 1e-2 for v, g in zip(results, gold))

    calls = [programs[i : i + args.call_size] for i in range(0, len(programs), args.call_size)]
    rates = {}
    with SandboxPool(timeout=TIMEOUT) as pool:
        pool.run(programs[:8])  # start and warm the workers, as a trainer's pool is between calls
        for label, batches in (("one call", [programs]), (f"calls of {args.call_size}", calls)):
            for who, fn in (("ours", pool.run), ("reference", reference)):
                start = time.perf_counter()
                results = [v for batch in batches for v in fn(batch)]
                rate = len(programs) / (time.perf_counter() - start)
                rates[label, who] = rate
                print(f"{label:>12} | {who:<9} | {rate:7.0f} programs/s | {correct(results)}/{len(programs)} correct")
        workers = pool.n_workers
    print(f"ours: sandbox pool of {workers} workers; reference: fresh pool of 8 per call, exec")
    label = f"calls of {args.call_size}"
    print(f"one-call speedup: {rates['one call', 'ours'] / rates['one call', 'reference']:.2f}")
    print(f"sandbox_programs_per_s={rates[label, 'ours']:.0f}")
    print(f"sandbox_speedup={rates[label, 'ours'] / rates[label, 'reference']:.2f}")


if __name__ == "__main__":
    main()
