"""The README's Config section against harvester.config: its example entry names every key
the loader accepts and no other, and loads; each default and bound its comments state is the
loader's; its example of a refused config is the message civicat gives; every CIVICAT_*
environment variable the code reads is in its table, with the default the code uses. SPEC.md's
config keys are keys the loader accepts."""
from __future__ import annotations

import dataclasses
import re
import tomllib
from urllib.parse import urlsplit

import pytest

from harvester.config import OPTIONAL_KEYS, REQUIRED_KEYS, ConfigError, PortalConfig, load_config
from tests.docs_text import README, ROOT, SPEC, code_blocks, markdown_table, section


def readme_config() -> str:
    return section(README.read_text(), "## Config")


def example_block() -> str:
    return code_blocks(readme_config())[0]


def key_comments(block: str) -> dict[str, str]:
    """Each key of the TOML block with its comment, the comment lines that follow it included."""
    comments, key = {}, None
    for line in block.split("\n"):
        assignment = re.match(r"\s*([a-z_]+)\s*=", line)
        if assignment:
            key = assignment.group(1)
            comments[key] = line.partition("#")[2]
        elif key and line.strip().startswith("#"):
            comments[key] += " " + line.strip().lstrip("#")
    return comments


def test_the_readme_example_names_every_key_the_loader_accepts_and_loads(tmp_path):
    """(its entries together: a key of one kind only, `timezone`, is in an entry of its own)"""
    entries = tomllib.loads(example_block())["portals"]
    keys = set().union(*entries)
    assert keys == set(REQUIRED_KEYS) | set(OPTIONAL_KEYS), (
        f"keys the README's example lacks: {sorted(set(REQUIRED_KEYS + OPTIONAL_KEYS) - keys)}; "
        f"keys the loader refuses: {sorted(keys - set(REQUIRED_KEYS + OPTIONAL_KEYS))}")
    path = tmp_path / "example.toml"
    path.write_text(example_block())
    assert [p.id for p in load_config(path).portals] == [entry["id"] for entry in entries]


def test_the_readme_says_each_numeric_default_the_loader_uses():
    defaults = {f.name: f.default for f in dataclasses.fields(PortalConfig)}
    comments = key_comments(example_block())
    wrong = [f"{key}: default {defaults[key]:g}, the README says: {comments[key].strip()!r}"
             for key in OPTIONAL_KEYS if isinstance(defaults[key], (int, float))
             and not re.search(rf"\(default ({defaults[key]:g}|{defaults[key]:,})\b", comments[key])]   # (1e+08 or 100,000,000)
    assert not wrong, "\n".join(wrong)


def stated_bounds(comment: str) -> tuple[float | None, float] | None:
    """(least, most) from `1 to 32`, `from 0 to 365`, `at most 3600` (least not said: None)."""
    span = re.search(r"(\d[\d,]*)\s+to\s+(\d[\d,]*)", comment)
    if span:
        return float(span.group(1).replace(",", "")), float(span.group(2).replace(",", ""))
    most = re.search(r"at most\s+(\d[\d,]*)", comment)
    return (None, float(most.group(1).replace(",", ""))) if most else None


def test_each_bound_the_readme_states_is_the_loaders(tmp_path):
    """`max_concurrency = 4  # (default 4, 1 to 32)`: 32 loads and 33 is refused, 1 loads and
    0 is refused."""
    entry = tomllib.loads(example_block())["portals"][0]
    checked, wrong = [], []

    def loads(key, value) -> bool:
        path = tmp_path / "bound.toml"
        lines = [f"{k} = {v!r}".replace("'", '"') for k, v in {**entry, key: value}.items() if k != "records"]
        path.write_text("[[portals]]\n" + "\n".join(lines) + "\n")
        try:
            load_config(path)
            return True
        except ConfigError:
            return False

    for key, comment in key_comments(example_block()).items():
        bounds = stated_bounds(comment)
        if bounds is None or key not in entry or isinstance(entry[key], (str, bool)):   # (id's "at most 63 characters")
            continue
        least, most = bounds
        step = 1 if isinstance(entry[key], int) else 0.001
        cast = int if step == 1 else float
        checked.append(key)
        if not loads(key, cast(most)) or loads(key, cast(most + step)):
            wrong.append(f"{key}: the README says at most {most:g}")
        if least is not None and (not loads(key, cast(least)) or loads(key, cast(least - step))):
            wrong.append(f"{key}: the README says at least {least:g}")
    assert {"timeout", "max_concurrency", "max_minutes", "records_max_minutes", "deletion_grace_days",
            "requests_per_second"} <= set(checked)
    assert not wrong, "\n".join(wrong)


