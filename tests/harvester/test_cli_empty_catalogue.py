"""`overlap`, `similar` and `search` on a catalogue that holds no dataset (no harvest yet, every
harvest failed, every dataset removed): one line saying why there is nothing and what to run,
exit 0; with --json, the command's JSON with nothing in it, no message."""
import json

import pytest
from click.testing import CliRunner

from catalog.store import Store
from harvester.cli import cli
from tests.portals.dcat import DataJsonPortal
from tests.portals.synth import make_data_json


def invoke(*args):
    return CliRunner().invoke(cli, list(args), prog_name="civicat")


def write_config(path, url):
    path.write_text(f'[[portals]]\nid = "city"\ncity = "City"\nkind = "dcat-us"\nurl = "{url}"\n')
    return path


@pytest.fixture
def never_harvested(tmp_path):
    """A catalogue no harvest has filled: made by a harvest stopped before its first portal, or by
    a notebook's Store()."""
    db = tmp_path / "c.duckdb"
    Store(db).close()
    return db


@pytest.fixture
def every_harvest_failed(tmp_path):
    db = tmp_path / "c.duckdb"
    config = write_config(tmp_path / "portals.toml", "http://127.0.0.1:1/data.json")
    assert invoke("harvest", "--config", str(config), "--db", str(db)).exit_code == 1
    return db


@pytest.fixture
def every_dataset_removed(tmp_path):
    db = tmp_path / "c.duckdb"
    with DataJsonPortal(make_data_json(3)) as portal:
        config = write_config(tmp_path / "portals.toml", portal.url + "/data.json")
        assert invoke("harvest", "--config", str(config), "--db", str(db)).exit_code == 0
    taken_out = tmp_path / "taken_out.toml"   # (the portal gone for good, out of the config)
    taken_out.write_text('[[portals]]\nid = "other"\ncity = "Other"\nkind = "dcat-us"\nurl = "http://127.0.0.1:1/d.json"\n')
    assert invoke("retire", "city", "--config", str(taken_out), "--db", str(db)).exit_code == 0
    return db


COMMANDS = [(["overlap"], "no dataset to compare: "), (["similar", "city:ds-1"], "no dataset is comparable to city:ds-1: "),
            (["search", "permits"], "no dataset matches 'permits': "),
            (["search", "permits", "--city", "Chicago", "--theme", "Housing"], "no dataset matches 'permits': ")]


@pytest.mark.parametrize("catalogue, why", [
    ("never_harvested", "the catalogue holds no dataset yet: no harvest has run (`civicat harvest --db {db}` fills it)"),
    ("every_harvest_failed", "the catalogue holds no dataset yet (`civicat runs --db {db}`: what its harvests did)"),
    ("every_dataset_removed", "every dataset of the catalogue was removed (`civicat runs --db {db}`: what its "
                              "harvests did)")])
@pytest.mark.parametrize("command, said", COMMANDS)
def test_a_catalogue_without_a_dataset_is_said_so_in_one_line_and_exit_0(request, catalogue, why, command, said):
    """On main: `overlap` printed "0 datasets compared, 0 candidate pairs, ..." over an empty table;
    `similar` exited 2 under a usage line ("no dataset 'city:ds-1' in the catalogue"), blaming the UID;
    `search` before any harvest exited 2 ("the search index is not built yet"), and --json gave that
    message, no JSON; a catalogue whose datasets were all removed was said to hold none "yet"."""
    db = request.getfixturevalue(catalogue)
    result = invoke(*command, "--db", str(db))
    assert (result.exit_code, result.output) == (0, said + why.format(db=db) + "\n")


@pytest.mark.parametrize("catalogue", ["never_harvested", "every_harvest_failed", "every_dataset_removed"])
@pytest.mark.parametrize("command", [c for c, _ in COMMANDS])
def test_a_catalogue_without_a_dataset_gives_json_with_nothing_in_it(request, catalogue, command):
    result = invoke(*command, "--db", str(request.getfixturevalue(catalogue)), "--json")
    assert result.exit_code == 0, result.output
    if command[0] == "overlap":   # (its JSON is an object, kept: scripts read its keys)
        assert json.loads(result.output) == {"min_score": 0.35, "datasets_compared": 0, "candidate_pairs": 0,
                                             "strong_pairs": 0, "groups": []}
    else:
        assert json.loads(result.output) == []


def test_a_uid_not_in_a_catalogue_with_datasets_is_still_a_usage_error(tmp_path):
    """A guard (passes on main): with datasets, a UID it does not hold is the user's typo."""
    db = tmp_path / "c.duckdb"
    with DataJsonPortal(make_data_json(3)) as portal:
        config = write_config(tmp_path / "portals.toml", portal.url + "/data.json")
        assert invoke("harvest", "--config", str(config), "--db", str(db)).exit_code == 0
    result = invoke("similar", "city:no-such", "--db", str(db), "--json")
    assert result.exit_code == 2 and "no dataset 'city:no-such' in the catalogue" in result.output
    result = invoke("overlap", "--db", str(db))
    assert result.exit_code == 0 and result.output.startswith("3 datasets compared, ")
