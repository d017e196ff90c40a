/**
 * A pipeline on an isolated test database, with the demo senders, the stand-in parser and
 * mapping, a temporary spool directory, and a Db whose failures a test can switch on.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { loadConfig } from '../../src/config.js';
import { GatewayError } from '../../src/errors.js';
import { prepareAudit } from '../../src/audit/index.js';
import { createFhirServices, type FhirServices } from '../../src/fhir/index.js';
import type { Db, Queryable } from '../../src/store/index.js';
import { IngestPipeline, type MapFn, type ParseFn } from '../../src/ingest/pipeline.js';
import { loadSenders, type SenderRegistry } from '../../src/ingest/senders.js';
import { openTestDb, type Backend, type TestDb } from '../helpers/db.js';
import { mapStandIn } from './stand-ins.js';

/** Switches for a Db that fails like a database going away. */
export interface Faults {
  /** Every statement fails (the database is down). */
  down: boolean;
  /** A statement matching this fails inside a transaction, and the database is down from then on. */
  dieOn?: RegExp;
}

export function faultyDb(db: Db, faults: Faults): Db {
  const fail = (): never => {
    throw new GatewayError('GW_ERR_UNAVAILABLE', 'The database is not reachable; retry later');
  };
  const wrap = (q: Queryable): Queryable => ({
    query: async (sql, params) => {
      if (faults.down) fail();
      if (faults.dieOn?.test(sql)) {
        faults.down = true;
        fail();
      }
      return q.query(sql, params);
    },
    exec: async (sql) => {
      if (faults.down) fail();
      return q.exec(sql);
    },
  });
  return {
    kind: db.kind,
    ...wrap(db),
    tx: async (fn) => {
      if (faults.down) fail();
      return db.tx((q) => fn(wrap(q)));
    },
    ping: async () => (faults.down ? fail() : db.ping()),
    close: () => db.close(),
  } as Db;
}

export interface PipelineFixture {
  readonly tdb: TestDb;
  readonly db: Db;
  readonly faults: Faults;
  readonly fhir: FhirServices;
  readonly senders: SenderRegistry;
  readonly registry: Registry;
  readonly spoolDir: string;
  readonly map: { fn: MapFn };
  readonly pipeline: IngestPipeline;
  count(sql: string, params?: unknown[]): Promise<number>;
  close(): Promise<void>;
}

export async function createPipelineFixture(backend: Backend, parse?: ParseFn): Promise<PipelineFixture> {
  const config = loadConfig({ BASE_URL: 'http://gateway.test', LOG_LEVEL: 'silent' });
  const tdb = await openTestDb(backend);
  await prepareAudit(tdb.db, config);
  const faults: Faults = { down: false };
  const db = faultyDb(tdb.db, faults);
  const fhir = await createFhirServices(config, db);
  const senders = await loadSenders();
  const registry = new Registry();
  const spoolDir = mkdtempSync(join(tmpdir(), 'hl7-spool-'));
  // The mapping a test may "fix" between a failure and a replay.
  const map = { fn: mapStandIn as MapFn };
  const pipeline = new IngestPipeline({ db, fhir, senders, parse, map: (m, c) => map.fn(m, c), spoolDir, metrics: registry });
  return {
    tdb,
    db,
    faults,
    fhir,
    senders,
    registry,
    spoolDir,
    map,
    pipeline,
    async count(sql, params = []) {
      const { rows } = await tdb.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${sql}`, params);
      return rows[0].n;
    },
    async close() {
      await tdb.close();
      rmSync(spoolDir, { recursive: true, force: true });
    },
  };
}

/** The MSA and ERR fields of an ACK. */
export function ackOf(ack: Buffer): { code: string; controlId: string; text: string; err?: string[] } {
  const segs = ack.toString('utf8').split('\r').filter((s) => s !== '');
  const msa = segs.find((s) => s.startsWith('MSA|'))?.split('|') ?? [];
  const err = segs.find((s) => s.startsWith('ERR|'))?.split('|');
  return { code: msa[1] ?? '', controlId: msa[2] ?? '', text: msa[3] ?? '', err };
}
