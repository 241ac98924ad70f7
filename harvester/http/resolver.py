"""Host names looked up with a bound: getaddrinfo has no timeout of its own, so each lookup runs
in a thread of its own, waited for at most the connect timeout, a few at a time in the process
(_Lookups); what a run has seen of the resolver (_ResolverWatch) gives up a name unanswered
for too long, and every lookup while the resolver answers none."""
from __future__ import annotations

import collections
import concurrent.futures
import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Callable

import urllib3.util.connection

from harvester.http.errors import HttpError, Interrupted, LookupTimedOut, LookupUnanswered, ResolverDown

log = logging.getLogger("civicat.http")


class _LookupFault(socket.gaierror):
    """A lookup that came to no answer (_Lookups), as urllib3 is told it: a failing lookup
    (EAI_AGAIN). `error(url)` is the request's HttpError (_connection_failed), or Interrupted where
    a stop dropped the lookup."""

    def __init__(self, error: Callable[[str], HttpError | Interrupted]):
        super().__init__(socket.EAI_AGAIN, "no answer from the resolver")
        self.error = error


class _ResolverWatch:
    """What a run has seen of the resolver (shared by its clients, like _Refusals). A name that
    has gone unanswered in a row (its lookups timed out or failed with EAI_AGAIN, none answered
    since, no pause over the limit between two) for twice the connect timeout is down for the run
    (LookupUnanswered.host_down): its later lookups fail at once. Once DOWN_AFTER different names,
    each looked up since a lookup last answered, have gone unanswered, the first of them for the
    connect timeout (a moment's failure fails every lookup under way at once), the resolver is
    down: no lookup starts (ResolverDown), but one at a time, waited for by none, to tell when it
    answers again; a lookup already under way is still waited for (a resolver slower than the connect
    timeout for a moment answers the retries of the names it was asked). Each change is said
    once in the log. `stop`: the run's (HttpClient.cancel): once set, its lookups queued are dropped."""

    DOWN_AFTER = 3

    def __init__(self, stop: threading.Event | None = None) -> None:
        self.stop = stop or threading.Event()
        self._lock = threading.Lock()
        self._streaks: dict[str, tuple[float, float]] = {}   # name: (its first unanswered lookup's start, last seen)
        self._given_up: dict[str, tuple[float, float]] = {}   # names down for the run: (unanswered for, the limit)
        self._answered_at = float("-inf")   # when a lookup last answered
        self._silent: dict[str, float] = {}   # names unanswered since then: when each one's lookup began
        self._down = False
        self._probing = False

    def refusal(self, host: str, under_way: bool) -> tuple[Callable[[str], HttpError] | None, bool]:
        """Before `host` is looked up (`under_way`: a lookup of it is): the error that ends its
        attempt at once (the name down for the run, or the resolver down), or None; and whether
        to start its lookup all the same, waited for by none (the resolver's probe, one at a
        time: `probed` once it has ended)."""
        with self._lock:
            if host in self._given_up:
                unanswered_for, limit = self._given_up[host]
                return (lambda url: LookupUnanswered(host, LookupUnanswered.down_for(host, limit), url,
                                                     unanswered_for, limit)), False
            if not self._down or under_way:
                return None, False
            names, silent_for = list(self._silent), time.monotonic() - min(self._silent.values())
            probe, self._probing = not self._probing, True
        return (lambda url: ResolverDown(host, names, silent_for, url)), probe

    def probed(self, _ended=None) -> None:
        with self._lock:
            self._probing = False

    def answered(self, host: str) -> None:
        with self._lock:
            self._streaks.pop(host, None)
            self._answered_at = time.monotonic()
            self._silent.clear()
            was_down, self._down = self._down, False
        if was_down:
            log.warning("the resolver answers again: host names are looked up again")

    def unanswered(self, host: str, began: float, limit: float,
                   error: Callable[[str, float], LookupUnanswered]) -> _LookupFault:
        """`host`'s lookup, begun at `began`, went unanswered: the attempt's fault, `error(url,
        unanswered_for)` (a LookupUnanswered, down for the run past `limit`)."""
        now = time.monotonic()
        with self._lock:
            first, last = self._streaks.get(host, (began, now))
            if now - last > limit:   # (a gap that long says nothing of the name meanwhile)
                first = began
            self._streaks[host] = (first, now)
            if began >= self._answered_at:
                self._silent.setdefault(host, began)
            # (and the first for a connect timeout, half a name's limit: a moment's failure of the
            # resolver fails every lookup under way at once, which their retries get past)
            went_down = not self._down and len(self._silent) >= self.DOWN_AFTER and \
                now - min(self._silent.values()) >= limit / 2
            self._down = self._down or went_down
            silent = list(self._silent)
            if now - first >= limit:
                self._given_up[host] = (now - first, limit)
        if went_down:
            log.warning("the resolver has answered no lookup of %d host names (%s): no lookup starts until it "
                        "answers again", len(silent), ", ".join(silent))
        return _LookupFault(lambda url: error(url, now - first))

    def ended(self, host: str, limit: float, lookup: concurrent.futures.Future) -> None:
        """A lookup of `host` has ended, waited for or not (any longer)."""
        failed = lookup.exception()
        if isinstance(failed, socket.gaierror) and failed.errno == socket.EAI_AGAIN:
            self.unanswered(host, lookup.began, limit, lambda url, unanswered_for: None)   # (no attempt to fail)
        else:
            self.answered(host)   # (an address, an NXDOMAIN)


