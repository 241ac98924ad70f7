"""Peak memory of the current process, sampled from a thread (ru_maxrss would carry the
parent's peak across fork+exec).

With `tree=True` the process's children (the harvest's mapping workers) are sampled too:
their PSS summed, which counts a page shared by several processes (libraries) once in
all, where summed RSS counts it in each.
"""
from __future__ import annotations

import threading
import time

import psutil


class PeakRss:
    # A PSS sample walks every page of every process of the tree in the kernel (~16 ms of CPU
    # for a 500 MB harvest and its workers: every 50 ms, a third of a core taken from what is
    # measured; 50-60 samples a harvest, about a second of CPU, when a sample was taken on
    # every 8 MB of growth). RSS is cheap, and the PSS now is about the last sample's plus
    # what RSS grew since (new private pages count fully in both): PSS is sampled when that
    # estimate comes within PSS_STEP of the peak and RSS moved by PSS_STEP since (near a
    # peak, once per step), and at least every PSS_EVERY seconds (pages shared with a worker
    # that ends count fully again).
    PSS_STEP = 8 * 2**20
    PSS_EVERY = 2.0
    CHILDREN_EVERY = 0.5   # listing the children scans all of /proc

    def __init__(self, interval: float = 0.02, *, tree: bool = False) -> None:
        self.peak = 0
        self.peak_tree_pss = 0
        self.peak_tree_rss = 0
        self.pss_samples = 0
        self._tree = tree
        self._done = threading.Event()
        self._interval = interval
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self) -> None:
        process = psutil.Process()
        children: list[psutil.Process] = []
        children_at = pss_at = float("-inf")
        rss_at_pss = pss_then = 0
        while not self._done.wait(self._interval):
            own = process.memory_info().rss
            self.peak = max(self.peak, own)
            if not self._tree:
                continue
            now = time.monotonic()
            if now - children_at >= self.CHILDREN_EVERY:
                children, children_at = process.children(recursive=True), now
            rss = own
            for member in children:
                try:
                    rss += member.memory_info().rss
                except psutil.Error:  # a worker that just exited
                    pass
            self.peak_tree_rss = max(self.peak_tree_rss, rss)
            estimate = pss_then + rss - rss_at_pss
            if (estimate < self.peak_tree_pss - self.PSS_STEP or abs(rss - rss_at_pss) < self.PSS_STEP) \
                    and now - pss_at < self.PSS_EVERY:
                continue
            pss = 0
            for member in [process, *children]:
                try:
                    pss += member.memory_full_info().pss
                except psutil.Error:
                    continue
            self.peak_tree_pss = max(self.peak_tree_pss, pss)
            self.pss_samples += 1
            pss_at, rss_at_pss, pss_then = now, rss, pss

    def stop(self) -> float:
        """Stop sampling; this process's peak RSS in MB."""
        self._done.set()
        return self.peak / 2**20

    def figures(self) -> dict[str, float]:
        """Stop sampling; every peak in MB (the tree's only with `tree=True`)."""
        figures = {"peak_rss_mb": self.stop()}
        if self._tree:
            figures.update(peak_tree_pss_mb=self.peak_tree_pss / 2**20, peak_tree_rss_mb=self.peak_tree_rss / 2**20,
                           pss_samples=self.pss_samples)
        return figures
