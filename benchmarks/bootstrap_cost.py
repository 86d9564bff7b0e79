"""Cost of the metrics' bootstrap intervals (1000 resamples of 1000 items), against a plain
Python loop over resamples measured in the same run.

    python benchmarks/bootstrap_cost.py
"""

from __future__ import annotations

import time

import numpy as np

from cotprobe.metrics import bootstrap_ci, metric_fns


def main() -> None:
    rng = np.random.default_rng(0)
    conf = rng.uniform(size=1000)
    y = (rng.uniform(size=1000) < conf).astype(float)
    for name, fn in metric_fns(("brier", "ece")).items():
        t0 = time.perf_counter()
        bootstrap_ci(fn, conf, y, n_resamples=1000)
        fast = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in range(1000):
            idx = rng.integers(0, len(y), len(y))
            fn(conf[idx], y[idx])
        loop = time.perf_counter() - t0
        print(f"{name}: bootstrap_ci {fast:.3f} s, python loop {loop:.3f} s, loop / bootstrap_ci {loop / fast:.1f}x")


if __name__ == "__main__":
    main()
