"""The one HTTP layer every portal adapter goes through.

Everything that comes from outside is bounded here: connect/read timeouts and a total
time per response, a response-size cap, a bounded number of retries with exponential
backoff and jitter that honours Retry-After, and a per-host concurrency limit.
A 200 that carries HTML or broken JSON is a transient fault, never an empty answer.
"""
from __future__ import annotations

import codecs
import copy
import email.utils
import hashlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode, urlparse

import defusedxml
import defusedxml.ElementTree as defused_etree
import orjson
import requests
import tenacity

from catalog.files import writing
from harvester import __version__
from harvester.http.bodies import (GZIP_PIECE_BYTES, _BodySink, _gunzip_capped, _gunzip_head, _gunzip_into, _head_of,
                                   _let_go, _parsing, _read_capped, _SpooledBody, parse_data_body)
from harvester.http.connections import _Adapter, _check_url, _connection_failed, _headers_by, _Refusals, _Session
from harvester.http.deadlines import _Watchdog
from harvester.http.errors import (CertificateRejected, ConnectionRefused, HostFault, HostNotFound, HostUnavailable,
                                   HttpError, Interrupted, InvalidUrl, LookupTimedOut, LookupUnanswered, OverBudget,
                                   PermanentError, ResolverDown, ResponseTooLarge, TransientError, UnexpectedPayload)
from harvester.http.resolver import _LOOKUPS, _ResolverWatch
from harvester.http_cache import ValidatorCache

# what the rest of civicat imports from here (the modules' other names are imported from them)
__all__ = ["CappedDocument", "CertificateRejected", "Entries", "HostNotFound", "HostUnavailable", "HttpClient",
           "HttpError", "Interrupted", "InvalidUrl", "LookupTimedOut", "LookupUnanswered", "OverBudget",
           "PermanentError", "ResolverDown", "ResponseTooLarge", "TransientError", "UnexpectedPayload",
           "ValidatorCache", "capped_json", "dropped", "parse_json_body", "value_in_head"]

log = logging.getLogger("civicat.http")

