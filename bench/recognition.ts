/**
 * `$recognize` latency over a person with many results: `npm run bench:recognition` (about 1 min).
 *
 * Seeds the demo community, then one person (two linked local patients) with RESULTS results
 * spread over two years, 40 lab codes, three institutions, and a qualification history; then
 * calls GET /fhir/$recognize through the whole app (routing, token, policy, audit) one request
 * at a time, for one ordered item and for five, and prints p50/p95/p99. On the real PostgreSQL
 * (own schema, dropped after) and on the embedded PGlite. Not part of npm test.
 *
 * Environment (all optional):
 *   BENCH_DATABASE_URL   PostgreSQL (default postgres://postgres@127.0.0.1:5432/test)
 *   BENCH_RESULTS        results of the person (default 5000)
 *   BENCH_CALLS          calls per case (default 300)
 */
import pg from 'pg';
import type { Bundle, BundleEntry, Observation, Patient } from '@medplum/fhirtypes';
import { loadConfig } from '../src/config.js';
import { createLogger } from '../src/logger.js';
import { openStore, type Db } from '../src/store/index.js';
import { prepareAudit } from '../src/audit/index.js';
import { createFhirServices, processBundle, SYSTEM_CONTEXT } from '../src/fhir/index.js';
import { buildApp } from '../src/app.js';
import { loadDemoCommunity } from '../src/demo/index.js';
import { INSTITUTION_TAG_SYSTEM } from '../src/fhir/systems.js';

const DATABASE_URL = process.env.BENCH_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test';
const RESULTS = Number(process.env.BENCH_RESULTS || 5000);
const CALLS = Number(process.env.BENCH_CALLS || 300);
const INSTITUTIONS = ['1233042447101234XX', '1233042447102341XF', '12330424471034522H'];
/** 40 lab codes; the first five are catalogue items (HbA1c, ALT, creatinine, potassium, total cholesterol). */
const CODES = ['4548-4', '1742-6', '14682-9', '2823-3', '14647-2', ...Array.from({ length: 35 }, (_, i) => `9${String(1000 + i)}-${i % 10}`)];
const ORDER_DAY = '2026-06-30';

interface Row {
  backend: string;
  case: string;
  calls: number;
  p50: number;
  p95: number;
  p99: number;
}

async function seed(db: Db): Promise<{ patient: string; app: Awaited<ReturnType<typeof buildApp>>; token: string }> {
  const config = loadConfig({ BASE_URL: 'http://bench.test', LOG_LEVEL: 'silent', MLLP_PORT: '0' });
  await prepareAudit(db, config);
  const fhir = await createFhirServices(config, db);
  await loadDemoCommunity((bundle) => processBundle(fhir.repository, bundle, { ...SYSTEM_CONTEXT, channel: 'demo' }, { minimal: true }));
  const app = await buildApp(config, { db, logger: createLogger('silent'), fhir });
  await app.ready();
  const ctx = { ...SYSTEM_CONTEXT, channel: 'bench' };
  const a = await fhir.repository.create({ resourceType: 'Patient', name: [{ family: '测', given: ['试'] }] } satisfies Patient, ctx);
  const b = await fhir.repository.create({ resourceType: 'Patient', name: [{ family: '测', given: ['试'] }], link: [{ other: { reference: `Patient/${a.id}` }, type: 'seealso' }] } satisfies Patient, ctx);
  const subjects = [`Patient/${a.id}`, `Patient/${b.id}`];
  for (let start = 0; start < RESULTS; start += 500) {
    const entry: BundleEntry[] = [];
    for (let i = start; i < Math.min(RESULTS, start + 500); i++) {
      const day = new Date(Date.parse(`${ORDER_DAY}T00:00:00Z`) - (i % 730) * 86_400_000).toISOString().slice(0, 10);
      entry.push({
        resource: {
          resourceType: 'Observation',
          meta: { tag: [{ system: INSTITUTION_TAG_SYSTEM, code: INSTITUTIONS[i % 3] }] },
          status: 'final',
          code: { coding: [{ system: 'http://loinc.org', code: CODES[i % CODES.length] }] },
          subject: { reference: subjects[i % 2] },
          effectiveDateTime: `${day}T08:00:00+08:00`,
          valueQuantity: { value: 5 + (i % 7) / 10, unit: '%', system: 'http://unitsofmeasure.org', code: '%' },
        } satisfies Observation,
        request: { method: 'POST', url: 'Observation' },
      });
    }
    await processBundle(fhir.repository, { resourceType: 'Bundle', type: 'batch', entry } satisfies Bundle, ctx, { minimal: true });
  }
  // Fresh planner statistics, as autovacuum gathers them after a bulk load (without them the
  // planner takes a freshly loaded index table for empty).
  await db.exec('ANALYZE');
  for (const institution of INSTITUTIONS) await app.recognition.service.qualify({ institution, category: 'lab', status: 'qualified', effectiveFrom: '2024-01-01' }, ctx);
  await app.recognition.service.qualify({ institution: INSTITUTIONS[2], category: 'lab', status: 'suspended', effectiveFrom: '2026-06-01', reason: 'bench' }, ctx);
  return { patient: subjects[1], app, token: await app.auth.mint('township1-his') };
}

