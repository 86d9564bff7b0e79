"""cotprobe: does a language model know when it is wrong? Probe its chain of thought to find out.

Stages (each a module with a command line): generate -> grade -> segment -> truncate / tag /
ablate -> metrics -> plots / report. Records are dataclasses in `cotprobe.records`; metrics are
pure functions in `cotprobe.metrics`.
"""

__version__ = "0.1.0"
