// Every Parquet file of a civicat export as front ends read it from JavaScript
// (tests/catalog/test_export_readers.py runs it; docs/export.md "Reading from JavaScript").
// node read_export.mjs EXPORT EXPECTED.json: EXPECTED gives, per manifest path, the rows and
// each column's first and last non-null values as pyarrow reads them (timestamps as UTC
// ISO 8601 to the millisecond, integers as decimal text, lists as arrays). Prints JSON:
// {"files": {path: {reader: {"problems": [...], "types": {column: JS type}}}}, "alone": {...}}.
// Readers: hyparquet (+ hyparquet-compressors), parquet-wasm + apache-arrow, and
// @duckdb/node-api when installed beside them.
import crypto from 'node:crypto';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(import.meta.url);
const { parquetReadObjects, asyncBufferFromFile } = await import('hyparquet');
const { compressors } = await import('hyparquet-compressors');
const wasm = require('parquet-wasm/node');
const { tableFromIPC } = await import('apache-arrow');
let duckdb = null;
try { duckdb = await import('@duckdb/node-api'); } catch { /* optional: a large package */ }

const root = fs.realpathSync(process.argv[2]);
const expected = JSON.parse(fs.readFileSync(process.argv[3], 'utf8'));
const manifest = JSON.parse(fs.readFileSync(path.join(root, 'manifest.json'), 'utf8'));

function typeOf(value) {
  if (value instanceof Date) return 'Date';
  if (Array.isArray(value)) return 'Array';
  if (value && typeof value.toArray === 'function') return 'Vector';
  return typeof value;
}

// a value as pyarrow's side writes it (EXPECTED), given the Arrow type pyarrow names
function canonical(value, type) {
  if (value === null || value === undefined) return null;
  if (typeof value.toArray === 'function') value = Array.from(value.toArray());
  if (Array.isArray(value)) return value.map(v => canonical(v, 'string'));
  if (/^(timestamp|date32)/.test(type) && typeof value === 'number') value = new Date(value);   // (Arrow: ms)
  if (value instanceof Date) return type.startsWith('date32') ? value.toISOString().slice(0, 10) : value.toISOString();
  if (typeof value === 'bigint') return value.toString();
  if (typeof value === 'number' && type.startsWith('int')) return String(value);
  return value;
}

function compare(file, rows) {
  const want = expected[file];
  const problems = [];
  const types = {};
  if (rows.length !== want.rows) problems.push(`${rows.length} rows, not ${want.rows}`);
  for (const [name, column] of Object.entries(want.columns)) {
    const present = rows.map(row => row[name]).filter(v => v !== null && v !== undefined
      && !((Array.isArray(v) || typeof v?.toArray === 'function') && v.length === 0));
    types[name] = present.length ? typeOf(present[0]) : null;
    if (present.length !== column.present) problems.push(`${name}: ${present.length} values, not ${column.present}`);
    for (const [which, value] of [['first', present[0]], ['last', present[present.length - 1]]]) {
      const got = JSON.stringify(present.length ? canonical(value, column.type) : null);
      if (got !== JSON.stringify(column[which])) problems.push(`${name}: ${which} ${got}, not ${JSON.stringify(column[which])}`);
    }
  }
  return { problems, types };
}

async function attempt(read) {
  try { return await read(); } catch (error) { return { problems: [`fails: ${error.message}`], types: {} }; }
}

const connection = duckdb && await (await duckdb.DuckDBInstance.create(':memory:')).connect();
const files = {};
const alone = {};
for (const entry of manifest.files) {
  const file = path.join(root, entry.path);
  const bytes = fs.readFileSync(file);
  const readers = files[entry.path] = {};
  readers.sha256 = { problems: crypto.createHash('sha256').update(bytes).digest('hex') === entry.sha256 ? [] : ['sha256 differs'], types: {} };
  // what `npm install hyparquet` alone reads: Snappy and uncompressed, no other codec
  alone[entry.path] = await attempt(async () => ({ problems: [], types: {},
    rows: (await parquetReadObjects({ file: await asyncBufferFromFile(file) })).length }));
  readers.hyparquet = await attempt(async () => compare(entry.path,
    await parquetReadObjects({ file: await asyncBufferFromFile(file), compressors })));
  readers['parquet-wasm'] = await attempt(async () => {
    const table = tableFromIPC(wasm.readParquet(new Uint8Array(bytes)).intoIPCStream());
    return compare(entry.path, table.toArray().map(row => row.toJSON()));
  });
  if (connection) {
    readers.duckdb = await attempt(async () => {
      const reader = await connection.runAndReadAll(`SELECT * FROM read_parquet('${file.replaceAll("'", "''")}')`);
      return compare(entry.path, reader.getRowObjectsJS());
    });
  }
}
let hive = null;
if (connection && manifest.records.datasets) {
  const glob = path.join(root, 'records', '*', '*', '*.parquet').replaceAll("'", "''");
  const reader = await connection.runAndReadAll(`SELECT portal, dataset, count(*)::INTEGER AS n FROM read_parquet('${glob}', `
    + "hive_partitioning = true, union_by_name = true) GROUP BY ALL ORDER BY ALL");
  hive = reader.getRowObjectsJS();
}
console.log(JSON.stringify({ files, alone, hive, duckdb: Boolean(connection) }));
