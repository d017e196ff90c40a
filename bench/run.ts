/**
 * End-to-end benchmark of the gateway, side by side with baselines: `npm run bench`.
 *
 * 1. Baselines, re-measured on every run: HL7 v2 parsing (ours and three npm parsers on the MLLP
 *    workload's messages), raw PGlite statements, a minimal Fastify + `pg` server and
 *    @medplum/fhir-router's in-memory repository behind Fastify (read by id and create).
 * 2. For each backend (the real PostgreSQL in a fresh schema, then the embedded PGlite in a fresh
 *    data directory): the gateway as a child process; Patients and template Observations seeded
 *    through transaction Bundles, the Observations then multiplied in SQL (bench/clone.ts); closed
 *    loop workloads (CRUD mix, read, create, four searches, Bundle import), open loop read and
 *    create at fixed rates, HL7 v2 over MLLP, subscription notification latency, and audit on vs
 *    off at the store. The gateway process's CPU and peak RSS are sampled during each workload.
 * 3. One table (baselines, ratios, targets) on stdout and bench/results/latest.json.
 *
 * Environment (all optional; the defaults are the sizes, sized for under 15 minutes on
 * the idle 2-core machine):
 *   BENCH_DATABASE_URL    PostgreSQL (default postgres://postgres@127.0.0.1:5432/test)
 *   BENCH_ISOLATION       schema (default: a fresh schema, dropped after) or database
 *   BENCH_BACKENDS        postgres,pglite (default both)
 *   BENCH_DURATION        seconds per HTTP workload and baseline (default 8)
 *   BENCH_MLLP_DURATION   seconds per MLLP workload (default 5)
 *   BENCH_CONNECTIONS     connections of the read, create and search workloads (default 16)
 *   BENCH_CRUD_CONNECTIONS connections of the CRUD mix (default 64)
 *   BENCH_PATIENTS        Patients seeded (default 10000)
 *   BENCH_OBSERVATIONS    Observations in all (default 1000000)
 *   BENCH_PGLITE_OBSERVATIONS Observations in all on PGlite (default BENCH_OBSERVATIONS)
 *   BENCH_TEMPLATES       Observations seeded through the API before copying (default 10000)
 *   BENCH_BATCH           entries per seeding transaction Bundle (default 100)
 *   BENCH_IMPORT_BUNDLE   entries per Bundle of the import workload (default 100)
 *   BENCH_OPEN_READ_RATE  requests/s of the open-loop read (default 1000)
 *   BENCH_OPEN_CREATE_RATE requests/s of the open-loop create (default 250)
 *   BENCH_NOTIFY_RATES    writes/s of the subscription workloads (default 100,200)
 *   BENCH_MLLP_CONNECTIONS connection counts of the MLLP workloads (default 1,4,16)
 *   BENCH_PARSE_SECONDS   seconds per parser and message (default 1)
 *   BENCH_ONLY            comma-separated substrings: run only the workloads whose name contains
 *                         one (e.g. `mllp`, `search`, `baseline`); seeding and baselines still run
 *                         unless BENCH_SKIP_BASELINES=1
 *   BENCH_MPI_PEOPLE      with BENCH_ONLY=mpi: residents of the identity-matching workload (200);
 *                         e.g. BENCH_ONLY=mpi BENCH_BACKENDS=postgres BENCH_OBSERVATIONS=1000
 *   BENCH_SERVER_ENTRY    server entry file (default src/server.ts, run with tsx)
 *   BENCH_NODE_ARGS       node options of the gateway (default: those of `npm start`)
 *   BENCH_QUICK=1         small sizes for a check in about 3 minutes (1,000 patients, 20,000
 *                         observations, 3 s workloads, MLLP at 1 and 4 connections)
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { tmpdir, cpus, totalmem, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { INDEX_TABLES, PgliteDb, PostgresDb, openStore, type Db } from '../src/store/index.js';
import { createBenchDatabase, gatewayNodeArgs, startGateway, type BenchDatabase, type Gateway, type Isolation } from './gateway.js';
import { OBSERVATION_CODES, createSeeder, observation, patient } from './seed.js';
import { closedWorkloads, openWorkloads, requestFactories, runClosed, runOpen, type HttpResult, type SeededData, type WorkloadOptions } from './workloads.js';
import { mllpWorkloads, runMllp, sampleMessages } from './mllp.js';
import { runSubscriptionLatency } from './subscriptions.js';
import { mpiTable, runMpi } from './mpi.js';
import { cloneObservations } from './clone.js';
import { compareParsers } from './hl7-parse.js';
import { auditOnOff } from './audit.js';
import { pgliteStatementRate, startBaseline, type BaselineKind } from './baselines/index.js';
import { sampleProcess, settle, type ProcessUsage } from './stats.js';
import { applyTargets, table, type Backend, type Row } from './report.js';
import type { Request as AutocannonRequest } from 'autocannon';

const root = fileURLToPath(new URL('..', import.meta.url));
const quick = process.env.BENCH_QUICK === '1';

function intEnv(name: string, fallback: number, quickFallback = fallback): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return quick ? quickFallback : fallback;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`${name}=${raw} is not a positive whole number`);
  return n;
}

function listEnv(name: string, fallback: string): string[] {
  return (process.env[name] || fallback)
    .split(',')
    .map((s) => s.trim().toLowerCase())
    .filter(Boolean);
}

const settings = {
  databaseUrl: process.env.BENCH_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test',
  isolation: (process.env.BENCH_ISOLATION === 'database' ? 'database' : 'schema') as Isolation,
  backends: listEnv('BENCH_BACKENDS', 'postgres,pglite').filter((b): b is 'postgres' | 'pglite' => b === 'postgres' || b === 'pglite'),
  durationSeconds: intEnv('BENCH_DURATION', 8, 3),
  mllpDurationSeconds: intEnv('BENCH_MLLP_DURATION', 5, 3),
  connections: intEnv('BENCH_CONNECTIONS', 16),
  crudConnections: intEnv('BENCH_CRUD_CONNECTIONS', 64),
  patients: intEnv('BENCH_PATIENTS', 10_000, 1000),
  observations: intEnv('BENCH_OBSERVATIONS', 1_000_000, 20_000),
  pgliteObservations: intEnv('BENCH_PGLITE_OBSERVATIONS', intEnv('BENCH_OBSERVATIONS', 1_000_000, 20_000)),
  templates: intEnv('BENCH_TEMPLATES', 10_000, 2000),
  batch: intEnv('BENCH_BATCH', 100),
  importBundleSize: intEnv('BENCH_IMPORT_BUNDLE', 100),
  importConnections: 4,
  openReadRate: intEnv('BENCH_OPEN_READ_RATE', 1000, 300),
  openCreateRate: intEnv('BENCH_OPEN_CREATE_RATE', 250, 100),
  notifyRates: listEnv('BENCH_NOTIFY_RATES', '100,200').map(Number),
  mllpConnections: listEnv('BENCH_MLLP_CONNECTIONS', quick ? '1,4' : '1,4,16').map(Number),
  parseSeconds: intEnv('BENCH_PARSE_SECONDS', 1),
  mpiPeople: intEnv('BENCH_MPI_PEOPLE', 200),
  skipBaselines: process.env.BENCH_SKIP_BASELINES === '1',
  only: listEnv('BENCH_ONLY', ''),
};
const selected = (name: string) => settings.only.length === 0 || settings.only.some((o) => name.toLowerCase().includes(o));

function gitCommit(): string | undefined {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return undefined;
  }
}

/** A token for the county hospital's HIS (demo client), as an integrating system would get it. */
async function bearer(baseUrl: string): Promise<string> {
  const res = await fetch(`${baseUrl}/auth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from('county-his:county-his-secret').toString('base64')}` },
    body: 'grant_type=client_credentials',
  });
  if (!res.ok) throw new Error(`token endpoint answered ${res.status}: ${await res.text()}`);
  return `Bearer ${((await res.json()) as { access_token: string }).access_token}`;
}

