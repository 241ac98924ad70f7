"""A key in a source id (a data.json `identifier` is a URL, and its dataset's source id: `?token=…`)
printed by the commands as the exports give it, REDACTED (numbered `#2` where two redact alike), and
that printed uid taken back as input. Until session 43 `overlap --json` / `--group`, `similar`, `search`,
the `records` table and `runs --errors` printed it on stdout: the terminal's scrollback, a cron job's mail."""
import glob
import json
import os
import re
import subprocess

import duckdb
import pytest
from click.testing import CliRunner

from catalog import search
from catalog.records import safe_segment
from catalog.store import Store
from harvester.cli import cli

KEYS = ("k-one", "k-two", "k-three")
BUDGET = [("Fund", "fund", "text"), ("Amount", "amount", "number"), ("Fiscal Year", "fiscal_year", "integer")]
CRIME = [("Offense", "offense", "text"), ("Occurred On", "occurred_on", "datetime"), ("District", "district", "text"),
         ("Case Number", "case_number", "text")]
# two of Springfield's identifiers that differ only in their key: one uid once redacted, the second seen `#2`
SPRINGFIELD = "https://data.springfield.example/api/views?id=7&token="
BUDGET_UID, CRIME_UID = f"springfield:{SPRINGFIELD}k-one", f"springfield:{SPRINGFIELD}k-two"
CRIME_SHOWN = f"springfield:{SPRINGFIELD}REDACTED#2"
SHELBYVILLE_UID = "shelbyville:https://data.shelbyville.example/crimes?f=json&api_key=k-three"
SHELBYVILLE_SHOWN = "shelbyville:https://data.shelbyville.example/crimes?f=json&api_key=REDACTED"


def add_dataset(con, uid: str, city: str, title: str, columns: list, days_ago: int) -> None:
    portal_id, _, source_id = uid.partition(":")
    con.execute("""INSERT INTO datasets (uid, portal_id, city, portal_kind, source_id, title, asset_type, first_seen,
                                         last_seen, last_changed, raw_hash)
                   VALUES (?, ?, ?, 'dcat-us', ?, ?, 'dataset', now() - to_days(?), now(), now(), 'h')""",
                [uid, portal_id, city, source_id, title, days_ago])
    for position, (name, field_name, column_type) in enumerate(columns):
        con.execute("INSERT INTO columns (dataset_uid, position, name, field_name, type) VALUES (?, ?, ?, ?, ?)",
                    [uid, position, name, field_name, column_type])


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli-keys") / "catalog.duckdb"
    store = Store(path)
    try:
        add_dataset(store.con, BUDGET_UID, "Springfield", "Budget appropriations", BUDGET, 3)
        add_dataset(store.con, CRIME_UID, "Springfield", "Crime reports", CRIME, 2)
        add_dataset(store.con, SHELBYVILLE_UID, "Shelbyville", "Crime reports", CRIME, 1)
        search.refresh(store.con)
    finally:
        store.close()
    return str(path)


def run(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args), env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert not any(key in result.output for key in KEYS), result.output   # (stdout and stderr)
    return result.stdout


def test_overlap_prints_every_uid_as_exported_and_group_n_too(db):
    computed = json.loads(run("overlap", "--db", db, "--json", "--pairs"))
    [group] = computed["groups"]
    assert sorted(m["uid"] for m in group["members"]) == [SHELBYVILLE_SHOWN, CRIME_SHOWN]
    assert {group["why"]["uid_a"], group["why"]["uid_b"]} == {SHELBYVILLE_SHOWN, CRIME_SHOWN}
    assert [{p["uid_a"], p["uid_b"]} for p in computed["pairs"]] == [{SHELBYVILLE_SHOWN, CRIME_SHOWN}]
    text = run("overlap", "--db", db, "--pairs")
    assert CRIME_SHOWN in text.split() and SHELBYVILLE_SHOWN in text.split()

    n = str(group["group_id"])
    saved = json.loads(run("overlap", "--db", db, "--group", n, "--json", "--pairs"))
    assert sorted(m["uid"] for m in saved["members"]) == [SHELBYVILLE_SHOWN, CRIME_SHOWN]
    assert saved["why"] == group["why"] and [{p["uid_a"], p["uid_b"]} for p in saved["pairs"]] == [
        {SHELBYVILLE_SHOWN, CRIME_SHOWN}]
    lines = run("overlap", "--db", db, "--group", n).splitlines()
    at = lines.index("its datasets:")
    assert sorted(line.split()[-1] for line in lines[at + 1:at + 3]) == [SHELBYVILLE_SHOWN, CRIME_SHOWN]
    with duckdb.connect(db, read_only=True) as con:   # (the catalogue keeps them as published)
        assert sorted(uid for (uid,) in con.execute("SELECT uid FROM overlap_groups").fetchall()) == [
            SHELBYVILLE_UID, CRIME_UID]