USER_AGENT = f"civicat/{__version__} (open-data catalogue harvester; python-requests)"
DEFAULT_MAX_BYTES = 256 * 1024 * 1024
DEFAULT_MAX_DOWNLOAD_BYTES = 16 * 1024 ** 3   # a whole dataset file, streamed to disk
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

    def wait(self, stop: threading.Event, deadline: float | None = None) -> None:
        """Until this request's turn, or the run stops, or `deadline` (its portal's budget)."""
        with self._lock:
            now = time.monotonic()
            start = max(now, self.next_at)
            self.next_at = start + self.interval
        if deadline is not None:
            start = min(start, deadline)
        if start > now:
            stop.wait(start - now)   # (a held-back request is not waited for once the run stops)

    def hold(self, seconds: float) -> None:
        with self._lock:
            self.next_at = max(self.next_at, time.monotonic() + seconds)


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
        self._refusals = _Refusals(refused_limit)   # (a host refusing that long is down: ConnectionRefused)
        self._stop = threading.Event()   # shared by the clients of every portal (for_portal)
        # (a name unanswered that long is down, and so is a silent resolver; a stop drops the lookups queued)
        self._resolver = _ResolverWatch(self._stop)
        self._host_lock = threading.Lock()
        self._host_paces: dict[str, _HostPace] = {}
        self._environments: dict[str, dict] = {}
        self._deadline: float | None = None   # of one portal's client (limit_to)
        self._budget_minutes = 0.0

    @classmethod
    def from_env(cls, **kwargs) -> "HttpClient":
        """Defaults, tuned by CIVICAT_HTTP_MAX_ATTEMPTS, CIVICAT_HTTP_BACKOFF (first wait, s),
        CIVICAT_HTTP_MAX_BYTES, CIVICAT_HTTP_MAX_DOWNLOAD_BYTES, CIVICAT_HTTP_MAX_RETRY_SECONDS and
        CIVICAT_HTTP_REFUSED_SECONDS (how long a port may refuse in a row: refused_limit) when set;
        a CA bundle named by REQUESTS_CA_BUNDLE or CURL_CA_BUNDLE must exist."""
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
        return cls(**kwargs)

    # -- public -------------------------------------------------------------------------

    def for_portal(self, portal) -> "HttpClient":
        """A client for one portal: its own counters and timeout, sharing sessions, the
        cache and the per-host slots (sized by the portal's max_concurrency)."""
        clone = copy.copy(self)
        clone.stats = HttpStats()
        clone.timeout = portal.timeout
        with self._host_lock:
            if portal.host not in self._host_slots:
                self._host_slots[portal.host] = threading.BoundedSemaphore(portal.max_concurrency)
        if getattr(portal, "requests_per_second", None):
            self._pace(portal.host).interval = 1.0 / portal.requests_per_second
        return clone

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

    @property
    def cancelled(self) -> bool:
        return self._stop.is_set()

    def limit_to(self, minutes: float | None) -> None:
        """From now on, this (portal's) client's requests raise OverBudget once `minutes` have
        passed; None lifts the limit."""
        self._deadline = None if minutes is None else time.monotonic() + minutes * 60
        self._budget_minutes = minutes or 0.0

    def _check_stopped(self, url: str) -> None:
        if self._stop.is_set():
            raise Interrupted(f"the harvest was interrupted; not requested: {url}")
        if self._deadline is not None and time.monotonic() > self._deadline:
            raise OverBudget(f"the portal's catalogue harvest took over {self._budget_minutes:g} minutes (its "
                             f"max_minutes); not requested: {url}")

    def _sleep(self, seconds: float) -> None:
        """tenacity's wait between attempts, cut short when the run stops or the budget ends."""
        if self._deadline is not None:
            seconds = max(0.0, min(seconds, self._deadline - time.monotonic()))
        self._stop.wait(seconds)

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
        that very body answers `data=None`, the body neither read nor parsed. `parse`: in
        place of parse_json_body (`capped_json`).
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
                raise TransientError(f"unreadable data: {exc}", url, 200) from None
        return self._get(url, params, headers, False, timeout, None, checked, accept).data

    def download(self, url: str, destination: str | Path, params: dict | None = None, *,
                 headers: dict | None = None, max_seconds: float = 3600.0, accept: str = "*/*") -> int:
        """Stream a body (a resource file, an export) to `destination` without holding it in
        memory; retried from the start on transient faults. Bounded by `max_download_bytes`
        (16 GiB by default) and by `max_seconds` in all. Returns the number of bytes written."""
        _check_url(_with_params(url, params))
        return self._retried(self.max_attempts, self._download_once, _with_params(url, params), Path(destination),
                             {"Accept": accept, **(headers or {})}, max_seconds)

    def get_xml(self, url: str, params: dict | None = None, *, headers: dict | None = None,
                conditional: bool = False, timeout: float | None = None) -> JsonResponse:
        """GET an XML document (parsed with defusedxml: DTDs and entities are refused)."""
        return self._get(url, params, headers, conditional, timeout, None, parse_xml_body,
                         "application/xml, text/xml")

    def _get(self, url, params, headers, conditional, timeout, expect, parse, accept, unread=None) -> JsonResponse:
        full_url = _with_params(url, params)
        host = _check_url(full_url)
        if self._host_failures.get(host, 0) >= self.host_failure_limit:
            raise HostUnavailable(self._host_given_up.get(host) or f"{host} failed {self._host_failures[host]} "
                                  "requests in a row this run; not asked again", full_url)
        speculative = getattr(self._local, "speculative", False)
        try:
            response = self._retried(1 if speculative else self.max_attempts, self._get_once, full_url,
                                     {"Accept": accept, **(headers or {})}, conditional, timeout or self.timeout,
                                     expect, parse, unread)
        except TransientError as exc:
            if not speculative and not isinstance(exc, ResolverDown):   # (the resolver's fault, not the host's)
                with self._host_lock:
                    down = getattr(exc, "host_down", None)   # (a HostFault; a ConnectionRefused past its limit)
                    if down:
                        self._host_failures[host] = self.host_failure_limit
                        self._host_given_up[host] = down
                    else:
                        self._host_failures[host] = self._host_failures.get(host, 0) + 1
            raise
        with self._host_lock:
            self._host_failures[host] = 0
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
                status, response_headers, body, gzipped = self._fetch(url, dict(headers), timeout, keep_gzip, spool)
                if status == 304:
                    raise TransientError("304 Not Modified to an unconditional request", url, status)
            else:
                with _parsing(remembered):
                    return JsonResponse(parse(remembered, "", url), status, url, not_modified=True, digest=digest)

        with _parsing(body):
            data = parse(body, response_headers.get("Content-Type", ""), url)
            problem = expect(data) if expect else None
            if problem:
                raise UnexpectedPayload(f"unexpected JSON: {problem}", url, status)
            digest = None
            if conditional and self.cache:
                spooled = isinstance(body, _SpooledBody)
                digest = body.sha256() if spooled else hashlib.sha256(body).hexdigest()
                etag, last_modified = response_headers.get("ETag"), response_headers.get("Last-Modified")
                if etag or last_modified:
                    # a spooled body goes to the cache gzip-encoded only (as it came, or encoded
                    # here a piece at a time): the cache holds no copy of it while it is written
                    if spooled:
                        self.cache.put(url, etag, last_modified, None, digest, gzipped or body.gzipped())
                    else:
                        self.cache.put(url, etag, last_modified, body, digest, gzipped)
        return JsonResponse(data, status, url, digest=digest)

    def _gunzip_stored(self, pieces: Iterator[bytes], sha256: str | None) -> "bytes | _SpooledBody | None":
        """A body the validator cache holds gzip-encoded, decoded as its pieces are read, as a 200's
        body is read (into a temporary file from STREAMED_JSON_BYTES on); None when it is not the
        body of `sha256` (a damaged or half-read entry: the request is then made plainly)."""
        sink = _BodySink(STREAMED_JSON_BYTES, hashed=True)
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
        self._check_stopped(url)
        self.stats.add(requests=1)
        log.debug("GET %s", url)
        host = urlparse(url).netloc
        pace = self._pace(host)
        with self._slot(host):
            pace.wait(self._stop, self._deadline)
            self._check_stopped(url)
            started = time.monotonic()
            try:
                with _headers_by(started + timeout * 2, self._refusals, self._resolver) as exchange:
                    response = self._send(url, headers, (self.connect_timeout, timeout))
            except requests.exceptions.Timeout as exc:
                raise TransientError(f"timed out: {type(exc).__name__}", url) from None
            except requests.exceptions.RequestException as exc:
                raise _connection_failed(exc, url, timeout * 2, exchange) from None
            started += exchange.connecting   # (the body's time bound, like the headers', leaves it out)
            watchdog = _Watchdog(response, timeout * 2)
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
                if status == 304:  # no body; read to its end all the same, or closing drops the connection
                    _read_capped(response, 0, url, started, timeout, truncate=True)
                    return status, response.headers, b"", None
                declared = response.headers.get("Content-Length")
                if declared and declared.isdigit() and "Content-Encoding" not in response.headers \
                        and int(declared) > self.max_bytes:
                    raise ResponseTooLarge(f"response of {int(declared)} bytes is over the {self.max_bytes}-byte "
                                           "cap", url, status, head=_head_of(response))
                gzipped = None
                spool_from = STREAMED_JSON_BYTES if spool else None
                if keep_gzip and response.headers.get("Content-Encoding", "").strip().lower() == "gzip":
                    try:
                        encoded = _read_capped(response, self.max_bytes, url, started, timeout, decode=False)
                    except ResponseTooLarge as error:   # (its head as it came: gzip-encoded)
                        error.head = _gunzip_head(error.head)
                        raise
                    body, whole = _gunzip_capped(encoded, self.max_bytes, url, status, spool_from)
                    gzipped = encoded if whole else None
                else:
                    body = _read_capped(response, self.max_bytes, url, started, timeout, spool_from=spool_from)
                self.stats.add(bytes=len(body))
                # requests' own mapping: header names are case-insensitive (a Go server sends `Etag`)
                return status, response.headers, body, gzipped
            except TransientError:
                raise
            except requests.exceptions.RequestException as exc:
                raise TransientError(f"response failed: {type(exc).__name__}", url) from None
            finally:
                watchdog.cancel()
                if watchdog.fired:
                    response.close()
                    raise TransientError(f"response took over {timeout * 2:.0f}s to arrive", url)
                response.close()


    def _download_once(self, url: str, destination: Path, headers: dict, max_seconds: float) -> int:
        self._check_stopped(url)
        self.stats.add(requests=1)
        started = time.monotonic()
        host = urlparse(url).netloc
        with self._slot(host):
            self._pace(host).wait(self._stop, self._deadline)
            self._check_stopped(url)
            try:
                # (not from `started`: the slot's wait)
                with _headers_by(time.monotonic() + self.timeout * 2, self._refusals, self._resolver) as exchange:
                    response = self._send(url, headers, (self.connect_timeout, self.timeout))
            except requests.exceptions.RequestException as exc:
                raise _connection_failed(exc, url, self.timeout * 2, exchange) from None
            watchdog = _Watchdog(response, max_seconds)
            try:
                status = response.status_code
                if status == 429 or status == 408 or status >= 500:
                    raise TransientError(f"HTTP {status}", url, status,
                                         retry_after=_retry_after(response.headers.get("Retry-After")))
                if status >= 400:
                    raise PermanentError(f"HTTP {status}", url, status)
                size = 0
                with writing(destination), open(destination, "wb") as out:
                    for chunk in response.iter_content(chunk_size=1024 * 1024):
                        if size == 0:
                            parse_data_body(chunk, response.headers.get("Content-Type", ""), url)
                        size += len(chunk)
                        if size > self.max_download_bytes:
                            raise ResponseTooLarge(f"download is over the {self.max_download_bytes}-byte cap", url,
                                                   status)
                        if time.monotonic() - started > max_seconds:
                            raise TransientError(f"download took over {max_seconds:.0f}s", url, status)
                        self._check_stopped(url)   # a 16 GiB download is no reason to stay
                        out.write(chunk)
                self.stats.add(bytes=size)
                return size
            except requests.exceptions.RequestException as exc:
                raise TransientError(f"download cut short: {type(exc).__name__}", url) from None
            finally:
                watchdog.cancel()
                response.close()
                if watchdog.fired:
                    raise TransientError(f"download took over {max_seconds:.0f}s", url)