const rows: Row[] = [];
const details: Record<string, unknown>[] = [];

/** Runs `fn` while sampling the server process; adds the usage to the row fn returns. */
async function sampled(pid: number | undefined, fn: () => Promise<Omit<Row, 'cpuPercent' | 'peakRssMb' | 'hostBusyPercent'>>, probeUrl?: string): Promise<Row> {
  await settle(pid, probeUrl);
  const sampler = sampleProcess(pid);
  let usage: ProcessUsage | undefined;
  try {
    const row = await fn();
    usage = sampler.stop();
    const full: Row = { ...row, cpuPercent: usage.cpuPercent, peakRssMb: usage.peakRssMb, hostBusyPercent: usage.hostBusyPercent };
    rows.push(full);
    console.log(
      `  ${full.workload} [${full.backend}]: ${full.throughput} ${full.unit}, p50 ${full.p50 ?? '-'} p95 ${full.p95 ?? '-'} p99 ${full.p99 ?? '-'} ms, errors ${full.errors ?? 0}, ` +
        `CPU ${usage.cpuPercent}%, RSS ${usage.peakRssMb} MB, machine ${usage.hostBusyPercent}% busy`,
    );
    return full;
  } finally {
    if (!usage) sampler.stop();
  }
}

function httpRow(r: HttpResult, backend: Backend, unit = 'req/s'): Omit<Row, 'cpuPercent' | 'peakRssMb' | 'hostBusyPercent'> {
  if (r.problem) console.warn(`  warning: ${r.problem}`);
  details.push({ backend, ...r });
  return { workload: r.name, backend, unit, throughput: r.throughput, p50: r.latency.p50, p95: r.latency.p95, p99: r.latency.p99, errors: r.errors };
}