def test_a_uid_copied_as_printed_names_its_dataset_in_similar_and_similar_prints_it_redacted(db):
    run("overlap", "--db", db)
    for typed in (CRIME_SHOWN, CRIME_UID):   # (as printed, or as the catalogue holds it)
        found = json.loads(run("similar", typed, "--db", db, "--json"))
        assert [f["uid"] for f in found][:1] == [SHELBYVILLE_SHOWN]
        text = run("similar", typed, "--db", db)
        assert text.startswith(f"Springfield: Crime reports ({CRIME_SHOWN})"), text
    # the base uid, without `#2`, is Springfield's budget: another dataset
    assert run("similar", f"springfield:{SPRINGFIELD}REDACTED", "--db", db).startswith(
        f"no dataset of another city is comparable to springfield:{SPRINGFIELD}REDACTED (Springfield: Budget")
    refused = CliRunner().invoke(cli, ["similar", f"springfield:{SPRINGFIELD}REDACTED#3", "--db", db])
    assert refused.exit_code == 2 and not any(key in refused.output for key in KEYS), refused.output


@pytest.mark.parametrize("command", ["similar", "records"])
def test_the_help_of_a_command_taking_a_uid_says_a_uid_as_printed_is_taken(command):
    """`similar` and `records` take a uid as the commands print it (its key REDACTED, `#2`): until
    session 43 their --help said only `portal_id:source_id`, as `search` lists them."""
    text = " ".join(run(command, "--help").split())
    assert "REDACTED, `#2` where two redact alike" in text, text


def test_search_prints_a_uid_as_exported(db):
    hits = json.loads(run("search", "crime reports", "--db", db, "--json"))
    assert sorted(h["uid"] for h in hits) == [SHELBYVILLE_SHOWN, CRIME_SHOWN]
    assert CRIME_SHOWN in run("search", "crime reports", "--db", db).split()


# a key in an identifier's query, its fragment (an OAuth implicit grant's), or a nested link's escaped twice (session
# 44: the last two printed as published, where the exports gave them as published too)
KEYED_IDENTIFIERS = ["https://data.city.example/api/views/parks?id=7&token={key}",
                     "https://data.city.example/api/views/parks#access_token={key}&token_type=bearer",
                     "https://data.city.example/login?next=%252Fapi%252Fparks%253Fapi_key%253D{key}"]


@pytest.mark.parametrize("keyed", KEYED_IDENTIFIERS, ids=["query", "fragment", "escaped-twice"])
def test_records_and_runs_errors_print_a_key_in_a_source_id_redacted_and_take_the_uid_as_printed(tmp_path, keyed):
    """Over HTTP on 127.0.0.1: a data.json portal whose two identifiers differ only in their key, each
    dataset's records pulled by the uid `records` printed."""
    from tests.portals.base import RawBody
    from tests.portals.dcat import DataJsonPortal
    from tests.portals.synth import make_data_json

    document = make_data_json(2)
    one, other = (keyed.format(key=key) for key in KEYS[:2])
    with DataJsonPortal(document) as portal:
        for dataset, identifier in zip(document["dataset"], (one, other)):
            dataset.update(identifier=identifier, landingPage="https://data.city.example/parks", distribution=[
                {"@type": "dcat:Distribution", "mediaType": "text/csv", "format": "CSV",
                 "downloadURL": portal.url + "/rows.csv"}])
        portal.static["/rows.csv"] = RawBody(b"a,b\n1,x\n2,y\n")
        config = tmp_path / "c.toml"
        config.write_text(f'[[portals]]\nid = "city"\ncity = "City"\nkind = "dcat-us"\nurl = "{portal.url}/data.json"\n')
        db = str(tmp_path / "c.duckdb")
        harvested = CliRunner().invoke(cli, ["harvest", "--config", str(config), "--db", db])
        assert harvested.exit_code == 0, harvested.output
        shown = [f"city:{one.replace('k-one', 'REDACTED')}", f"city:{one.replace('k-one', 'REDACTED')}#2"]
        # the harvest's line of the datasets publishing a secret names them so (both alike until session 43)
        assert f"a password): {shown[0]}, {shown[1]}; kept" in harvested.stdout, harvested.stdout
        pulled = json.loads(run("records", *shown, "--config", str(config), "--db", db, "--json"))
        assert [(p["uid"], p["status"], p["rows"]) for p in pulled] == [(shown[0], "ok", 2), (shown[1], "ok", 2)]
        # each folder printed as it is, apart from the other's, its name without the key (until session 46 the
        # folders' names held it, and each was printed as a glob naming both)
        records = tmp_path / "records"
        assert [sorted(glob.glob(str(records / p["path"]))) for p in pulled] == [[str(records / p["path"])]
                                                                                 for p in pulled]
        assert len({p["path"] for p in pulled}) == 2
        assert not [path for path in records.rglob("*") if any(key in str(path) for key in KEYS)]
        table = run("records", shown[1], "--config", str(config), "--db", db)
    assert [shown[1], "ok"] in [line.split()[:2] for line in table.splitlines()], table
    with duckdb.connect(db, read_only=True) as con:   # (pulled: each dataset's own, by its catalogue uid)
        assert sorted(con.execute("SELECT source_id, row_count FROM record_pulls").fetchall()) == [(one, 2), (other, 2)]

    errors = json.loads(run("runs", "--db", db, "--errors", "--json"))["errors"]
    assert sorted(e["source_id"] for e in errors if e["error_type"] == "SecretInLink") == [
        s.partition(":")[2] for s in shown]
    table = run("runs", "--db", db, "--errors")
    assert {line.split()[1] for line in table.splitlines() if "SecretInLink" in line} == {
        s.partition(":")[2] for s in shown}