def _stop_host_fault(state: tenacity.RetryCallState) -> bool:
    """tenacity's stop for a HostFault: after its own ATTEMPTS, whatever the request's; for a
    ConnectionRefused or a LookupUnanswered, once its host is down; for ResolverDown, at once."""
    failed = state.outcome.exception() if state.outcome else None
    if isinstance(failed, HostFault):
        return state.attempt_number >= HostFault.ATTEMPTS
    if isinstance(failed, (ConnectionRefused, LookupUnanswered)):
        return failed.host_down is not None
    return isinstance(failed, ResolverDown)


def parse_json_body(body: bytes, content_type: str, url: str) -> object:
    """JSON from a 200, or a TransientError: HTML, empty and truncated bodies are faults.
    The body decides, not its label: portals and their CDNs do serve JSON as `text/html`,
    and a body that parses as JSON is no HTML page (one that does not is, so labelled)."""
    _refuse_html_or_empty(body, content_type, url)
    return _json_loads(body, content_type, url)


def _refuse_html_or_empty(body: bytes, content_type: str, url: str) -> None:
    head = body[:512].lstrip()
    if head.startswith(b"<"):
        raise TransientError(f"HTML page instead of JSON (Content-Type {content_type or 'none'})", url, 200)
    if not head:
        raise TransientError("empty body instead of JSON", url, 200)