async function measure(backend: string, db: Db): Promise<Row[]> {
  const t0 = performance.now();
  const { patient, app, token } = await seed(db);
  console.error(`${backend}: seeded ${RESULTS} results in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  const cases = [
    { name: '$recognize, 1 item', codes: CODES.slice(0, 1) },
    { name: '$recognize, 5 items', codes: CODES.slice(0, 5) },
  ];
  const rows: Row[] = [];
  for (const c of cases) {
    const url = `/fhir/$recognize?patient=${patient}&date=${ORDER_DAY}&${c.codes.map((code) => `code=http://loinc.org%7C${code}`).join('&')}`;
    for (let i = 0; i < 20; i++) await app.inject({ url, headers: { authorization: `Bearer ${token}` } });
    const times: number[] = [];
    for (let i = 0; i < CALLS; i++) {
      const s = performance.now();
      const r = await app.inject({ url, headers: { authorization: `Bearer ${token}` } });
      times.push(performance.now() - s);
      if (r.statusCode !== 200) throw new Error(`${c.name}: ${r.statusCode} ${r.body.slice(0, 200)}`);
    }
    times.sort((x, y) => x - y);
    const pct = (p: number) => Math.round(times[Math.min(times.length - 1, Math.floor(times.length * p))] * 10) / 10;
    rows.push({ backend, case: c.name, calls: CALLS, p50: pct(0.5), p95: pct(0.95), p99: pct(0.99) });
  }
  await app.close();
  return rows;
}

async function main(): Promise<void> {
  const rows: Row[] = [];
  const schema = `bench_recognition_${process.pid}`;
  const admin = new pg.Client({ connectionString: DATABASE_URL });
  await admin.connect();
  await admin.query(`CREATE SCHEMA ${schema}`);
  try {
    const db = await openStore({ databaseUrl: DATABASE_URL, schema, poolMax: 10 });
    rows.push(...(await measure('postgres', db)));
    await db.close();
  } finally {
    await admin.query(`DROP SCHEMA ${schema} CASCADE`);
    await admin.end();
  }
  const lite = await openStore({});
  rows.push(...(await measure('pglite', lite)));
  await lite.close();
  console.log(`\n$recognize over one person with ${RESULTS} results (two linked patients, 40 codes, 3 institutions), one call at a time:\n`);
  console.log('| backend | case | calls | p50 ms | p95 ms | p99 ms |');
  console.log('|:--|:--|--:|--:|--:|--:|');
  for (const r of rows) console.log(`| ${r.backend} | ${r.case} | ${r.calls} | ${r.p50} | ${r.p95} | ${r.p99} |`);
}

await main();