def keyed_portal_pulled(tmp_path, portal, keys: tuple[str, ...], keyed: str) -> tuple[str, str, list[str]]:
    """A data.json portal (`portal`, serving) whose identifiers are `keyed` with each of `keys`, harvested into
    tmp_path/c.duckdb and each dataset's records pulled: the config, the catalogue and the uids as printed."""
    from tests.portals.base import RawBody

    for dataset, key in zip(portal.document["dataset"], keys):
        dataset.update(identifier=keyed.format(key=key), landingPage="https://data.city.example/parks",
                       distribution=[{"@type": "dcat:Distribution", "mediaType": "text/csv", "format": "CSV",
                                      "downloadURL": f"{portal.url}/{key}.csv"}])
        portal.static[f"/{key}.csv"] = RawBody(b"a,b\n1,x\n")
    config = tmp_path / "c.toml"
    config.write_text(f'[[portals]]\nid = "city"\ncity = "City"\nkind = "dcat-us"\nurl = "{portal.url}/data.json"\n')
    db = str(tmp_path / "c.duckdb")
    assert CliRunner().invoke(cli, ["harvest", "--config", str(config), "--db", db]).exit_code == 0
    shown = [f"city:{keyed.format(key='REDACTED')}" + (f"#{n}" if n > 1 else "") for n in range(1, len(keys) + 1)]
    return str(config), db, shown


def test_the_folder_of_a_source_id_holding_a_key_is_named_without_it_and_printed_as_it_is(tmp_path):
    """Over HTTP on 127.0.0.1. Until session 46 the folder's name held the key (`ls records/portal=city`
    showed it) and the `records` table printed a glob with a `*` for it; now the folder is named by the id
    redacted and a digest, printed whole, a path a shell cds to, and `records()` reads it by its name."""
    from tests.portals.dcat import DataJsonPortal
    from tests.portals.synth import make_data_json

    keyed = "https://data.city.example/api/views/parks?token={key}&id=7"
    with DataJsonPortal(make_data_json(1)) as portal:
        config, db, [uid] = keyed_portal_pulled(tmp_path, portal, ("k-one",), keyed)
        table = run("records", uid, "--config", config, "--db", db)
    assert table.split()[:2] == [uid, "ok"], table   # (a block a dataset: the folder's name is long)
    [printed] = re.findall(r"portal=city/dataset=\S+", table)
    assert "*" not in printed and "token%3DREDACTED%26id%3D7~" in printed, table
    listed = subprocess.run(["bash", "-c", f"cd records/{printed} && pwd -P && ls && ls -AR ../../.."],
                            cwd=tmp_path, capture_output=True, text=True)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[0] == str((tmp_path / "records" / printed).resolve())
    assert "part-00000.parquet" in listed.stdout.split() and "k-one" not in listed.stdout, listed.stdout
    with duckdb.connect(db, read_only=True) as con:
        [(path,)] = con.execute("SELECT path FROM record_pulls").fetchall()
        dataset = path.partition("/dataset=")[2]
        assert path == printed and con.execute("SELECT count(*) FROM records('city', ?)", [dataset]).fetchone() == (1,)


def test_two_source_ids_differing_only_in_their_key_have_folders_of_their_own_named_without_it(tmp_path):
    """Over HTTP on 127.0.0.1: until session 46 their folders' names differed only in the key, and the table
    printed one glob naming both (said under it, and in `--json`'s `path_also_names`). Now each is named apart
    by a digest of its id keyed with the catalogue's id: no name is a test of a guessed key without the
    catalogue, which holds the key itself."""
    from catalog.folder import catalogue_id
    from catalog.records import RecordsLayout
    from tests.portals.dcat import DataJsonPortal
    from tests.portals.synth import make_data_json

    keyed = "https://data.city.example/api/views/parks?token={key}&id=7"
    with DataJsonPortal(make_data_json(2)) as portal:
        config, db, shown = keyed_portal_pulled(tmp_path, portal, ("k-one", "k-two"), keyed)
        pulled = json.loads(run("records", *shown, "--config", config, "--db", db, "--json"))
    assert [(p["uid"], p["status"]) for p in pulled] == [(shown[0], "ok"), (shown[1], "ok")]
    assert "path_also_names" not in pulled[0]
    folders = [tmp_path / "records" / p["path"] for p in pulled]
    assert folders[0] != folders[1] and all((f / "part-00000.parquet").is_file() for f in folders)
    assert [f.name.partition("~")[0] for f in folders] == [f"dataset={safe_segment(keyed.format(key='REDACTED'))}"] * 2
    with duckdb.connect(db, read_only=True) as con:
        key = catalogue_id(con)
    for folder, secret in zip(folders, ("k-one", "k-two")):
        digest = folder.name.rpartition("~")[2]
        assert digest == RecordsLayout(tmp_path, key).segment(keyed.format(key=secret)).rpartition("~")[2]
        assert digest != RecordsLayout(tmp_path, "another catalogue").segment(keyed.format(key=secret)).rpartition(
            "~")[2]