class _Lookups:
    """Host names looked up by getaddrinfo in a thread of their own, waited for at most the
    connect timeout: getaddrinfo has no timeout, and a resolver whose DNS servers drop queries
    holds it 5 s x 2 attempts x each server (glibc's defaults: 28 s with three), past the
    connect timeout and every bound of the request. One lookup of a name at a time: an attempt
    (a retry, another thread) wanting a name still being looked up waits for that lookup, so a
    hanging resolver holds a thread a name, not one an attempt; and at most AT_ONCE lookups at a
    time in the process, so a resolver that never answers holds AT_ONCE threads at most, however
    many names a harvest asks. Another name waits for a place in turn (first come, first placed),
    for as long as lookups keep being answered: it gives up only once the resolver has answered
    none for its connect timeout, the lookups under way hanging. (A name that waited the connect
    timeout for a place was counted unanswered, and given up after two such waits, though a slow
    resolver was answering every name ahead of it.) The names a stopped run has queued are
    dropped (each ran in its turn, holding the stop as long as the resolver took).
    Nothing is kept once a lookup ends: the
    system's resolver caches answers, or not, as it is set up to. What each lookup came to is
    told to the run's _ResolverWatch."""

    AT_ONCE = 8

    def __init__(self) -> None:
        # reentrant: a stop's handler wakes the waiting names (wake) from whatever the main thread
        # was doing, in this lock too (a plain lock left the main thread waiting for itself)
        self._lock = threading.RLock()
        self._ended = threading.Condition(self._lock)
        self._pending: dict[tuple, concurrent.futures.Future] = {}
        self._queue: collections.deque[object] = collections.deque()   # the names waiting for a place, in turn
        self._answered_at = float("-inf")   # when a lookup last came to an answer (not EAI_AGAIN)

    def addresses(self, host: str, port: int, timeout, resolver: _ResolverWatch) -> list[str]:
        """The addresses of `host`, numeric, in the resolver's order (urllib3 tries them in turn)."""
        try:
            ipaddress.ip_address(host)
            return [host]   # (an address already: no lookup, no thread)
        except ValueError:
            pass
        asked = time.monotonic()
        seconds = timeout if isinstance(timeout, (int, float)) else None   # (urllib3's "default" sentinel: none)
        limit = 2 * seconds if seconds is not None else float("inf")   # (how long a name may go unanswered in a row)
        key = (host, urllib3.util.connection.allowed_gai_family())
        refused, probe = resolver.refusal(host, key in self._pending)   # (a glance, no lock: at worst one more lookup)
        if refused is not None:
            if probe:
                lookup = self._lookup(host, port, 0, resolver, limit)
                if lookup is None:
                    resolver.probed()
                else:
                    lookup.add_done_callback(resolver.probed)
            raise _LookupFault(refused)

        def timed_out(url: str, unanswered_for: float) -> LookupUnanswered:
            return LookupTimedOut(host, seconds, url, unanswered_for, limit)

        lookup = self._lookup(host, port, seconds, resolver, limit)
        if lookup is None:   # (no place for it: the resolver has answered none of the AT_ONCE lookups under way)
            raise resolver.unanswered(host, max(asked, self._answered_at), limit, timed_out)
        try:   # (the connect timeout for the lookup itself: a place waited for is not its time)
            addresses = lookup.result(seconds)
        except concurrent.futures.TimeoutError:
            raise resolver.unanswered(host, lookup.began, limit, timed_out) from None
        except socket.gaierror as exc:
            if exc.errno != socket.EAI_AGAIN:
                resolver.answered(host)   # (an NXDOMAIN is an answer)
                raise
            problem = f"the resolver gave no answer for host name {host} ({exc.strerror})"
            raise resolver.unanswered(host, lookup.began, limit, lambda url, unanswered_for: LookupUnanswered(
                host, problem, url, unanswered_for, limit)) from exc
        resolver.answered(host)
        return addresses

    def _lookup(self, host: str, port: int, wait: float | None, resolver: _ResolverWatch,
                limit: float) -> concurrent.futures.Future | None:
        """The lookup of `host` under way, or one started, its end told to `resolver`; None when
        none could start, AT_ONCE lookups under way, and none of them answered for `wait` seconds."""
        key = (host, urllib3.util.connection.allowed_gai_family())   # (as addresses has it)
        asked, turn = time.monotonic(), object()
        with self._lock:
            self._queue.append(turn)
            try:
                while not (key in self._pending or len(self._pending) < self.AT_ONCE and self._queue[0] is turn):
                    # (an answer is no silence of the resolver: the wait starts again from it)
                    left = None if wait is None else max(asked, self._answered_at) + wait - time.monotonic()
                    if left is not None and left <= 0:
                        return None   # (a probe, waiting for none, ends here stopped or not: probed)
                    if resolver.stop.is_set():   # (its run stopped: a queued lookup is dropped, not run in turn)
                        raise _LookupFault(lambda url: Interrupted(
                            f"the harvest was interrupted; host name {host} not looked up: {url}"))
                    self._ended.wait(left)
            finally:
                self._queue.remove(turn)
                self._ended.notify_all()   # (the next in turn may take a place)
            lookup = self._pending.get(key)
            if lookup is None or lookup.done():   # (one ended, its end being told: a retry asks again)
                lookup = self._pending[key] = concurrent.futures.Future()
                lookup.began = time.monotonic()
                threading.Thread(target=self._look_up, args=(key, port, lookup), name="civicat-lookup",
                                 daemon=True).start()
        lookup.add_done_callback(lambda done: resolver.ended(host, limit, done))
        return lookup

    def wake(self) -> None:
        """The names waiting for a place look again (a run stopped: its own are dropped)."""
        with self._lock:
            self._ended.notify_all()

    def _look_up(self, key: tuple, port: int, lookup: concurrent.futures.Future) -> None:
        host, family = key
        answers, failed = None, None
        try:
            answers = socket.getaddrinfo(host, port, family, socket.SOCK_STREAM)
        except BaseException as exc:
            failed = exc
        # its end told first (to the runs' _ResolverWatch, in its callbacks), then it is no longer under
        # way: a request that finds no lookup of its name finds the resolver's state after it
        if failed is not None:
            lookup.set_exception(failed)
        else:
            lookup.set_result(list(dict.fromkeys(str(sockaddr[0]) for *_, sockaddr in answers)))
        with self._lock:
            if self._pending.get(key) is lookup:   # (whoever asks from now on starts a lookup of their own)
                del self._pending[key]
            if not (isinstance(failed, socket.gaierror) and failed.errno == socket.EAI_AGAIN):   # (as ended has it)
                self._answered_at = time.monotonic()
            self._ended.notify_all()


_LOOKUPS = _Lookups()
