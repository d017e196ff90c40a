/**
 * The database connections of a running gateway are killed in the middle of an MLLP stream.
 * Messages caught by it get no AA (an AE asking to resend, or no ACK); a sender resends what was
 * not acknowledged AA, as HL7 engines do; in the end every message is stored exactly once.
 * Real PostgreSQL only: the connections this gateway holds are terminated by their
 * application_name, so other test files sharing the server are untouched.
 */
import t from 'tap';
import { freePort } from '../helpers/net.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';
import { start } from '../../src/server.js';
import { sendMllp } from '../../src/ingest/mllp/index.js';
import { TEST_DATABASE_URL } from '../helpers/db.js';


const oru = (n: number): Buffer =>
  Buffer.from(
    [
      `MSH|^~\\&|QSLIS|QSXRMYY|COUNTY-HIE|QS|20261120081500||ORU^R01^ORU_R01|KILL-${n}|P|2.5|||||CHN|UNICODE UTF-8`,
      `PID|1||K${n % 7}^^^QSXRMYY^MR||Test^Kill||19700101|F`,
      `OBR|1|P-${n}|F-${n}|2345-7^Glucose^LN`,
      `OBX|1|NM|2345-7^Glucose^LN||${(5 + n / 100).toFixed(2)}|mmol/L|3.9-6.1|N|||F`,
    ].join('\r'),
  );

const ackCode = (ack: Buffer | undefined): string => /MSA\|([A-Z]{2})/.exec(ack?.toString('utf8') ?? '')?.[1] ?? 'none';

t.test('regression: killing the database connections mid-stream neither crashes the gateway nor loses a message', { skip: TEST_DATABASE_URL ? false : 'TEST_DATABASE_URL not set' }, async (t) => {
  const schema = `kill_${randomBytes(4).toString('hex')}`;
  const appName = `hie-${schema}`;
  const admin = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await admin.connect();
  await admin.query(`CREATE SCHEMA ${schema}`);
  const dir = mkdtempSync(join(tmpdir(), 'hie-kill-'));
  t.teardown(async () => {
    await admin.query(`DROP SCHEMA ${schema} CASCADE`);
    await admin.end();
    rmSync(dir, { recursive: true, force: true });
  });
  const url = new URL(TEST_DATABASE_URL as string);
  url.searchParams.set('options', `-c search_path=${schema}`);
  url.searchParams.set('application_name', appName);
  const mllpPort = await freePort();
  const config = loadConfig({
    HOST: '127.0.0.1',
    PORT: '0',
    MLLP_PORT: String(mllpPort),
    DATABASE_URL: url.toString(),
    DB_POOL_MAX: '4',
    HL7_SPOOL_DIR: join(dir, 'spool'),
    LOG_LEVEL: 'silent',
  });
  const running = await start(config, createLogger('silent'));
  t.teardown(() => running.stop());

  const TOTAL = 60;
  const SENDERS = 6;
  const first: string[] = new Array(TOTAL).fill('none');
  // Six senders stream their messages; meanwhile the killer waits for a gateway connection that
  // is busy (in a query or inside a transaction) and terminates it, three times.
  let streaming = true;
  const killer = (async () => {
    let kills = 0;
    while (streaming && kills < 3) {
      const { rows } = await admin.query<{ pid: number }>(
        `SELECT pg_terminate_backend(pid), pid FROM pg_stat_activity WHERE application_name = $1 AND state <> 'idle'`,
        [appName],
      );
      if (rows.length > 0) {
        kills++;
        await new Promise((r) => setTimeout(r, 150));
      } else {
        await new Promise((r) => setTimeout(r, 2));
      }
    }
    return kills;
  })();
  await Promise.all(
    Array.from({ length: SENDERS }, async (_, s) => {
      for (let n = s; n < TOTAL; n += SENDERS) {
        const [ack] = await sendMllp('127.0.0.1', mllpPort, [oru(n)], { timeoutMs: 15_000 }).catch(() => [undefined]);
        first[n] = ackCode(ack);
      }
    }),
  );
  streaming = false;
  const kills = await killer;
  t.ok(kills > 0, `killed busy gateway connections ${kills} times mid-stream`);
  t.notOk(first.some((c) => c === 'AR'), 'a database failure is never a refusal (AR would make the sender drop it)');
  t.comment(`first pass: ${first.filter((c) => c === 'AA').length} AA, ${first.filter((c) => c !== 'AA').length} not acknowledged`);

  // The sender resends everything not acknowledged AA (a few rounds, as an engine would).
  for (let round = 0; round < 5; round++) {
    const pending = first.map((c, n) => (c === 'AA' ? -1 : n)).filter((n) => n >= 0);
    if (pending.length === 0) break;
    for (const n of pending) {
      const [ack] = await sendMllp('127.0.0.1', mllpPort, [oru(n)], { timeoutMs: 15_000 }).catch(() => [undefined]);
      first[n] = ackCode(ack);
    }
  }
  t.same(first.filter((c) => c !== 'AA'), [], 'every message acknowledged AA in the end');

  const q = new pg.Client({ connectionString: url.toString() });
  await q.connect();
  t.teardown(() => q.end());
  const obs = await q.query<{ n: number }>(`SELECT count(*)::int AS n FROM resource WHERE type = 'Observation' AND NOT deleted`);
  t.equal(obs.rows[0].n, TOTAL, 'each message stored exactly once');
  const processed = await q.query<{ n: number }>(`SELECT count(DISTINCT control_id)::int AS n FROM hl7_processed`);
  t.equal(processed.rows[0].n, TOTAL, 'each control id recorded once');
});
