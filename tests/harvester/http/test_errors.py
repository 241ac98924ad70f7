"""Error types a reader filters harvest_errors on (harvester/http/errors.py), over real HTTP:
those the fault suite (tests/harvester/test_faults.py) does not reach through a portal."""
import ast
from pathlib import Path

import pytest

from harvester.http import PermanentError, TransientError
from tests.conftest import fast_client
from tests.harvester.http.conftest import get
from tests.portals.base import RawBody

XML_BOMB = b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">]><services><service>&lol;</service></services>'


def test_a_304_to_an_unconditional_request_is_an_unexpected_status_retried(portal):
    client = fast_client(max_attempts=3)
    portal.inject("/doc", ("status", 304), times=10)
    with pytest.raises(TransientError, match="304 Not Modified to an unconditional request") as failed:
        get(client, portal)
    assert failed.value.error_type == "UnexpectedStatus" and portal.hits["/doc"] == 3


def test_an_xml_document_declaring_entities_is_refused_as_unsafe_and_not_asked_again(portal):
    client = fast_client(max_attempts=3)
    portal.serve_json("/services.xml", RawBody(XML_BOMB, "application/xml"))
    with pytest.raises(PermanentError, match="XML refused") as refused:
        client.get_xml(portal.url + "/services.xml")
    assert refused.value.error_type == "UnsafeXml" and portal.hits["/services.xml"] == 1


def test_no_code_raises_a_failed_request_without_a_type_of_its_own():
    """A plain TransientError or PermanentError is typed by its HTTP status alone: one made
    without a status (an adapter's check of an answer's shape, say) is stored as the bare
    class name, which tells a reader nothing. Every such construction in the packages gives one."""
    root = Path(__file__).resolve().parents[3]
    untyped = []
    for path in sorted([*(root / "harvester").rglob("*.py"), *(root / "catalog").rglob("*.py")]):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) in (
                    "TransientError", "PermanentError") \
                    and len(node.args) < 3 and not any(k.arg == "status" for k in node.keywords):
                untyped.append(f"{path.relative_to(root)}:{node.lineno}")
    assert untyped == []


def test_no_code_raises_a_records_error_without_a_type_of_its_own():
    """A plain RecordsError was stored as `RecordsError` whatever had happened (a DataStore
    without fields, a dataset with nothing to pull, pages that repeat): each raise names the
    subclass that says which (harvester.records)."""
    root = Path(__file__).resolve().parents[3]
    plain = [f"{path.relative_to(root)}:{node.lineno}"
             for path in sorted([*(root / "harvester").rglob("*.py"), *(root / "catalog").rglob("*.py")])
             for node in ast.walk(ast.parse(path.read_text(), str(path)))
             if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "RecordsError"]
    assert plain == []
