/**
 * Acceptance: outbox-backed, at-least-once, ordered rest-hook delivery to a real HTTP receiver
 * on loopback. 1,000 writes give 1,000 notifications, in order per resource; the receiver going
 * away for a while loses none (retries); a gateway restart between write and delivery loses none
 * (the outbox is in the database).
 */
import t, { type Test } from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Bundle, Observation, Subscription } from '@medplum/fhirtypes';
import { SCALE_BACKENDS, openTestDb, type Backend } from '../helpers/db.js';
import { createTestApp, FHIR_HEADERS, TEST_BASE } from '../helpers/app.js';
import { allReceipts, firstReceipts, paramValue, startReceiver, statusOf, waitFor, type HookReceiver } from '../helpers/hook-receiver.js';
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';
import { buildApp } from '../../src/app.js';
import { prepareAudit } from '../../src/audit/index.js';
import { createFhirServices } from '../../src/fhir/index.js';
import { readState, sign } from '../../src/subscriptions/index.js';
import { openStore, type Db } from '../../src/store/index.js';
import { SUBSCRIPTION_SECRET_EXTENSION } from '../../src/fhir/systems.js';

const GLUCOSE = { system: 'http://loinc.org', code: '2345-7' };
const SECRET = 'platform-hmac-secret-0001';
const FAST = {
  SUBSCRIPTION_ALLOWED_HOSTS: '127.0.0.1',
  SUBSCRIPTION_POLL_MS: '20',
  SUBSCRIPTION_BACKOFF_BASE_MS: '20',
  SUBSCRIPTION_BACKOFF_MAX_MS: '200',
  SUBSCRIPTION_MAX_FAILURES: '100000',
};

function subscription(endpoint: string): Subscription {
  return {
    resourceType: 'Subscription',
    status: 'requested',
    reason: '全民健康信息平台: glucose results',
    criteria: `Observation?code=${GLUCOSE.system}|${GLUCOSE.code}`,
    channel: {
      type: 'rest-hook',
      endpoint,
      payload: 'application/fhir+json',
      header: ['Authorization: Bearer platform-receiver-token'],
      extension: [{ url: SUBSCRIPTION_SECRET_EXTENSION, valueString: SECRET }],
    },
  };
}

function observation(id: string, value: number, code = GLUCOSE): Observation {
  return { resourceType: 'Observation', id, status: 'final', code: { coding: [code] }, valueQuantity: { value, unit: 'mmol/L' } };
}

/** One transaction Bundle updating (or creating) every id with the round's value, plus one write that matches nothing. */
function round(ids: string[], r: number): Bundle {
  return {
    resourceType: 'Bundle',
    type: 'transaction',
    entry: [
      ...ids.map((id) => ({ resource: observation(id, r), request: { method: 'PUT' as const, url: `Observation/${id}` } })),
      { resource: observation(`other-${r}`, r, { system: 'http://loinc.org', code: '2093-3' }), request: { method: 'PUT' as const, url: `Observation/other-${r}` } },
    ],
  };
}

function checkDelivery(t: Test, receiver: HookReceiver, expected: number): void {
  const firsts = firstReceipts(receiver.received);
  t.equal(firsts.length, expected, `${expected} distinct events received`);
  t.same(
    firsts.map((f) => f.eventNumber),
    Array.from({ length: expected }, (_, i) => i + 1),
    'every event number from 1, none skipped, first received in order',
  );
  // Duplicates (a retry after an answer was lost) carry the event number and focus of the original.
  const byNumber = new Map(firsts.map((f) => [f.eventNumber, f.focus]));
  for (const e of allReceipts(receiver.received)) if (byNumber.get(e.eventNumber) !== e.focus) t.fail(`event ${e.eventNumber} sent twice with different foci`);
  // In order per resource: versions of each Observation arrive 1, 2, 3, ...
  const versions = new Map<string, number[]>();
  for (const f of firsts) versions.set(f.focus as string, [...(versions.get(f.focus as string) ?? []), Number(f.versionId)]);
  let ordered = true;
  for (const [focus, vs] of versions) if (vs.some((v, i) => v !== i + 1)) ordered = (t.fail(`${focus} versions out of order: ${vs.join(',')}`), false);
  t.ok(ordered, 'each resource notified in version order');
  t.notOk(
    firsts.some((f) => f.focus?.includes('/Observation/other-')),
    'writes that do not match the criteria are not notified',
  );
}

