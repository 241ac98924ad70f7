"""HttpClient, shared by the adapters of a run: GETs of JSON, XML and data bodies and downloads,
each bounded (timeouts, size caps, a total time), retried on transient faults with backoff that
honours Retry-After, paced and limited per host, made conditional with the validator cache, and
stopped at once when the run is cancelled or its portal's budget is spent; a host that keeps
failing is asked no more this run."""
from __future__ import annotations

import copy
import email.utils
import hashlib
import logging
import os
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode, urlparse

import requests
import tenacity

from catalog.files import writing
from harvester import __version__
from harvester.config import key_goes_safely
from harvester.http import json_parsing
from harvester.http.bodies import (_BodySink, _decoded_chunks, _gunzip_capped, _gunzip_head, _gunzip_into, _head_of,
                                   _let_go, _parsing, _read_capped, _SpooledBody, parse_data_body)
from harvester.http.connections import (_Adapter, _check_proxy_url, _check_url, _connection_failed, _headers_by,
                                        _Refusals, _Session)
from harvester.http.deadlines import _Watchdog
from harvester.http.errors import (ConnectionFailed, ConnectionRefused, HostFault, HostUnavailable, HttpError,
                                   Interrupted, InvalidBody, LookupUnanswered, OverBudget, PermanentError,
                                   ResolverDown, ResponseTooLarge, TimedOut, TransientError, UnexpectedPayload)
from harvester.http.json_parsing import parse_json_body
from harvester.http.resolver import _LOOKUPS, _ResolverWatch
from harvester.http.xml_parsing import parse_xml_body
from harvester.http_cache import ValidatorCache

log = logging.getLogger("civicat.http")

USER_AGENT = f"civicat/{__version__} (open-data catalogue harvester; python-requests)"
DEFAULT_MAX_BYTES = 256 * 1024 * 1024
DEFAULT_MAX_DOWNLOAD_BYTES = 16 * 1024 ** 3   # a whole dataset file, streamed to disk
# what raises each cap (a variable from_env reads), said by an answer refused for its size
RAISES_THE_CAP = "CIVICAT_HTTP_MAX_BYTES raises the cap"
RAISES_THE_DOWNLOAD_CAP = "CIVICAT_HTTP_MAX_DOWNLOAD_BYTES raises the cap"


@dataclass
class HttpStats:
    """Counters for the run report; updated from several threads."""

    requests: int = 0
    retries: int = 0
    not_modified: int = 0
    bytes: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return {"requests": self.requests, "retries": self.retries,
                    "not_modified": self.not_modified, "bytes": self.bytes}


@dataclass
class JsonResponse:
    data: object
    status: int
    url: str
    not_modified: bool = False  # answered 304: `data` is the body remembered from last time
    digest: str | None = None   # sha256 of that body (conditional requests): the same digest, the same document


class _HostPace:
    """When the next request to a host may start, for every thread of the run: spaced by the
    portal's `requests_per_second`, and held back while a 429/503 `Retry-After` runs (the
    portal's rate limit, not only the retry of the request that met it)."""

    def __init__(self) -> None:
        self.interval = 0.0
        self.next_at = 0.0
        self._lock = threading.Lock()
        self.clock = time.monotonic   # (a test's own: the waits asked, whatever the machine's load)

    def wait(self, stop: threading.Event, deadline: float | None = None) -> None:
        """Until this request's turn, or the run stops, or `deadline` (its portal's budget)."""
        with self._lock:
            now = self.clock()
            start = max(now, self.next_at)
            self.next_at = start + self.interval
        if deadline is not None:
            start = min(start, deadline)
        if start > now:
            stop.wait(start - now)   # (a held-back request is not waited for once the run stops)

    def hold(self, seconds: float) -> None:
        with self._lock:
            self.next_at = max(self.next_at, self.clock() + seconds)


