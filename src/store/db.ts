/**
 * One database interface over two engines: a PostgreSQL server through a `pg` pool, or an embedded
 * PGlite database. Both speak the same SQL with `$n` parameters; everything above this file is
 * engine-agnostic.
 */
import pg from 'pg';
import { PGlite } from '@electric-sql/pglite';
import { mkdirSync } from 'node:fs';
import { GatewayError } from '../errors.js';

export interface QueryResult<T> {
  rows: T[];
}

export interface Queryable {
  query<T = Record<string, unknown>>(sql: string, params?: readonly unknown[]): Promise<QueryResult<T>>;
  /** Runs several statements without parameters (migrations). */
  exec(sql: string): Promise<void>;
  /**
   * Inside a transaction only: runs fn once the transaction has committed (never if it rolls
   * back), e.g. to wake a worker for what the transaction queued. fn must not throw.
   */
  onCommit?(fn: () => void): void;
}

/** The after-commit callbacks of one transaction. */
class CommitCallbacks {
  private readonly fns: (() => void)[] = [];

  add = (fn: () => void): void => {
    this.fns.push(fn);
  };

  run(): void {
    for (const fn of this.fns) fn();
  }
}

export interface Db extends Queryable {
  readonly kind: 'postgres' | 'pglite';
  /** Runs fn in one database transaction: committed when fn resolves, rolled back when it throws. */
  tx<T>(fn: (q: Queryable) => Promise<T>): Promise<T>;
  /** True for joinTransaction's Db: its tx() runs inside a transaction already open. */
  readonly joined?: boolean;
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** A Db whose every call runs inside an already open transaction (so repository work joins it). */
export function joinTransaction(db: Db, q: Queryable): Db {
  return {
    kind: db.kind,
    joined: true,
    query: (sql, params) => q.query(sql, params),
    exec: (sql) => q.exec(sql),
    tx: (fn) => fn(q),
    ping: async () => undefined,
    close: async () => undefined,
  };
}

/**
 * Several statements sent as one, so they cost one round trip: every part but the last becomes a
 * data-modifying CTE of the last. Each part numbers its parameters from $1; they are renumbered
 * here. PostgreSQL runs every part exactly once and all of them see the snapshot taken before the
 * statement: a part does not see the rows another part writes (a DELETE of a resource's old index
 * rows beside the INSERT of its new ones removes only the old ones).
 */
export class StatementBatch {
  private readonly parts: string[] = [];
  private readonly values: unknown[] = [];

  add(sql: string, params: readonly unknown[]): this {
    const base = this.values.length;
    this.parts.push(base === 0 ? sql : sql.replace(/\$(\d+)/g, (_, n: string) => `$${Number(n) + base}`));
    this.values.push(...params);
    return this;
  }

  get size(): number {
    return this.parts.length;
  }

  async run(q: Queryable): Promise<void> {
    if (this.parts.length === 0) return;
    const last = this.parts[this.parts.length - 1];
    const ctes = this.parts.slice(0, -1).map((sql, i) => `s${i} AS (${sql})`);
    await q.query(ctes.length ? `WITH ${ctes.join(', ')} ${last}` : last, this.values);
  }
}

const INT8_OID = 20;
const NUMERIC_OID = 1700;

/** int8 as a JS number (ids and counts stay far below 2^53), the same as PGlite returns. */
const pgTypes = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (oid === INT8_OID) return (v: string) => Number(v);
    if (oid === NUMERIC_OID) return (v: string) => v;
    return pg.types.getTypeParser(oid, format);
  },
};

function unavailable(cause: unknown): GatewayError {
  return new GatewayError('GW_ERR_UNAVAILABLE', 'The database is not reachable; retry later', { cause });
}

/**
 * A transaction that lost to a concurrent one: a deadlock (40P01), a serialization failure
 * (40001), or a create of a (type, id) that a concurrent transaction created first (a unique
 * violation of resource_type_id: two PUTs of one new id). It was rolled back whole, so running
 * it again is safe (the PUT then updates).
 */
export function isTransactionConflict(e: unknown): boolean {
  const { code, constraint } = (e ?? {}) as { code?: unknown; constraint?: unknown };
  return code === '40P01' || code === '40001' || (code === '23505' && constraint === 'resource_type_id');
}

/** Connection-level failures become 503 so that clients retry; SQL errors pass through. */
function isConnectionError(e: unknown): boolean {
  const code = (e as { code?: string }).code ?? '';
  return (
    ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', '57P01', '57P02', '57P03', '08000', '08003', '08006'].includes(code) ||
    /Connection terminated|Client has encountered a connection error|timeout exceeded when trying to connect/i.test(String((e as Error).message))
  );
}