// A scale test (1,000 writes): once, on PostgreSQL in CI, else on PGlite.
for (const backend of SCALE_BACKENDS) {
  t.test(`${backend}: 1,000 writes, receiver down for a while`, async (t) => {
    const receiver = await startReceiver();
    t.teardown(() => receiver.stop());
    const ta = await createTestApp(backend, FAST);
    t.teardown(() => ta.close());
    const { app } = ta;
    const platform = await ta.token('regional-platform');

    const created = await app.inject({ method: 'POST', url: '/fhir/Subscription', headers: { ...FHIR_HEADERS, authorization: `Bearer ${platform}` }, payload: subscription(receiver.url) });
    t.equal(created.statusCode, 201, created.body);
    const sub = created.json() as Subscription;
    t.equal(sub.status, 'requested');
    t.notOk(JSON.stringify(sub).includes(SECRET), 'the HMAC secret is not kept in the resource');

    await app.subscriptions.start();
    t.teardown(() => app.subscriptions.stop());
    await waitFor('handshake', () => receiver.received.length > 0);
    const handshake = receiver.received[0];
    t.equal(paramValue(statusOf(handshake.bundle), 'type'), 'handshake');
    t.equal(handshake.headers['x-signature'], sign(SECRET, handshake.body), 'signed with the subscription secret');
    t.equal(handshake.headers.authorization, 'Bearer platform-receiver-token', 'custom header sent');
    await waitFor('status active', async () => (await app.inject(`/fhir/Subscription/${sub.id}`)).json<Subscription>().status === 'active');

    const ids = Array.from({ length: 100 }, (_, i) => `glu-${i}`);
    const write = async (r: number) => {
      const res = await app.inject({ method: 'POST', url: '/fhir', headers: FHIR_HEADERS, payload: round(ids, r) });
      t.equal(res.statusCode, 200, `round ${r} committed`);
    };
    for (let r = 1; r <= 4; r++) await write(r);

    await receiver.stop();
    for (let r = 5; r <= 7; r++) await write(r);
    await waitFor('failed attempts while the receiver is down', async () => ((await readState(ta.tdb.db, sub.id as string))?.failures ?? 0) >= 3);
    await receiver.start();
    for (let r = 8; r <= 10; r++) await write(r);

    await waitFor('1,000 events delivered', async () => (await readState(ta.tdb.db, sub.id as string))?.delivered_through === 1000);
    checkDelivery(t, receiver, 1000);
    for (const r of receiver.received) if (r.headers['x-signature'] !== sign(SECRET, r.body)) t.fail('a notification with a bad signature');

    const state = await readState(ta.tdb.db, sub.id as string);
    t.equal(state?.status, 'active', 'retries kept the subscription active');
    t.equal(state?.events_count, 1000);
    t.ok((state?.failed_total ?? 0) >= 3, 'failed attempts counted');
    const metrics = (await app.inject('/metrics')).body;
    t.match(metrics, /gateway_subscription_events_delivered_total 1000/);
    t.match(metrics, /gateway_subscription_notifications_total\{type="event-notification",result="failed"\} \d+/);
    t.match(metrics, /gateway_subscriptions\{status="active"\} 1/);
  });

  t.test(`${backend}: gateway restart between write and delivery`, async (t) => {
    const receiver = await startReceiver();
    t.teardown(() => receiver.stop());
    await receiver.stop();
    const dir = mkdtempSync(join(tmpdir(), 'subs-restart-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const tdb = await openTestDb(backend as Backend, join(dir, 'db'));
    const config = loadConfig({ BASE_URL: TEST_BASE, LOG_LEVEL: 'silent', HL7_SPOOL_DIR: join(dir, 'spool'), ...FAST });
    const open = async (db: Db) => {
      const fhir = await createFhirServices(config, db);
      const app = await buildApp(config, { db, logger: createLogger('silent'), fhir });
      await app.ready();
      return app;
    };
    await prepareAudit(tdb.db, config);
    const first = await open(tdb.db);
    const admin = await first.auth.mint('admin');
    const h = { ...FHIR_HEADERS, authorization: `Bearer ${admin}` };
    const created = await first.inject({ method: 'POST', url: '/fhir/Subscription', headers: h, payload: subscription(receiver.url) });
    t.equal(created.statusCode, 201, created.body);
    const subId = (created.json() as Subscription).id as string;
    await first.subscriptions.start();
    const ids = Array.from({ length: 10 }, (_, i) => `restart-${i}`);
    for (let r = 1; r <= 5; r++) t.equal((await first.inject({ method: 'POST', url: '/fhir', headers: h, payload: round(ids, r) })).statusCode, 200);
    await waitFor('a failed attempt', async () => ((await readState(tdb.db, subId))?.failures ?? 0) >= 1);
    // The gateway stops with 50 notifications committed and none delivered.
    await first.close();
    // The process is gone: its database connections too.
    if (backend === 'pglite') await tdb.db.close();

    await receiver.start();
    const db = await openStore(backend === 'pglite' ? { dataDir: join(dir, 'db') } : tdb.options);
    t.equal((await readState(db, subId))?.delivered_through, 0, 'nothing was delivered before the restart');
    const second = await open(db);
    t.teardown(async () => {
      await second.close();
      await db.close();
      if (backend === 'postgres') await tdb.close();
    });
    await second.subscriptions.start();
    await waitFor('50 events after restart', async () => (await readState(db, subId))?.delivered_through === 50);
    checkDelivery(t, receiver, 50);
  });
}