class HttpClient:
    """Shared by all adapters of a run. Thread-safe: one requests.Session per thread."""

    def __init__(
        self,
        *,
        timeout: float = 60.0,
        connect_timeout: float = 10.0,
        max_attempts: int = 5,
        max_retry_seconds: float = 600.0,
        backoff_initial: float = 1.0,
        backoff_max: float = 60.0,
        max_retry_after: float = 120.0,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_download_bytes: int = DEFAULT_MAX_DOWNLOAD_BYTES,
        max_per_host: int = 4,
        cache: ValidatorCache | None = None,
        host_failure_limit: int = 3,
        address_fault_limit: int = 10,
        refused_limit: float = 10.0,
    ):
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.max_attempts = max_attempts
        self.max_retry_seconds = max_retry_seconds
        self.backoff = tenacity.wait_exponential_jitter(multiplier=backoff_initial, max=backoff_max, jitter=backoff_initial)
        self.max_retry_after = max_retry_after
        self.max_bytes = max_bytes
        self.max_download_bytes = max_download_bytes
        self.max_per_host = max_per_host
        self.cache = cache
        self.stats = HttpStats()
        self._local = threading.local()
        self._host_slots: dict[str, threading.BoundedSemaphore] = {}
        # hosts whose requests kept failing after every retry: asked no more this run, so a
        # FeatureServer host named by thousands of datasets cannot hold the night hostage
        self._host_failures: dict[str, int] = {}
        self._host_given_up: dict[str, str] = {}   # why, when it says more than the failures' count
        self.host_failure_limit = host_failure_limit
        # a host whose addresses, one after another, each answer what was not asked (an HTML page,
        # a broken body: each one address's fault, retried) is given up too, past this many in a row:
        # a login wall or maintenance page at every address otherwise costs each request its retries
        self._address_faults: dict[str, int] = {}
        self.address_fault_limit = address_fault_limit
        self._refusals = _Refusals(refused_limit)   # (a host refusing that long is down: ConnectionRefused)
        # proxies that refused in a way final for every request through them (their login, a SOCKS proxy's or
        # an HTTP proxy's 407; no SOCKS proxy): asked no more this run, every portal behind one failing at once
        # (ProxyRefused), keyed by their URL (_Adapter.send)
        self._proxies_refused: dict = {}
        self._stop = threading.Event()   # shared by the clients of every portal (for_portal)
        # the answers being read and awaited (shared too): a stop shuts their sockets (cancel). A set, no lock:
        # cancel runs in a signal's handler, which a lock the interrupted main thread held would hang
        self._in_flight: set[_Watchdog] = set()
        # (a name unanswered that long is down, and so is a silent resolver; a stop drops the lookups queued)
        self._resolver = _ResolverWatch(self._stop)
        self._host_lock = threading.Lock()
        self._host_paces: dict[str, _HostPace] = {}
        self._environments: dict[str, dict] = {}
        self._deadline: float | None = None   # of one portal's client (limit_to)
        self._budget_minutes = 0.0
        # each host's latest answer's Date header, and our time as it came (shared too): a records pull judges
        # its rows' stamps by the clock that wrote them (server_clock; read only then: a parse an answer
        # was 13 µs, 0.4 s of a night's 30,000 requests)
        self._server_dates: dict[str, tuple[str, str | None, float]] = {}   # host: (Date, Age, our time then)
        # a portal's keys (one portal's client: send_key): each origin one goes to, and its header
        self._keys: dict[tuple[str, str, int | None], dict[str, str]] = {}
        # the origins a key was given for but is not sent to (plain http to another machine), until the
        # first request to each says so (_with_key)
        self._keys_held_back: dict[tuple[str, str, int | None], str] = {}
        # what was said of them, until the portal's run records it (keys_held_back_said): a nightly run's
        # user reads its report and `civicat runs --errors`, not its log
        self._keys_said: list[str] = []

    @classmethod
    def from_env(cls, **kwargs) -> "HttpClient":
        """Defaults, tuned by CIVICAT_HTTP_MAX_ATTEMPTS, CIVICAT_HTTP_BACKOFF (first wait, s),
        CIVICAT_HTTP_MAX_BYTES, CIVICAT_HTTP_MAX_DOWNLOAD_BYTES, CIVICAT_HTTP_MAX_RETRY_SECONDS and
        CIVICAT_HTTP_REFUSED_SECONDS (how long a port may refuse in a row: refused_limit) when set;
        a CA bundle named by REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE must exist, and a SOCKS proxy named
        by ALL_PROXY, HTTPS_PROXY or HTTP_PROXY must be one (socks5h://host:port...)."""
        # (name, type, smallest value): a negative cap would fail every portal of the night
        env = {"max_attempts": ("CIVICAT_HTTP_MAX_ATTEMPTS", int, 1),
               "backoff_initial": ("CIVICAT_HTTP_BACKOFF", float, 0), "max_bytes": ("CIVICAT_HTTP_MAX_BYTES", int, 1),
               "max_retry_seconds": ("CIVICAT_HTTP_MAX_RETRY_SECONDS", float, 0),
               "max_download_bytes": ("CIVICAT_HTTP_MAX_DOWNLOAD_BYTES", int, 1),
               "refused_limit": ("CIVICAT_HTTP_REFUSED_SECONDS", float, 0)}
        for key, (name, kind, least) in env.items():
            if os.environ.get(name):
                try:
                    value = kind(os.environ[name])
                except ValueError:
                    raise ValueError(f"environment variable {name}={os.environ[name]!r} is not "
                                     f"{'a whole number' if kind is int else 'a number'}") from None
                if not least <= value < float("inf"):   # (nan too)
                    raise ValueError(f"environment variable {name}={os.environ[name]!r} must be a finite number "
                                     f"of at least {least}")
                kwargs.setdefault(key, value)
        for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):   # (read by _environment, as requests reads them)
            # requests raises a bare OSError at the first https request, inside the harvest
            if os.environ.get(name) and not os.path.exists(os.environ[name]):
                raise ValueError(f"environment variable {name}={os.environ[name]!r} names no CA bundle file "
                                 "or folder")
        for scheme, proxy in urllib.request.getproxies().items():   # (as requests reads them: _environment)
            # a proxy's URL, else each request of the night fails (a SOCKS one retried, InvalidProxyURL; an HTTP
            # one whose URL does not parse quoted it, its password too); NO_PROXY names hosts, not a proxy
            if scheme in ("http", "https", "all"):
                try:
                    _check_proxy_url(proxy)
                except ValueError as exc:   # (its value not shown: it may hold the proxy's password)
                    raise ValueError(f"the proxy of environment variable {scheme.upper()}_PROXY is not valid: "
                                     f"{exc}") from None
        return cls(**kwargs)

    # -- public -------------------------------------------------------------------------

    def for_portal(self, portal) -> "HttpClient":
        """A client for one portal: its own counters and timeout, sharing sessions, the
        cache and the per-host slots (sized by the portal's max_concurrency)."""
        clone = copy.copy(self)
        clone.stats = HttpStats()
        clone.timeout = portal.timeout
        clone._keys, clone._keys_held_back, clone._keys_said = {}, {}, []   # (its adapter's: send_key)
        with self._host_lock:
            if portal.host not in self._host_slots:
                self._host_slots[portal.host] = threading.BoundedSemaphore(portal.max_concurrency)
        if getattr(portal, "requests_per_second", None):
            self._pace(portal.host).interval = 1.0 / portal.requests_per_second
        return clone

    def send_key(self, url: str, headers: dict[str, str]) -> None:
        """From now on, this (portal's) client sends `headers` (a key, in its kind's header:
        config.KEY_HEADERS) with every request to `url`'s origin (scheme, host and port): the portal's
        own, or a host its `keys` name, each its own key and no other's, and to no other origin (a
        distribution's download, a FeatureServer's host no key names), where a key goes safely (https,
        or this machine: config.key_goes_safely; elsewhere not sent); a redirect drops it on another
        host or port, or from https down to http (connections._Session.rebuild_auth). Never in a URL,
        a log line or the HTTP cache (which keeps answers by their URL). Not sent, the first request
        there says so (a warning: the answers are those of a request without the key), once a run."""
        if key_goes_safely(url):
            self._keys[_origin(url)] = dict(headers)
        else:
            self._keys_held_back[_origin(url)] = url

    @contextmanager
    def speculative(self) -> Iterator[None]:
        """Requests of this thread made on a guess (a page asked before the one before it has
        told what comes next): one attempt each, a failure neither retried nor counted
        against the host; the caller asks again, with retries, once the guess is confirmed."""
        self._local.speculative = True
        try:
            yield
        finally:
            self._local.speculative = False

    def cancel(self) -> None:
        """Stop the run's requests: from now on, every request of every thread (and every
        retry waiting its turn, and every lookup waiting for a place: _Lookups) raises Interrupted at once."""
        self._stop.set()
        _LOOKUPS.wake()
        for watchdog in list(self._in_flight):   # (a connect, a body or headers stalled end now, not at a timeout)
            watchdog.stop()

    @property
    def cancelled(self) -> bool:
        return self._stop.is_set()

    def limit_to(self, minutes: float | None, what: str = "the portal's catalogue harvest",
                 key: str = "max_minutes") -> None:
        """From now on, this (portal's) client's requests raise OverBudget once `minutes` have
        passed (`what` took over them, past its config `key`); None lifts the limit."""
        self._deadline = None if minutes is None else time.monotonic() + minutes * 60
        self._budget_minutes = minutes or 0.0
        self._budget_of = (what, key)

    def _check_stopped(self, url: str) -> None:
        if self._stop.is_set():
            raise Interrupted(f"the harvest was interrupted; not requested: {url}")
        if self._deadline is not None and time.monotonic() > self._deadline:
            what, key = self._budget_of
            raise OverBudget(f"{what} took over {self._budget_minutes:g} minutes (its {key}); not requested: {url}")

    def _sleep(self, seconds: float) -> None:
        """tenacity's wait between attempts, cut short when the run stops or the budget ends."""
        if self._deadline is not None:
            seconds = max(0.0, min(seconds, self._deadline - time.monotonic()))
        self._stop.wait(seconds)

    def server_clock(self, url: str) -> timedelta | None:
        """How far the clock of `url`'s host is ahead of ours (behind: negative), by the Date header
        (RFC 7231: when the answer was made) of its latest answer this run, less our time as it came;
        None: its latest answer that gave one gave one that is no date, or none did. To the second,
        less the answer's way here. An answer a cache kept says how long in its Age header (RFC 9111):
        its Date is that much older than the server's clock then, not a clock behind."""
        date, age, came = self._server_dates.get(urlparse(url).netloc, (None, None, None))
        server = _http_date(date)
        return None if server is None else timedelta(seconds=server.timestamp() + _age(age) - came)

    def set_host_limit(self, host: str, limit: int) -> None:
        """At most `limit` requests in flight to `host` (the portal's max_concurrency)."""
        with self._host_lock:
            self._host_slots[host] = threading.BoundedSemaphore(limit)

    def get_json(
        self,
        url: str,
        params: dict | None = None,
        *,
        headers: dict | None = None,
        conditional: bool = False,
        timeout: float | None = None,
        expect: Callable[[object], str | None] | None = None,
        unread: str | None = None,
        parse: Callable[[bytes, str, str], object] | None = None,
    ) -> JsonResponse:
        """GET a JSON document, retried on transient faults.

        With `conditional`, the ETag / Last-Modified of the last answer for this exact
        URL are sent, and a 304 gives back the body remembered then. `expect` checks the
        document's shape (returns a problem or None); a bad shape is retried, then raised.
        `unread`: the digest of a body the caller already holds all it needs of; a 304 for
        that very body answers `data=None`, the body neither read nor parsed, and so does a 200
        of that very body (read, to be hashed, but not parsed: a portal sending no validators,
        or a new ETag for the same bytes). `parse`: in place of parse_json_body (`capped_json`).
        """
        return self._get(url, params, headers, conditional, timeout, expect, parse or parse_json_body,
                         "application/json", unread)

    def forget(self, url: str) -> None:
        """Drop what the validator cache remembers for `url` (JsonResponse.url): a body its
        caller refused must not be answered again by a 304 (one full request next time)."""
        if self.cache is not None:
            self.cache.forget(url)

    def get_data(self, url: str, parse: Callable[[bytes], object], params: dict | None = None, *,
                 headers: dict | None = None, timeout: float | None = None, accept: str = "text/csv"):
        """GET a data body (a CSV page) and `parse` it, retried like JSON: an HTML page behind
        a 200 (a maintenance page, a login wall) is a transient fault, never data, and so is
        a body `parse` refuses with a ValueError (a page cut short mid-row)."""
        def checked(body: bytes, content_type: str, url: str):
            try:
                return parse(parse_data_body(body, content_type, url))
            except ValueError as exc:
                raise InvalidBody(f"unreadable data: {exc}", url, 200) from None
        return self._get(url, params, headers, False, timeout, None, checked, accept).data

    def download(self, url: str, destination: str | Path, params: dict | None = None, *,
                 headers: dict | None = None, max_seconds: float = 3600.0, accept: str = "*/*") -> int:
        """Stream a body (a resource file, an export) to `destination` without holding it in
        memory; retried from the start on transient faults. Made as every other request is
        (_request: its host's pace and Retry-After, the hosts given up), but bounded by
        `max_download_bytes` (16 GiB by default) and by `max_seconds` an attempt, from its
        request. Returns the number of bytes written."""
        full_url = _with_params(url, params)
        return self._asked_of_host(full_url, self._download_once, full_url, Path(destination),
                                   {"Accept": accept, **(headers or {})}, max_seconds)

    def get_xml(self, url: str, params: dict | None = None, *, headers: dict | None = None,
                conditional: bool = False, timeout: float | None = None) -> JsonResponse:
        """GET an XML document (parsed with defusedxml: DTDs and entities are refused)."""
        return self._get(url, params, headers, conditional, timeout, None, parse_xml_body,
                         "application/xml, text/xml")

    def _get(self, url, params, headers, conditional, timeout, expect, parse, accept, unread=None) -> JsonResponse:
        full_url = _with_params(url, params)
        return self._asked_of_host(full_url, self._get_once, full_url, {"Accept": accept, **(headers or {})},
                                   conditional, timeout or self.timeout, expect, parse, unread)

    def _asked_of_host(self, url: str, call: Callable, *args):
        """`call(*args)` (one attempt at `url`) retried, unless `url`'s host is given up this run;
        a failure after every retry counted against the host if it is the host's fault
        (HttpError.counts_against_host: not one address's), a success clearing its count. A
        speculative request is made once, its failure not counted."""
        host = _check_url(url)
        if self._host_failures.get(host, 0) >= self.host_failure_limit:
            raise HostUnavailable(self._host_given_up.get(host) or f"{host} failed {self._host_failures[host]} "
                                  "requests in a row this run; not asked again", url)
        speculative = getattr(self._local, "speculative", False)
        try:
            response = self._retried(1 if speculative else self.max_attempts, call, *args)
        except HttpError as exc:
            if not speculative and exc.counts_against_host:
                with self._host_lock:
                    down = getattr(exc, "host_down", None)   # (a HostFault; a ConnectionRefused past its limit)
                    if down:
                        self._host_failures[host] = self.host_failure_limit
                        self._host_given_up[host] = down
                    else:
                        self._host_failures[host] = self._host_failures.get(host, 0) + 1
            elif not speculative and isinstance(exc, TransientError) and not exc.on_the_way:
                with self._host_lock:   # (one address's fault, retried: see address_fault_limit)
                    faults = self._address_faults[host] = self._address_faults.get(host, 0) + 1
                    if faults >= self.address_fault_limit:
                        self._host_failures[host] = self.host_failure_limit
                        self._host_given_up[host] = (f"{host} answered {faults} addresses in a row with no usable "
                                                     f"answer (the last: {exc.error_type}) this run; not asked again")
            raise
        with self._host_lock:
            self._host_failures[host] = self._address_faults[host] = 0
        return response

    # -- internals ----------------------------------------------------------------------

    def _retried(self, attempts: int, call: Callable, *args):
        """`call(*args)`, retried on a TransientError with backoff (Retry-After honoured), up to
        `attempts` in all and max_retry_seconds from the first. The first attempt is made
        plainly: tenacity's Retrying, built and run for every request, cost more than the
        cache lookup of a 304, and most requests need no retry; it takes over after a failure,
        which it is given as its own first attempt's."""
        started = time.monotonic()
        try:
            return call(*args)
        except TransientError as exc:
            if attempts <= 1:
                raise
            failed: TransientError | None = exc

        def attempt(*args):
            nonlocal failed
            if failed is not None:
                exc, failed = failed, None
                raise exc
            return call(*args)

        spent = time.monotonic() - started
        return tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(TransientError),
            stop=tenacity.stop_after_attempt(attempts) | tenacity.stop_after_delay(self.max_retry_seconds - spent)
            | _stop_host_fault,
            wait=self._wait, before_sleep=self._before_retry, sleep=self._sleep, reraise=True)(attempt, *args)

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = _Session()
            adapter = _Adapter(pool_connections=16, pool_maxsize=16, max_retries=0)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            session.headers.update({"User-Agent": USER_AGENT, "Accept-Encoding": "gzip, deflate"})
            # requests reads the proxy settings from the whole environment on every request
            # (a third of the client's time for a 304); `_environment` reads them once a host
            session.trust_env = False
            session.environment_proxies = lambda url: dict(self._environment(url)["proxies"])
            self._local.session = session
        return session

    def _send(self, url: str, headers: dict, timeout: tuple[float, float]) -> requests.Response:
        """GET `url`, streamed, following redirects: what `session.get` does, less what it
        does per call that a harvest never needs (a Request prepared by merging the session's
        hooks, params, auth and empty cookie jars into it, then the environment's settings,
        which `_environment` holds already): a third of the client's CPU for a 304. Sent by
        the session's adapter, which raises requests' errors, and redirects followed by the
        session (`_Session`: proxies and secret headers). Once a portal has set a cookie,
        requests' whole path sends it back."""
        session = self._session()
        environment = self._environment(url)
        if session.cookies:
            return session.get(url, headers=headers, timeout=timeout, stream=True, allow_redirects=True, **environment)
        request = requests.PreparedRequest()
        request.prepare_method("GET")
        request.prepare_url(url, None)
        # (prepare_headers keeps the last of two names that differ in case: ours over the session's)
        request.prepare_headers({name: value for name, value in {**session.headers, **headers}.items()
                                 if value is not None})
        request.prepare_body(None, None)
        request.prepare_auth(None, url)   # (user:password@ in the URL)
        response = session.get_adapter(request.url).send(request, stream=True, timeout=timeout, cert=None,
                                                         **environment)
        if "Set-Cookie" in response.headers or "Set-Cookie2" in response.headers:
            requests.cookies.extract_cookies_to_jar(session.cookies, request, response.raw)
        if response.is_redirect:
            request._cookies = requests.cookies.RequestsCookieJar()   # (resolve_redirects keeps a redirect's own)
            history = [response, *session.resolve_redirects(response, request, stream=True, timeout=timeout,
                                                            cert=None, **environment)]
            response = history.pop()
            response.history = history
        return response

    def _with_key(self, url: str, headers: dict) -> dict:
        """`headers`, with the key of `url`'s origin, if it has one (send_key)."""
        key = self._keys.get(_origin(url)) if self._keys else None
        if key is None and self._keys_held_back:
            # (popped: one thread alone says it; a host's layers over plain http answered as to anyone,
            # and nothing said why: a secured layer's 403, a listing short of its restricted layers)
            held_back = self._keys_held_back.pop(_origin(url), None)
            if held_back is not None:
                said = (f"the key configured for {urlparse(held_back).netloc} ([portals.keys]) is not sent to "
                        f"{held_back}: plain http to another machine would carry it in clear; its answers are those "
                        "of a request without it (ask for its https address)")
                log.warning("%s", said)
                self._keys_said.append(said)
        return headers if key is None else {**key, **headers}

    def keys_held_back_said(self) -> list[str]:
        """What the requests since the last call said of a key held back (send_key, _with_key): each
        host's once a run, for the portal's run to record (harvester.pipeline.record_keys_held_back)."""
        said = []
        while self._keys_said:   # (popped: a request of another thread may add one meanwhile)
            said.append(self._keys_said.pop(0))
        return said

    def _environment(self, url: str) -> dict:
        """What requests would take from the environment for `url`: the proxies (HTTP_PROXY,
        HTTPS_PROXY, NO_PROXY...) and a CA bundle (REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE), read
        once per scheme and host for the whole run."""
        parts = urlparse(url)
        key = f"{parts.scheme}://{parts.netloc}"
        settings = self._environments.get(key)
        if settings is None:
            settings = self._environments[key] = {
                "proxies": requests.utils.get_environ_proxies(url),
                "verify": os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True}
        return settings

    def _pace(self, host: str) -> _HostPace:
        with self._host_lock:
            return self._host_paces.setdefault(host, _HostPace())

    def _slot(self, host: str) -> threading.BoundedSemaphore:
        with self._host_lock:
            slot = self._host_slots.get(host)
            if slot is None:
                slot = self._host_slots[host] = threading.BoundedSemaphore(self.max_per_host)
            return slot

    def _wait(self, state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        retry_after = getattr(exc, "retry_after", None)
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        if isinstance(exc, ConnectionRefused):   # (the last attempt made when its host has refused for the limit)
            return min(self.backoff(state), exc.remaining)
        return self.backoff(state)

    def _before_retry(self, state: tenacity.RetryCallState) -> None:
        self.stats.add(retries=1)
        exc = state.outcome.exception() if state.outcome else None
        log.warning("retrying in %.1fs after attempt %d: %s", state.upcoming_sleep, state.attempt_number, exc)

    def _get_once(self, url: str, headers: dict, conditional: bool, timeout: float,
                  expect: Callable[[object], str | None] | None, parse, unread: str | None = None) -> JsonResponse:
        meta = self.cache.validators(url) if (conditional and self.cache) else None
        request_headers = dict(headers)
        if meta:
            if meta.get("etag"):
                request_headers["If-None-Match"] = meta["etag"]
            if meta.get("last_modified"):
                request_headers["If-Modified-Since"] = meta["last_modified"]

        keep_gzip = conditional and self.cache is not None
        spool = getattr(parse, "reads_spooled", False)
        status, response_headers, body, gzipped = self._fetch(url, request_headers, timeout, keep_gzip, spool)
        if status == 304:
            if not meta:
                raise TransientError("304 Not Modified to an unconditional request", url, status)
            self.stats.add(not_modified=1)
            digest = meta.get("sha256")
            if unread is not None and digest == unread:
                return JsonResponse(None, status, url, not_modified=True, digest=digest)
            remembered = self.cache.body(url, meta, self._gunzip_stored if spool else None)
            if remembered is None:  # validators without their body (a cache cut short): ask plainly
                meta = None   # (and put its body whole, whatever its digest)
                status, response_headers, body, gzipped = self._fetch(url, dict(headers), timeout, keep_gzip, spool)
                if status == 304:
                    raise TransientError("304 Not Modified to an unconditional request", url, status)
            else:
                with _parsing(remembered):
                    return JsonResponse(parse(remembered, "", url), status, url, not_modified=True, digest=digest)

        # (a spooled body was hashed as it was written: no second reading of its file)
        digest = (body.sha256() if isinstance(body, _SpooledBody) else hashlib.sha256(body).hexdigest()) \
            if conditional and self.cache else None
        if unread is not None and digest == unread:
            # the very body the caller holds all it needs of, answered 200 (a portal sending no
            # validators, or a new ETag for the same bytes): neither parsed nor checked, as a 304's
            self._remember(url, response_headers, body, digest, gzipped, meta)
            _let_go(body)
            return JsonResponse(None, status, url, digest=digest)
        with _parsing(body):
            data = parse(body, response_headers.get("Content-Type", ""), url)
            problem = expect(data) if expect else None
            if problem:
                raise UnexpectedPayload(f"unexpected JSON: {problem}", url, status)
            if digest is not None:
                self._remember(url, response_headers, body, digest, gzipped, meta)
        return JsonResponse(data, status, url, digest=digest)

    def _remember(self, url: str, response_headers, body: "bytes | _SpooledBody", digest: str,
                  gzipped: bytes | None, held: dict | None) -> None:
        """A 200's body put in the validator cache under its validators (none sent: not put). The
        body the cache holds already (`held`: its entry's validators, its digest this one's) is not
        written again: new validators for it (a new ETag for the same bytes) are written alone,
        and the same ones not at all."""
        etag, last_modified = response_headers.get("ETag"), response_headers.get("Last-Modified")
        if (etag or last_modified) and held is not None and held.get("sha256") == digest:
            if (etag, last_modified) != (held.get("etag"), held.get("last_modified")):
                self.cache.revalidate(url, etag, last_modified, digest)
        elif etag or last_modified:
            # a spooled body goes to the cache gzip-encoded only (as it came, or encoded
            # here a piece at a time): the cache holds no copy of it while it is written
            if isinstance(body, _SpooledBody):
                self.cache.put(url, etag, last_modified, None, digest, gzipped or body.gzipped())
            else:
                self.cache.put(url, etag, last_modified, body, digest, gzipped)

    def _gunzip_stored(self, pieces: Iterator[bytes], sha256: str | None) -> "bytes | _SpooledBody | None":
        """A body the validator cache holds gzip-encoded, decoded as its pieces are read, as a 200's
        body is read (into a temporary file from STREAMED_JSON_BYTES on); None when it is not the
        body of `sha256` (a damaged or half-read entry: the request is then made plainly)."""
        sink = _BodySink(json_parsing.STREAMED_JSON_BYTES, hashed=True)
        try:
            body, _ = _gunzip_into(sink, pieces, self.max_bytes, "(the validator cache)", 304)
        except (TransientError, ResponseTooLarge):   # no gzip, or more than any body let in
            sink.discard()
            return None
        except BaseException:
            sink.discard()
            raise
        if sink.digest.hexdigest() != sha256:
            sink.discard()
            return None
        return body

    def _fetch(self, url: str, headers: dict, timeout: float, keep_gzip: bool = False,
               spool: bool = False) -> tuple[int, dict, "bytes | _SpooledBody", bytes | None]:
        """One request, its body read under the size cap and the total-time bound. With
        `keep_gzip`, a gzip-encoded body is also given as it came (for the validator cache),
        when it is nothing but whole gzip members; otherwise that last item is None. With
        `spool`, a body of STREAMED_JSON_BYTES or more is written to a temporary file as it
        arrives (a _SpooledBody, for a parse that reads one: `reads_spooled`)."""
        return self._request(url, headers, timeout, timeout * 2, "response", self._read_into_memory,
                             timeout, keep_gzip, spool)

    def _download_once(self, url: str, destination: Path, headers: dict, max_seconds: float) -> int:
        return self._request(url, headers, self.timeout, max_seconds, "download", self._stream_to_file,
                             destination, max_seconds)

    def _request(self, url: str, headers: dict, timeout: float, seconds: float, what: str,
                 read_body: Callable, *body_args):
        """One request, every kind made alike: the stops checked, a slot of its host taken and
        its pace waited for, the headers due within twice `timeout` (its connections' time
        left out), a 429/408/5xx a TransientError whose Retry-After holds back the host, a
        4xx a PermanentError saying the start of its body, and the rest of the answer due
        within `seconds` (the watchdog). The body of any other answer is
        `read_body(response, url, started, *body_args)`'s to read and give back, within its
        own bounds; `what` names the answer in the errors ("response", "download")."""
        self._check_stopped(url)
        self.stats.add(requests=1)
        log.debug("GET %s", url)
        host = urlparse(url).netloc
        pace = self._pace(host)
        with self._slot(host):
            pace.wait(self._stop, self._deadline)
            self._check_stopped(url)
            started = time.monotonic()   # (not before the slot's wait: a long Retry-After hold would use it up)
            try:
                with _headers_by(started + timeout * 2, self._refusals, self._resolver, self._stop,
                                 self._in_flight, self._proxies_refused) as exchange:
                    response = self._send(url, self._with_key(url, headers), (self.connect_timeout, timeout))
            except requests.exceptions.RequestException as exc:
                if exchange.stopped:   # (its socket shut by the stop: the server had not answered yet)
                    waited = "connecting" if exchange.stopped == "connect" else f"waiting for the {what}'s headers"
                    raise Interrupted(f"the harvest was interrupted while {waited}: {url}") from None
                if isinstance(exc, requests.exceptions.Timeout):
                    raise TimedOut(f"timed out: {type(exc).__name__}", url) from None
                raise _connection_failed(exc, url, timeout * 2, exchange) from None
            started += exchange.connecting   # (the body's time bound, like the headers', leaves it out)
            if date := response.headers.get("Date"):
                self._server_dates[host] = (date, response.headers.get("Age"), time.time())
            watchdog = _Watchdog(response, seconds)
            self._in_flight.add(watchdog)
            if self._stop.is_set():   # (a cancel that came before it was listed: shut it here)
                watchdog.stop()
            try:
                status = response.status_code
                if status == 429 or status == 408 or status >= 500:
                    retry_after = _retry_after(response.headers.get("Retry-After"))
                    if retry_after:
                        pace.hold(min(retry_after, self.max_retry_after))
                    raise TransientError(f"HTTP {status}", url, status, retry_after=retry_after)
                if status >= 400:
                    snippet = _read_capped(response, 2048, url, started, timeout, truncate=True)
                    raise PermanentError(f"HTTP {status}: {snippet[:300].decode('utf-8', 'replace').strip()}", url, status)
                return read_body(response, url, started, *body_args)
            except requests.exceptions.RequestException as exc:
                raise ConnectionFailed(f"{what} failed: {type(exc).__name__}", url) from None
            finally:
                self._in_flight.discard(watchdog)
                watchdog.cancel()
                response.close()
                if watchdog.stopped:   # (its socket shut by the stop: what was read may look whole)
                    raise Interrupted(f"the harvest was interrupted while the {what} arrived: {url}")
                if watchdog.fired:   # (its status: the headers came, a body slower than its bound)
                    raise TimedOut(f"{what} took over {seconds:.0f}s to arrive", url, response.status_code)

    def _read_into_memory(self, response: requests.Response, url: str, started: float, timeout: float,
                          keep_gzip: bool, spool: bool) -> tuple[int, dict, "bytes | _SpooledBody", bytes | None]:
        """_fetch's body: read whole under the response cap and twice `timeout` from `started`."""
        status = response.status_code
        if status == 304:  # no body; read to its end all the same, or closing drops the connection
            _read_capped(response, 0, url, started, timeout, truncate=True)
            return status, response.headers, b"", None
        declared = _declared_length(response)
        if declared is not None and declared > self.max_bytes:   # (its head read: it may name the entry, value_in_head)
            raise ResponseTooLarge(f"response of {declared} bytes ({_by_content_length(response)}) is over the "
                                   f"{self.max_bytes}-byte cap; {RAISES_THE_CAP}", url, status, head=_head_of(response))
        gzipped = None
        spool_from = json_parsing.STREAMED_JSON_BYTES if spool else None
        if keep_gzip and response.headers.get("Content-Encoding", "").strip().lower() == "gzip":
            try:
                encoded = _read_capped(response, self.max_bytes, url, started, timeout, decode=False)
            except ResponseTooLarge as error:   # (its head as it came: gzip-encoded)
                error.head = _gunzip_head(error.head)
                raise
            body, whole = _gunzip_capped(encoded, self.max_bytes, url, status, spool_from, hashed=keep_gzip)
            gzipped = encoded if whole else None
        else:
            body = _read_capped(response, self.max_bytes, url, started, timeout, spool_from=spool_from,
                                hashed=keep_gzip)
        self.stats.add(bytes=len(body))
        # requests' own mapping: header names are case-insensitive (a Go server sends `Etag`)
        return status, response.headers, body, gzipped

    def _stream_to_file(self, response: requests.Response, url: str, started: float, destination: Path,
                        max_seconds: float) -> int:
        """download()'s body: written beside `destination` as it arrives, under the download cap
        and `max_seconds` from `started`, and renamed to it once whole; refused unread when its
        Content-Length is over the cap, and an HTML page in its place refused by its first bytes.
        A download refused as it streams (over the cap, cut short, the run stopped) leaves nothing
        written and a file already at `destination` (the previous download) as it was: written in
        place, it left the part read there, and emptied the previous file as it began."""
        status, size = response.status_code, 0
        declared = _declared_length(response)
        if declared is not None and declared > self.max_download_bytes:
            raise ResponseTooLarge(f"download of {declared} bytes ({_by_content_length(response)}) is over the "
                                   f"{self.max_download_bytes}-byte cap; {RAISES_THE_DOWNLOAD_CAP}", url, status)
        partial = destination.with_name(f".{destination.name}.{os.getpid()}-{threading.get_ident()}.partial")
        try:
            with writing(partial), open(partial, "wb") as out:
                for chunk in _received(response, url):
                    if size == 0:
                        parse_data_body(chunk, response.headers.get("Content-Type", ""), url)
                    size += len(chunk)
                    if size > self.max_download_bytes:
                        raise ResponseTooLarge(f"download is over the {self.max_download_bytes}-byte cap; "
                                               f"{RAISES_THE_DOWNLOAD_CAP}", url, status)
                    if time.monotonic() - started > max_seconds:
                        raise TimedOut(f"download took over {max_seconds:.0f}s to arrive", url, status)
                    self._check_stopped(url)   # a 16 GiB download is no reason to stay
                    out.write(chunk)
            if self._stop.is_set():   # (a stop shuts the socket: a body without a length then ends there, cut short)
                raise Interrupted(f"the harvest was interrupted while the download arrived: {url}")
            with writing(destination):
                os.replace(partial, destination)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        self.stats.add(bytes=size)
        return size


def _received(response: requests.Response, url: str) -> Iterator[bytes]:
    """A download's body as it arrives, requests' errors raised as ConnectionFailed: they are
    OSErrors, which `writing` took for the file's ("could not write ..."), never retried."""
    try:
        yield from _decoded_chunks(response, 1024 * 1024)
    except requests.exceptions.RequestException as exc:
        raise ConnectionFailed(f"download cut short: {type(exc).__name__}", url) from None


def _declared_length(response: requests.Response) -> int | None:
    """The length of the body as its Content-Length says it is sent (content-encoded, then),
    None when it says none (chunked: Transfer-Encoding overrides it)."""
    declared = response.headers.get("Content-Length", "").strip()
    if not declared.isdigit() or "Transfer-Encoding" in response.headers:
        return None
    return int(declared)


def _by_content_length(response: requests.Response) -> str:
    encoding = response.headers.get("Content-Encoding", "").strip().lower()
    return f"its Content-Length, {encoding}-encoded" if encoding and encoding != "identity" else "its Content-Length"


def _stop_host_fault(state: tenacity.RetryCallState) -> bool:
    """tenacity's stop for a HostFault: after its kind's ATTEMPTS, whatever the request's; for a
    ConnectionRefused or a LookupUnanswered, once its host is down; for ResolverDown, at once."""
    failed = state.outcome.exception() if state.outcome else None
    if isinstance(failed, HostFault):
        return state.attempt_number >= failed.ATTEMPTS
    if isinstance(failed, (ConnectionRefused, LookupUnanswered)):
        return failed.host_down is not None
    return isinstance(failed, ResolverDown)


def _retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: either delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    when = _http_date(value)   # (aware: a "-0000" date is UTC, not the machine's zone)
    return None if when is None else max(0.0, when.timestamp() - time.time())


def _age(value: str | None) -> int:
    """An Age header's seconds (RFC 9111: a non-negative integer); 0 where none, or it is none
    (a value of over 10 digits, over three centuries, is none too)."""
    value = (value or "").strip()
    return int(value) if value.isascii() and value.isdigit() and len(value) <= 10 else 0


def _http_date(value: str | None) -> datetime | None:
    """An HTTP date ("Mon, 07 Dec 2026 02:09:00 GMT", or an obsolete form email.utils reads) as a
    UTC datetime; None where there is none, or it is no date (a header of over 64 characters is none)."""
    if not value or len(value) > 64:
        return None
    try:
        moment = email.utils.parsedate_to_datetime(value)
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    except (TypeError, ValueError, IndexError, OverflowError):   # (a year 9999 a zone west of GMT overflows)
        return None


def _origin(url: str) -> tuple[str, str, int | None]:
    """`url`'s scheme, host (in lower case) and port (the scheme's own when it names none)."""
    parsed = urlparse(url)
    return parsed.scheme.lower(), (parsed.hostname or "").rstrip("."), \
        parsed.port or {"http": 80, "https": 443}.get(parsed.scheme.lower())


def _with_params(url: str, params: dict | None) -> str:
    if not params:
        return url
    query = urlencode([(k, v) for k, v in params.items() if v is not None], doseq=True)
    return f"{url}{'&' if '?' in url else '?'}{query}"
