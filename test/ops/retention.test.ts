import t from 'tap';
import { BACKENDS, openTestDb } from '../helpers/db.js';
import { pruneWorkingTables } from '../../src/ops/retention.js';
import { discardDeadLetter, insertDeadLetter } from '../../src/ingest/dead-letters.js';
import type { Db } from '../../src/store/index.js';

const NOW = new Date('2026-06-30T12:00:00Z');
const daysAgo = (d: number) => new Date(NOW.getTime() - d * 86_400_000).toISOString();
const OPTIONS = { subscriptionEventDays: 30, hl7ProcessedDays: 90, deadLetterDays: 180, now: NOW };

async function ids(db: Db, sql: string): Promise<string[]> {
  return (await db.query<{ k: string }>(sql)).rows.map((r) => String(r.k)).sort();
}

for (const backend of BACKENDS) {
  t.test(backend, async (t) => {
    const tdb = await openTestDb(backend);
    t.teardown(() => tdb.close());
    const db = tdb.db;

    // A subscription delivered through event 3 of 5; events 1, 2 and 4 are old.
    await db.query(`INSERT INTO subscription_state (id, status, resource_types, channel, spec, delivered_through) VALUES ('s1', 'active', '{Observation}', 'rest-hook', '{}', 3)`);
    for (const [n, age] of [[1, 60], [2, 31], [3, 5], [4, 40], [5, 1]] as const) {
      await db.query(`INSERT INTO subscription_event (subscription_id, event_number, created, type, id, version_id, action) VALUES ('s1', $1, $2, 'Observation', $3, 1, 'create')`, [n, daysAgo(age), `o${n}`]);
    }
    for (const [control, age] of [['C-OLD', 91], ['C-NEW', 89]] as const) {
      await db.query(`INSERT INTO hl7_processed (sender_id, control_id, message_type, ack, processed_at) VALUES ('lis', $1, 'ORU^R01', '\\x00'::bytea, $2)`, [control, daysAgo(age)]);
    }
    const letter = (control: string, age: number) =>
      insertDeadLetter(db, { receivedAt: new Date(daysAgo(age)), raw: Buffer.from('MSH|'), channel: 'http', senderId: 'lis', controlId: control, ackCode: 'AE', errorCode: 'parse-error', errorText: 'broken' });
    const waiting = await letter('D-WAITING', 400);
    const discardedLongAgo = await letter('D-CLOSED-OLD', 400);
    const discardedLately = await letter('D-CLOSED-NEW', 400);
    await discardDeadLetter(db, discardedLongAgo as number, 'duplicate of another message', 'ops');
    await discardDeadLetter(db, discardedLately as number, 'test message', 'ops');
    await db.query(`UPDATE dead_letter SET closed_at = $2 WHERE id = $1`, [discardedLongAgo, daysAgo(200)]);
    await db.query(`UPDATE dead_letter SET closed_at = $2 WHERE id = $1`, [discardedLately, daysAgo(10)]);

    const report = await pruneWorkingTables(db, OPTIONS);
    t.same(report, { subscriptionEvents: 2, hl7Processed: 1, deadLetters: 1 });
    t.same(await ids(db, 'SELECT event_number AS k FROM subscription_event'), ['3', '4', '5'], 'delivered and old: 1 and 2 go; 4 is old but not delivered yet');
    t.same(await ids(db, 'SELECT control_id AS k FROM hl7_processed'), ['C-NEW']);
    t.same(await ids(db, 'SELECT control_id AS k FROM dead_letter'), ['D-CLOSED-NEW', 'D-WAITING'], 'a waiting dead letter stays however old');
    t.ok(waiting);
    t.same(await pruneWorkingTables(db, OPTIONS), { subscriptionEvents: 0, hl7Processed: 0, deadLetters: 0 }, 'a second run finds nothing');
  });
}
