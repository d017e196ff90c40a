/**
 * The gateway under test: a child process on a free port, against a fresh schema (or database)
 * of a real PostgreSQL server, dropped afterwards.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';

export type Isolation = 'schema' | 'database';

export interface BenchDatabase {
  /** DATABASE_URL to give the gateway. */
  readonly url: string;
  readonly name: string;
  readonly isolation: Isolation;
  /** Resources stored in the isolated schema or database (to check the gateway really used it). */
  countResources(): Promise<number>;
  drop(): Promise<void>;
}

async function withClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/**
 * A schema is selected through the connection string (`?options=-c search_path=...`), which
 * pg passes to the server at connect time; the gateway needs no schema setting of its own.
 */
export async function createBenchDatabase(baseUrl: string, isolation: Isolation): Promise<BenchDatabase> {
  const name = `bench_${new Date().toISOString().replace(/\D/g, '').slice(0, 14)}_${randomBytes(2).toString('hex')}`;
  if (isolation === 'schema') {
    await withClient(baseUrl, (c) => c.query(`CREATE SCHEMA ${name}`));
    const url = new URL(baseUrl);
    url.searchParams.set('options', `-c search_path=${name}`);
    return {
      url: url.toString(),
      name,
      isolation,
      countResources: () =>
        withClient(baseUrl, async (c) => {
          const exists = await c.query(`SELECT to_regclass('${name}.resource') AS t`);
          if (!exists.rows[0].t) return 0;
          const r = await c.query(`SELECT count(*)::int AS n FROM ${name}.resource`);
          return r.rows[0].n as number;
        }),
      drop: () => withClient(baseUrl, (c) => c.query(`DROP SCHEMA IF EXISTS ${name} CASCADE`)).then(() => undefined),
    };
  }
  await withClient(baseUrl, (c) => c.query(`CREATE DATABASE ${name}`));
  const url = new URL(baseUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    name,
    isolation,
    countResources: () =>
      withClient(url.toString(), async (c) => {
        const exists = await c.query(`SELECT to_regclass('resource') AS t`);
        if (!exists.rows[0].t) return 0;
        const r = await c.query('SELECT count(*)::int AS n FROM resource');
        return r.rows[0].n as number;
      }),
    drop: () => withClient(baseUrl, (c) => c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`)).then(() => undefined),
  };
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export interface Gateway {
  readonly baseUrl: string;
  /** The MLLP (HL7 v2) listener's port. */
  readonly mllpPort: number;
  readonly command: string;
  /** Last lines the process wrote, for error reports. */
  output(): string;
  /** The last 200 lines the process wrote (its JSON log). */
  lines(): readonly string[];
  readonly pid: number | undefined;
  /** Graceful stop (SIGTERM, then SIGKILL after 10 s). */
  stop(): Promise<void>;
  /** A crash: SIGKILL, nothing finished or released. */
  kill(): Promise<void>;
}

/**
 * The node options the gateway runs with: BENCH_NODE_ARGS, else those of `npm start` (the words
 * between `node` and `dist/server.js` in package.json), so that memory figures are those of the
 * gateway as it is run.
 */
export function gatewayNodeArgs(root: string): string[] {
  const start = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts.start;
  const fromStart = /\bnode((?:\s+--\S+)*)\s+dist\/server\.js/.exec(start)?.[1] ?? '';
  return (process.env.BENCH_NODE_ARGS ?? fromStart).split(' ').filter(Boolean);
}

/** The entry to run: BENCH_SERVER_ENTRY, else src/server.ts through tsx (never a stale build). */
export function serverCommand(root: string, entry: string | undefined = process.env.BENCH_SERVER_ENTRY): { args: string[]; label: string } {
  const file = entry ?? join(root, 'src', 'server.ts');
  if (!existsSync(file)) throw new Error(`server entry ${file} does not exist`);
  const args = /\.[cm]?ts$/.test(file) ? ['--import', 'tsx', file] : [file];
  return { args, label: `node ${args.join(' ')}` };
}

/**
 * Starts the gateway on a free port. With `databaseUrl` it uses that PostgreSQL; without it, the
 * embedded PGlite store in `dataDir` (DATABASE_URL set empty, so a DATABASE_URL of the calling
 * shell does not leak in). entry: the server entry to run instead of serverCommand's default;
 * nodeArgs: options for node itself (e.g. heap limits).
 */
export async function startGateway(options: {
  root: string;
  databaseUrl?: string;
  dataDir?: string;
  entry?: string;
  nodeArgs?: readonly string[];
  readyTimeoutMs?: number;
  env?: Record<string, string>;
}): Promise<Gateway> {
  const port = await freePort();
  const mllpPort = await freePort();
  const command = serverCommand(options.root, options.entry);
  const args = [...(options.nodeArgs ?? []), ...command.args];
  const label = `node ${args.join(' ')}`;
  const inherited = { ...process.env };
  delete inherited.DATABASE_URL;
  const child: ChildProcess = spawn(process.execPath, args, {
    cwd: options.root,
    env: {
      ...inherited,
      HOST: '127.0.0.1',
      PORT: String(port),
      BASE_URL: `http://127.0.0.1:${port}`,
      DATABASE_URL: options.databaseUrl ?? '',
      ...(options.dataDir ? { DATA_DIR: options.dataDir, HL7_SPOOL_DIR: join(options.dataDir, 'hl7-spool') } : {}),
      MLLP_HOST: '127.0.0.1',
      MLLP_PORT: String(mllpPort),
      DEMO_DATA: 'false',
      LOG_LEVEL: 'warn',
      DB_POOL_MAX: '20',
      // Tokens outlive the run; the rate limiter runs but never throttles the load.
      TOKEN_TTL_SECONDS: '3600',
      RATE_LIMIT_MAX: '100000000',
      ...options.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const keep = (chunk: Buffer) => {
    lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
    if (lines.length > 200) lines.splice(0, lines.length - 200);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  const exit = new Promise<void>((resolve) =>
    child.once('exit', (code, signal) => {
      exited = { code, signal };
      resolve();
    }),
  );
  const baseUrl = `http://127.0.0.1:${port}`;
  const gateway: Gateway = {
    baseUrl,
    mllpPort,
    command: label,
    output: () => lines.slice(-40).join('\n'),
    lines: () => [...lines],
    pid: child.pid,
    async stop() {
      if (exited) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exit;
      clearTimeout(timer);
    },
    async kill() {
      if (exited) return;
      child.kill('SIGKILL');
      await exit;
    },
  };

  const deadline = Date.now() + (options.readyTimeoutMs ?? 120_000);
  for (;;) {
    if (exited) throw new Error(`gateway exited (code ${exited.code}, signal ${exited.signal}) before it was ready:\n${gateway.output()}`);
    try {
      const res = await fetch(`${baseUrl}/readyz`, { signal: AbortSignal.timeout(2000) });
      if (res.status === 200) return gateway;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await gateway.stop();
      throw new Error(`gateway not ready after ${options.readyTimeoutMs ?? 120_000} ms:\n${gateway.output()}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}
