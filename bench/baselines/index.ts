/**
 * Baselines measured in the same run as the gateway: the baseline HTTP servers (a child process
 * each, see server.ts) and the raw statement rate of PGlite.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { PGlite } from '@electric-sql/pglite';
import { freePort } from '../gateway.js';
import { patient } from '../seed.js';
import { summarize, type LatencySummary } from '../stats.js';

export type BaselineKind = 'fastify-pg' | 'medplum';

export interface BaselineServer {
  readonly baseUrl: string;
  readonly pid: number | undefined;
  readonly ids: readonly string[];
  stop(): Promise<void>;
}

export async function startBaseline(kind: BaselineKind, env: Record<string, string>): Promise<BaselineServer> {
  const port = await freePort();
  const file = fileURLToPath(new URL('./server.ts', import.meta.url));
  const child = spawn(process.execPath, ['--import', 'tsx', file], {
    env: { ...process.env, ...env, BASELINE: kind, PORT: String(port) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const ready = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`baseline ${kind} not ready after 120 s: ${output.slice(-2000)}`)), 120_000);
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString('utf8');
      if (output.includes('"listening"')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`baseline ${kind} exited (${code}) before it was ready: ${output.slice(-2000)}`));
    });
  });
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
  };
  try {
    await ready;
  } catch (e) {
    await stop();
    throw e;
  }
  const baseUrl = `http://127.0.0.1:${port}`;
  const ids = (await (await fetch(`${baseUrl}/ids`)).json()) as string[];
  return { baseUrl, pid: child.pid, ids, stop };
}

export interface StatementRate {
  readonly name: string;
  readonly perSecond: number;
  readonly latency: LatencySummary;
  readonly statements: number;
}

/**
 * Raw PGlite in memory, one statement at a time on this thread (as the gateway's embedded store
 * uses it): single-row INSERTs into a jsonb table, then reads of random rows by primary key.
 */
export async function pgliteStatementRate(seconds: number): Promise<StatementRate[]> {
  const db = new PGlite();
  try {
    await db.waitReady;
    await db.exec('CREATE TABLE baseline_resource (id text PRIMARY KEY, content jsonb NOT NULL)');
    const measure = async (name: string, statement: (i: number) => Promise<unknown>): Promise<StatementRate> => {
      for (let i = 0; i < 200; i++) await statement(i); // warm-up
      const latencies: number[] = [];
      const started = performance.now();
      const end = started + seconds * 1000;
      let i = 200;
      while (performance.now() < end) {
        const t0 = performance.now();
        await statement(i++);
        latencies.push(performance.now() - t0);
      }
      const elapsed = (performance.now() - started) / 1000;
      return { name, perSecond: Math.round(latencies.length / elapsed), latency: summarize(latencies), statements: latencies.length };
    };
    const bodies = Array.from({ length: 1000 }, (_, i) => JSON.stringify(patient(i)));
    const insert = await measure('PGlite raw INSERT', (i) => db.query('INSERT INTO baseline_resource (id, content) VALUES ($1, $2)', [`p${i}`, bodies[i % bodies.length]]));
    const rows = insert.statements + 200;
    const read = await measure('PGlite raw SELECT by id', () => db.query('SELECT content::text FROM baseline_resource WHERE id = $1', [`p${Math.floor(Math.random() * rows)}`]));
    return [read, insert];
  } finally {
    await db.close();
  }
}