export class PostgresDb implements Db {
  readonly kind = 'postgres';
  private readonly pool: pg.Pool;

  constructor(connectionString: string, options: { max?: number; schema?: string } = {}) {
    this.pool = new pg.Pool({
      connectionString,
      max: options.max ?? 10,
      types: pgTypes,
      connectionTimeoutMillis: 5000,
      ...(options.schema ? { options: `-c search_path=${options.schema}` } : {}),
    });
    // An idle client losing its connection must not crash the process; the pool replaces it.
    this.pool.on('error', () => undefined);
  }

  async query<T>(sql: string, params: readonly unknown[] = []): Promise<QueryResult<T>> {
    try {
      const r = await this.pool.query(sql, params as unknown[]);
      return { rows: r.rows as T[] };
    } catch (e) {
      throw isConnectionError(e) ? unavailable(e) : e;
    }
  }

  async tx<T>(fn: (q: Queryable) => Promise<T>): Promise<T> {
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (e) {
      throw unavailable(e);
    }
    let broken = false;
    // The pool listens for errors on idle clients only. A checked-out client whose connection
    // dies (failover, pg_terminate_backend) emits 'error' too: without a listener that event
    // would crash the process. The failing statement rejects on its own; mark the client broken.
    const onError = () => {
      broken = true;
    };
    client.on('error', onError);
    const callbacks = new CommitCallbacks();
    const q: Queryable = {
      query: async <R>(sql: string, params: readonly unknown[] = []) => {
        try {
          const r = await client.query(sql, params as unknown[]);
          return { rows: r.rows as R[] };
        } catch (e) {
          if (isConnectionError(e)) {
            broken = true;
            throw unavailable(e);
          }
          throw e;
        }
      },
      exec: async (sql: string) => {
        await q.query(sql);
      },
      onCommit: callbacks.add,
    };
    try {
      await client.query('BEGIN');
      const result = await fn(q);
      await client.query('COMMIT');
      callbacks.run();
      return result;
    } catch (e) {
      if (!broken) await client.query('ROLLBACK').catch(() => (broken = true));
      throw isConnectionError(e) ? unavailable(e) : e;
    } finally {
      client.off('error', onError);
      client.release(broken);
    }
  }

  async exec(sql: string): Promise<void> {
    await this.query(sql);
  }

  async ping(): Promise<void> {
    await this.query('SELECT 1');
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}

export class PgliteDb implements Db {
  readonly kind = 'pglite';

  private constructor(private readonly pglite: PGlite) {}

  /**
   * dataDir undefined: an in-memory database (tests). `from`: start from a data directory
   * snapshot (dumpDataDir of another PGlite) instead of an empty cluster.
   */
  static async open(dataDir?: string, from?: Blob): Promise<PgliteDb> {
    if (dataDir) mkdirSync(dataDir, { recursive: true });
    const options = from ? { loadDataDir: from } : {};
    const db = dataDir ? new PGlite(dataDir, options) : new PGlite(options);
    await db.waitReady;
    return new PgliteDb(db);
  }

  /** A snapshot of the whole data directory (uncompressed tar), to open copies from. */
  async snapshot(): Promise<Blob> {
    return this.pglite.dumpDataDir('none');
  }

  async query<T>(sql: string, params: readonly unknown[] = []): Promise<QueryResult<T>> {
    const r = await this.pglite.query<T>(sql, params as unknown[]);
    return { rows: r.rows };
  }

  async tx<T>(fn: (q: Queryable) => Promise<T>): Promise<T> {
    // PGlite is one connection: its transaction() holds an exclusive lock so that
    // concurrent requests queue instead of interleaving inside one transaction.
    const callbacks = new CommitCallbacks();
    const result = await this.pglite.transaction(async (t) =>
      fn({
        query: async <R>(sql: string, params: readonly unknown[] = []) => {
          const r = await t.query<R>(sql, params as unknown[]);
          return { rows: r.rows };
        },
        exec: async (sql: string) => {
          await t.exec(sql);
        },
        onCommit: callbacks.add,
      }),
    );
    callbacks.run();
    return result;
  }

  async ping(): Promise<void> {
    await this.query('SELECT 1');
  }

  async close(): Promise<void> {
    await this.pglite.close();
  }

  /** Multi-statement SQL (migrations). */
  async exec(sql: string): Promise<void> {
    await this.pglite.exec(sql);
  }
}
