/**
 * Topic-based subscriptions (Subscriptions R5 Backport IG): the handshake, event notifications
 * with id-only, full-resource and empty content, the heartbeat, $status and $events have the
 * shape of the IG's own examples (backport-examples.json); topic triggers (FHIRPath with
 * %previous, query criteria) and subscriber filters decide what is notified; a subscription whose
 * endpoint keeps failing goes to error, is caught up with $events and set back to work.
 */
import t from 'tap';
import { readFileSync } from 'node:fs';
import type { Bundle, Encounter, Parameters, Subscription } from '@medplum/fhirtypes';
import { BACKENDS } from '../helpers/db.js';
import { createTestApp, FHIR_HEADERS, TEST_BASE } from '../helpers/app.js';
import { eventsOf, paramValue, startReceiver, statusOf, waitFor, type HookReceiver, type Received } from '../helpers/hook-receiver.js';
import { ENCOUNTER_FINISHED_TOPIC } from '../../src/fhir/systems.js';
import { BACKPORT, FILTER_CRITERIA_EXT, HEARTBEAT_EXT, PAYLOAD_CONTENT_EXT, readState } from '../../src/subscriptions/index.js';

const EXAMPLES = JSON.parse(readFileSync(new URL('./backport-examples.json', import.meta.url), 'utf8')) as Record<string, Bundle>;
const TOPIC = ENCOUNTER_FINISHED_TOPIC;
const AMB = { system: 'http://terminology.hl7.org/CodeSystem/v3-ActCode', code: 'AMB' };

/** Structure without the values: keys, array lengths, parameter names and resource types kept. */
function shape(x: unknown, key = ''): unknown {
  if (Array.isArray(x)) return x.map((v) => shape(v, key));
  if (x && typeof x === 'object') {
    const o = x as Record<string, unknown>;
    return Object.fromEntries(
      Object.keys(o)
        .filter((k) => !(key === 'entry' && k === 'resource' && (o[k] as { resourceType?: string }).resourceType !== 'Parameters'))
        .sort()
        .map((k) => [k, shape(o[k], k)]),
    );
  }
  return ['name', 'resourceType', 'type', 'profile'].includes(key) ? x : typeof x;
}

/** The IG example's shape, with `topic` left out where the IG text says it SHOULD NOT be sent (empty content). */
function example(name: string, withoutTopic = false): unknown {
  const b = structuredClone(EXAMPLES[name]);
  if (withoutTopic) {
    const p = b.entry?.[0]?.resource as Parameters;
    p.parameter = p.parameter?.filter((x) => x.name !== 'topic');
  }
  return shape(b);
}

function topicSubscription(endpoint: string, content: 'id-only' | 'full-resource' | 'empty', heartbeat?: number): Subscription {
  return {
    resourceType: 'Subscription',
    meta: { profile: [`${BACKPORT}/backport-subscription`] },
    status: 'requested',
    reason: '全民健康信息平台: finished encounters of one patient',
    criteria: TOPIC,
    _criteria: { extension: [{ url: FILTER_CRITERIA_EXT, valueString: 'Encounter?patient=Patient/p1' }] },
    channel: {
      type: 'rest-hook',
      endpoint,
      payload: 'application/fhir+json',
      _payload: { extension: [{ url: PAYLOAD_CONTENT_EXT, valueCode: content }] },
      ...(heartbeat ? { extension: [{ url: HEARTBEAT_EXT, valueUnsignedInt: heartbeat }] } : {}),
    },
  } as Subscription;
}

function notifications(r: HookReceiver, type: string): Received[] {
  return r.received.filter((x) => paramValue(statusOf(x.bundle), 'type') === type);
}