async function baselines(): Promise<void> {
  console.log('baselines');
  if (selected('parse') || selected('baseline') || selected('hl7')) {
    for (const m of sampleMessages()) {
      for (const r of compareParsers(m.label, [m.bytes], settings.parseSeconds)) {
        rows.push({ workload: `parse ${m.label}: ${r.parser}`, backend: 'baseline', unit: 'msg/s', throughput: r.perSecond });
      }
    }
    console.log(`  HL7 parsing: ${rows.filter((r) => r.workload.startsWith('parse')).length} figures`);
  }
  if (selected('pglite') || selected('baseline')) {
    for (const r of await pgliteStatementRate(Math.min(settings.durationSeconds, 3))) {
      rows.push({ workload: r.name, backend: 'baseline', unit: 'stmt/s', throughput: r.perSecond, p50: r.latency.p50, p95: r.latency.p95, p99: r.latency.p99, errors: 0 });
      console.log(`  ${r.name}: ${r.perSecond} statements/s`);
    }
  }
  const servers: { kind: BaselineKind; label: string }[] = [
    { kind: 'fastify-pg', label: 'fastify+pg' },
    { kind: 'medplum', label: 'medplum fhir-router' },
  ];
  for (const s of servers) {
    if (!(selected(s.label) || selected('baseline') || selected('read') || selected('create'))) continue;
    const db = s.kind === 'fastify-pg' ? await createBenchDatabase(settings.databaseUrl, 'schema') : undefined;
    const server = await startBaseline(s.kind, { DATABASE_URL: db?.url ?? '', BASELINE_PATIENTS: String(settings.patients), DB_POOL_MAX: '20' });
    try {
      const ids = server.ids;
      const headers = { accept: 'application/fhir+json' };
      let n = 0;
      const read = { name: `${s.label} read by id`, description: 'GET /fhir/Patient/{id}', connections: settings.connections, probe: { method: 'GET' as const, path: `/fhir/Patient/${ids[0]}` }, requests: [{ method: 'GET', headers, setupRequest: (req: AutocannonRequest) => ({ ...req, path: `/fhir/Patient/${ids[Math.floor(Math.random() * ids.length)]}` }) }] };
      const create = {
        name: `${s.label} create`,
        description: 'POST /fhir/Patient',
        connections: settings.connections,
        probe: { method: 'POST' as const, path: '/fhir/Patient', body: JSON.stringify(patient(0)) },
        requests: [{ method: 'POST', path: '/fhir/Patient', headers: { ...headers, 'content-type': 'application/fhir+json' }, setupRequest: (req: AutocannonRequest) => ({ ...req, body: JSON.stringify(patient(1_000_000 + n++)) }) }],
      };
      for (const w of [read, create]) await sampled(server.pid, async () => httpRow(await runClosed(server.baseUrl, w, settings.durationSeconds, headers), 'baseline'));
    } finally {
      await server.stop();
      await db?.drop();
    }
  }
}

