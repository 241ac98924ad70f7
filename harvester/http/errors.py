"""The errors of the HTTP layer: what a request that gave no usable answer raises, each saying
whether asking again may help (TransientError) or not (PermanentError), and the two stops of a
run (Interrupted, OverBudget), which no handler of one dataset's errors may take for one more.

Each error's `error_type` is what `harvest_errors.error_type` and `harvest_runs.error_type`
store, the vocabulary a reader filters on (docs/harvesting.md, "Error types"): the name of its
class, and for an HTTP status answered past every retry (raised as a plain TransientError or
PermanentError with its status), the name of the status's kind (STATUS_TYPES). A plain
TransientError or PermanentError without a status keeps its class's name, as every failed
request had before session 27."""
from __future__ import annotations


def status_type(status: int) -> str | None:
    """The error type of an HTTP status that is an error (None for one that is not)."""
    if status in STATUS_TYPES:
        return STATUS_TYPES[status]
    if 500 <= status < 600:
        return "ServerError"
    if 400 <= status < 500:
        return "ClientError"
    return "UnexpectedStatus" if status != 200 else None


STATUS_TYPES = {404: "NotFound", 410: "NotFound", 401: "AccessDenied", 403: "AccessDenied", 429: "RateLimited",
                408: "TimedOut"}


def error_type(exc: BaseException) -> str:
    """What harvest_runs, harvest_errors and record_pulls store as an exception's type: its
    `error_type` where it says one (a failed request's, a records pull's: harvester.records.
    RecordsError), else its class's name."""
    typed = getattr(exc, "error_type", None)
    return typed if isinstance(typed, str) else type(exc).__name__


class HttpError(Exception):
    """A request that did not give a usable answer. `url` never carries secrets."""

    def __init__(self, message: str, url: str, status: int | None = None):
        super().__init__(f"{message} ({url})")
        self.url = url
        self.status = status

    @property
    def error_type(self) -> str:
        if type(self) in (TransientError, PermanentError) and self.status is not None:
            return status_type(self.status) or type(self).__name__
        return type(self).__name__

    # a fault of the way to the host, not of the host nor of one of its addresses (the resolver, a
    # proxy): counted against neither (an address's faults in a row give its host up: _asked_of_host)
    on_the_way = False

    @property
    def counts_against_host(self) -> bool:
        """Whether this failure, past every retry, counts toward giving its host up for the run
        (docs/harvesting.md, "Error types"): the host's own faults do (no answer: a connection
        refused, reset or cut short, a lookup unanswered, no headers in time; or a status
        saying it is failing: 5xx, 429, 408); the faults of one address do not (a 4xx, a body
        that is not what was asked, over its cap, or slower than its bound once its headers
        came): three bad files in a row on a big portal would stop every later file of it."""
        return self.status is None or self.status in (408, 429) or self.status >= 500


class TransientError(HttpError):
    """Worth retrying: 429, 5xx, connection faults, timeouts, HTML or broken JSON behind a 200."""

    def __init__(self, message: str, url: str, status: int | None = None, retry_after: float | None = None):
        super().__init__(message, url, status)
        self.retry_after = retry_after


class PermanentError(HttpError):
    """Not worth retrying: 4xx other than 408/429, or a response over the size cap."""

    counts_against_host = False   # (the host answered, about this address)


class ResponseTooLarge(PermanentError):
    """`head`: the first bytes of the body (up to HEAD_OF_OVERSIZED, decoded), as far as it was
    read: what an entry over the cap alone starts with may name it (see value_in_head)."""

    def __init__(self, message: str, url: str, status: int | None = None, head: bytes = b""):
        super().__init__(message, url, status)
        self.head = head


class HostUnavailable(PermanentError):
    """A host given up this run: it failed request after request (after all retries), it
    answered a HostFault (its name does not resolve, its certificate is refused), it refused
    connections for `refused_limit` seconds in a row (ConnectionRefused), or the resolver left
    its name unanswered for twice the connect timeout in a row (LookupUnanswered)."""


