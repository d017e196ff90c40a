/**
 * Many senders at once: 500 MLLP connections to the gateway as `npm start` runs it, each sending
 * one or two ORU^R01 (10 OBX each) for patients spread over 50 MRNs. Every message must be
 * answered AA with its own control id (MSA-2), and exactly one Observation per OBX must be stored:
 * none lost, none twice. Runs once: on PostgreSQL when TEST_DATABASE_URL is set, else on the
 * embedded PGlite.
 */
import pLimit from 'p-limit';
import { countyLabOru } from '../helpers/hl7-samples.js';
import t, { type Test } from 'tap';
import { freePort } from '../helpers/net.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import type { Bundle, Observation } from '@medplum/fhirtypes';
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';
import { start } from '../../src/server.js';
import { sendMllp } from '../../src/ingest/mllp/index.js';
import { TEST_DATABASE_URL } from '../helpers/db.js';

const CONNECTIONS = 500;
/** Connections open at the same time (the rest wait for a free slot): all of them, as 500 senders would. */
const FAN_OUT = 500;
const MRNS = 50;
const OBX_PER_MESSAGE = 10;

// Two runs of 500 messages each (PGlite, PostgreSQL) on a busy 2-core machine.
t.setTimeout(300_000);



interface Message {
  readonly controlId: string;
  readonly bytes: Buffer;
}

/** An ORU^R01 of the county LIS (QSLIS/QSXRMYY, UTF-8): one order, 10 results. */
function oru(tag: string, conn: number, seq: number): Message {
  return countyLabOru({ controlId: `${tag}-${conn}-${seq}`, mrn: `${tag}M${conn % MRNS}`, given: `负载${conn % MRNS}`, results: OBX_PER_MESSAGE });
}

/** MSA-1 and MSA-2 of an ACK. */
function msa(ack: Buffer): { code: string; controlId: string; text: string } {
  const text = ack.toString('utf8');
  const seg = text.split(/\r\n?|\n/).find((s) => s.startsWith('MSA|'));
  const f = seg?.split('|') ?? [];
  return { code: f[1] ?? '', controlId: f[2] ?? '', text: text.replace(/\r/g, '\\r') };
}


async function runLoad(t: Test, env: Record<string, string>, sql?: (text: string) => Promise<Record<string, unknown>[]>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'hie-mllp-load-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const mllpPort = await freePort();
  const config = loadConfig({ HOST: '127.0.0.1', PORT: '0', MLLP_PORT: String(mllpPort), DATA_DIR: dir, HL7_SPOOL_DIR: join(dir, 'spool'), LOG_LEVEL: 'silent', ...env });
  const running = await start(config, createLogger('silent'));
  t.teardown(() => running.stop());

  const tag = `LD${randomBytes(3).toString('hex').toUpperCase()}`;
  const plan = Array.from({ length: CONNECTIONS }, (_, conn) => Array.from({ length: 1 }, (_, seq) => oru(tag, conn, seq)));
  const messages = plan.reduce((n, m) => n + m.length, 0);

  const started = performance.now();
  const problems: string[] = [];
  const limit = pLimit(FAN_OUT);
  await Promise.all(plan.map((msgs) => limit(async () => {
    try {
      const acks = await sendMllp('127.0.0.1', mllpPort, msgs.map((m) => m.bytes), { timeoutMs: 120_000 });
      acks.forEach((ack, i) => {
        const a = msa(ack);
        if (a.code !== 'AA' || a.controlId !== msgs[i].controlId) problems.push(`${msgs[i].controlId}: ${a.text}`);
      });
    } catch (e) {
      problems.push(`${msgs[0].controlId}: ${(e as Error).message}`);
    }
  })));
  const seconds = (performance.now() - started) / 1000;
  t.comment(`${messages} messages on ${CONNECTIONS} connections (${FAN_OUT} at once) in ${seconds.toFixed(1)} s, ${Math.round(messages / seconds)} msgs/s`);
  t.same(problems.slice(0, 10), [], `every message answered AA with its own control id (${problems.length} of ${messages} were not)`);

  // Through the FHIR API, as the county hospital's HIS reads it: per patient, every Observation once.
  const r = await fetch(`${running.address}/auth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: 'grant_type=client_credentials&client_id=county-his&client_secret=county-his-secret',
  });
  const token = ((await r.json()) as { access_token: string }).access_token;
  const ids = new Set<string>();
  const keys = new Set<string>();
  let found = 0;
  for (let m = 0; m < MRNS; m++) {
    let url: string | undefined = `${running.address}/fhir/Observation?subject:Patient.identifier=${tag}M${m}&_count=1000`;
    while (url) {
      const res = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
      const body = (await res.json()) as Bundle;
      if (body.resourceType !== 'Bundle') {
        t.fail(JSON.stringify(body).slice(0, 300));
        break;
      }
      for (const e of body.entry ?? []) {
        const o = e.resource as Observation;
        found++;
        if (o.id) ids.add(o.id);
        keys.add(o.identifier?.map((i) => `${i.system}|${i.value}`).join(',') ?? '');
      }
      url = body.link?.find((l) => l.relation === 'next')?.url;
    }
  }
  const expected = messages * OBX_PER_MESSAGE;
  t.equal(found, expected, `${expected} Observations found through the FHIR API (one per OBX)`);
  t.equal(ids.size, found, 'no Observation listed twice');
  t.equal(keys.size, found, 'no two Observations with the same business identifier');

  if (sql) {
    const [row] = await sql(
      `SELECT count(*)::int AS n, count(DISTINCT (content::jsonb)->'identifier') ::int AS distinct_keys FROM resource
        WHERE type = 'Observation' AND NOT deleted AND content LIKE '%${tag}-%'`,
    );
    t.same(row, { n: expected, distinct_keys: expected }, 'the same count straight from the resource table, no duplicate identifiers');
    const [processed] = await sql(`SELECT count(*)::int AS n FROM hl7_processed WHERE control_id LIKE '${tag}-%'`);
    t.same(processed, { n: messages }, 'one processed-message row per control id');
  }
}

// A scale test: once, on the real PostgreSQL when TEST_DATABASE_URL is set, else on PGlite (SCALE_BACKENDS).
if (!TEST_DATABASE_URL) {
  t.test('pglite: 500 MLLP connections, every message AA, every OBX stored once', async (t) => {
    await runLoad(t, {});
  });
}

if (TEST_DATABASE_URL) t.test('PostgreSQL: 500 MLLP connections, every message AA, every OBX stored once', async (t) => {
  const schema = `mllp_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await admin.connect();
  await admin.query(`CREATE SCHEMA ${schema}`);
  await admin.query(`SET search_path = ${schema}`);
  t.teardown(async () => {
    await admin.query(`DROP SCHEMA ${schema} CASCADE`);
    await admin.end();
  });
  const url = new URL(TEST_DATABASE_URL as string);
  url.searchParams.set('options', `-c search_path=${schema}`);
  await runLoad(t, { DATABASE_URL: url.toString() }, async (text) => {
    const { rows } = await admin.query(text);
    return rows as Record<string, unknown>[];
  });
});
