"""The one HTTP layer every portal adapter goes through.

Everything that comes from outside is bounded here: connect/read timeouts and a total
time per response, a response-size cap, a bounded number of retries with exponential
backoff and jitter that honours Retry-After, and a per-host concurrency limit.
A 200 that carries HTML or broken JSON is a transient fault, never an empty answer.

- client.py: HttpClient (retries, Retry-After, per-host pace and slots, conditional requests)
- errors.py: the errors a request raises
- connections.py: requests' session and adapter, connections whose headers must arrive in time,
  connection failures named
- resolver.py: host names looked up with a bound, and the run's watch of the resolver
- socks.py: a SOCKS proxy's URL and handshake (SOCKS5, SOCKS4/4a), for connections.py's SOCKS connections
- deadlines.py: the watchdogs of a response's total time
- bodies.py: a body read under its cap, gzip- and deflate-decoded, spooled to a temporary file
- json_parsing.py: JSON from a body, whole or with its long lists cut (capped_json, Entries)
- xml_parsing.py: XML from a body (defusedxml)

This module only re-exports what the rest of civicat imports; a test patching a setting
patches the module that reads it (harvester.http.json_parsing.STREAMED_JSON_BYTES), not this one.
"""
from harvester.http.client import HttpClient
from harvester.http.errors import (CertificateRejected, ConnectionFailed, HostNotFound, HostUnavailable,
                                   HtmlInsteadOfData, HttpError, Interrupted, InvalidBody, InvalidUrl, LookupTimedOut,
                                   LookupUnanswered, OverBudget, PermanentError, PortalError, ProxyRefused,
                                   ResolverDown, ResponseTooLarge, TimedOut, TransientError, UnexpectedPayload,
                                   UnexpectedResult, UnsafeXml, error_type)
from harvester.http.json_parsing import CappedDocument, Entries, capped_json, dropped, parse_json_body, value_in_head
from harvester.http_cache import ValidatorCache

__all__ = ["CappedDocument", "CertificateRejected", "ConnectionFailed", "Entries", "HostNotFound", "HostUnavailable",
           "HtmlInsteadOfData", "HttpClient", "HttpError", "Interrupted", "InvalidBody", "InvalidUrl", "LookupTimedOut",
           "LookupUnanswered", "OverBudget", "PermanentError", "PortalError", "ProxyRefused", "ResolverDown",
           "ResponseTooLarge", "TimedOut", "TransientError", "UnexpectedPayload", "UnexpectedResult", "UnsafeXml",
           "ValidatorCache",
           "capped_json", "dropped", "error_type", "parse_json_body", "value_in_head"]