# capped_json: a smaller document is parsed whole by orjson, then cut (its lists cannot be very
# long: 16 MB of JSON is 10^6 short items, ~100 MB parsed); a larger one is read a value at a
# time, 3-4 times slower (a 31 MB data.json: 1.8 s of CPU against 0.5)
STREAMED_JSON_BYTES = 16 << 20
TEXT_WINDOW_BYTES = 1 << 20   # of such a body, decoded at a time (_TextWindow)
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")   # (a lone surrogate's escape, or a pair's)
_JSON_SPACE = re.compile(r"[ \t\n\r]*")

# What capped_json cuts: object keys (and "*", every item of a list) down to the lists to cut,
# each given its largest number of items: {"results": {"*": {"fields": 10_000}}}; a number
# alone cuts the document itself, a list
CapTree = dict[str, "CapTree | int"]


class CappedDocument(dict):
    """A JSON object some of whose lists were cut: `dropped` maps each such key to the
    number of its items that were read and dropped."""
    dropped: dict[str, int]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.dropped = {}

    @property
    def left_out(self) -> int:
        return max(self.dropped.values(), default=0)


class CappedList(list):
    """A JSON list that was cut: `left_out` items were read and dropped."""

    def __init__(self, items, left_out: int):
        super().__init__(items)
        self.left_out = left_out


def dropped(value) -> dict[str, int]:
    """The items dropped from the lists of an object capped_json returned, by key (from a list
    that was cut itself: "*"); none: {}."""
    if isinstance(value, CappedList):
        return {"*": value.left_out}
    return dict(value.dropped) if isinstance(value, CappedDocument) else {}


_JSON_SPACE = re.compile(r"[ \t\n\r]*")


def value_in_head(head: bytes, path: tuple[str | int, ...]):
    """The value at `path` (keys of objects, positions in arrays) of a JSON document of which
    `head` is the start (ResponseTooLarge.head), when the head holds it whole and everything
    before it: what comes before is skipped a value at a time, none of it kept. None when the
    head is cut short before the value ends, or the document has no such value there."""
    text = head.decode("utf-8", "replace").removeprefix("\ufeff")   # (cut mid-character: at its end only)
    decoder = json.JSONDecoder()

    def after_space(at: int) -> int:
        return _JSON_SPACE.match(text, at).end()

    def past_value(at: int) -> int:   # (raises where the head ends inside the value)
        return after_space(decoder.raw_decode(text, at)[1])

    try:
        at = after_space(0)
        for step in path:
            if isinstance(step, str):
                if text[at:at + 1] != "{":
                    return None
                at = after_space(at + 1)
                while True:
                    if text[at:at + 1] != '"':
                        return None
                    key, at = json.decoder.scanstring(text, at + 1)
                    at = after_space(at)
                    if text[at:at + 1] != ":":
                        return None
                    at = after_space(at + 1)
                    if key == step:
                        break
                    at = past_value(at)
                    if text[at:at + 1] != ",":
                        return None
                    at = after_space(at + 1)
            else:
                if text[at:at + 1] != "[":
                    return None
                at = after_space(at + 1)
                for _ in range(step):
                    at = past_value(at)
                    if text[at:at + 1] != ",":
                        return None
                    at = after_space(at + 1)
        value, end = decoder.raw_decode(text, at)
        # (a number or literal that ends where the head does may be cut: something must follow)
        return value if isinstance(value, (str, list, dict)) or after_space(end) < len(text) else None
    except (ValueError, RecursionError):
        return None


