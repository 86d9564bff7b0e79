"""Smooth ECE's bootstrap: resamples scored at the full sample's bandwidth (what cotprobe does,
`metrics.scores.SmoothECE`) against a bandwidth search on every resample (relplot.smECE each time).

Prints, at 30 and 300 answers of verbal-looking confidences, the value, both 95% intervals
(300 resamples, same seed) and the seconds each took.

    python benchmarks/smooth_ece_cost.py
"""

import time

import numpy as np
import relplot

from cotprobe.metrics import bootstrap_ci, smooth_ece


def main() -> None:
    rng = np.random.default_rng(0)
    classes = np.arange(0.05, 1, 0.1)
    weights = [.02, .02, .02, .04, .05, .05, .1, .2, .3, .2]
    for n in (30, 300):
        c = rng.choice(classes, n, p=weights)
        y = (rng.uniform(size=n) < 0.45).astype(float)
        q = np.arange(n)
        t = time.perf_counter()
        fixed = bootstrap_ci(smooth_ece, c, y, q, 300, seed=1)
        t_fixed = time.perf_counter() - t
        t = time.perf_counter()
        search = bootstrap_ci(lambda a, b: float(relplot.smECE(a, b)), c, y, q, 300, seed=1)
        t_search = time.perf_counter() - t
        print(f"n={n}: smooth ECE {smooth_ece(c, y):.3f}; fixed bandwidth [{fixed[0]:.3f}, {fixed[1]:.3f}] "
              f"{t_fixed:.2f} s; search per resample [{search[0]:.3f}, {search[1]:.3f}] {t_search:.2f} s")


if __name__ == "__main__":
    main()
