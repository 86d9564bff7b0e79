"""A batching engine's clock, for the recording server: requests in flight together share steps.

A server that batches (vLLM, SGLang, llama-server with slots) runs one decoding step for every
request in flight at once, so a step costs about the same however many requests share it.
`StepClock(seconds)` plays that: a request that needs n steps (its prefill, then one per
generated token) waits until n ticks have passed, and the clock ticks every `seconds` while any
request waits. Ten requests in flight together so take as long as one; ten sent one after
another take ten times as long.
"""

from __future__ import annotations

import threading
import time


class StepClock:
    """Ticks every `seconds` while some request waits (see the module docstring)."""

    def __init__(self, seconds: float):
        self.seconds = float(seconds)
        self.tick = 0
        self.waiting = 0
        self.steps = 0  # ticks that passed with some request waiting (the engine's busy steps)
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def wait(self, steps: int) -> None:
        """Return once `steps` ticks have passed (the tick under way counts as the first)."""
        if steps <= 0 or self.seconds <= 0:
            return
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, daemon=True, name="step-clock")
                self._thread.start()
            self.waiting += 1
            target = self.tick + steps
            self._cond.notify_all()
            while self.tick < target:
                self._cond.wait()
            self.waiting -= 1

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self.waiting:
                    self._cond.wait()
            time.sleep(self.seconds)
            with self._cond:
                self.tick += 1
                self.steps += 1
                self._cond.notify_all()
