// graphdb.mjs drives LadybugDB (@ladybugdb/core, pinned in package.json) for
// the strata end-to-end test in ladybug_test.go.
//
//   node graphdb.mjs load   DBDIR          create the schema and a deterministic graph
//   node graphdb.mjs export DBDIR OUTDIR   EXPORT DATABASE (OUTDIR must not exist)
//   node graphdb.mjs import DBDIR INDIR    IMPORT DATABASE into a fresh, empty DBDIR
//   node graphdb.mjs digest DBDIR          print per-table schema, row count and an
//                                          order-independent sha256 as JSON
//   node graphdb.mjs jsonl  DBDIR OUTFILE  dump the graph as APOC JSON Lines
//   node graphdb.mjs version               print the LadybugDB library version
//
// DBDIR is a directory; the database lives in DBDIR/graph.lbug (LadybugDB
// keeps a database in a single file plus a .wal next to it).
//
// Values are read type-driven so nothing goes through a lossy path: the Node
// binding returns INT64 as a JS number (wrong beyond 2^53), so integers are
// read with CAST(x AS STRING); CAST(DOUBLE AS STRING) prints only six
// decimals, so doubles are read as JS numbers (exact float64).

import lbug from "@ladybugdb/core";
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";

const DB_FILE = "graph.lbug";

// ---------------------------------------------------------------- database

async function open(dir, { create = false, readOnly = false } = {}) {
  const file = path.join(dir, DB_FILE);
  if (create) {
    fs.mkdirSync(dir, { recursive: true });
    if (fs.existsSync(file)) throw new Error(`${file} already exists; want a fresh database`);
  } else if (!fs.existsSync(file)) {
    throw new Error(`no database at ${file}`);
  }
  // 256 MiB buffer pool instead of the default share of RAM.
  const db = new lbug.Database(file, 256 << 20, true, readOnly);
  const conn = new lbug.Connection(db);
  await conn.init();
  return { db, conn };
}

async function close({ db, conn }) {
  await conn.close();
  await db.close();
}

async function query(conn, statement) {
  let res;
  try {
    res = await conn.query(statement);
  } catch (e) {
    throw new Error(`${e.message}\n  in: ${statement}`);
  }
  const list = Array.isArray(res) ? res : [res];
  const rows = [];
  for (const r of list) {
    rows.push(...(await r.getAll()));
    r.close();
  }
  return rows;
}

async function execute(conn, statement, params) {
  const ps = await conn.prepare(statement);
  if (!ps.isSuccess()) throw new Error(`${statement}: ${ps.getErrorMessage()}`);
  let res;
  try {
    res = await conn.execute(ps, params);
  } catch (e) {
    throw new Error(`${e.message}\n  in: ${statement}`);
  }
  const list = Array.isArray(res) ? res : [res];
  for (const r of list) r.close();
}

function quoteIdent(name) {
  return "`" + name.replaceAll("`", "``") + "`";
}

function quotePath(p) {
  const abs = path.resolve(p);
  if (abs.includes("'") || abs.includes("\\")) throw new Error(`unsupported path ${abs}`);
  return `'${abs}'`;
}

// ---------------------------------------------------------------- load

// mulberry32: a small deterministic PRNG, so every run builds the same graph.
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const PERSONS = 3000;
const CITIES = 300;
const COMPANIES = 200;
const KNOWS_PER_PERSON = 2; // plus a few deliberate parallel edges

const FIRST = ["Ada", "Zoë", "José", "Łukasz", "李雷", "Дмитрий", "محمد", "Åsa", "Nguyễn", "O'Brien",
  "\"Quoted\"", "comma, inside", "tab\there", "new\nline", "back\\slash", "🐞 Ladybug", "naïve café", "ß"];
const LAST = ["Lovelace", "Müller", "García", "Kowalski", "王", "Иванов", "", "Ørsted", "Smith 🌍", "[bracket]", "{brace}"];
const TAGS = ["graph", "db", "ünïcödé", "emoji 🎉", "with,comma", "with \"quote\"", "[x]", "", "null", "a'b"];
const COUNTRIES = ["CH", "DE", "FR", "JP", "BR", "ZA", "IN", "ÜBERLAND"];

