/**
 * Acceptance with Redis: two gateway instances share the deliveries through the stream's
 * consumer group; the one sending is killed in the middle of a delivery; every event is still
 * delivered at least once, none skipped, and the repeated one carries the same event number.
 */
import t from 'tap';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import type { Bundle, Subscription } from '@medplum/fhirtypes';
import { BACKENDS } from '../helpers/db.js';
import { createTestApp, FHIR_HEADERS } from '../helpers/app.js';
import { allReceipts, firstReceipts, startReceiver, waitFor } from '../helpers/hook-receiver.js';
import { createLogger } from '../../src/logger.js';
import { Dispatcher, readState } from '../../src/subscriptions/index.js';

const TEST_REDIS_URL = process.env.TEST_REDIS_URL || undefined;

for (const backend of BACKENDS) {
  t.test(`${backend}: two instances, one killed mid-delivery`, { skip: TEST_REDIS_URL ? false : 'TEST_REDIS_URL not set' }, async (t) => {
    const receiver = await startReceiver();
    t.teardown(() => receiver.stop());
    const env = { SUBSCRIPTION_ALLOWED_HOSTS: '127.0.0.1', SUBSCRIPTION_POLL_MS: '20', SUBSCRIPTION_BACKOFF_BASE_MS: '20', SUBSCRIPTION_LEASE_MS: '1000' };
    const ta = await createTestApp(backend, env);
    t.teardown(() => ta.close());
    const prefix = `test:subs:${randomBytes(6).toString('hex')}:`;
    const connections: Redis[] = [];
    const instance = () => {
      const redis = new Redis(TEST_REDIS_URL as string, { maxRetriesPerRequest: 2 });
      connections.push(redis);
      return new Dispatcher({ db: ta.tdb.db, repository: ta.fhir.repository, config: ta.config, logger: createLogger('silent'), redis, redisPrefix: prefix });
    };
    const a = instance();
    const b = instance();
    t.teardown(async () => {
      await a.stop();
      await b.stop();
      const keys = await connections[0].keys(`${prefix}*`);
      if (keys.length > 0) await connections[0].del(...keys);
      for (const c of connections) c.disconnect();
    });
    t.equal(a.queue.kind, 'redis');

    const created = await ta.app.inject({
      method: 'POST',
      url: '/fhir/Subscription',
      headers: FHIR_HEADERS,
      payload: { resourceType: 'Subscription', status: 'requested', reason: 'platform', criteria: 'Encounter?status=finished', channel: { type: 'rest-hook', endpoint: receiver.url } },
    });
    t.equal(created.statusCode, 201, created.body);
    const id = (created.json() as Subscription).id as string;
    await a.start();
    await b.start();
    await waitFor('active', async () => (await readState(ta.tdb.db, id))?.status === 'active');

    // Kill whichever instance is sending when the 50th event arrives, before it hears the answer.
    let killed: Dispatcher | undefined;
    receiver.onNotification = () => {
      if (killed || allReceipts(receiver.received).length !== 50) return;
      const owner = [a, b].find((d) => d.sending.has(id));
      killed = owner;
      owner?.kill();
    };
    const total = 300;
    for (let r = 0; r < total / 100; r++) {
      const bundle: Bundle = {
        resourceType: 'Bundle',
        type: 'transaction',
        entry: Array.from({ length: 100 }, () => ({
          resource: { resourceType: 'Encounter', status: 'finished', class: { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' } },
          request: { method: 'POST' as const, url: 'Encounter' },
        })),
      };
      t.equal((await ta.app.inject({ method: 'POST', url: '/fhir', headers: FHIR_HEADERS, payload: bundle })).statusCode, 200);
    }
    await waitFor(`${total} events delivered`, async () => (await readState(ta.tdb.db, id))?.delivered_through === total);
    t.ok(killed, 'an instance was killed while sending');

    const firsts = firstReceipts(receiver.received);
    t.same(
      firsts.map((f) => f.eventNumber),
      Array.from({ length: total }, (_, i) => i + 1),
      'every event delivered, none skipped, first receipts in order',
    );
    const all = allReceipts(receiver.received);
    t.ok(all.length > total, 'the event in flight when the instance died was sent again');
    const focusOf = new Map(firsts.map((f) => [f.eventNumber, f.focus]));
    t.ok(
      all.every((e) => focusOf.get(e.eventNumber) === e.focus),
      'a repeated notification carries the same event number and focus',
    );
    // The stream entry the dead instance had taken is claimed by the other and acknowledged.
    const queue = a.queue as unknown as { stream: string };
    await waitFor('no pending stream entries', async () => {
      const [count] = (await connections[0].xpending(queue.stream, 'dispatchers')) as [number];
      return Number(count) === 0;
    });
    t.pass('the dead consumer\'s pending entries were claimed');
  });
}
