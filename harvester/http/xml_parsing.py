"""XML from a 200's body, parsed with defusedxml: entity and DTD declarations refused outright,
a broken document a transient fault, an HTML page in its place too."""
from __future__ import annotations

import defusedxml
import defusedxml.ElementTree as defused_etree

from harvester.http.errors import HtmlInsteadOfData, InvalidBody, UnsafeXml


def parse_xml_body(body: bytes, content_type: str, url: str):
    """An XML element from a 200, parsed safely: a document declaring entities or a DTD
    (the billion-laughs bomb) is refused outright; a broken one is transient, like JSON.
    As for JSON, the body decides whether it is an HTML page, the label only when it does
    not parse."""
    html = HtmlInsteadOfData(f"HTML page instead of XML (Content-Type {content_type or 'none'})", url, 200)
    labelled_html = "html" in content_type.lower()
    if body[:512].lstrip().lower().startswith((b"<!doctype html", b"<html")):
        raise html
    try:
        root = defused_etree.fromstring(body)
    except (defusedxml.DTDForbidden, defusedxml.EntitiesForbidden, defusedxml.ExternalReferenceForbidden) as exc:
        if labelled_html:   # (an XHTML page declares its DTD)
            raise html from None
        raise UnsafeXml(f"XML refused: {type(exc).__name__} (entity or DTD declarations are not accepted)",
                             url, 200) from None
    except defused_etree.ParseError as exc:
        if labelled_html:
            raise html from None
        raise InvalidBody(f"invalid or truncated XML: {exc}", url, 200) from None
    if root.tag.rpartition("}")[2].lower() == "html":
        raise html
    return root
