"""The total-time bounds of requests: a watchdog shuts the socket of a response (or of headers)
still arriving at its deadline, read timeouts applying per socket read only; every watchdog of
the process is kept by one shared thread (_DEADLINES)."""
from __future__ import annotations

import heapq
import itertools
import socket
import threading
import time

import requests


class _Watchdog:
    """Shuts the socket of a response still arriving after `seconds`: read timeouts apply
    per socket read, so a server dripping a byte at a time would otherwise never end.
    Every request's watchdog is kept by one shared thread (`_DEADLINES`), not a timer
    thread of its own: starting a thread per request cost more than a 304 itself."""

    def __init__(self, response: requests.Response, seconds: float):
        self.response = response
        self.fired = False
        self.stopped = False   # (shut by a stop of the run: HttpClient.cancel)
        self.cancelled = False
        self.deadline = time.monotonic() + seconds
        _DEADLINES.watch(self)

    def _fire(self) -> None:
        self.fired = True
        self._shut()

    def stop(self) -> None:
        """Shut the socket now, the run stopped: a read waiting on a stalled server ends at once
        (the stop is otherwise seen between reads, after up to a read timeout). Never blocks nor
        raises: called from a signal's handler too."""
        self.stopped = True
        self._shut()

    def _shut(self) -> None:
        response = self.response   # (None once cancelled: the answer read, nothing to shut)
        if response is None:
            return
        raw = response.raw
        sock = getattr(getattr(raw, "connection", None), "sock", None)
        if sock is None:  # once the body is being read, http.client holds the socket
            sock = getattr(getattr(getattr(getattr(raw, "_fp", None), "fp", None), "raw", None), "_sock", None)
        try:
            if sock is not None:
                sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def cancel(self) -> None:
        """After this returns the watchdog never fires (`fired` tells whether it did)."""
        _DEADLINES.cancel(self)


class _SocketWatchdog(_Watchdog):
    """Shuts a bare socket at an absolute deadline (the headers' time, _HeadersInTime), or at
    once when the run stops (stop)."""

    def __init__(self, sock: socket.socket, deadline: float):
        self.sock = sock
        self.response = None
        self.fired = False
        self.stopped = False
        self.cancelled = False
        self.deadline = deadline
        _DEADLINES.watch(self)

    def _shut(self) -> None:
        sock = self.sock   # (None once cancelled: the headers in, the socket the body's to read)
        try:
            if sock is not None:
                sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def cancel(self) -> None:
        super().cancel()
        self.sock = None


class _Deadlines:
    """The watchdogs of the process, fired by one daemon thread in deadline order."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._heap: list[tuple[float, int, _Watchdog]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def watch(self, watchdog: _Watchdog) -> None:
        with self._condition:
            heapq.heappush(self._heap, (watchdog.deadline, next(self._order), watchdog))
            if self._thread is None or not self._thread.is_alive():  # (not inherited by a forked child)
                self._thread = threading.Thread(target=self._run, name="civicat-watchdog", daemon=True)
                self._thread.start()
            elif self._heap[0][2] is watchdog:  # sooner than the one the thread waits for
                self._condition.notify()

    def cancel(self, watchdog: _Watchdog) -> None:
        with self._condition:
            watchdog.cancelled = True  # left in the heap, dropped when it comes up
            watchdog.response = None   # (without holding on to the response until then)

    def _run(self) -> None:
        with self._condition:
            while True:
                while self._heap and self._heap[0][2].cancelled:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._condition.wait()
                    continue
                wait = self._heap[0][0] - time.monotonic()
                if wait > 0:
                    self._condition.wait(wait)
                    continue
                watchdog = heapq.heappop(self._heap)[2]
                watchdog._fire()   # under the lock: a cancel() never races a firing


_DEADLINES = _Deadlines()