def capped_json(caps: CapTree | int, *, entries: tuple[str, ...] = ()) -> Callable[[bytes, str, str], object]:
    """A parse for get_json: the JSON document with each list `caps` names cut to its first
    items (a Socrata views document can list 10^6 columns, a Discovery entry or a DataStore
    as many). An object that had a list cut is a CappedDocument saying how many items were
    dropped. A large body is read a value at a time from a window of its text (_TextWindow),
    its capped lists' items past the cap dropped as they are read: parsed whole, such a
    document took a GB and more. Faults are parse_json_body's, said alike.

    `entries`: where the entries of a listing served as one document are ("*": the document
    itself, when it is a list; a key: its list, when the document is an object). In a large
    body that list is given as Entries, read again an entry at a time as it is iterated: a
    data.json of 10^5 datasets, parsed whole, held a GB and more until the last was stored."""
    def parse(body: "bytes | _SpooledBody", content_type: str, url: str) -> object:
        if len(body) < STREAMED_JSON_BYTES or json.detect_encoding(body[:4]) not in ("utf-8", "utf-8-sig"):
            body = body[:] if isinstance(body, _SpooledBody) else body   # (UTF-16 and -32: read whole, as before)
            return _cut(parse_json_body(body, content_type, url), caps)   # (UTF-16 and -32 too, as json has them)
        _refuse_html_or_empty(body, content_type, url)
        text = _TextWindow(body)
        try:
            value, at = _capped_value(text, text.skip_space(0), caps, entries)
            at = text.skip_space(at)
            if text.has(at):
                raise text.fault("Extra data", at)   # (json's words, as parsed whole)
        except _NotJson as fault:
            raise _not_json(fault, body, content_type, url) from None
        except RecursionError:
            raise _not_json(_NotJson("depth limit exceeded"), body, content_type, url) from None
        except ValueError as exc:
            raise _not_json(_unreadable_number(exc), body, content_type, url) from None
        # (a walk over every value: only for a body that may hold a lone surrogate)
        return _without_lone_surrogates(value) if _has_surrogate_escape(body) else value
    parse.reads_spooled = True   # (a large body is read from its temporary file: see _fetch)
    return parse


def _has_surrogate_escape(body: "bytes | _SpooledBody") -> bool:
    if not isinstance(body, _SpooledBody):
        return _SURROGATE_ESCAPE.search(body) is not None
    overlap = 3   # (an escape across two pieces: its first 3 bytes end the one before)
    return any(_SURROGATE_ESCAPE.search(body[start:start + GZIP_PIECE_BYTES + overlap])
               for start in range(0, len(body), GZIP_PIECE_BYTES))


def _cut(value, caps: "CapTree | int"):
    """A parsed document with the lists `caps` names cut (the objects that held them made
    CappedDocuments, a list cut itself a CappedList, in place of the originals)."""
    if isinstance(caps, int):
        if isinstance(value, list) and len(value) > caps:
            value = CappedList(value[:caps], len(value) - caps)
    elif isinstance(value, list) and "*" in caps:
        item_caps = caps["*"]
        for number, item in enumerate(value):
            cut = _cut(item, item_caps)
            if cut is not item:
                value[number] = cut
    elif isinstance(value, dict):
        # hot: every entry of every listing page (a Discovery page: 100 results of 8 capped
        # lists), so a list under its cap is passed over here, without a call, and a member
        # left as it was is not set again
        for key, cap in caps.items():
            member = value.get(key)
            if isinstance(member, (dict, list)):
                if isinstance(cap, int):
                    cut = CappedList(member[:cap], len(member) - cap) if isinstance(member, list) and \
                        len(member) > cap else member
                else:
                    cut = _cut(member, cap)
                if cut is not member or isinstance(value, CappedDocument):
                    value = _member_cut(value, key, cut)
    return value


def _member_cut(holder: dict, key: str, value) -> dict:
    """`holder` with `value` as its `key`: a CappedDocument saying what was dropped when
    `value` is a list that was cut."""
    if isinstance(value, CappedList):
        holder = holder if isinstance(holder, CappedDocument) else CappedDocument(holder)
        holder.dropped[key], value = value.left_out, list(value)
    elif isinstance(holder, CappedDocument):   # a repeated key: its last value stands, as json.loads has it
        holder.dropped.pop(key, None)
    holder[key] = value
    return holder


class _NotJson(ValueError):
    """Where a body stops being JSON: `at` its byte (None: nowhere in particular); `cut_short`
    when it ends inside a value."""

    def __init__(self, reason: str, at: int | None = None, cut_short: bool = False):
        super().__init__(reason)
        self.reason, self.at, self.cut_short = reason, at, cut_short


def _not_json(fault: _NotJson, body: bytes, content_type: str, url: str) -> TransientError:
    """The fault of a 200 whose body is not JSON, or not all of it: said alike whether the body
    was parsed whole or a window at a time, with the byte where it shows."""
    if "html" in content_type.lower():
        return TransientError(f"HTML page instead of JSON (Content-Type {content_type})", url, 200)
    if fault.cut_short:
        return TransientError(f"invalid or truncated JSON: the body is not complete JSON, it ends inside a value "
                              f"at byte {len(body)} (after {body[-40:]!r})", url, 200)
    where = "" if fault.at is None else f" at byte {fault.at} (after {body[max(0, fault.at - 40):fault.at]!r})"
    return TransientError(f"invalid or truncated JSON: the body is not JSON: {fault.reason}{where}", url, 200)


# what is left of a text where json stops reading, when it ends inside a literal or a number
# (json reads "1" of "1." or "1e+", then stops at what follows)
_PARTIAL_LITERAL = re.compile(r"[ \t\n\r]*(?:-|t|tr|tru|f|fa|fal|fals|n|nu|nul|\.|[eE][-+]?)?")


def _json_fault(exc: json.JSONDecodeError, text: str, byte_at: Callable[[int], int]) -> _NotJson:
    """json's error reading `text` (the rest of a body), as a _NotJson; `byte_at`: the byte of a character."""
    if exc.msg.startswith("Unterminated string") or _PARTIAL_LITERAL.fullmatch(text, exc.pos):
        return _NotJson("cut short", cut_short=True)
    return _NotJson(exc.msg, byte_at(exc.pos))


