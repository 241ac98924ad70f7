"""Rows replaced by a computation's new ones, each keeping the time of the computation that gave it its values.

`civicat overlap` and a records pull compute their tables again every night; a result that did not change
keeps its stamp (`computed_at`, `profiled_at`), so the catalogue and the export say since when each result
stands, and two nights that changed nothing give the same bytes (a front end caching the export's files by
their sha256, a sync by hash, fetches again only what changed: docs/export.md "Night to night")."""
from __future__ import annotations


def replace_keeping_stamps(con, table: str, new: str, key: tuple[str, ...], stamp: str, now, *,
                           where: str = "true", parameters: list | tuple = ()) -> None:
    """Replace the rows of `table` that `where` selects (with `parameters`) by those of `new` (a
    relation registered on `con`: `table`'s columns but `stamp`), in the caller's transaction. A row
    of `new` equal in every column to the row of `table` with its `key` keeps that row, and its
    `stamp`; every other one is written with `now`. The names are civicat's own, never a portal's."""
    values = [name for (name,) in con.execute(f"SELECT column_name FROM (DESCRIBE {new})").fetchall()
              if name not in key]
    same_key = " AND ".join(f"n.{name} = t.{name}" for name in key)
    same_values = " AND ".join(f"n.{name} IS NOT DISTINCT FROM t.{name}" for name in values) or "true"
    con.execute(f"DELETE FROM {table} t WHERE ({where}) AND NOT EXISTS "
                f"(SELECT 1 FROM {new} n WHERE {same_key} AND {same_values})", list(parameters))
    con.execute(f"INSERT INTO {table} BY NAME SELECT n.*, ?::TIMESTAMPTZ AS {stamp} FROM {new} n "
                f"WHERE NOT EXISTS (SELECT 1 FROM {table} t WHERE {same_key})", [now])
