"""The quickstart for seeds 0, 1, 2: does ReFT beat SFT in every seed, and by reasoning?

Runs `python -m reft_jax.main --config=configs/quickstart.py` once per seed (each in its own
workdir under `--root`, resumed if it is already there), reads each `eval/results.json`, and
prints per seed the SFT row (the better on test of SFT at the same total epochs and SFT's best
epoch on validation, so early stopping cannot flip the result), the ReFT row, and then mean and
standard deviation of Top-1 and valid-chain accuracy. Extra arguments are passed on as config
overrides (e.g. `--config.data.style=program`). Last line:
`reft_minus_sft_points=<mean ReFT Top-1 minus mean SFT Top-1, in points>`.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import subprocess
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[1]


def run_seed(seed: int, root: pathlib.Path, overrides: list[str]) -> tuple[dict, float]:
    workdir = root / f"seed{seed}"
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "reft_jax.main", "--config=configs/quickstart.py",
                    f"--config.seed={seed}", f"--config.workdir={workdir}", *overrides],
                   cwd=REPO, check=True)
    rows = json.loads((workdir / "eval" / "results.json").read_text())["rows"]
    return {row["model"]: row for row in rows}, time.perf_counter() - start


def mean_std(values: list[float]) -> str:
    return f"{statistics.mean(values):.1f} ± {statistics.stdev(values) if len(values) > 1 else 0:.1f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", default="runs/quickstart_seeds")
    parser.add_argument("--seeds", default="0,1,2")
    args, overrides = parser.parse_known_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    table = []
    for seed in seeds:
        rows, seconds = run_seed(seed, pathlib.Path(args.root), overrides)
        sft = max((rows[name] for name in ("sft", "sft_last") if name in rows),
                  key=lambda row: row["top1"])
        table.append((seed, sft, rows["reft"], seconds))
    print("seed  model          Top-1  valid chain  other path  minutes")
    for seed, sft, reft, seconds in table:
        for row in (sft, reft):
            print(f"{seed:4d}  {row['model']:12s} {row['top1']:6.1f}  {row.get('valid_chain', 0):11.1f}"
                  f"  {row.get('other_path') or 0:10.1f}  {seconds / 60:7.1f}")
    for label, index in (("SFT", 1), ("ReFT", 2)):
        top1 = [t[index]["top1"] for t in table]
        valid = [t[index].get("valid_chain", 0.0) for t in table]
        print(f"{label:5s} Top-1 {mean_std(top1)}, valid chain {mean_std(valid)}")
    gaps = [t[2]["top1"] - t[1]["top1"] for t in table]
    print(f"ReFT - SFT per seed: {', '.join(f'{g:+.1f}' for g in gaps)} points")
    print(f"reft_minus_sft_points={statistics.mean(gaps):.2f}")


if __name__ == "__main__":
    main()