class _TextWindow:
    """The text of a large UTF-8 JSON body, decoded a window at a time as _capped_value reads
    on, the text before the value it reads let go. Decoded whole, the text was held with the
    body and up to four times its size (one emoji makes every character of a str 4 bytes): a
    200 MB body took 1 GB. A value wider than the window widens it, doubling (read twice at most)."""

    def __init__(self, body: "bytes | memoryview | _SpooledBody", begin: int = 0):
        """`begin`: the byte to read from (a character's first), character 0 of the text."""
        self.body = body if isinstance(body, _SpooledBody) else memoryview(body)
        self.decoder = codecs.getincrementaldecoder("utf-8")()
        # bytes decoded so far (past a byte order mark)
        self.read = begin or (3 if self.body[:3] == b"\xef\xbb\xbf" else 0)
        self.text = ""           # the window: the text from character `start` on
        self.start = 0

    def byte_at(self, at: int) -> int:
        """The byte character `at` (in the window) begins at: counted back from the window's
        end, the last byte decoded (a fault's only: the text is encoded again)."""
        decoded = self.read - len(self.decoder.getstate()[0])
        return decoded - len(self.text[at - self.start:].encode("utf-8"))

    def fault(self, reason: str, at: int) -> _NotJson:
        if self.read >= len(self.body) and _PARTIAL_LITERAL.fullmatch(self.text, at - self.start):
            return _NotJson("cut short", cut_short=True)   # (as _json_fault has it: "[1." read as 1, then ".")
        return _NotJson(reason, self.byte_at(at))

    def _widen(self, at: int) -> bool:
        """Decode more of the body, letting go of the text before character `at`; False at its end."""
        if self.read >= len(self.body):
            return False
        if at > self.start:
            self.text, self.start = self.text[at - self.start:], at
        piece = self.body[self.read:self.read + max(TEXT_WINDOW_BYTES, len(self.text))]
        held = len(self.decoder.getstate()[0])   # (the first bytes of a character the last piece cut)
        try:
            self.text += self.decoder.decode(piece, final=self.read + len(piece) >= len(self.body))
        except UnicodeDecodeError as bad:
            byte = self.read - held + bad.start
            raise _NotJson(f"not UTF-8 (0x{self.body[byte]:02x})", byte) from None
        self.read += len(piece)
        return True

    def has(self, at: int) -> bool:
        """Whether the text goes on to character `at`."""
        while at >= self.start + len(self.text):
            if not self._widen(at):
                return False
        return True

    # (char, skip_space and value are read once or more per item of a list of 10^6: each reads
    # within the window first, and only past its end calls on has or _widen)
    def char(self, at: int) -> str:
        try:
            return self.text[at - self.start]   # (never before `start`: reading only goes on)
        except IndexError:
            if not self.has(at):
                raise _NotJson("cut short", cut_short=True) from None
            return self.text[at - self.start]

    def skip_space(self, at: int) -> int:
        while True:
            at = self.start + _JSON_SPACE.match(self.text, at - self.start).end()
            if at < self.start + len(self.text) or not self._widen(at):
                return at

    def capped_items(self, at: int, cap: int) -> tuple[list, int, int]:
        """The items of a list from character `at` (past its "[" and any space): the first `cap`
        kept, the others counted; and where the list ends (past its "]")."""
        items, left_out = [], 0
        scan, space = _SCAN, _JSON_SPACE.match
        while True:
            # within the window, a loop of its own (a call per item, not five): an item, the
            # space and comma after it, the space before the next
            text, start = self.text, self.start
            within, i = len(text) - 8, at - start   # (8: as value's rule)
            while i < within and text[i] != "]":
                try:
                    item, j = scan(text, i)
                except (StopIteration, json.JSONDecodeError):
                    break
                j = space(text, j).end()
                if j >= within:
                    break
                if text[j] == ",":
                    j = space(text, j + 1).end()
                    if j >= within or text[j] in "]}":
                        break
                elif text[j] != "]":
                    break
                if len(items) < cap:
                    items.append(item)
                else:
                    left_out += 1
                i = j
            at = start + i
            # at the window's end, the list's or a fault: one item read with care
            if self.char(at) == "]":
                return items, left_out, at + 1
            item, at = self.value(at)
            if len(items) < cap:
                items.append(item)
            else:
                left_out += 1
            at = _next_member(self, self.skip_space(at), "]")

    def value(self, at: int) -> tuple[object, int]:
        """The JSON value at character `at`, and where it ends."""
        try:
            value, end = _SCAN(self.text, at - self.start)
            if end + 8 <= len(self.text):   # (a number at the window's end may go on: "1." of "1.5e+3" reads as 1)
                return value, self.start + end
        except (StopIteration, json.JSONDecodeError):
            pass
        while True:
            whole = self.read >= len(self.body)
            try:
                value, end = _DECODER.raw_decode(self.text, at - self.start)
                if whole or end + 8 <= len(self.text):
                    return value, self.start + end
            except json.JSONDecodeError as exc:
                if whole or exc.pos < len(self.text) - 16 and not exc.msg.startswith("Unterminated string"):
                    raise _json_fault(exc, self.text, lambda pos: self.byte_at(self.start + pos)) from None
            self._widen(at)