/** Patients and template Observations through transaction Bundles (the write path). */
async function seedThroughApi(gateway: Gateway): Promise<{ data: SeededData; seconds: number; firstObservationId: string }> {
  const started = performance.now();
  const authorization = await bearer(gateway.baseUrl);
  // Patient Bundles go one at a time: concurrent ones deadlock in identity linking (409, retried).
  const patientSeeder = createSeeder(`${gateway.baseUrl}/fhir`, { batch: settings.batch, concurrency: 1, authorization });
  const seeder = createSeeder(`${gateway.baseUrl}/fhir`, { batch: settings.batch, concurrency: 4, authorization });
  // A run-specific offset keeps identifiers distinct from any earlier run on the same database.
  const base = (Math.floor(Date.now() / 1000) % 20_000) * 1000;
  const patientNumbers = Array.from({ length: settings.patients }, (_, i) => base + i);
  const patientIds = await patientSeeder.create(patientNumbers.map((n) => patient(n)));
  const templates = Math.min(settings.templates, settings.observations);
  const observationKeys = Array.from({ length: templates }, (_, i) => ({ patient: i % patientIds.length, code: OBSERVATION_CODES[i % OBSERVATION_CODES.length][0] }));
  const observationIds = await seeder.create(observationKeys.map((k, i) => observation(i, patientIds[k.patient])));
  const seconds = (performance.now() - started) / 1000;
  console.log(`  ${patientIds.length} Patients and ${templates} Observations through ${settings.batch}-entry transaction Bundles (${seeder.mode}) in ${seconds.toFixed(1)} s`);
  return { data: { patientIds, patientNumbers, observationKeys, nextNumber: base + settings.patients }, seconds, firstObservationId: observationIds[0] };
}

/** A copied Observation must read back as itself (new id inside the JSON too) and be found by _id. */
async function checkCopy(baseUrl: string, templateId: string): Promise<void> {
  const authorization = await bearer(baseUrl);
  const id = `${templateId}-1`;
  const read = await fetch(`${baseUrl}/fhir/Observation/${id}`, { headers: { authorization, accept: 'application/fhir+json' } });
  const body = (await read.json()) as { id?: string };
  if (read.status !== 200 || body.id !== id) throw new Error(`the copied Observation/${id} reads back as ${read.status} ${JSON.stringify(body).slice(0, 300)}`);
  const search = await fetch(`${baseUrl}/fhir/Observation?_id=${id}`, { headers: { authorization, accept: 'application/fhir+json' } });
  const bundle = (await search.json()) as { entry?: { resource?: { id?: string } }[] };
  if (search.status !== 200 || bundle.entry?.length !== 1 || bundle.entry[0].resource?.id !== id) {
    throw new Error(`Observation?_id=${id} answers ${search.status} ${JSON.stringify(bundle).slice(0, 300)}`);
  }
}

interface Store {
  readonly backend: 'postgres' | 'pglite';
  readonly gatewayOptions: { databaseUrl?: string; dataDir?: string };
  /** The store opened directly (the gateway stopped), for copying rows. */
  open(): Promise<Db>;
  countResources(): Promise<number>;
  drop(): Promise<void>;
}