class ConnectionRefused(TransientError):
    """Nothing listens on the port (or a firewall rejects): a server restarting refuses for a
    few seconds, so refusals are retried, but only while `endpoint` (host:port) has refused for
    under `limit` seconds in a row (the client's `refused_limit`); from then on it is down."""

    def __init__(self, endpoint: str, url: str, refused_for: float, limit: float):
        super().__init__(f"connection refused by {endpoint}", url)
        self.endpoint, self.limit = endpoint, limit
        self.remaining = max(0.0, limit - refused_for)   # (the retry waits no longer: _wait)

    @property
    def host_down(self) -> str | None:
        if self.remaining > 0:
            return None
        return f"connection refused by {self.endpoint} for {self.limit:g} s in a row; not asked again this run"


class InvalidUrl(PermanentError):
    """A URL no request can be made to (a typo in a portal's link to a layer or a file, or in a
    redirect): a host name with an empty label or one over 63 characters, unclosed brackets, a
    port out of range, a space in the host. urllib3 and urlparse raised ValueErrors of their own,
    no HttpError, which no handler of one dataset's errors took (the dataset's portal failed);
    requests' InvalidURL was retried as a connection fault."""


class HostFault(TransientError):
    """The host's own answer about itself, which asking again within seconds does not change:
    asked once more after the first backoff wait (a moment's fault of one resolver or server
    among several), never five times, then the host is given up for the run."""

    ATTEMPTS = 2

    def __init__(self, host: str, problem: str, url: str):
        super().__init__(problem, url)
        self.host, self.problem = host, problem

    @property
    def host_down(self) -> str:
        """Why the request's host is given up (_get): no later request of the run can do better."""
        return f"{self.problem}; not asked again this run"


class HostNotFound(HostFault):
    """The host name does not exist (the resolver's NXDOMAIN: EAI_NONAME, or EAI_NODATA, a name
    without an address); a resolver caches that answer for minutes. A resolver that gives no
    answer (EAI_AGAIN: it timed out, the network is down; or a lookup not ended within the
    connect timeout) says nothing of the name: LookupUnanswered."""

    def __init__(self, host: str, reason: str, url: str):
        super().__init__(host, f"host name {host} does not resolve ({reason})", url)


class LookupUnanswered(TransientError):
    """The resolver gave no answer about the host name: its lookup failed with EAI_AGAIN (the
    resolver timed out, the network is down) or did not end within the connect timeout
    (LookupTimedOut). That says nothing of the name, so it is retried, but only while the name
    has gone unanswered for under `limit` seconds in a row (twice the connect timeout:
    _ResolverWatch); from then on its host is down for the run."""

    def __init__(self, host: str, problem: str, url: str, unanswered_for: float, limit: float):
        super().__init__(problem, url)
        self.host, self.unanswered_for, self.limit = host, unanswered_for, limit

    @property
    def host_down(self) -> str | None:
        return self.down_for(self.host, self.limit) if self.unanswered_for >= self.limit else None

    @staticmethod
    def down_for(host: str, limit: float) -> str:
        return f"host name {host} went unanswered by the resolver for {limit:g} s in a row; not asked again this run"


class LookupTimedOut(LookupUnanswered):
    """The host name was not resolved within the connect timeout (_Lookups): the resolver hangs
    (DNS servers dropping queries)."""

    def __init__(self, host: str, seconds: float, url: str, unanswered_for: float, limit: float):
        super().__init__(host, f"host name {host} did not resolve within {seconds:g} s", url, unanswered_for, limit)


class ResolverDown(TransientError):
    """Lookups of several different host names went unanswered and none answered since, the first
    for the connect timeout: the resolver is down, not the names (its DNS servers drop every
    query, the network is down). Until a lookup answers again (one at a time runs meanwhile to find out: _ResolverWatch), no
    request waits for the resolver but on a lookup already under way: each fails at once, is not
    retried, and is not held against its host (a resolver back within the run serves it)."""

    def __init__(self, host: str, names: list[str], silent_for: float, url: str):
        listed = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        super().__init__(f"the resolver has answered no lookup for {silent_for:.0f} s ({len(names)} host names "
                         f"unanswered: {listed}); host name {host} not waited for until it answers again", url)
        self.host = host

    counts_against_host = False   # (the resolver's fault, not the host's: one back within the run serves it)
    on_the_way = True