_DECODER = json.JSONDecoder()
_SCAN = _DECODER.scan_once   # (raw_decode without its frame: StopIteration where nothing is a value)


def _capped_value(text: _TextWindow, at: int, caps: "CapTree | int",
                  entries: tuple[str, ...] = ()) -> tuple[object, int]:
    """The JSON value at character `at` (past any space), as _cut would leave it, and where it
    ends: the members and items on the way to a capped list are decoded one by one, the rest
    whole, and a capped list's items past its cap decoded and dropped. `entries` (of the
    document only, see capped_json): the lists read as Entries."""
    opener = text.char(at)
    if opener == "[" and "*" in entries:
        return Entries.checked(text, at, _item_caps(caps))
    if opener == "[" and (isinstance(caps, int) or "*" in caps):
        items, at, left_out = [], text.skip_space(at + 1), 0
        if isinstance(caps, int):
            items, left_out, at = text.capped_items(at, caps)
            return (CappedList(items, left_out) if left_out else items), at
        while text.char(at) != "]":
            item, at = _capped_value(text, at, caps["*"])
            items.append(item)
            at = _next_member(text, text.skip_space(at), "]")
        return items, at + 1
    if opener != "{" or isinstance(caps, int) or "*" in caps and len(caps) == 1:
        return text.value(at)
    out, at = {}, text.skip_space(at + 1)
    while text.char(at) != "}":
        name, at = text.value(at)
        at = text.skip_space(at)
        if not isinstance(name, str) or text.char(at) != ":":
            raise text.fault("Expecting property name enclosed in double quotes" if not isinstance(name, str)
                             else "Expecting ':' delimiter", at)
        at = text.skip_space(at + 1)
        if name in entries and text.char(at) == "[":
            value, at = Entries.checked(text, at, _item_caps(caps.get(name)))
            out = _member_cut(out, name, value)
        elif name in caps:
            value, at = _capped_value(text, at, caps[name])
            out = _member_cut(out, name, value)
        else:
            out[name], at = text.value(at)
        at = _next_member(text, text.skip_space(at), "}")
    return out, at + 1


def _item_caps(caps) -> "CapTree":
    """What caps say of each item of a list (none: {})."""
    return caps.get("*", {}) if isinstance(caps, dict) else {}


def _entry(text: _TextWindow, at: int, caps: "CapTree") -> tuple[object, int]:
    """The entry at character `at` of a listing's list, cut as `caps` say, and where it ends:
    scanned whole by json's C scanner when the window holds it (then it is small: a list long
    enough to need cutting as it is read is wider than the window), else a value at a time."""
    try:
        value, end = _SCAN(text.text, at - text.start)
        if end + 8 <= len(text.text):   # (as value's rule: a number at the window's end may go on)
            return _cut(value, caps), text.start + end
    except (StopIteration, json.JSONDecodeError):
        pass
    return _capped_value(text, at, caps)


class Entries:
    """The entries of a listing served as one large document (a data.json of 10^5 datasets),
    parsed again one at a time as they are iterated, each cut as capped_json's caps say: no
    more of them are held than the caller keeps. When the body was read, every entry was
    parsed, cut and dropped (`checked`), so a body cut short or broken midway failed its
    request (retried, and never stored in the validator cache) before any entry was handed
    out. Holds the body, once, while it lives: a body spooled to a temporary file (_SpooledBody)
    is read from it, and closed by `close` (Listing closes it once its entries are handed out)."""

    def __init__(self, body: "memoryview | _SpooledBody", begin: int, caps: "CapTree", count: int):
        self.body, self.begin, self.caps, self.count = body, begin, caps, count
        self.lone_surrogates = False   # (set by _without_lone_surrogates: each entry is made UTF-8-safe)
        if isinstance(body, _SpooledBody):
            body.kept = True   # (the request that read it leaves it open)

    def close(self) -> None:
        """Let go of the body: a spooled one's file is closed (its entries can be read no more)."""
        _let_go(self.body)

    @classmethod
    def checked(cls, text: _TextWindow, at: int, caps: "CapTree") -> tuple["Entries", int]:
        """The list at character `at` (its "["), each entry read and dropped; and where it ends."""
        begin, count = text.byte_at(at), 0
        at = text.skip_space(at + 1)
        while text.char(at) != "]":
            _, at = _entry(text, at, caps)
            count += 1
            at = _next_member(text, text.skip_space(at), "]")
        return cls(text.body, begin, caps, count), at + 1

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator:
        text = _TextWindow(self.body, self.begin)
        text.char(0)   # (its "[", decoded: skip_space reads on from the window it has)
        at = text.skip_space(1)
        while text.char(at) != "]":
            entry, at = _entry(text, at, self.caps)
            yield _without_lone_surrogates(entry) if self.lone_surrogates else entry
            at = _next_member(text, text.skip_space(at), "]")

    def __repr__(self) -> str:
        return f"<Entries: {self.count} entries>"