for (const backend of BACKENDS) {
  t.test(backend, async (t) => {
    const receivers = { idOnly: await startReceiver('/id-only'), full: await startReceiver('/full'), empty: await startReceiver('/empty'), failing: await startReceiver('/failing') };
    t.teardown(async () => {
      for (const r of Object.values(receivers)) await r.stop();
    });
    const ta = await createTestApp(backend, {
      SUBSCRIPTION_ALLOWED_HOSTS: '127.0.0.1',
      SUBSCRIPTION_POLL_MS: '20',
      SUBSCRIPTION_BACKOFF_BASE_MS: '10',
      SUBSCRIPTION_BACKOFF_MAX_MS: '50',
      SUBSCRIPTION_MAX_FAILURES: '3',
    });
    t.teardown(() => ta.close());
    const { app } = ta;
    const platform = { ...FHIR_HEADERS, authorization: `Bearer ${await ta.token('regional-platform')}` };
    const create = async (sub: Subscription) => {
      const res = await app.inject({ method: 'POST', url: '/fhir/Subscription', headers: platform, payload: sub });
      t.equal(res.statusCode, 201, res.body);
      return (res.json() as Subscription).id as string;
    };
    const idOnly = await create(topicSubscription(receivers.idOnly.url, 'id-only', 1));
    const full = await create(topicSubscription(receivers.full.url, 'full-resource'));
    const empty = await create(topicSubscription(receivers.empty.url, 'empty'));
    await app.subscriptions.start();
    t.teardown(() => app.subscriptions.stop());

    t.test('handshake', async (t) => {
      await waitFor('handshake', () => receivers.idOnly.received.length > 0);
      const hs = receivers.idOnly.received[0].bundle;
      t.same(shape(hs), example('handshake'), 'shape of the IG handshake example');
      t.equal(paramValue(statusOf(hs), 'status'), 'requested');
      t.equal(paramValue(statusOf(hs), 'events-since-subscription-start'), '0');
      t.equal(paramValue(statusOf(hs), 'topic'), TOPIC);
      t.equal(paramValue(statusOf(hs), 'subscription'), `${TEST_BASE}/fhir/Subscription/${idOnly}`);
      await waitFor('active', async () => (await readState(ta.tdb.db, idOnly))?.status === 'active');
    });

    t.test('topic trigger, filter and payloads', async (t) => {
      const put = async (id: string, patient: string, status: Encounter['status']) => {
        const enc: Encounter = { resourceType: 'Encounter', id, status, class: AMB, subject: { reference: `Patient/${patient}` } };
        const res = await app.inject({ method: 'PUT', url: `/fhir/Encounter/${id}`, headers: FHIR_HEADERS, payload: enc });
        t.ok(res.statusCode < 300, `${id} ${status}: ${res.statusCode}`);
      };
      await put('e1', 'p1', 'in-progress'); // not finished: no event
      await put('e1', 'p1', 'finished'); // becomes finished: event 1
      await put('e1', 'p1', 'finished'); // was finished already (%previous): no event
      await put('e2', 'p2', 'finished'); // another patient: filtered out
      await put('e3', 'p1', 'finished'); // created finished: event 2
      for (const id of [idOnly, full, empty]) await waitFor('2 events', async () => (await readState(ta.tdb.db, id))?.delivered_through === 2);
      for (const id of [idOnly, full, empty]) t.equal((await readState(ta.tdb.db, id))?.events_count, 2, 'exactly the two triggering writes');

      const [first, second] = notifications(receivers.idOnly, 'event-notification').map((r) => r.bundle);
      t.same(shape(first), example('id-only'), 'id-only: shape of the IG example');
      t.same(eventsOf(first), [{ eventNumber: 1, focus: `${TEST_BASE}/fhir/Encounter/e1` }]);
      t.same(eventsOf(second), [{ eventNumber: 2, focus: `${TEST_BASE}/fhir/Encounter/e3` }]);
      t.equal(paramValue(statusOf(second), 'events-since-subscription-start'), '2');

      const fullFirst = notifications(receivers.full, 'event-notification')[0].bundle;
      t.same(shape(fullFirst), example('full-resource'), 'full-resource: shape of the IG example');
      t.equal((fullFirst.entry?.[1]?.resource as Encounter).status, 'finished');
      t.equal((fullFirst.entry?.[1]?.resource as Encounter).meta?.versionId, '2', 'the version that triggered');
      t.equal(fullFirst.entry?.[1]?.request?.method, 'PUT');

      const emptyFirst = notifications(receivers.empty, 'event-notification')[0].bundle;
      t.same(shape(emptyFirst), example('empty', true), 'empty: shape of the IG example (no topic, as the IG asks)');
    });

    t.test('heartbeat', async (t) => {
      // A heartbeat sent after the two events (on a slow machine one may have gone out before them).
      const before = notifications(receivers.idOnly, 'heartbeat').length;
      await waitFor('heartbeat', () => notifications(receivers.idOnly, 'heartbeat').length > before);
      const hb = notifications(receivers.idOnly, 'heartbeat')[before].bundle;
      t.same(shape(hb), example('heartbeat'), 'shape of the IG heartbeat example');
      t.equal(paramValue(statusOf(hb), 'status'), 'active');
      t.equal(paramValue(statusOf(hb), 'events-since-subscription-start'), '2');
      t.equal(notifications(receivers.full, 'heartbeat').length, 0, 'no heartbeat without a heartbeat period');
    });

    t.test('$status', async (t) => {
      const res = await app.inject({ url: `/fhir/Subscription/${idOnly}/$status`, headers: platform });
      t.equal(res.statusCode, 200, res.body);
      const bundle = res.json() as Bundle;
      t.equal(bundle.type, 'searchset');
      const params = bundle.entry?.[0]?.resource as Parameters;
      const ig = structuredClone(EXAMPLES.error.entry?.[0]?.resource as Parameters);
      ig.parameter = ig.parameter?.filter((p) => p.name !== 'error');
      t.same(shape(params), shape(ig), 'query-status Parameters shaped as the IG example');
      t.equal(paramValue(params, 'type'), 'query-status');
      t.equal(paramValue(params, 'status'), 'active');
      t.equal(paramValue(params, 'events-since-subscription-start'), '2');

      const all = (await app.inject({ url: '/fhir/Subscription/$status', headers: platform })).json() as Bundle;
      t.equal(all.total, 3, 'type level without id: every subscription of the caller');
      const other = await app.inject({ url: `/fhir/Subscription/${idOnly}/$status`, headers: { authorization: `Bearer ${await ta.token('county-his')}` } });
      t.equal(other.statusCode, 403, 'another client does not see it');
      t.equal((await app.inject({ url: '/fhir/Subscription/nope/$status', headers: platform })).statusCode, 404);
    });

    t.test('$events', async (t) => {
      const res = await app.inject({ url: `/fhir/Subscription/${idOnly}/$events?eventsSinceNumber=2&content=full-resource`, headers: platform });
      t.equal(res.statusCode, 200, res.body);
      const bundle = res.json() as Bundle;
      t.same(shape(bundle), example('full-resource'), 'a notification Bundle shaped as the IG example');
      t.equal(paramValue(statusOf(bundle), 'type'), 'query-event');
      t.same(eventsOf(bundle), [{ eventNumber: 2, focus: `${TEST_BASE}/fhir/Encounter/e3` }]);
      const range = (await app.inject({ url: `/fhir/Subscription/${idOnly}/$events?eventsSinceNumber=1&eventsUntilNumber=1`, headers: platform })).json() as Bundle;
      t.same(eventsOf(range).map((e) => e.eventNumber), [1]);
      t.equal(range.entry?.length, 1, 'id-only (the subscription content) by default: no resources');
      const bad = await app.inject({ url: `/fhir/Subscription/${idOnly}/$events?eventsSinceNumber=x`, headers: platform });
      t.equal(bad.statusCode, 400);
      t.equal((await app.inject({ url: `/fhir/Subscription/${idOnly}/$events?content=everything`, headers: platform })).statusCode, 400);
    });

    t.test('error after repeated failures, catch up with $events, back to work', async (t) => {
      receivers.failing.failWith = 500;
      const id = await create({
        resourceType: 'Subscription',
        status: 'requested',
        reason: 'platform',
        criteria: 'Encounter?status=planned',
        channel: { type: 'rest-hook', endpoint: receivers.failing.url },
      });
      await waitFor('status error', async () => (await readState(ta.tdb.db, id))?.status === 'error');
      const resource = (await app.inject({ url: `/fhir/Subscription/${id}`, headers: platform })).json() as Subscription;
      await waitFor('resource status error', async () => ((await app.inject({ url: `/fhir/Subscription/${id}`, headers: platform })).json() as Subscription).status === 'error');
      t.ok(resource.id);
      const st = ((await app.inject({ url: `/fhir/Subscription/${id}/$status`, headers: platform })).json() as Bundle).entry?.[0]?.resource as Parameters;
      t.equal(paramValue(st, 'status'), 'error');
      t.match(st.parameter?.find((p) => p.name === 'error')?.valueCodeableConcept?.text, /HTTP 500/);

      // Events keep being recorded while in error; the subscriber reads them with $events.
      await app.inject({ method: 'PUT', url: '/fhir/Encounter/planned-1', headers: FHIR_HEADERS, payload: { resourceType: 'Encounter', id: 'planned-1', status: 'planned', class: AMB } });
      const missed = (await app.inject({ url: `/fhir/Subscription/${id}/$events`, headers: platform })).json() as Bundle;
      t.same(eventsOf(missed).map((e) => e.eventNumber), [1]);
      t.equal(receivers.failing.received.length, 0);

      receivers.failing.failWith = undefined;
      const current = (await app.inject({ url: `/fhir/Subscription/${id}`, headers: platform })).json() as Subscription;
      const reset = await app.inject({ method: 'PUT', url: `/fhir/Subscription/${id}`, headers: platform, payload: { ...current, status: 'requested' } });
      t.equal(reset.statusCode, 200, reset.body);
      await waitFor('delivered after reactivation', async () => (await readState(ta.tdb.db, id))?.delivered_through === 1);
      t.same(
        receivers.failing.received.map((r) => paramValue(statusOf(r.bundle), 'type')),
        ['handshake', 'event-notification'],
        'handshake again, then the event recorded while in error',
      );
    });
  });
}
