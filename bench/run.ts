/**
 * End-to-end benchmark of the gateway on a real PostgreSQL server: `npm run bench`.
 *
 * Starts the gateway as a child process on a free port against a fresh schema, seeds Patients and
 * Observations through transaction Bundles, runs time-bounded autocannon workloads (read, two
 * searches, create) and HL7 v2 over MLLP (ORU^R01 at 1, 4 and 16 connections, ADT^A01 at 4, each
 * connection waiting for the ACK before its next message), prints a table and writes
 * bench/results/latest.json. Not part of npm test.
 *
 * Environment (all optional):
 *   BENCH_DATABASE_URL   PostgreSQL to use (default postgres://postgres@127.0.0.1:5432/test)
 *   BENCH_ISOLATION      schema (default: a fresh schema, dropped after) or database (CREATE DATABASE)
 *   BENCH_DURATION       seconds per workload (default 10)
 *   BENCH_CONNECTIONS    concurrent connections per workload (default 10)
 *   BENCH_PATIENTS       Patients to seed (default 1000)
 *   BENCH_OBSERVATIONS   Observations to seed (default 10000)
 *   BENCH_BATCH          entries per transaction Bundle (default 100)
 *   BENCH_ONLY           comma-separated substrings: run only the workloads whose name matches
 *                        (e.g. `mllp` for the MLLP workloads alone)
 *   BENCH_SERVER_ENTRY   server entry file (default src/server.ts, run with tsx)
 *   BENCH_MPI_PEOPLE     residents of the identity-matching workload, each registered at 3
 *                        institutions (default 200; select it alone with BENCH_ONLY=mpi)
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cpus, totalmem } from 'node:os';
import { createBenchDatabase, startGateway, type BenchDatabase, type Gateway, type Isolation } from './gateway.js';
import { OBSERVATION_CODES, createSeeder, observation, patient } from './seed.js';
import { run, workloads, type SeededData, type WorkloadResult } from './workloads.js';
import { mllpWorkloads, runMllp, type MllpResult } from './mllp.js';
import { mpiTable, runMpi, type MpiResult } from './mpi.js';

const root = fileURLToPath(new URL('..', import.meta.url));

function intEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`${name}=${raw} is not a positive whole number`);
  return n;
}

const settings = {
  databaseUrl: process.env.BENCH_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test',
  isolation: (process.env.BENCH_ISOLATION === 'database' ? 'database' : 'schema') as Isolation,
  durationSeconds: intEnv('BENCH_DURATION', 10),
  connections: intEnv('BENCH_CONNECTIONS', 10),
  patients: intEnv('BENCH_PATIENTS', 1000),
  observations: intEnv('BENCH_OBSERVATIONS', 10000),
  batch: intEnv('BENCH_BATCH', 100),
  mpiPeople: intEnv('BENCH_MPI_PEOPLE', 200),
  only: (process.env.BENCH_ONLY ?? '')
    .split(',')
    .map((s) => s.trim().toLowerCase())
    .filter(Boolean),
};

function gitCommit(): string | undefined {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return undefined;
  }
}

/** HTTP rows, then MLLP rows (msgs/s counts AA ACKs; non-2xx counts ACKs other than AA; autocannon gives no p95). */
function table(results: readonly WorkloadResult[], mllp: readonly MllpResult[] = []): string {
  const header = ['workload', 'req/s', 'p50 ms', 'p95 ms', 'p99 ms', 'requests', 'errors', 'non-2xx'];
  const rows = [
    ...results.map((r) => [r.name, String(r.requestsPerSecond), String(r.latencyP50Ms), '-', String(r.latencyP99Ms), String(r.requests), String(r.errors + r.timeouts), String(r.non2xx)]),
    ...mllp.map((r) => [r.name, String(r.messagesPerSecond), String(r.latencyP50Ms), String(r.latencyP95Ms), String(r.latencyP99Ms), String(r.messages), String(r.errors), String(r.nonAa)]),
  ];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i].length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(' | ')} |`;
  return [line(header), `|${widths.map((w, i) => (i === 0 ? `:${'-'.repeat(w + 1)}` : `${'-'.repeat(w + 1)}:`)).join('|')}|`, ...rows.map(line)].join('\n');
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

async function seed(gateway: Gateway): Promise<{ data: SeededData; seconds: number; mode: string }> {
  const started = performance.now();
  const seeder = createSeeder(`${gateway.baseUrl}/fhir`, { batch: settings.batch, concurrency: 4, authorization: await bearer(gateway.baseUrl) });
  // A run-specific offset keeps identifiers distinct from any earlier run on the same database.
  const base = (Math.floor(Date.now() / 1000) % 20_000) * 1000;
  const patientNumbers = Array.from({ length: settings.patients }, (_, i) => base + i);
  const patientIds = await seeder.create(patientNumbers.map((n) => patient(n)));
  console.log(`  ${patientIds.length} Patients (${seeder.mode})`);
  const observationKeys = Array.from({ length: settings.observations }, (_, i) => ({
    patient: i % patientIds.length,
    code: OBSERVATION_CODES[i % OBSERVATION_CODES.length][0],
  }));
  await seeder.create(observationKeys.map((k, i) => observation(i, patientIds[k.patient])));
  console.log(`  ${observationKeys.length} Observations (${seeder.mode})`);
  const seconds = (performance.now() - started) / 1000;
  return { data: { patientIds, patientNumbers, observationKeys, nextNumber: base + settings.patients }, seconds, mode: seeder.mode };
}

async function main(): Promise<void> {
  const startedAt = new Date();
  let db: BenchDatabase | undefined;
  let gateway: Gateway | undefined;
  let interrupted = false;
  const cleanup = async () => {
    await gateway?.stop().catch((e: unknown) => console.error('stopping the gateway:', e));
    gateway = undefined;
    await db?.drop().catch((e: unknown) => console.error(`dropping ${db?.isolation} ${db?.name}:`, e));
    db = undefined;
  };
  process.once('SIGINT', () => {
    interrupted = true;
    console.error('interrupted: cleaning up');
    void cleanup().then(() => process.exit(130));
  });

  try {
    db = await createBenchDatabase(settings.databaseUrl, settings.isolation);
    console.log(`database: ${settings.isolation} ${db.name} on ${new URL(settings.databaseUrl).host}`);
    gateway = await startGateway({ root, databaseUrl: db.url });
    console.log(`gateway: ${gateway.command} at ${gateway.baseUrl}`);

    console.log(`seeding ${settings.patients} Patients and ${settings.observations} Observations, ${settings.batch} per transaction Bundle`);
    const seeded = await seed(gateway);
    const authorization = await bearer(gateway.baseUrl);
    console.log(`  done in ${seeded.seconds.toFixed(1)} s (${Math.round((settings.patients + settings.observations) / seeded.seconds)} resources/s)`);
    const stored = await db.countResources();
    if (stored < settings.patients + settings.observations) {
      throw new Error(`only ${stored} resources are in ${db.isolation} ${db.name}: the gateway did not write where the benchmark expected`);
    }

    const selected = workloads(seeded.data, authorization).filter((w) => settings.only.length === 0 || settings.only.some((o) => w.name.toLowerCase().includes(o)));
    const results: WorkloadResult[] = [];
    for (const w of selected) {
      if (interrupted) break;
      console.log(`running ${w.name} for ${settings.durationSeconds} s with ${settings.connections} connections`);
      const r = await run(gateway.baseUrl, w, settings);
      if (r.probeProblem) console.warn(`  warning: ${r.probeProblem}`);
      results.push(r);
    }

    const mllpResults: MllpResult[] = [];
    for (const w of mllpWorkloads().filter((m) => settings.only.length === 0 || settings.only.some((o) => m.name.toLowerCase().includes(o)))) {
      if (interrupted) break;
      console.log(`running ${w.name} for ${settings.durationSeconds} s: ${w.description}`);
      const r = await runMllp('127.0.0.1', gateway.mllpPort, w, settings.durationSeconds);
      for (const sample of r.samples) console.warn(`  ${sample}`);
      mllpResults.push(r);
    }

    const mpiResults: MpiResult[] = [];
    if (!interrupted && (settings.only.length === 0 || settings.only.some((o) => 'mpi link'.includes(o)))) {
      console.log(`running MPI linking of ${settings.mpiPeople} people registered at 3 institutions`);
      mpiResults.push(await runMpi(gateway.baseUrl, authorization, settings.mpiPeople));
    }

    console.log(`\n${table(results, mllpResults)}\n`);
    if (mpiResults.length) console.log(`${mpiTable(mpiResults)}\n`);
    const report = {
      startedAt: startedAt.toISOString(),
      commit: gitCommit(),
      node: process.version,
      machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model, memoryGiB: Math.round(totalmem() / 2 ** 30) },
      settings: { ...settings, databaseUrl: new URL(settings.databaseUrl).host },
      seed: { patients: settings.patients, observations: settings.observations, mode: seeded.mode, seconds: Number(seeded.seconds.toFixed(2)) },
      workloads: results,
      mllp: mllpResults,
      mpi: mpiResults,
    };
    const dir = join(root, 'bench', 'results');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'latest.json'), `${JSON.stringify(report, null, 2)}\n`);
    console.log('wrote bench/results/latest.json');
    if (results.some((r) => r.errors + r.timeouts > 0 || r.non2xx > 0) || mllpResults.some((r) => r.errors + r.nonAa > 0)) process.exitCode = 1;
  } finally {
    await cleanup();
  }
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? e.message : e);
  process.exit(1);
});