def test_a_folder_named_with_its_key_before_is_still_read_and_renamed_without_it_at_the_next_records_pull(
        tmp_path, caplog):
    """Over HTTP on 127.0.0.1: a catalogue from before session 46, its keyed dataset's folder (published, and a
    staged pull of another) named with the key. Its export still finds the records; the next `records` renames
    both folders, record_pulls.path with them, and no name under the catalogue's folder holds the key."""
    from catalog.records import RecordsLayout
    from tests.portals.dcat import DataJsonPortal
    from tests.portals.synth import make_data_json

    keyed = "https://data.city.example/api/views/parks?token={key}&id=7"
    with DataJsonPortal(make_data_json(2)) as portal:
        config, db, shown = keyed_portal_pulled(tmp_path, portal, ("k-one", "k-two"), keyed)
        run("records", shown[0], "--config", config, "--db", db)
        # as a civicat before session 46 left it: the folder named by the id, and a pull of the other staged
        with duckdb.connect(db) as con:
            [(path,)] = con.execute("SELECT path FROM record_pulls").fetchall()
            before = f"portal=city/dataset={safe_segment(keyed.format(key='k-one'))}"
            con.execute("UPDATE record_pulls SET path = ?", [before])
        os.rename(tmp_path / "records" / path, tmp_path / "records" / before)
        staged = tmp_path / ".records-staging" / f"portal=city/dataset={safe_segment(keyed.format(key='k-two'))}"
        (staged / "parts").mkdir(parents=True)
        exported = CliRunner().invoke(cli, ["export", "--db", db, "--out", str(tmp_path / "out")])
        assert exported.exit_code == 0, exported.output
        manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
        assert manifest["records"] == {"datasets": 1, "rows": 1}
        assert "k-one" not in json.dumps(manifest) and "k-one" not in exported.output

        result = CliRunner().invoke(cli, ["records", shown[0], "--config", config, "--db", db],
                                    env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.output
    assert "renamed 1 records folder whose name held the key" in caplog.text
    assert "k-one" not in caplog.text and "k-one" not in result.output
    assert not [p for p in tmp_path.rglob("*") if "k-one" in p.name or "k-two" in p.name]
    with duckdb.connect(db, read_only=True) as con:
        assert con.execute("SELECT path FROM record_pulls").fetchall() == [(path,)]
        layout = RecordsLayout.beside(db, con.execute("SELECT id FROM catalogue_identity").fetchone()[0])
    assert layout.staging("city", keyed.format(key="k-two")).joinpath("parts").is_dir()
    assert (tmp_path / "records" / path / "part-00000.parquet").is_file()


def test_a_folder_named_by_its_id_as_another_civicat_redacted_it_is_still_read_and_renamed_at_the_next_pull(
        tmp_path, caplog):
    """Over HTTP on 127.0.0.1: a keyed dataset's folder is named by its id as `redacted` gives it, and what is
    redacted changes from one civicat to the next (session 45 ran a query key through its `#`). A catalogue
    whose folder an earlier civicat named by another redacted form (its digest, of the id itself, the same):
    until r46 neither its export (the records left out, "holds no part") nor the next pull (all read again,
    published beside it, the old folder left) found it. Found by its digest, read, and renamed at the pull."""
    from tests.portals.dcat import DataJsonPortal
    from tests.portals.synth import make_data_json

    keyed = "https://data.city.example/api/views/parks?token={key}&id=7"
    with DataJsonPortal(make_data_json(1)) as portal:
        config, db, [uid] = keyed_portal_pulled(tmp_path, portal, ("k-one",), keyed)
        run("records", uid, "--config", config, "--db", db)
        with duckdb.connect(db) as con:
            [(path,)] = con.execute("SELECT path FROM record_pulls").fetchall()
            # as another civicat's rules named it: the id redacted otherwise ('id' too), the same digest
            otherwise = f"portal=city/dataset={safe_segment(keyed.format(key='REDACTED').replace('id=7', 'id=REDACTED'))}"
            otherwise += "~" + path.rpartition("~")[2]
            con.execute("UPDATE record_pulls SET path = ?", [otherwise])
        os.rename(tmp_path / "records" / path, tmp_path / "records" / otherwise)
        exported = CliRunner().invoke(cli, ["export", "--db", db, "--out", str(tmp_path / "out")])
        assert exported.exit_code == 0, exported.output
        manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
        assert manifest["records"] == {"datasets": 1, "rows": 1}, exported.output   # (k46: 0, "holds no part")
        result = CliRunner().invoke(cli, ["records", uid, "--config", config, "--db", db], env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.output
    assert "k-one" not in caplog.text and "k-one" not in result.output
    assert sorted(p.name for p in (tmp_path / "records" / "portal=city").iterdir()) == [path.partition("/")[2]]
    with duckdb.connect(db, read_only=True) as con:
        assert con.execute("SELECT DISTINCT path FROM record_pulls").fetchall() == [(path,)]
    assert (tmp_path / "records" / path / "part-00000.parquet").is_file()


def test_a_message_printed_redacts_a_key_whose_equals_sign_is_escaped():
    """(u43's printed messages beside x43's escapes.) A message was passed by at once when it held no '=' and no
    '@': a key after an escaped one (`?token%3Dabc`, a link nested in another's path as a form escapes it) was
    printed as it is, where the exports give it REDACTED."""
    import duckdb

    from harvester.cli import ShownUids

    with duckdb.connect() as con:
        con.execute("CREATE TABLE datasets (uid VARCHAR, portal_id VARCHAR, source_id VARCHAR, first_seen TIMESTAMP)")
        shown = ShownUids(con)
    assert shown.text("pull failed: https://x.org/a?token%3Dabc") == "pull failed: https://x.org/a?token%3DREDACTED"
    assert shown.text("see https://x.org/go/https%3A%2F%2Fy.org%2Ff%3Fapi_key%3Dabc") == \
        "see https://x.org/go/https%3A%2F%2Fy.org%2Ff%3Fapi_key%3DREDACTED"


def test_the_uids_a_message_names_are_found_in_one_pass_the_longest_where_one_begins_another():
    """ShownUids.text read a message once a uid holding a key (until session 44: 100 uids x 10,000 messages of
    `runs --errors --json` 0.44 s of CPU, 1,000 uids 1.9 s; now 0.20 / 0.29 s, most of it the links' own check)."""
    from catalog.links import WordsReplaced
    from harvester.cli import ShownUids

    uids = {"p:x?token=a": "p:x?token=REDACTED", "p:x?token=ab": "p:x?token=REDACTED#2",
            "p:x?token=a&b=1": "p:x?token=REDACTED&b=1", "q:(y)?key=k.*": "q:(y)?key=REDACTED"}
    assert WordsReplaced(uids).replaced("p:x?token=ab; p:x?token=a&b=1 p:x?token=a q:(y)?key=k.* q:(y)?key=kk") == (
        "p:x?token=REDACTED#2; p:x?token=REDACTED&b=1 p:x?token=REDACTED q:(y)?key=REDACTED q:(y)?key=kk")
    shown = ShownUids.__new__(ShownUids)
    shown.shown, shown._named = uids, None
    assert shown.text("no dataset p:x?token=ab, nor p:x?token=a: it was removed") == (
        "no dataset p:x?token=REDACTED#2, nor p:x?token=REDACTED: it was removed")
    long = {"a:" + "a" * 5000: "one", "a:" + "a" * 4999 + "b": "two"}
    assert WordsReplaced(long).replaced(f"a:{'a' * 4999}b a:{'a' * 5000}") == "two one"


def test_the_uids_of_a_portal_whose_identifiers_each_hold_the_one_before_are_printed_redacted():
    """(r44) A portal's 600 identifiers, each the one before and a parameter more, each holding its key: the
    pattern of the uids nested a group at each, and building it (Python's recursion) and compiling it raised
    RecursionError past some 330: every command printing a message that may name a uid (`runs --errors`,
    `records`) failed with a traceback."""
    from harvester.cli import ShownUids

    ids = ["https://x.org/d?token=k" + "".join(f"&p{i}=1" for i in range(depth)) for depth in range(600)]
    with duckdb.connect() as con:
        con.execute("CREATE TABLE datasets AS SELECT 'p' AS portal_id, s AS source_id, 'p:' || s AS uid, "
                    "now() - to_days(CAST(ord AS INTEGER)) AS first_seen FROM unnest(?) WITH ORDINALITY AS t(s, ord)",
                    [ids])
        shown = ShownUids(con)
    assert len(shown.shown) == 600
    assert shown.text(f"no records of p:{ids[-1]}: HTTP 404") == f"no records of {shown(f'p:{ids[-1]}')}: HTTP 404"
    assert shown.text(f"p:{ids[0]} and p:{ids[1]}") == f"{shown(f'p:{ids[0]}')} and {shown(f'p:{ids[1]}')}"
    assert not [uid for uid in ids if "token=k" in shown.text(f"see p:{uid}")]


def test_a_message_printed_redacts_a_key_in_a_fragment_or_escaped_twice_and_keeps_a_printed_uids_number():
    """Session 44: a key in a link's fragment (`#access_token=`) or escaped twice (`%253D`) was printed in a
    message (a failure quoting a link, a log line) as published. And a uid printed `…#access_token=REDACTED#2`
    (two identifiers that differ in their fragment's key) keeps its `#2` when the message is read again."""
    import duckdb

    from harvester.cli import PlainLogFormatter, ShownUids

    ids = ["https://x.org/parks#access_token=k-one", "https://x.org/parks#access_token=k-two"]
    with duckdb.connect() as con:
        con.execute("CREATE TABLE datasets AS SELECT 'p' AS portal_id, s AS source_id, 'p:' || s AS uid, "
                    "now() - to_days(CAST(ord AS INTEGER)) AS first_seen FROM unnest(?) WITH ORDINALITY AS t(s, ord)",
                    [ids[::-1]])
        shown = ShownUids(con)
    assert shown.text(f"no records of p:{ids[1]}: HTTP 404") == \
        "no records of p:https://x.org/parks#access_token=REDACTED#2: HTTP 404"
    assert shown.text("pull failed: https://x.org/app#/view?access_token=k-one") == \
        "pull failed: https://x.org/app#/view?access_token=REDACTED"
    assert shown.text("see https://x.org/a?next=%252Ff%253Ftoken%253Dk-one") == \
        "see https://x.org/a?next=%252Ff%253Ftoken%253DREDACTED"
    import logging

    line = PlainLogFormatter("%(message)s").format(logging.makeLogRecord(
        {"msg": "fetch https://x.org/d.csv#token=%s&sig=%s failed", "args": ("k-one", "k-two")}))
    assert line == "fetch https://x.org/d.csv#token=REDACTED&sig=REDACTED failed"


def test_overlap_similar_and_search_print_a_key_in_a_source_ids_fragment_redacted(tmp_path):
    """Session 44: a source id holding its key in its fragment (`#access_token=`, `#/view?api_key=`) was printed
    by `overlap`, `overlap --group N`, `similar` and `search` as published; `similar` took no uid as printed."""
    keyed = "https://data.springfield.example/parks#access_token="
    path = tmp_path / "catalog.duckdb"
    store = Store(path)
    try:
        add_dataset(store.con, f"springfield:{keyed}k-one", "Springfield", "Budget appropriations", BUDGET, 3)
        add_dataset(store.con, f"springfield:{keyed}k-two", "Springfield", "Crime reports", CRIME, 2)
        add_dataset(store.con, "shelbyville:https://data.shelbyville.example/c#/view?api_key=k-three", "Shelbyville",
                    "Crime reports", CRIME, 1)
        search.refresh(store.con)
    finally:
        store.close()
    db = str(path)
    crime = f"springfield:{keyed}REDACTED#2"
    shelbyville = "shelbyville:https://data.shelbyville.example/c#/view?api_key=REDACTED"
    [group] = json.loads(run("overlap", "--db", db, "--json"))["groups"]
    assert sorted(m["uid"] for m in group["members"]) == [shelbyville, crime]
    assert sorted(m["uid"] for m in json.loads(run("overlap", "--db", db, "--group", str(group["group_id"]),
                                                   "--json"))["members"]) == [shelbyville, crime]
    assert [f["uid"] for f in json.loads(run("similar", crime, "--db", db, "--json"))][:1] == [shelbyville]
    assert sorted(h["uid"] for h in json.loads(run("search", "crime reports", "--db", db, "--json"))) == [
        shelbyville, crime]


# a title and a keyword pasting a link with a key (a data.json's text, as a description pastes one): until session 45
# never read for links, exported in datasets.parquet and data.json, and printed by search, overlap and similar, as
# published, with no SecretInLink warning
KEYED_TITLE = "Park permits (rows: https://data.city.example/parks.csv?api_key=k-one)"
KEYED_KEYWORD = "https://data.city.example/api?token=k-two"


def test_a_key_in_a_title_or_a_keyword_is_warned_of_exported_redacted_and_printed_redacted(tmp_path):
    """Over HTTP on 127.0.0.1: harvest, `runs --errors`, both exports, then search, overlap, similar."""
    from tests.portals.dcat import DataJsonPortal
    from tests.portals.synth import make_data_json

    document = make_data_json(2)
    document["dataset"][0].update(title=KEYED_TITLE, keyword=["parks", KEYED_KEYWORD])
    document["dataset"][1].update(title="Budget", keyword=["budget"])
    town = make_data_json(1, seed=3)
    town["dataset"][0].update(title="Park permits", keyword=["parks"])
    with DataJsonPortal(document) as portal, DataJsonPortal(town) as other:
        config = tmp_path / "c.toml"
        config.write_text(f'[[portals]]\nid = "city"\ncity = "City"\nkind = "dcat-us"\nurl = "{portal.url}/data.json"\n'
                          f'[[portals]]\nid = "town"\ncity = "Town"\nkind = "dcat-us"\nurl = "{other.url}/data.json"\n')
        db = str(tmp_path / "c.duckdb")
        harvested = CliRunner().invoke(cli, ["harvest", "--config", str(config), "--db", db])
        assert harvested.exit_code == 0, harvested.output
    errors = json.loads(run("runs", "--errors", "--json", "--db", db))["errors"]
    warned = sorted(e["message"].partition(":")[0] for e in errors if e["error_type"] == "SecretInLink")
    assert warned == ["keywords[1]", "title"], errors
    out = tmp_path / "out"
    run("export", "--out", str(out), "--format", "parquet,data.json", "--db", db, "--config", str(config))
    with duckdb.connect() as con:
        title, keywords = con.execute("SELECT title, keywords FROM read_parquet(?) WHERE title LIKE '%api_key%'",
                                      [str(out / "datasets.parquet")]).fetchone()
    assert title == KEYED_TITLE.replace("k-one", "REDACTED") and keywords == [
        "parks", KEYED_KEYWORD.replace("k-two", "REDACTED")]
    published = (out / "data.json").read_text()
    assert not any(key in published for key in KEYS) and KEYED_TITLE.replace("k-one", "REDACTED") in published
    with duckdb.connect(db, read_only=True) as con:   # (the catalogue keeps them as published)
        assert con.execute("SELECT count(*) FROM datasets WHERE title = ?", [KEYED_TITLE]).fetchone() == (1,)
    # (run() asserts no key in stdout or stderr)
    hits = json.loads(run("search", "park permits", "--db", db, "--json"))
    assert KEYED_TITLE.replace("k-one", "REDACTED") in [h["title"] for h in hits]
    assert "api_key=REDACTED" in run("search", "park permits", "--db", db)
    [uid] = [h["uid"] for h in hits if "api_key" in h["title"]]
    assert "api_key=REDACTED" in run("similar", uid, "--db", db)
    json.loads(run("similar", uid, "--db", db, "--json"))
    [group] = json.loads(run("overlap", "--db", db, "--json", "--pairs", "--min-score", "0.1"))["groups"]
    assert KEYED_TITLE.replace("k-one", "REDACTED") in [m["title"] for m in group["members"]]
    assert "api_key=REDACTED" in run("overlap", "--db", db, "--pairs", "--min-score", "0.1")
    assert "api_key=REDACTED" in run("overlap", "--group", str(group["group_id"]), "--db", db, "--pairs")


# a link with a key in each other text of a data.json dataset an export publishes (a theme, the publisher, the
# contact's name and email, the spatial text, a distribution's title, format and media type): until f45 (session
# 45, k45 merged) never read for links, exported in datasets.parquet, distributions.parquet and data.json, and
# printed by `search --json` (themes), as published, with no SecretInLink warning
KEYED_TEXTS = {"themes[1]": "https://data.city.example/themes?token=k-four",
               "publisher": "Parks (https://data.city.example/org?api_key=k-five)",
               "contact_name": "Parks desk https://data.city.example/desk?token=k-six",
               "contact_email": "parks@city.example?token=k-seven",
               "spatial": "https://geo.city.example/wards?key=k-eight",
               "distributions[0].title": "Rows (https://data.city.example/p.csv?api_key=k-nine)",
               "distributions[0].format": "CSV https://data.city.example/f?sig=k-ten",
               "distributions[0].media_type": "text/csv;https://data.city.example/m?token=k-eleven"}
TEXT_KEYS = tuple(text.rpartition("=")[2].rstrip(")") for text in KEYED_TEXTS.values())


def test_a_key_in_a_theme_publisher_contact_spatial_or_distribution_text_is_warned_of_and_exported_redacted(
        tmp_path, monkeypatch):
    """Over HTTP on 127.0.0.1: harvest, `runs --errors`, both exports, `search --json`: each text's key warned of
    (SecretInLink, by its field), and in no export or printed line; the catalogue keeps them as published."""
    from tests.portals.dcat import DataJsonPortal
    from tests.portals.synth import make_data_json

    monkeypatch.setattr(f"{__name__}.KEYS", KEYS + TEXT_KEYS)   # (run() asserts none printed)
    t = KEYED_TEXTS
    document = make_data_json(1)
    document["dataset"][0].update(
        title="Park permits", keyword=["parks"], theme=["Recreation", t["themes[1]"]], spatial=t["spatial"],
        publisher={"@type": "org:Organization", "name": t["publisher"]},
        contactPoint={"@type": "vcard:Contact", "fn": t["contact_name"], "hasEmail": f"mailto:{t['contact_email']}"},
        distribution=[{"@type": "dcat:Distribution", "title": t["distributions[0].title"],
                       "format": t["distributions[0].format"], "mediaType": t["distributions[0].media_type"],
                       "downloadURL": "https://data.city.example/p.csv"}])
    with DataJsonPortal(document) as portal:
        config = tmp_path / "c.toml"
        config.write_text(f'[[portals]]\nid = "city"\ncity = "City"\nkind = "dcat-us"\nurl = "{portal.url}/data.json"\n'
                          'contact_email = "open@city.example"\n')
        db = str(tmp_path / "c.duckdb")
        harvested = CliRunner().invoke(cli, ["harvest", "--config", str(config), "--db", db])
        assert harvested.exit_code == 0, harvested.output
    with duckdb.connect(db, read_only=True) as con:   # (the catalogue keeps them as published)
        kept = con.execute("SELECT themes[2], publisher, contact_name, contact_email, spatial FROM datasets").fetchone()
        assert kept == tuple(t[f] for f in ("themes[1]", "publisher", "contact_name", "contact_email", "spatial"))
    errors = json.loads(run("runs", "--errors", "--json", "--db", db))["errors"]
    warned = sorted(e["message"].partition(":")[0] for e in errors if e["error_type"] == "SecretInLink")
    assert warned == sorted(KEYED_TEXTS), errors
    out = tmp_path / "out"
    run("export", "--out", str(out), "--format", "parquet,data.json", "--db", db, "--config", str(config))
    exported = {name: (out / name).read_bytes() for name in ("datasets.parquet", "distributions.parquet", "data.json")}
    assert not [(name, key) for name, data in exported.items() for key in TEXT_KEYS if key.encode() in data]
    with duckdb.connect() as con:
        themes, publisher = con.execute("SELECT themes, publisher FROM read_parquet(?)",
                                        [str(out / "datasets.parquet")]).fetchone()
        title = con.execute("SELECT title FROM read_parquet(?)", [str(out / "distributions.parquet")]).fetchone()[0]
    assert (themes, publisher, title) == (["Recreation", t["themes[1]"].replace("k-four", "REDACTED")],
                                          t["publisher"].replace("k-five", "REDACTED"),
                                          t["distributions[0].title"].replace("k-nine", "REDACTED"))
    [entry] = json.loads(exported["data.json"])["dataset"]
    assert entry["contactPoint"]["hasEmail"] == "mailto:open@city.example"   # (the portal's, redacted, no email)
    assert "https://data.city.example/themes?token=REDACTED" in entry["theme"]
    [hit] = json.loads(run("search", "park permits", "--db", db, "--json"))
    assert hit["themes"] == ["Recreation", t["themes[1]"].replace("k-four", "REDACTED")]


def test_an_overlap_explanation_naming_a_dataset_whose_source_id_holds_a_key_names_it_as_printed(tmp_path):
    """An explanation names a dataset by its uid where one side is what the other is not ("but p:… is a boundary
    file", "… is a list of codes", "but only p:… names …"): until session 46 the catalogue's uid, key and all,
    printed by `overlap --pairs`, `--json`, `--group N` and `similar`, and exported in overlap_pairs.parquet. The
    catalogue keeps it as made; each printed and exported names the uid as printed (REDACTED, `#2`)."""
    import pyarrow.parquet as pq

    keyed = "https://data.springfield.example/api/views?id=7&token=k-secret"
    path = str(tmp_path / "c.duckdb")
    store = Store(path)
    try:
        add_dataset(store.con, f"springfield:{keyed}1", "Springfield", "Budget", BUDGET, 3)
        add_dataset(store.con, f"springfield:{keyed}2", "Springfield", "Crime Incident Districts", CRIME, 2)
        add_dataset(store.con, "shelbyville:crimes", "Shelbyville", "Crime Incidents", CRIME, 3)
        search.refresh(store.con)
    finally:
        store.close()
    districts = "springfield:https://data.springfield.example/api/views?id=7&token=REDACTED#2"
    said = f"but {districts} is a boundary file, the other holds records"

    def shown(*args: str) -> str:
        result = CliRunner().invoke(cli, [*args, "--db", path], env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.output
        assert "k-secret" not in result.output, result.output
        return " ".join(result.output.split())

    assert said in shown("overlap", "--pairs")
    overlap = json.loads(shown("overlap", "--json", "--pairs"))
    [group] = overlap["groups"]
    assert group["why"]["explanation"].endswith(said) and overlap["pairs"][0]["explanation"].endswith(said)
    assert said in shown("overlap", "--group", str(group["group_id"]), "--pairs")
    assert said in shown("similar", "shelbyville:crimes")
    with duckdb.connect(path, read_only=True) as con:   # (the catalogue's own: as made)
        assert con.execute("SELECT count(*) FROM overlap_pairs WHERE contains(explanation, 'k-secret2')").fetchone()[0]
    shown("export", "--out", str(tmp_path / "out"))
    explanations = pq.read_table(tmp_path / "out" / "overlap_pairs.parquet").column("explanation").to_pylist()
    assert [e.endswith(said) for e in explanations] == [True]