async function prepareStore(backend: 'postgres' | 'pglite'): Promise<Store> {
  if (backend === 'postgres') {
    const db: BenchDatabase = await createBenchDatabase(settings.databaseUrl, settings.isolation);
    console.log(`  database: ${settings.isolation} ${db.name} on ${new URL(settings.databaseUrl).host}`);
    return { backend, gatewayOptions: { databaseUrl: db.url }, open: async () => new PostgresDb(db.url, { max: 2 }), countResources: () => db.countResources(), drop: () => db.drop() };
  }
  const dir = mkdtempSync(join(tmpdir(), 'county-hie-bench-'));
  const dataDir = join(dir, 'pglite');
  console.log(`  data directory: ${dataDir}`);
  return {
    backend,
    gatewayOptions: { dataDir },
    open: () => PgliteDb.open(dataDir),
    countResources: async () => {
      const db = await PgliteDb.open(dataDir);
      try {
        return (await db.query<{ n: number }>('SELECT count(*)::int AS n FROM resource')).rows[0].n;
      } finally {
        await db.close();
      }
    },
    drop: async () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** Audit on vs off at the store (the gateway has no setting that turns its audit off). */
async function auditRows(backend: 'postgres' | 'pglite'): Promise<void> {
  if (!selected('audit')) return;
  const seconds = Math.min(settings.durationSeconds, 5);
  let results;
  if (backend === 'postgres') {
    const schema = `bench_audit_${process.pid}`;
    const admin = new pg.Client({ connectionString: settings.databaseUrl });
    await admin.connect();
    await admin.query(`CREATE SCHEMA ${schema}`);
    try {
      const db = await openStore({ databaseUrl: settings.databaseUrl, schema, poolMax: 20 });
      try {
        results = await auditOnOff(db, backend, 20, seconds, 8);
      } finally {
        await db.close();
      }
    } finally {
      await admin.query(`DROP SCHEMA ${schema} CASCADE`);
      await admin.end();
    }
  } else {
    const db = await openStore({});
    try {
      results = await auditOnOff(db, backend, 4, seconds, 8);
    } finally {
      await db.close();
    }
  }
  for (const r of results) {
    const row: Row = { workload: `store tx, ${r.mode}`, backend, unit: 'tx/s', throughput: Math.round(r.tps), p50: r.p50, p95: r.p95, p99: r.p99, errors: 0, note: 'store level, in the bench process' };
    rows.push(row);
    console.log(`  ${row.workload} [${backend}]: ${row.throughput} tx/s, p99 ${r.p99} ms`);
  }
}

async function runBackend(backend: 'postgres' | 'pglite', isInterrupted: () => boolean, onGateway: (g: Gateway | undefined) => void): Promise<Record<string, unknown>> {
  console.log(`\n${backend}`);
  const store = await prepareStore(backend);
  const spool = mkdtempSync(join(tmpdir(), 'county-hie-bench-spool-'));
  const env = { SUBSCRIPTION_ALLOWED_HOSTS: '127.0.0.1', HL7_SPOOL_DIR: spool };
  let gateway: Gateway | undefined;
  const start = async () => {
    gateway = await startGateway({ root, ...store.gatewayOptions, env, nodeArgs: gatewayNodeArgs(root) });
    onGateway(gateway);
    return gateway;
  };
  const stop = async () => {
    await gateway?.stop();
    gateway = undefined;
    onGateway(undefined);
  };
  const seedInfo: Record<string, unknown> = {};
  try {
    let g = await start();
    console.log(`  gateway: ${g.command} at ${g.baseUrl}`);
    const seeded = await seedThroughApi(g).catch((e: unknown) => {
      throw new Error(`seeding failed: ${e instanceof Error ? e.message : String(e)}\ngateway output:\n${gateway?.output() ?? ''}`, { cause: e });
    });
    seedInfo.apiSeconds = Number(seeded.seconds.toFixed(1));
    seedInfo.apiResourcesPerSecond = Math.round((settings.patients + seeded.data.observationKeys.length) / seeded.seconds);
    const observations = backend === 'pglite' ? settings.pgliteObservations : settings.observations;
    seedInfo.observations = observations;
    if (observations > seeded.data.observationKeys.length) {
      await stop();
      const db = await store.open();
      try {
        const c = await cloneObservations(db, INDEX_TABLES, observations, backend === 'postgres' ? 20 : 10, (line) => console.log(line));
        seedInfo.copySeconds = Number(c.seconds.toFixed(1));
        console.log(`  Observations copied to ${observations.toLocaleString('en')} in ${c.seconds.toFixed(1)} s`);
      } finally {
        await db.close();
      }
      g = await start();
      await checkCopy(g.baseUrl, seeded.firstObservationId);
    }
    const stored = await store.countResources().catch(() => -1);
    console.log(`  ${stored} resources stored`);
    if (stored >= 0 && stored < settings.patients + observations) throw new Error(`only ${stored} resources are stored: the gateway did not write where the benchmark expected`);
    seedInfo.resources = stored;

    const authorization = await bearer(g.baseUrl);
    const headers = { accept: 'application/fhir+json', authorization };
    const gwNow = g;
    const measure = (fn: Parameters<typeof sampled>[1]) => sampled(gwNow.pid, fn, `${gwNow.baseUrl}/readyz`);
    const o: WorkloadOptions = settings;
    const factories = requestFactories(seeded.data);
    for (const w of closedWorkloads(factories, authorization, o).filter((x) => selected(x.name))) {
      if (isInterrupted()) break;
      const gw = g;
      await measure(async () => httpRow(await runClosed(gw.baseUrl, w, settings.durationSeconds, headers), backend, w.perRequest ? 'resources/s' : 'req/s'));
    }
    for (const w of openWorkloads(factories, o).filter((x) => selected(x.name))) {
      if (isInterrupted()) break;
      const gw = g;
      await measure(async () => httpRow(await runOpen(gw.baseUrl, w, settings.durationSeconds, headers), backend));
    }
    for (const w of mllpWorkloads(settings.mllpConnections).filter((x) => selected(x.name))) {
      if (isInterrupted()) break;
      const gw = g;
      await measure(async () => {
        const r = await runMllp('127.0.0.1', gw.mllpPort, w, settings.mllpDurationSeconds);
        for (const s of r.samples) console.warn(`  ${s}`);
        details.push({ backend, ...r });
        return { workload: r.name, backend, unit: 'msg/s', throughput: r.messagesPerSecond, p50: r.latencyP50Ms, p95: r.latencyP95Ms, p99: r.latencyP99Ms, errors: r.errors + r.nonAa };
      });
    }
    for (const rate of settings.notifyRates) {
      const name = `subscription ${rate}/s`;
      if (isInterrupted() || !selected(name)) continue;
      const gw = g;
      await measure(async () => {
        const r = await runSubscriptionLatency(gw.baseUrl, authorization, { rate, durationSeconds: settings.durationSeconds, maxCount: 1 });
        details.push({ backend, ...r });
        return {
          workload: name,
          backend,
          unit: 'events/s',
          throughput: r.writesPerSecond,
          p50: r.latencyP50Ms,
          p95: r.latencyP95Ms,
          p99: r.latencyP99Ms,
          errors: r.missing + r.writeErrors + r.unsent,
          note: 'latency: write committed (201) to notification received, rest-hook, one event per notification',
        };
      });
    }
    if (settings.only.some((x) => 'mpi link'.includes(x))) {
      console.log(`  MPI linking of ${settings.mpiPeople} people registered at 3 institutions`);
      const r = await runMpi(g.baseUrl, authorization, settings.mpiPeople);
      console.log(`\n${mpiTable([r])}\n`);
      details.push({ backend, ...r });
    }
    await stop();
    await auditRows(backend);
    return seedInfo;
  } finally {
    await stop().catch((e: unknown) => console.error('stopping the gateway:', e));
    await store.drop().catch((e: unknown) => console.error('dropping the store:', e));
    rmSync(spool, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const startedAt = new Date();
  const t0 = performance.now();
  let interrupted = false;
  let current: Gateway | undefined;
  process.once('SIGINT', () => {
    interrupted = true;
    console.error('interrupted: finishing the current workload, then cleaning up');
    void current?.stop();
  });
  console.log(
    `bench: ${settings.patients.toLocaleString('en')} Patients, ${settings.observations.toLocaleString('en')} Observations, ${settings.durationSeconds} s per workload, ` +
      `backends ${settings.backends.join(', ')}, load average ${loadavg()
        .map((l) => l.toFixed(1))
        .join(' ')}`,
  );
  if (!settings.skipBaselines) await baselines();
  const seeds: Record<string, unknown> = {};
  for (const backend of settings.backends) {
    if (interrupted) break;
    seeds[backend] = await runBackend(
      backend,
      () => interrupted,
      (g) => (current = g),
    );
  }
  applyTargets(rows);
  console.log(`\n${table(rows)}\n`);
  const minutes = (performance.now() - t0) / 60_000;
  console.log(`finished in ${minutes.toFixed(1)} min; load average now ${loadavg()[0].toFixed(1)}`);
  const report = {
    startedAt: startedAt.toISOString(),
    minutes: Number(minutes.toFixed(1)),
    commit: gitCommit(),
    node: process.version,
    machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model, memoryGiB: Math.round(totalmem() / 2 ** 30), loadAverageAtEnd: loadavg() },
    settings: { ...settings, databaseUrl: new URL(settings.databaseUrl).host },
    seed: seeds,
    rows,
    details,
  };
  const dir = join(root, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'latest.json'), `${JSON.stringify(report, null, 2)}\n`);
  console.log('wrote bench/results/latest.json');
  if (rows.some((r) => (r.errors ?? 0) > 0)) process.exitCode = 1;
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.stack : e);
  process.exit(1);
});