def test_the_readme_example_of_a_refused_config_is_civicats_message(tmp_path):
    said = re.search(r"e\.g\.\s*`([^`]+)`", readme_config()).group(1)
    file, _, rest = said.partition(": ")
    bad_value = re.search(r"'([^']+)' is not", rest).group(1)
    portal_id = re.search(r"\(id '([^']+)'\)", rest).group(1)
    shipped = (ROOT / file).read_text()
    entry = re.search(rf'id\s*=\s*"{portal_id}".*?kind\s*=\s*"([^"]+)"', shipped, re.S)
    path = tmp_path / "configs" / "g7.toml"
    path.parent.mkdir()
    path.write_text(shipped[:entry.start(1)] + bad_value + shipped[entry.end(1):])
    with pytest.raises(ConfigError) as refused:
        load_config(path)
    expected = said.removesuffix("...").removeprefix(file)
    assert str(refused.value).startswith(str(path) + expected)


def env_table() -> dict[str, str]:
    return {re.sub(r"`", "", row[0]): row[2] for row in markdown_table(readme_config().split("Environment variables", 1)[1])}


def test_every_environment_variable_the_code_reads_is_in_the_readme_table():
    read = {name for package in ("harvester", "catalog") for path in (ROOT / package).rglob("*.py")
            for name in re.findall(r"\bCIVICAT_[A-Z_]+\b", path.read_text())}
    assert read == set(env_table()), (f"read by the code, not in the README: {sorted(read - set(env_table()))}; "
                                      f"in the README, read by no code: {sorted(set(env_table()) - read)}")


def test_each_http_variable_set_to_its_documented_default_changes_nothing(monkeypatch):
    """The client made with CIVICAT_HTTP_X set to the README's default is the client made
    without it."""
    from harvester.http import HttpClient

    def settings() -> dict:
        return {k: v for k, v in vars(HttpClient.from_env()).items() if isinstance(v, (int, float, str, type(None)))}

    for name in [n for n in env_table() if n.startswith("CIVICAT_HTTP_")]:
        monkeypatch.delenv(name, raising=False)
    plain = settings()
    for name, default in env_table().items():
        if not name.startswith("CIVICAT_HTTP_"):
            continue
        monkeypatch.setenv(name, default.split()[0])
        assert settings() == plain, f"{name}: the README's default {default!r} is not the client's"
        monkeypatch.delenv(name)


def test_the_spec_config_keys_are_keys_the_loader_accepts():
    if not SPEC.is_file():
        pytest.skip(f"../shared/SPEC.md not found beside the repository: {SPEC}")
    block = code_blocks(section(SPEC.read_text(), "## Config (TOML)"))[0]
    keys = set(re.findall(r"(?:^|[#,:]\s*)([a-z_]+)\s*=", block, re.M))
    assert keys and keys <= set(REQUIRED_KEYS) | set(OPTIONAL_KEYS), sorted(keys - set(REQUIRED_KEYS + OPTIONAL_KEYS))


def config_blocks(text: str) -> list[str]:
    return re.findall(r"^```toml\n(.*?)^```", text, re.S | re.M)


def test_every_config_example_of_the_readme_and_docs_loads(tmp_path):
    """A reader copies them (docs/portals.md has an entry of each kind): each one loads."""
    refused = []
    for page in [README, *sorted((ROOT / "docs").glob("*.md"))]:
        for number, block in enumerate(config_blocks(page.read_text()), 1):
            path = tmp_path / f"{page.stem}-{number}.toml"
            path.write_text(block)
            try:
                load_config(path)
            except ConfigError as exc:
                refused.append(f"{page.relative_to(ROOT)}, config example {number}: {exc}")
    assert not refused, "\n".join(refused)


def test_an_example_entry_of_a_portal_configs_g7_toml_harvests_names_its_url_as_g7_toml_does():
    """A reader copies the README's entry for a G7 city's portal: the same scheme, host and path as the
    config civicat ships (Chicago's Open311 was `https://` in the README, `http://` in configs/g7.toml,
    as its public clients call it)."""
    shipped = {urlsplit(p.url).netloc: p.url.rstrip("/") for p in load_config(ROOT / "configs" / "g7.toml").portals}
    differ = []
    for page in [README, *sorted((ROOT / "docs").glob("*.md"))]:
        for block in config_blocks(page.read_text()):
            for entry in tomllib.loads(block).get("portals", []):
                url = str(entry.get("url", "")).rstrip("/")
                if urlsplit(url).netloc in shipped and url != shipped[urlsplit(url).netloc]:
                    differ.append(f"{page.relative_to(ROOT)}: {entry.get('id')}: {url} (configs/g7.toml: "
                                  f"{shipped[urlsplit(url).netloc]})")
    assert not differ, "\n".join(differ)
