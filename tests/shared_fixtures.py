"""Real payloads recorded from public portals, kept in ../shared/fixtures beside
the repository (not committed with it)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
FIXTURES = SHARED / "fixtures"


def require_fixtures() -> Path:
    """Skip the calling test when the shared fixtures are not checked out."""
    if not FIXTURES.is_dir():
        pytest.skip(f"../shared/fixtures not found beside the repository: {FIXTURES}")
    return FIXTURES


def load_json(rel_path: str | Path) -> Any:
    """Parse FIXTURES/rel_path (skips when the fixtures are absent)."""
    require_fixtures()
    return json.loads((FIXTURES / rel_path).read_text(encoding="utf-8"))


def socrata_catalog_files() -> list[Path]:
    """Discovery API pages: {"results": [...], "resultSetSize", "timings", "warnings"}."""
    return sorted((FIXTURES / "socrata-catalog").glob("*.json"))


def socrata_views_files() -> list[Path]:
    """/api/views/{id}.json metadata documents."""
    return sorted((FIXTURES / "socrata-views").glob("*.json"))


def spellarbot_domain_files() -> list[Path]:
    """One JSON list of Discovery results[] items per domain (index.json excluded)."""
    folder = FIXTURES / "flattened-catalog" / "spellarbot-2018"
    return sorted(p for p in folder.glob("*.json") if p.name != "index.json")


def dcat_us_files() -> list[Path]:
    """data.json documents: v1.1 catalog objects and legacy bare arrays."""
    return sorted((FIXTURES / "dcat-us").rglob("*.json"))