def _next_member(text: _TextWindow, at: int, end: str) -> int:
    """Past the comma after a member or item (to the next one), or at `end`."""
    char = text.char(at)
    if char == ",":
        at = text.skip_space(at + 1)
        if text.char(at) in "]}":
            raise text.fault("a trailing ','", at)
        return at
    if char != end:
        raise text.fault("Expecting ',' delimiter", at)
    return at


# a run of 19 digits or more: maybe an integer past 64 bits, which orjson reads as a float
# (12345678901234567890123 as 1.2345678901234568e+22); json reads it exactly
# A run of 19 digits may be an integer past 64 bits, which orjson reads as a float. Digits
# mapped to '0' and a plain find, a megabyte at a time: a regex's \d{19} tried a match at every
# digit, 4 ms for a 280 KB Discovery page (more than orjson's parse), this 0.3 ms.
_DIGITS_AS_ZERO = bytes.maketrans(b"0123456789", b"0" * 10)
_NINETEEN_DIGITS = b"0" * 19
_DIGIT_SCAN_BYTES = 1 << 20


def _has_long_digits(body: bytes) -> bool:
    overlap = len(_NINETEEN_DIGITS) - 1   # (a run across two pieces)
    return any(body[start:start + _DIGIT_SCAN_BYTES + overlap].translate(_DIGITS_AS_ZERO).find(_NINETEEN_DIGITS) >= 0
               for start in range(0, len(body), _DIGIT_SCAN_BYTES))


def _json_loads(body: bytes, content_type: str, url: str) -> object:
    if not _has_long_digits(body):
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass
    try:  # what orjson refuses or reads inexactly: lone surrogate escapes such as "\ud83d", long integers
        return _without_lone_surrogates(json.loads(body))
    except UnicodeDecodeError as bad:   # (orjson says "surrogates not allowed", at char 0)
        raise _not_json(_NotJson(f"not UTF-8 (0x{body[bad.start]:02x})", bad.start), body, content_type, url) from None
    except RecursionError:   # (json's own limit on nesting, past orjson's 1,024 levels)
        raise _not_json(_NotJson("depth limit exceeded"), body, content_type, url) from None
    except json.JSONDecodeError as exc:
        encoding = json.detect_encoding(body)
        text = body.decode(encoding)
        raise _not_json(_json_fault(exc, text, lambda pos: len(text[:pos].encode(encoding))),
                        body, content_type, url) from None
    except ValueError as exc:
        raise _not_json(_unreadable_number(exc), body, content_type, url) from None


def _unreadable_number(exc: ValueError) -> _NotJson:
    """json's ValueError that is no JSONDecodeError: an integer of more than 4,300 digits, which
    Python does not read (sys.set_int_max_str_digits). Raised as itself, it was no HttpError: a
    dataset's details lookup holding one failed its whole portal."""
    return _NotJson(str(exc).split(";")[0])


def _without_lone_surrogates(value):
    """Lone UTF-16 surrogates cannot be stored as UTF-8: each becomes U+FFFD."""
    if isinstance(value, str):
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if isinstance(value, list):
        items = [_without_lone_surrogates(v) for v in value]
        return CappedList(items, value.left_out) if isinstance(value, CappedList) else items
    if isinstance(value, Entries):   # (each as it is read)
        value.lone_surrogates = True
        return value
    if isinstance(value, dict):
        out = {_without_lone_surrogates(k): _without_lone_surrogates(v) for k, v in value.items()}
        if isinstance(value, CappedDocument):   # (what capped_json dropped stays said)
            out = CappedDocument(out)
            out.dropped = value.dropped
        return out
    return value


def parse_xml_body(body: bytes, content_type: str, url: str):
    """An XML element from a 200, parsed safely: a document declaring entities or a DTD
    (the billion-laughs bomb) is refused outright; a broken one is transient, like JSON.
    As for JSON, the body decides whether it is an HTML page, the label only when it does
    not parse."""
    html = TransientError(f"HTML page instead of XML (Content-Type {content_type or 'none'})", url, 200)
    labelled_html = "html" in content_type.lower()
    if body[:512].lstrip().lower().startswith((b"<!doctype html", b"<html")):
        raise html
    try:
        root = defused_etree.fromstring(body)
    except (defusedxml.DTDForbidden, defusedxml.EntitiesForbidden, defusedxml.ExternalReferenceForbidden) as exc:
        if labelled_html:   # (an XHTML page declares its DTD)
            raise html from None
        raise PermanentError(f"XML refused: {type(exc).__name__} (entity or DTD declarations are not accepted)",
                             url, 200) from None
    except defused_etree.ParseError as exc:
        if labelled_html:
            raise html from None
        raise TransientError(f"invalid or truncated XML: {exc}", url, 200) from None
    if root.tag.rpartition("}")[2].lower() == "html":
        raise html
    return root


def _retry_after(value: str | None) -> float | None:
    """Retry-After as seconds: either delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _with_params(url: str, params: dict | None) -> str:
    if not params:
        return url
    query = urlencode([(k, v) for k, v in params.items() if v is not None], doseq=True)
    return f"{url}{'&' if '?' in url else '?'}{query}"