const SCHEMA = [
  `CREATE NODE TABLE Person(id INT64 PRIMARY KEY, name STRING, score DOUBLE, active BOOL,
     tags STRING[], big INT64, born DATE, nums INT64[])`,
  `CREATE NODE TABLE City(code STRING PRIMARY KEY, name STRING, population INT64, lat DOUBLE,
     info STRUCT(country STRING, capital BOOL, rank INT64))`,
  `CREATE NODE TABLE Company(id INT64 PRIMARY KEY, name STRING, founded INT64, revenue DOUBLE, public BOOL)`,
  `CREATE REL TABLE KNOWS(FROM Person TO Person, since INT64, weight DOUBLE, note STRING)`,
  `CREATE REL TABLE LOCATED(FROM Person TO City, FROM Company TO City, since DATE, \`primary\` BOOL, floor INT64)`,
];

// Doubles go in as strings and are CAST in Cypher: the binding infers a JS
// number's type per value (integral → INT64, else DOUBLE) and refuses a list
// of rows that mixes them.
function dbl(x) {
  return x === null ? null : String(x);
}

function personRows(rnd) {
  const rows = [];
  const specialBig = ["9223372036854775807", "-9223372036854775808", "9007199254740993", "-9007199254740993", "0"];
  for (let id = 1; id <= PERSONS; id++) {
    const name = `${FIRST[Math.floor(rnd() * FIRST.length)]} ${LAST[Math.floor(rnd() * LAST.length)]} #${id}`;
    let tags;
    const tk = rnd();
    if (tk < 0.1) tags = null;
    else if (tk < 0.2) tags = [];
    else {
      tags = [];
      const n = 1 + Math.floor(rnd() * 4);
      for (let i = 0; i < n; i++) tags.push(rnd() < 0.05 ? null : TAGS[Math.floor(rnd() * TAGS.length)]);
    }
    let nums;
    const nk = rnd();
    if (nk < 0.1) nums = null;
    else if (nk < 0.2) nums = [];
    else {
      nums = [];
      const n = 1 + Math.floor(rnd() * 5);
      for (let i = 0; i < n; i++) nums.push(Math.floor(rnd() * 2000) - 1000);
    }
    const big = id <= specialBig.length ? specialBig[id - 1]
      : (BigInt(Math.floor(rnd() * 2 ** 31)) * 4294967311n + BigInt(id) - 2n ** 62n).toString();
    const y = 1900 + Math.floor(rnd() * 120), m = 1 + Math.floor(rnd() * 12), d = 1 + Math.floor(rnd() * 28);
    rows.push({
      id,
      name: id % 97 === 0 ? null : name,
      score: id % 31 === 0 ? null : dbl(id % 7 === 0 ? Math.floor(rnd() * 100) : (rnd() - 0.5) * 10 ** Math.floor(rnd() * 12 - 4)),
      active: id % 13 === 0 ? null : rnd() < 0.5,
      tags,
      big: id % 53 === 0 ? null : big,
      born: id % 41 === 0 ? null : `${y}-${String(m).padStart(2, "0")}-${String(d).padStart(2, "0")}`,
      nums,
    });
  }
  return rows;
}

function cityCode(i) {
  return i % 50 === 0 ? `Zürich-${i}` : `C${String(i).padStart(4, "0")}`;
}

function cityRows(rnd) {
  const rows = [];
  for (let i = 1; i <= CITIES; i++) {
    rows.push({
      code: cityCode(i),
      name: i % 17 === 0 ? null : `City ${i} ${["São Paulo", "Kraków", "東京", "Αθήνα", "Reykjavík"][i % 5]}`,
      population: i % 23 === 0 ? null : Math.floor(rnd() * 20_000_000),
      lat: dbl(i % 19 === 0 ? null : rnd() * 180 - 90),
      hasInfo: i % 11 !== 0,
      country: COUNTRIES[i % COUNTRIES.length],
      capital: i % 7 === 0,
      rank: i,
    });
  }
  return rows;
}

function companyRows(rnd) {
  const rows = [];
  for (let i = 1; i <= COMPANIES; i++) {
    rows.push({
      id: 100000 + i,
      name: `Firma ${i} ${["GmbH", "AG", "株式会社", "S.A.", "Ltd 🏢"][i % 5]}`,
      founded: i % 9 === 0 ? null : 1800 + Math.floor(rnd() * 220),
      revenue: dbl(i % 8 === 0 ? null : rnd() * 1e9),
      public: i % 3 === 0 ? null : i % 2 === 0,
    });
  }
  return rows;
}

