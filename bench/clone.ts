/**
 * Multiplies the seeded Observations in SQL, to reach the search data set's size (1,000,000) in
 * seconds rather than the ten minutes it would take one Bundle at a time.
 *
 * The template Observations went through the write path (validated, indexed, audited); each copy
 * repeats a template's current row, version row and search index rows under a new id
 * (`<template id>-<copy>`) and a new rid, so searches, reads and history see ordinary resources.
 * Copies have no AuditEvent or outbox row of their own (they were never "written" by anyone).
 * Run while no gateway is writing to the database: the rids are taken as one block.
 */
import type { Db } from '../src/store/index.js';

interface Column {
  name: string;
  type: string;
  identity: string | null;
}

async function columns(db: Db, table: string): Promise<Column[]> {
  const { rows } = await db.query<{ column_name: string; data_type: string; identity_generation: string | null }>(
    `SELECT column_name, data_type, identity_generation FROM information_schema.columns
      WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position`,
    [table],
  );
  if (rows.length === 0) throw new Error(`table ${table} not found in the current schema`);
  return rows.map((r) => ({ name: r.column_name, type: r.data_type, identity: r.identity_generation }));
}

/**
 * The SELECT list copying a row of `alias` as copy `c` of template `t` (columns k, rid, id):
 * new rid, suffixed id (also inside the JSON and in index values equal to the id), the rest as is.
 */
function copyList(cols: readonly Column[], alias: string): { names: string; values: string } {
  const kept = cols.filter((col) => col.identity !== 'ALWAYS');
  const value = (col: Column) => {
    if (col.name === 'rid') return `$1::bigint + (c - 1) * $2::bigint + t.k`;
    if (col.name === 'id') return `${alias}.id || '-' || c`;
    if (col.name === 'content') return `replace(${alias}.content, '"id":"' || t.id || '"', '"id":"' || t.id || '-' || c || '"')`;
    if (col.name === 'value' && col.type === 'text') return `CASE WHEN ${alias}.value = t.id THEN t.id || '-' || c ELSE ${alias}.value END`;
    return `${alias}.${col.name}`;
  };
  return { names: kept.map((c) => c.name).join(', '), values: kept.map(value).join(', ') };
}

export interface CloneResult {
  readonly templates: number;
  readonly copies: number;
  readonly seconds: number;
}

/**
 * Adds copies of the current Observations until there are `target` in all. `copiesPerStatement`
 * bounds each transaction (copies × templates rows per table).
 */
export async function cloneObservations(db: Db, indexTables: readonly string[], target: number, copiesPerStatement = 10, log: (line: string) => void = () => undefined): Promise<CloneResult> {
  const started = performance.now();
  await db.exec('DROP TABLE IF EXISTS bench_clone_template');
  await db.exec(
    `CREATE TABLE bench_clone_template AS
       SELECT row_number() OVER (ORDER BY rid) AS k, rid, id FROM resource WHERE type = 'Observation' AND NOT deleted`,
  );
  try {
    const templates = (await db.query<{ n: number }>('SELECT count(*)::int AS n FROM bench_clone_template')).rows[0].n;
    const extra = target - templates;
    if (templates === 0 || extra <= 0) return { templates, copies: 0, seconds: 0 };
    const copies = Math.ceil(extra / templates);
    // One block of rids for all copies: the sequence moves past it before anything is inserted.
    const seq = "pg_get_serial_sequence('resource', 'rid')";
    const base = Number((await db.query<{ base: number }>(`SELECT nextval(${seq})::bigint AS base`)).rows[0].base);
    await db.query(`SELECT setval(${seq}, $1::bigint)`, [base + extra]);
    const tables = ['resource', 'resource_version', ...indexTables];
    const lists = new Map<string, { names: string; values: string }>();
    for (const table of tables) lists.set(table, copyList(await columns(db, table), 's'));
    // Indexes are built once after the copy (much faster than row by row); the ones that back a
    // constraint (primary keys, unique (type, id)) stay.
    const { rows: indexes } = await db.query<{ name: string; def: string }>(
      `SELECT i.indexname AS name, i.indexdef AS def FROM pg_indexes i
        WHERE i.schemaname = current_schema() AND i.tablename = ANY($1::text[])
          AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = (quote_ident(i.schemaname) || '.' || quote_ident(i.indexname))::regclass)`,
      [tables],
    );
    for (const ix of indexes) await db.exec(`DROP INDEX ${ix.name}`);
    for (let lo = 1; lo <= copies; lo += copiesPerStatement) {
      const hi = Math.min(copies, lo + copiesPerStatement - 1);
      await db.tx(async (q) => {
        for (const table of tables) {
          const l = lists.get(table) as { names: string; values: string };
          // Copy c of template k gets rid base + (c-1)·T + k - 1; the last copy stops at `extra`.
          await q.query(
            `INSERT INTO ${table} (${l.names})
             SELECT ${l.values} FROM bench_clone_template t JOIN ${table} s ON s.rid = t.rid
               CROSS JOIN generate_series($3::int, $4::int) AS c
              WHERE (c - 1) * $2::bigint + t.k <= $5::bigint`,
            [base - 1, templates, lo, hi, extra],
          );
        }
      });
      log(`  copies ${lo}–${hi} of ${copies} (${Math.min(extra, hi * templates).toLocaleString('en')} rows, ${((performance.now() - started) / 1000).toFixed(0)} s)`);
    }
    for (const ix of indexes) await db.exec(ix.def);
    log(`  ${indexes.length} indexes rebuilt (${((performance.now() - started) / 1000).toFixed(0)} s)`);
    await db.exec('ANALYZE');
    return { templates, copies, seconds: (performance.now() - started) / 1000 };
  } finally {
    await db.exec('DROP TABLE IF EXISTS bench_clone_template');
  }
}