class CertificateRejected(HostFault):
    """The host's TLS certificate failed verification (expired, self-signed, for another name), or
    its https:// proxy's (`host`: "the proxy 10.0.0.1").
    A handshake cut short is a plain TransientError."""

    def __init__(self, host: str, reason: str, url: str):
        super().__init__(host, f"TLS certificate of {host} not accepted ({reason})", url)


class ProxyRefused(HostFault):
    """The proxy (SOCKS, or HTTP) refused the request for a reason asking again does not change: a
    setting to correct. Never retried: the request fails at once. A refusal of the portal (a SOCKS
    proxy's rules do not let its addresses through, it takes no such address, it wants an identd for
    them; an HTTP proxy's 403 to its CONNECT) gives its host up for the run; one of every request
    (`proxy_wide`: it makes no TCP connections, the user name and password of its URL refused, it takes
    no way to log in offered, it is no SOCKS proxy; an HTTP proxy's 407) gives the proxy up: every later
    request through it, any portal's, fails at once with this message, the proxy not asked
    (connections.py), and no host is held to it."""

    ATTEMPTS = 1

    def __init__(self, host: str, problem: str, url: str, proxy_wide: bool = False):
        super().__init__(host, f"{problem}; no request goes through it this run" if proxy_wide else problem, url)
        self.proxy_wide = proxy_wide

    @property
    def counts_against_host(self) -> bool:
        return not self.proxy_wide

    @property
    def on_the_way(self) -> bool:
        return self.proxy_wide


class Interrupted(KeyboardInterrupt):
    """The run was interrupted (Ctrl-C): every request asked after HttpClient.cancel(), in
    any thread, raises this instead of being made. A KeyboardInterrupt, so that no handler
    of one dataset's or one request's errors (`except Exception`) takes it for one more."""


class OverBudget(KeyboardInterrupt):
    """A portal's catalogue harvest outlasted its budget (`max_minutes`): every request of its
    client after the deadline raises this instead of being made. A KeyboardInterrupt for the
    reason Interrupted is one: no handler of one dataset's errors may take it for one more
    (a column lookup failed), which would store the portal with its lookups cut short."""


class UnexpectedPayload(TransientError):
    """Valid JSON of the wrong shape (an error object where a listing was expected);
    retried like broken JSON, since caches and gateways serve such bodies briefly."""

    counts_against_host = False   # (what one address answered: another may be whole)


class HtmlInsteadOfData(TransientError):
    """An HTML page where JSON, XML or data was asked for (a maintenance page, a login wall,
    a CDN's error page), whatever its status said."""

    counts_against_host = False   # (what one address answered: another may be whole)


class InvalidBody(TransientError):
    """A whole answer whose body is not what it claims: JSON or XML invalid or ending inside a
    value, an empty body, gzip that does not decode, a data page a parser refuses."""

    counts_against_host = False   # (what one address answered: another may be whole)


class TimedOut(TransientError):
    """No answer in time: the connection or a read timed out, the headers or the body took
    longer than their bound, a download outlasted its `max_seconds`. Raised with the answer's
    status once its headers came: a body slower than its bound, from a host that answered
    (a large file of a slow host), is that body's fault, not counted against its host."""

    @property
    def counts_against_host(self) -> bool:
        return self.status is None


class ConnectionFailed(TransientError):
    """The connection failed or dropped before the answer was whole (reset, aborted, a body
    cut short of its length); a refused connection and a name that does not resolve have
    types of their own (ConnectionRefused, HostNotFound...)."""

    counts_against_host = True   # (a body cut short too: the connection's fault, whatever the status said)


class PortalError(PermanentError):
    """The portal answered with an error of its own in a body its API calls an answer (CKAN's
    `"success": false`, ArcGIS's 200 with an `error` object), not an HTTP status."""


class UnexpectedResult(PermanentError):
    """An answer the portal's API calls a success whose result lacks what that API always gives
    (CKAN's package_search without its `results` list): found once the answer is read, by the
    adapter, so not asked again, as before it had a type of its own."""


class UnsafeXml(PermanentError):
    """An XML document declaring entities or a DTD (the billion-laughs bomb): refused outright."""
