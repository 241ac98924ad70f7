"""Peak RSS of the current process, sampled every 20 ms from a thread (ru_maxrss would
carry the parent's peak across fork+exec)."""
from __future__ import annotations

import threading

import psutil


class PeakRss:
    def __init__(self, interval: float = 0.02) -> None:
        self.peak = 0
        self._done = threading.Event()
        self._interval = interval
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self) -> None:
        process = psutil.Process()
        while not self._done.wait(self._interval):
            self.peak = max(self.peak, process.memory_info().rss)

    def stop(self) -> float:
        """Stop sampling; the peak in MB."""
        self._done.set()
        return self.peak / 2**20