function knowsRows(rnd) {
  const rows = [];
  for (let s = 1; s <= PERSONS; s++) {
    for (let k = 0; k < KNOWS_PER_PERSON; k++) {
      const d = 1 + Math.floor(rnd() * PERSONS); // self loops allowed
      rows.push({ s, d, since: 1950 + Math.floor(rnd() * 75), weight: dbl(rnd()), note: rnd() < 0.3 ? null : `met ${k} ☕` });
    }
    if (s % 100 === 0) { // parallel edges, one an exact duplicate
      const d = s === PERSONS ? 1 : s + 1;
      rows.push({ s, d, since: 2000, weight: dbl(0.5), note: "dup" });
      rows.push({ s, d, since: 2000, weight: dbl(0.5), note: "dup" });
    }
  }
  return rows;
}

function locatedRows(rnd, from) {
  const rows = [];
  const date = () => `${2000 + Math.floor(rnd() * 25)}-0${1 + Math.floor(rnd() * 9)}-1${Math.floor(rnd() * 9)}`;
  if (from === "Person") {
    for (let p = 1; p <= PERSONS; p++) {
      if (p % 10 === 0) continue; // some people live nowhere
      rows.push({ s: p, d: cityCode(1 + Math.floor(rnd() * CITIES)), since: p % 29 === 0 ? null : date(), prim: true, floor: p % 4 === 0 ? null : Math.floor(rnd() * 40) });
      if (p % 5 === 0) rows.push({ s: p, d: cityCode(1 + Math.floor(rnd() * CITIES)), since: date(), prim: false, floor: -1 });
    }
  } else {
    for (let c = 1; c <= COMPANIES; c++) {
      rows.push({ s: 100000 + c, d: cityCode(1 + Math.floor(rnd() * CITIES)), since: date(), prim: c % 2 === 0, floor: null });
    }
  }
  return rows;
}

async function batched(conn, statement, rows, size = 1000) {
  for (let i = 0; i < rows.length; i += size) {
    await execute(conn, statement, { rows: rows.slice(i, i + size) });
  }
}

async function load(dir) {
  const h = await open(dir, { create: true });
  const { conn } = h;
  const rnd = prng(20240229);
  for (const s of SCHEMA) await query(conn, s);

  // A row field that is null in every row of a batch binds as STRING, so a
  // field that can be null throughout a batch is CAST to its column type.
  // Lists are passed as JS arrays, never CAST from strings: with CAST(s AS
  // T[]) an empty list that follows a non-empty one in the same UNWIND batch
  // is stored as the previous row's list (LadybugDB 0.19.1).
  await batched(conn, `UNWIND $rows AS r CREATE (:Person {id: r.id, name: r.name,
      score: CAST(r.score AS DOUBLE), active: r.active, tags: r.tags,
      big: CAST(r.big AS INT64), born: CAST(r.born AS DATE), nums: r.nums})`, personRows(rnd));
  // CASE WHEN ... THEN {struct} ELSE NULL END fails with "bad_function_call"
  // (LadybugDB 0.19.1): cities without info go in without the property.
  const cities = cityRows(rnd);
  await batched(conn, `UNWIND $rows AS r CREATE (:City {code: r.code, name: r.name,
      population: r.population, lat: CAST(r.lat AS DOUBLE),
      info: {country: r.country, capital: r.capital, rank: r.rank}})`, cities.filter((c) => c.hasInfo));
  await batched(conn, `UNWIND $rows AS r CREATE (:City {code: r.code, name: r.name,
      population: r.population, lat: CAST(r.lat AS DOUBLE)})`, cities.filter((c) => !c.hasInfo));
  await batched(conn, `UNWIND $rows AS r CREATE (:Company {id: r.id, name: r.name, founded: r.founded,
      revenue: CAST(r.revenue AS DOUBLE), public: r.public})`, companyRows(rnd));
  await batched(conn, `UNWIND $rows AS r MATCH (a:Person {id: r.s}), (b:Person {id: r.d})
      CREATE (a)-[:KNOWS {since: r.since, weight: CAST(r.weight AS DOUBLE), note: r.note}]->(b)`, knowsRows(rnd));
  for (const from of ["Person", "Company"]) {
    await batched(conn, `UNWIND $rows AS r MATCH (a:${from} {id: r.s}), (b:City {code: r.d})
        CREATE (a)-[:LOCATED {since: CAST(r.since AS DATE), \`primary\`: r.prim, floor: CAST(r.floor AS INT64)}]->(b)`, locatedRows(rnd, from));
  }
  await query(conn, "CHECKPOINT");
  await close(h);
}

