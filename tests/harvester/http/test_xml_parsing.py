"""XML from a body: an HTML page in its place, labelled or not."""
import pytest

from harvester.http import TransientError
from tests.conftest import fast_client
from tests.portals.base import RawBody


def test_xml_labelled_html_is_read_by_its_body_and_an_xhtml_page_is_still_html(portal):
    services = b'<?xml version="1.0" encoding="utf-8"?><services><service><service_code>1</service_code></service></services>'
    portal.static["/services.xml"] = RawBody(services, "text/html")
    assert fast_client().get_xml(portal.url + "/services.xml").data.tag == "services"
    xhtml = b'<?xml version="1.0"?><html xmlns="http://www.w3.org/1999/xhtml"><body>down</body></html>'
    for content_type in ("text/html", "application/xml"):
        portal.static["/page.xml"] = RawBody(xhtml, content_type)
        with pytest.raises(TransientError, match="HTML page instead of XML"):
            fast_client(max_attempts=1).get_xml(portal.url + "/page.xml")
