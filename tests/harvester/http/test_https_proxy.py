"""Requests through an https:// proxy (HTTPS_PROXY=https://...: TLS to the proxy itself, then an https
portal's CONNECT or an http portal's request), against a proxy of the test's own on 127.0.0.1 relaying
to the local portals (no mocked requests): the proxy's certificate checked as a portal's, and its own
TLS handshake closed whatever ends it."""
import shutil
import ssl
import subprocess

import pytest

from bench.serve import serve_keep_alive
from harvester.http import CertificateRejected
from tests.conftest import fast_client
from tests.harvester.http.conftest import (DOC, HttpProxy, accepting_and_never_answering, left_unclosed_by_ctrl_c,
                                           stopped_while)
from tests.portals.base import LocalPortal

PROXY_VARIABLES = ("NO_PROXY", "no_proxy", "HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY",
                   "all_proxy")


def _tls_for_127_0_0_1(folder) -> tuple[ssl.SSLContext, str]:
    """A server context whose self-signed certificate names 127.0.0.1 as its subjectAltName (a
    client trusting it accepts it), and the certificate's file; skipped without the openssl command."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a certificate")
    key, cert = folder / "proxy-key.pem", folder / "proxy-cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context, str(cert)


@pytest.fixture
def https_proxy(monkeypatch, tmp_path):
    """An https:// HttpProxy named by HTTPS_PROXY and HTTP_PROXY; its certificate's file as `cert`."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    context, cert = _tls_for_127_0_0_1(tmp_path)
    with HttpProxy(context) as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        proxy.cert = cert
        yield proxy


def test_an_https_proxy_s_certificate_is_checked_by_the_run_s_ca_bundle(https_proxy, monkeypatch):
    """The proxy's certificate was left unchecked for an http portal (requests checks certificates
    for https:// URLs alone, and the TLS made was the proxy's): a proxy of a self-signed certificate
    was sent the request, and the proxy's password with it. It is checked as for an https portal
    now, and its refusal names the proxy, not the portal ("TLS certificate of a.invalid", which no
    TLS was made with). Trusted (REQUESTS_CA_BUNDLE, loaded into the proxy's own context of civicat's
    now, as urllib3 loaded it into its own), an https portal is asked through its CONNECT (the
    portal's certificate, the same, checked through the tunnel) and an http one through it."""
    with LocalPortal() as portal:
        portal.serve_json("/doc", DOC)
        server = serve_keep_alive(portal._wsgi, poll_interval=0.05, tls=https_proxy.context)
        tls_portal = f"https://portal.invalid:{server.server_address[1]}"
        http_portal = portal.url.replace("127.0.0.1", "portal.invalid")
        try:
            for url in (tls_portal, http_portal):
                with pytest.raises(CertificateRejected, match=r"^TLS certificate of the proxy 127\.0\.0\.1 not "
                                                              r"accepted \(self-signed certificate\)"):
                    fast_client(max_attempts=1).get_json(url + "/doc")
            assert https_proxy.asked == []
            monkeypatch.setenv("REQUESTS_CA_BUNDLE", https_proxy.cert)
            client = fast_client(max_attempts=1)
            with pytest.raises(CertificateRejected, match=r"^TLS certificate of portal\.invalid not accepted"):
                client.get_json(tls_portal + "/doc")
            assert client.get_json(tls_portal.replace("portal.invalid", "127.0.0.1") + "/doc").data == DOC
            assert client.get_json(http_portal + "/doc").data == DOC
        finally:
            server.shutdown()
            server.server_close()
    port = server.server_address[1]
    assert https_proxy.asked == [f"CONNECT portal.invalid:{port}", f"CONNECT 127.0.0.1:{port}",
                                 f"GET {http_portal}/doc"]


@pytest.mark.parametrize("scheme", ["https", "http"])
def test_a_ctrl_c_in_the_tls_handshake_with_an_https_proxy_closes_its_socket(monkeypatch, scheme):
    """An https:// proxy is spoken to over TLS of its own before anything is asked of it (an https
    portal's CONNECT, an http portal's request): a Ctrl-C in that handshake (a proxy that never
    answers it) left its socket to the garbage collector for an https portal, the handshake made
    by urllib3's own context (an http portal's was made by the portal's: a guard). Closed whatever
    ends the handshake, as the portal's own."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    with accepting_and_never_answering() as (listening, _, hello):
        proxy = f"https://127.0.0.1:{listening.getsockname()[1]}"
        monkeypatch.setenv("HTTPS_PROXY", proxy)
        monkeypatch.setenv("HTTP_PROXY", proxy)

        def waiting():
            assert hello.wait(60), "the client never began the proxy's TLS handshake"

        left = left_unclosed_by_ctrl_c(fast_client(max_attempts=1, timeout=300.0, connect_timeout=300.0),
                                       f"{scheme}://portal.invalid/doc", waiting)
    assert left == []


def test_a_stop_ends_the_tls_handshake_with_an_https_proxy_at_once(monkeypatch, tmp_path):
    """(A guard: the proxy's handshake runs on the socket the stop shuts, under civicat's context now
    as under urllib3's.) A proxy that never answers the handshake holds the request until the
    connect timeout (300 s here); the stop ends it at once, Interrupted."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    url = "https://portal.invalid/doc"

    def waiting():
        assert hello.wait(60), "the client never began the proxy's TLS handshake"

    client = fast_client(max_attempts=1, timeout=300.0, connect_timeout=300.0)
    with accepting_and_never_answering() as (listening, _, hello):
        monkeypatch.setenv("HTTPS_PROXY", f"https://127.0.0.1:{listening.getsockname()[1]}")
        stopped = stopped_while(client, "page", url, tmp_path, waiting, "the proxy's handshake")
    assert str(stopped) == f"the harvest was interrupted while connecting: {url}"