// ---------------------------------------------------------------- reading

// Num is a JSON number literal kept as text (exact for any INT64).
class Num {
  constructor(text) { this.text = text; }
}

function fmtDouble(n) {
  if (typeof n !== "number") throw new Error(`want a double, got ${typeof n} ${n}`);
  if (!Number.isFinite(n)) throw new Error(`non-finite double ${n}`);
  if (Object.is(n, -0)) return "-0.0";
  const s = String(n);
  return /[.eE]/.test(s) ? s : s + ".0"; // keep a double recognisable as one
}

const INT_TYPES = /^(INT8|INT16|INT32|INT64|INT128|UINT8|UINT16|UINT32|UINT64|SERIAL)$/;
const STRINGLY = /^(DATE|TIMESTAMP.*|INTERVAL|UUID|BLOB|DECIMAL.*)$/;

function splitTopLevel(s) {
  const parts = [];
  let depth = 0, cur = "";
  for (const ch of s) {
    if (ch === "(") depth++;
    if (ch === ")") depth--;
    if (ch === "," && depth === 0) { parts.push(cur.trim()); cur = ""; continue; }
    cur += ch;
  }
  if (cur.trim() !== "") parts.push(cur.trim());
  return parts;
}

// projection returns a Cypher expression over expr that reads a value of
// type without loss, and decode, which turns what the binding returns into
// a canonical JS value (Num for numbers).
function projection(expr, type, depth = 0) {
  type = type.trim();
  if (INT_TYPES.test(type)) {
    return { expr: `CAST(${expr} AS STRING)`, decode: (v) => (v === null ? null : new Num(checkType(v, "string"))) };
  }
  if (type === "DOUBLE" || type === "FLOAT") {
    return { expr, decode: (v) => (v === null ? null : new Num(fmtDouble(v))) };
  }
  if (type === "STRING") return { expr, decode: (v) => (v === null ? null : checkType(v, "string")) };
  if (type === "BOOL") return { expr, decode: (v) => (v === null ? null : checkType(v, "boolean")) };
  if (STRINGLY.test(type)) {
    return { expr: `CAST(${expr} AS STRING)`, decode: (v) => (v === null ? null : checkType(v, "string")) };
  }
  if (type.endsWith("[]")) {
    const v = `e${depth}`;
    const inner = projection(v, type.slice(0, -2), depth + 1);
    const e = inner.expr === v ? expr : `list_transform(${expr}, ${v} -> ${inner.expr})`;
    return { expr: e, decode: (x) => (x === null ? null : x.map(inner.decode)) };
  }
  const m = /^STRUCT\((.*)\)$/s.exec(type);
  if (m) {
    const fields = splitTopLevel(m[1]).map((f) => {
      const sp = f.indexOf(" ");
      const name = f.slice(0, sp).replace(/^`|`$/g, "");
      return { name, p: projection(`struct_extract(${expr}, '${name}')`, f.slice(sp + 1), depth + 1) };
    });
    // struct_extract of a NULL struct yields the field type's default (0,
    // false, ''), not NULL, so guard the whole struct.
    const e = `CASE WHEN ${expr} IS NULL THEN NULL ELSE {${fields.map((f) => `${quoteIdent(f.name)}: ${f.p.expr}`).join(", ")}} END`;
    return {
      expr: e,
      decode: (x) => {
        if (x === null) return null;
        const out = {};
        for (const f of fields) out[f.name] = f.p.decode(x[f.name]);
        return out;
      },
    };
  }
  throw new Error(`unsupported column type ${type}`);
}

function checkType(v, want) {
  if (typeof v !== want) throw new Error(`want ${want}, got ${typeof v} ${v}`);
  return v;
}

