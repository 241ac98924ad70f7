"""pyproject.toml's dependency ranges: what the packages import is declared, and the releases known to
break civicat are outside the ranges (found by running the suite at the lowest versions the ranges
allow, `uv pip install --resolution lowest-direct`: README, Quickstart)."""
import ast
import importlib.metadata
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

# release -> why it breaks civicat; (extra, distribution): the extra's requirements with the core ones
KNOWN_BAD = {
    (None, "pandas"): {
        "2.1.0": "allows any numpy, and fails at import beside NumPy 2 (numpy.dtype size changed)",
        "2.1.1": "allows any numpy, and fails at import beside NumPy 2 (numpy.dtype size changed)",
    },
    (None, "urllib3"): {
        "2.0.1": "truncates a large compressed body read as a stream (yanked; urllib3 issue 3009)",
    },
    (None, "orjson"): {
        "3.9.14": "parses JSON nested past any depth (CVE-2024-27454): a portal's body refused by 3.9.15 on",
    },
    ("test", "pytest"): {
        "8.0.2": "calls a test module's function named `setup` before its tests, as nose did",
    },
    ("test", "polars"): {
        "1.0.0": "panics scanning records whose files' columns differ, where docs/export.md says it refuses them",
        "1.1.0": "filters the export's datasets.parquet with a ShapeError (its length differs from the series')",
        "1.12.0": "panics reading the export's datasets.parquet (mid > len), as 1.2 on do",
    },
    ("test", "click"): {
        "8.1.8": "CliRunner mixes stderr into the stdout the tests read (apart from 8.2 on)",
    },
}

# core requirements that harvester/ and catalog/ never import -> why an install needs them all the same
NEEDED_UNIMPORTED = {
    "duckdb-extension-fts": "the fts extension built for the pinned DuckDB, which loads it (search)",
    "pytz": "DuckDB imports it to hand a TIMESTAMPTZ value to Python, and fails at that fetch without it",
}


def requirements(extra: str | None = None) -> list[Requirement]:
    """The core requirements, and an extra's beside them (pip installs both for `.[extra]`)."""
    listed = PROJECT["dependencies"] + (PROJECT["optional-dependencies"][extra] if extra else [])
    return [Requirement(line) for line in listed]


def imported_top_level_modules(package: str) -> dict[str, str]:
    """Each absolute import's top-level module in a package's source -> a file importing it."""
    found = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.partition(".")[0], str(path.relative_to(ROOT)))
    return found


def test_every_module_the_packages_import_is_a_declared_dependency():
    """numpy came only through pandas and scipy while the overlap detector imported it itself: its
    range was theirs, never ours. (An extra's modules, e.g. the embedding model's, count as declared.)"""
    declared = {canonicalize_name(r.name) for r in requirements()}
    for extra in PROJECT["optional-dependencies"]:
        declared |= {canonicalize_name(r.name) for r in requirements(extra)}
    # installed: the distribution that provides the module; else (an extra not installed) its own name
    providers = importlib.metadata.packages_distributions()
    imported = imported_top_level_modules("harvester") | imported_top_level_modules("catalog")
    assert {"requests", "duckdb", "numpy", "catalog"} <= imported.keys(), "the scan of the imports found too little"
    undeclared = {}
    for module, where in imported.items():
        if module in sys.stdlib_module_names or module in ("harvester", "catalog"):
            continue
        distributions = {canonicalize_name(d) for d in providers.get(module, [module])}
        if not distributions & declared:
            undeclared[module] = where
    assert not undeclared, f"imported but not in pyproject.toml's dependencies: {undeclared}"


def test_every_core_requirement_is_imported_by_the_packages_or_says_why_not():
    """jsonschema (Python) was core while only the tests imported it (civicat validates with
    jsonschema-rs): every install took it, and the four packages it needs, for nothing."""
    providers = importlib.metadata.packages_distributions()
    imported = imported_top_level_modules("harvester") | imported_top_level_modules("catalog")
    used = {canonicalize_name(d) for module in imported for d in providers.get(module, [module])}
    unused = {r.name for r in requirements() if canonicalize_name(r.name) not in used} - NEEDED_UNIMPORTED.keys()
    assert not unused, f"core requirements that harvester/ and catalog/ never import (the test extra's?): {unused}"
    stale = {name for name in NEEDED_UNIMPORTED if canonicalize_name(name) in used}
    assert not stale, f"imported now: no longer to be listed as needed though never imported: {stale}"


def test_the_releases_known_to_break_civicat_are_outside_the_ranges():
    for (extra, name), releases in KNOWN_BAD.items():
        ranges = [r.specifier for r in requirements(extra) if canonicalize_name(r.name) == name]
        assert ranges, f"{name} is no longer a requirement{f' of the {extra} extra' if extra else ''}"
        for release, why in releases.items():
            allowed = all(spec.contains(release, prereleases=True) for spec in ranges)
            assert not allowed, f"{name} {release} is in the range again ({', '.join(map(str, ranges))}): {why}"

