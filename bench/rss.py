"""Peak memory of the current process, sampled from a thread (ru_maxrss would carry the
parent's peak across fork+exec).

With `tree=True` the process's children (the harvest's mapping workers) are sampled too:
their PSS summed, which counts a page shared by several processes (libraries) once in
all, where summed RSS counts it in each.
"""
from __future__ import annotations

import threading

import psutil


class PeakRss:
    def __init__(self, interval: float = 0.02, *, tree: bool = False) -> None:
        self.peak = 0
        self.peak_tree_pss = 0
        self.peak_tree_rss = 0
        self._tree = tree
        self._done = threading.Event()
        self._interval = interval
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self) -> None:
        process = psutil.Process()
        while not self._done.wait(self._interval):
            self.peak = max(self.peak, process.memory_info().rss)
            if self._tree:
                pss = rss = 0
                for member in [process, *process.children(recursive=True)]:
                    try:
                        info = member.memory_full_info()
                    except psutil.Error:  # a worker that just exited
                        continue
                    pss, rss = pss + info.pss, rss + info.rss
                self.peak_tree_pss = max(self.peak_tree_pss, pss)
                self.peak_tree_rss = max(self.peak_tree_rss, rss)

    def stop(self) -> float:
        """Stop sampling; this process's peak RSS in MB."""
        self._done.set()
        return self.peak / 2**20

    def figures(self) -> dict[str, float]:
        """Stop sampling; every peak in MB (the tree's only with `tree=True`)."""
        figures = {"peak_rss_mb": self.stop()}
        if self._tree:
            figures.update(peak_tree_pss_mb=self.peak_tree_pss / 2**20, peak_tree_rss_mb=self.peak_tree_rss / 2**20)
        return figures