// canon serialises a decoded value as canonical JSON: keys sorted, numbers
// as their exact literal, strings as JSON.stringify writes them (UTF-8).
function canon(v) {
  if (v === null) return "null";
  if (v instanceof Num) return v.text;
  if (typeof v === "string" || typeof v === "boolean") return JSON.stringify(v);
  if (Array.isArray(v)) return "[" + v.map(canon).join(",") + "]";
  if (typeof v === "object") {
    return "{" + Object.keys(v).sort().map((k) => JSON.stringify(k) + ":" + canon(v[k])).join(",") + "}";
  }
  throw new Error(`cannot serialise ${typeof v} ${v}`);
}

async function tables(conn) {
  const rows = await query(conn, "CALL show_tables() RETURN name, type");
  return rows.map((r) => ({ name: r.name, type: r.type })).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

async function columns(conn, table) {
  const rows = await query(conn, `CALL table_info('${table}') RETURN *`);
  return rows.map((r) => ({ name: r.name, type: r.type, pk: r["primary key"] === true }));
}

function keyText(v) {
  return v instanceof Num ? v.text : v;
}

// scanNodes returns every row of a node table as {key, props}.
async function scanNodes(conn, table) {
  const cols = await columns(conn, table);
  const pk = cols.find((c) => c.pk);
  if (!pk) throw new Error(`node table ${table} has no primary key`);
  const ps = cols.map((c) => projection(`n.${quoteIdent(c.name)}`, c.type));
  const ret = ps.map((p, i) => `${p.expr} AS c${i}`).join(", ");
  const rows = await query(conn, `MATCH (n:${quoteIdent(table)}) RETURN ${ret}`);
  return {
    columns: cols,
    rows: rows.map((r) => {
      const props = {};
      cols.forEach((c, i) => { props[c.name] = ps[i].decode(r[`c${i}`]); });
      return { key: keyText(props[pk.name]), props };
    }),
  };
}

// scanRels returns every row of a rel table as {src, dst, props}, the ends
// named by table and primary key (internal ids do not survive an import).
async function scanRels(conn, table) {
  const cols = await columns(conn, table);
  const conns = await query(conn, `CALL show_connection('${table}') RETURN *`);
  const nodeCols = new Map();
  const out = [];
  for (const cn of conns) {
    const src = cn["source table name"], dst = cn["destination table name"];
    for (const t of [src, dst]) if (!nodeCols.has(t)) nodeCols.set(t, await columns(conn, t));
    const sp = projection(`a.${quoteIdent(cn["source table primary key"])}`, nodeCols.get(src).find((c) => c.pk).type);
    const dp = projection(`b.${quoteIdent(cn["destination table primary key"])}`, nodeCols.get(dst).find((c) => c.pk).type);
    const ps = cols.map((c) => projection(`r.${quoteIdent(c.name)}`, c.type));
    const ret = [`${sp.expr} AS s`, `${dp.expr} AS d`, ...ps.map((p, i) => `${p.expr} AS c${i}`)].join(", ");
    const rows = await query(conn, `MATCH (a:${quoteIdent(src)})-[r:${quoteIdent(table)}]->(b:${quoteIdent(dst)}) RETURN ${ret}`);
    for (const r of rows) {
      const props = {};
      cols.forEach((c, i) => { props[c.name] = ps[i].decode(r[`c${i}`]); });
      out.push({ src: { label: src, key: keyText(sp.decode(r.s)) }, dst: { label: dst, key: keyText(dp.decode(r.d)) }, props });
    }
  }
  return { columns: cols, connections: conns.map((c) => `${c["source table name"]}->${c["destination table name"]}`).sort(), rows: out };
}

function cmp(a, b) {
  return a < b ? -1 : a > b ? 1 : 0;
}

async function count(conn, t) {
  const q = t.type === "NODE" ? `MATCH (n:${quoteIdent(t.name)}) RETURN count(*) AS c` : `MATCH ()-[r:${quoteIdent(t.name)}]->() RETURN count(*) AS c`;
  return Number((await query(conn, q))[0].c);
}

async function digest(dir) {
  const h = await open(dir, { readOnly: true });
  const out = { tables: {} };
  for (const t of await tables(h.conn)) {
    let scan, lines;
    if (t.type === "NODE") {
      scan = await scanNodes(h.conn, t.name);
      lines = scan.rows.map((r) => canon(r.props));
    } else if (t.type === "REL") {
      scan = await scanRels(h.conn, t.name);
      lines = scan.rows.map((r) => canon([r.src.label, r.src.key, r.dst.label, r.dst.key, r.props]));
    } else {
      throw new Error(`unsupported table type ${t.type} of ${t.name}`);
    }
    const n = await count(h.conn, t);
    if (n !== lines.length) throw new Error(`${t.name}: count(*) ${n} but scanned ${lines.length} rows`);
    lines.sort(cmp);
    const hash = createHash("sha256");
    for (const l of lines) hash.update(l + "\n");
    const entry = { type: t.type, columns: scan.columns.map((c) => `${c.name} ${c.type}${c.pk ? " PRIMARY KEY" : ""}`), count: lines.length, sha256: hash.digest("hex") };
    if (scan.connections) entry.connections = scan.connections;
    out.tables[t.name] = entry;
  }
  await close(h);
  process.stdout.write(canonJSON(out) + "\n");
}

// canonJSON: canon for plain JSON-compatible values (numbers as JS writes them).
function canonJSON(v) {
  if (typeof v === "number") return String(v);
  if (Array.isArray(v)) return "[" + v.map(canonJSON).join(",") + "]";
  if (v !== null && typeof v === "object") {
    return "{" + Object.keys(v).sort().map((k) => JSON.stringify(k) + ":" + canonJSON(v[k])).join(",") + "}";
  }
  return JSON.stringify(v);
}

// jsonl writes APOC JSON Lines: node ids are "Table:primaryKey"; a rel table's
// rows are numbered in canonical order ("KNOWS:1", ...), so the ids depend only
// on the content and survive an export/import.
async function jsonl(dir, outFile) {
  const h = await open(dir, { readOnly: true });
  const lines = [];
  const ts = await tables(h.conn);
  for (const t of ts.filter((t) => t.type === "NODE")) {
    const scan = await scanNodes(h.conn, t.name);
    const recs = scan.rows.map((r) => canon({ type: "node", id: `${t.name}:${r.key}`, labels: [t.name], properties: r.props }));
    lines.push(...recs.sort(cmp));
  }
  for (const t of ts.filter((t) => t.type === "REL")) {
    const scan = await scanRels(h.conn, t.name);
    const rows = scan.rows.map((r) => ({ r, c: canon([r.src.label, r.src.key, r.dst.label, r.dst.key, r.props]) }));
    rows.sort((a, b) => cmp(a.c, b.c));
    rows.forEach(({ r }, i) => {
      lines.push(canon({
        type: "relationship",
        id: `${t.name}:${i + 1}`,
        label: t.name,
        start: { id: `${r.src.label}:${r.src.key}`, labels: [r.src.label] },
        end: { id: `${r.dst.label}:${r.dst.key}`, labels: [r.dst.label] },
        properties: r.props,
      }));
    });
  }
  await close(h);
  fs.writeFileSync(outFile, lines.join("\n") + "\n");
}

// ---------------------------------------------------------------- export/import

async function exportDB(dir, outDir) {
  const h = await open(dir, { readOnly: true });
  await query(h.conn, `EXPORT DATABASE ${quotePath(outDir)}`);
  await close(h);
}

async function importDB(dir, inDir) {
  if (!fs.existsSync(path.join(inDir, "schema.cypher"))) throw new Error(`${inDir} holds no schema.cypher`);
  const h = await open(dir, { create: true });
  await query(h.conn, `IMPORT DATABASE ${quotePath(inDir)}`);
  await query(h.conn, "CHECKPOINT");
  await close(h);
}

// ---------------------------------------------------------------- main

const usage = `usage: node graphdb.mjs load DBDIR | export DBDIR OUTDIR | import DBDIR INDIR | digest DBDIR | jsonl DBDIR OUTFILE | version`;
const [cmd, ...args] = process.argv.slice(2);
const want = { load: 1, export: 2, import: 2, digest: 1, jsonl: 2, version: 0 }[cmd];
if (want === undefined || args.length !== want) {
  console.error(usage);
  process.exit(2);
}
try {
  switch (cmd) {
    case "load": await load(args[0]); break;
    case "export": await exportDB(args[0], args[1]); break;
    case "import": await importDB(args[0], args[1]); break;
    case "digest": await digest(args[0]); break;
    case "jsonl": await jsonl(args[0], args[1]); break;
    case "version": process.stdout.write(lbug.VERSION + "\n"); break;
  }
} catch (e) {
  console.error(`graphdb ${cmd}: ${e.stack || e}`);
  process.exit(1);
}
