/**
 * Cost of the audit trail: `npx tsx bench/audit.ts` (about 40 s).
 *
 * W concurrent writers run transactions that each insert one row into a stand-in clinical table
 * and, unless auditing is off, append the AuditEvents of that transaction. Compared: no audit,
 * audit on one hash chain (every writer queues behind one head lock), and audit on N chains
 * (AUDIT_CHAINS). Then a bulk-feed shape (100 events per transaction), SM3 vs SHA-256 digest
 * speed, and the verification rate. On the real PostgreSQL (own schema, dropped after) and on
 * the embedded PGlite. Not part of npm test.
 *
 * Environment (all optional):
 *   BENCH_DATABASE_URL   PostgreSQL (default postgres://postgres@127.0.0.1:5432/test)
 *   BENCH_SECONDS        seconds per measurement (default 3)
 *   BENCH_WRITERS        concurrent writers on PostgreSQL (default 32)
 *   BENCH_CHAINS         chains of the multi-chain case (default 8)
 */
import { randomBytes, createHash } from 'node:crypto';
import pg from 'pg';
import { openStore, type Db } from '../src/store/index.js';
import { configureAuditChains, recordAccess, resolveHashAlgorithm, verifyAuditChains, type AccessRecord } from '../src/audit/index.js';
import type { RequestContext } from '../src/fhir/context.js';
import { fileURLToPath } from 'node:url';
import { summarize } from './stats.js';

const DATABASE_URL = process.env.BENCH_DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/test';
const SECONDS = Number(process.env.BENCH_SECONDS || 3);
const WRITERS = Number(process.env.BENCH_WRITERS || 32);
const CHAINS = Number(process.env.BENCH_CHAINS || 8);

const ctx: RequestContext = { channel: 'rest', clientId: 'his-county-hospital', institution: 'org-county-hospital', sourceIp: '10.1.2.3', scopes: [] };
let counter = 0;

function eventsOf(n: number): AccessRecord[] {
  return Array.from({ length: n }, () => {
    const i = counter++;
    return { interaction: 'create', outcome: '0', resources: [`Observation/o${i}/_history/1`], patients: [`Patient/p${i % 1000}`] };
  });
}

interface Mode {
  readonly name: string;
  /** Chains to configure; 0: no audit. */
  readonly chains: number;
  readonly eventsPerTx: number;
}

export interface AuditResult {
  readonly backend: string;
  readonly mode: string;
  readonly tps: number;
  readonly eps: number;
  readonly p50: number;
  readonly p95: number;
  readonly p99: number;
}

async function measure(db: Db, backend: string, mode: Mode, writers: number, seconds = SECONDS): Promise<AuditResult> {
  if (mode.chains > 0) await configureAuditChains(db, { chains: mode.chains, alg: resolveHashAlgorithm('auto') });
  const payload = randomBytes(600).toString('base64');
  const latencies: number[] = [];
  const until = Date.now() + seconds * 1000;
  let txs = 0;
  const writer = async () => {
    while (Date.now() < until) {
      const t0 = performance.now();
      await db.tx(async (q) => {
        await q.query('INSERT INTO bench_clinical (payload) VALUES ($1)', [payload]);
        if (mode.chains > 0) await recordAccess(q, ctx, eventsOf(mode.eventsPerTx));
      });
      latencies.push(performance.now() - t0);
      txs++;
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: writers }, writer));
  const elapsed = (performance.now() - started) / 1000;
  const l = summarize(latencies);
  return { backend, mode: mode.name, tps: txs / elapsed, eps: mode.chains > 0 ? (txs * mode.eventsPerTx) / elapsed : 0, p50: l.p50, p95: l.p95, p99: l.p99 };
}

async function runBackend(db: Db, backend: string, writers: number): Promise<AuditResult[]> {
  await db.exec('CREATE TABLE bench_clinical (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, payload text NOT NULL)');
  const modes: Mode[] = [
    { name: 'no audit', chains: 0, eventsPerTx: 1 },
    { name: 'audit, 1 chain', chains: 1, eventsPerTx: 1 },
    { name: `audit, ${CHAINS} chains`, chains: CHAINS, eventsPerTx: 1 },
    { name: `bulk: 100 events/tx, ${CHAINS} chains`, chains: CHAINS, eventsPerTx: 100 },
  ];
  const out: AuditResult[] = [];
  for (const mode of modes) {
    const r = await measure(db, backend, mode, writers);
    out.push(r);
    console.log(`${backend.padEnd(22)} ${mode.name.padEnd(32)} ${r.tps.toFixed(0).padStart(7)} tx/s ${r.eps.toFixed(0).padStart(8)} events/s   p50 ${r.p50.toFixed(1)} ms  p99 ${r.p99.toFixed(1)} ms`);
  }
  const total = (await db.query<{ n: number }>('SELECT count(*)::int AS n FROM audit_event')).rows[0].n;
  const t0 = performance.now();
  const v = await verifyAuditChains(db);
  const s = (performance.now() - t0) / 1000;
  console.log(`${backend.padEnd(22)} verify ${total} events: ${v.ok ? 'ok' : 'BROKEN'} in ${s.toFixed(2)} s (${(v.checked / s).toFixed(0)} events/s)`);
  return out;
}

function digestSpeed(): void {
  const content = Buffer.from(randomBytes(900).toString('base64'));
  for (const alg of ['sm3', 'sha256']) {
    const n = 50_000;
    const t0 = performance.now();
    for (let i = 0; i < n; i++) createHash(alg).update(content).digest('hex');
    const s = (performance.now() - t0) / 1000;
    console.log(`digest ${alg.padEnd(7)} ${(n / s).toFixed(0)} hashes/s of 1.2 KB (${((n * content.length) / s / 1e6).toFixed(0)} MB/s)`);
  }
}

async function main(): Promise<void> {
  console.log(`audit benchmark: ${SECONDS} s per case, hash ${resolveHashAlgorithm('auto')}, Node ${process.version}`);
  digestSpeed();

  const schema = `bench_audit_${process.pid}`;
  const admin = new pg.Client({ connectionString: DATABASE_URL });
  await admin.connect();
  await admin.query(`CREATE SCHEMA ${schema}`);
  try {
    const db = await openStore({ databaseUrl: DATABASE_URL, schema, poolMax: WRITERS });
    try {
      await runBackend(db, `postgres, ${WRITERS} writers`, WRITERS);
    } finally {
      await db.close();
    }
  } finally {
    await admin.query(`DROP SCHEMA ${schema} CASCADE`);
    await admin.end();
  }

  const lite = await openStore({});
  try {
    await runBackend(lite, 'pglite, 4 writers', 4);
  } finally {
    await lite.close();
  }
}

/**
 * Audit on vs off at the store, for `npm run bench`: `writers` concurrent transactions each
 * inserting one row, without and then with one AuditEvent appended (the gateway's chain count).
 * The gateway itself has no setting that turns auditing off, so this is where the cost shows.
 */
export async function auditOnOff(db: Db, backend: string, writers: number, seconds: number, chains: number): Promise<AuditResult[]> {
  await db.exec('CREATE TABLE IF NOT EXISTS bench_clinical (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, payload text NOT NULL)');
  return [
    await measure(db, backend, { name: 'audit off', chains: 0, eventsPerTx: 1 }, writers, seconds),
    await measure(db, backend, { name: `audit on, ${chains} chains`, chains, eventsPerTx: 1 }, writers, seconds),
  ];
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await main();
