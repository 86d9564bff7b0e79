"""Scripts that turn cotprobe run directories into the paper's figures and tables.

One module per artefact, each with ``main(run_dirs, out_dir="figures", ...)`` returning the files it
wrote and a command line ``python -m analyses.<name> RUN_DIR... [--out figures]`` (run from the
repository root). Every figure is written as PNG and SVG with the numbers behind it as CSV.

- ``main_table``: accuracy, ECE, Brier, AUROC with 95% intervals per run; paired reasoning vs
  non-reasoning differences and the count of settings strictly better on all three.
- ``reliability``: reliability diagrams (equal-width bins, and per verbal class).
- ``confidence_hist``: verbal confidence class distribution, correct vs incorrect.
- ``progress``: calibration against the fraction of CoT kept, runs overlaid.
- ``ablation``: calibration per ablation condition.
- ``slow_think``: in-context slow thinking vs CoT vs direct prompting.
- ``reproduce``: all of the above, skipping those whose inputs are missing.

See figures/README.md for what produces each figure.
"""

NAMES = ("main_table", "reliability", "confidence_hist", "progress", "ablation", "slow_think")
