"""`civicat overlap` and `civicat similar` through click's CliRunner, on a real selection."""
import json
import shutil

import pytest
from click.testing import CliRunner

from harvester.cli import cli


@pytest.fixture(scope="module")
def db(real_selection_path, tmp_path_factory):
    path = tmp_path_factory.mktemp("cli-overlap") / "catalog.duckdb"
    shutil.copy(real_selection_path, path)   # (`overlap` saves its results in it)
    return str(path)


def test_overlap_prints_groups_and_json(db):
    runner = CliRunner()
    result = runner.invoke(cli, ["overlap", "--db", db])
    assert result.exit_code == 0, result.output
    assert "Building permits" in result.output and "groups" in result.output.splitlines()[0]
    result = runner.invoke(cli, ["overlap", "--db", db, "--json"])
    assert result.exit_code == 0, result.output
    assert "pairs" not in json.loads(result.output) and json.loads(result.output)["strong_pairs"] > 0
    result = runner.invoke(cli, ["overlap", "--db", db, "--json", "--pairs", "--min-score", "0.6"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["min_score"] == 0.6 and len(payload["pairs"]) == payload["strong_pairs"]
    assert [p["score"] for p in payload["pairs"]] == sorted((p["score"] for p in payload["pairs"]), reverse=True)
    assert all(p["score"] >= 0.6 for p in payload["pairs"])
    assert all(len(g["cities"]) >= 2 and g["label"] for g in payload["groups"])
    assert {"uid_a", "uid_b", "score", "title_score", "columns_score", "explanation"} <= set(payload["pairs"][0])


def test_overlap_refuses_a_bad_min_score_and_a_missing_catalogue(tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli, ["overlap", "--db", str(tmp_path / "none.duckdb")])
    assert result.exit_code == 2 and "run `civicat harvest` first" in result.output
    result = runner.invoke(cli, ["overlap", "--db", str(tmp_path / "none.duckdb"), "--min-score", "1.5"])
    assert result.exit_code == 2 and "1.5" in result.output


def test_similar_lists_other_cities_with_explanations(db):
    runner = CliRunner()
    result = runner.invoke(cli, ["similar", "data-cityofchicago-org:ydr8-5enu", "--db", db, "--json", "--limit", "3"])
    assert result.exit_code == 0, result.output
    found = json.loads(result.output)
    assert len(found) == 3 and found[0]["score"] >= found[-1]["score"]
    assert {f["uid"] for f in found[:2]} == {"data-sfgov-org:i98e-djp9", "data-seattle-gov:mags-97de"}
    assert all(f["city"] != "Chicago" for f in found)
    assert "titles share 'building permits'" in found[0]["explanation"]
    result = runner.invoke(cli, ["similar", "nowhere:x", "--db", db])
    assert result.exit_code == 2 and "no dataset 'nowhere:x'" in result.output


def test_embeddings_without_the_extra_are_refused_before_any_work(db, monkeypatch):
    from catalog import EMBEDDINGS_INSTALL
    from catalog.overlap import embeddings
    monkeypatch.setattr(embeddings, "available", lambda: False)
    result = CliRunner().invoke(cli, ["overlap", "--db", db, "--embeddings"])
    # civicat is installed from its checkout (the README's quickstart), not from PyPI, where
    # `pip install 'civicat[embeddings]'` asks for a package of that name
    assert EMBEDDINGS_INSTALL == "pip install -e '.[embeddings]'"
    assert result.exit_code == 2 and EMBEDDINGS_INSTALL in result.output
    help_text = CliRunner().invoke(cli, ["overlap", "--help"], terminal_width=200).output
    assert f"(needs: {EMBEDDINGS_INSTALL})" in help_text
