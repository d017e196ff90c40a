/**
 * Event numbering after commit (state.ts numberEvents): writes append their events unnumbered and
 * do not wait for each other on the subscription; whoever reads the events numbers the committed
 * ones first, under the counter row's lock. Concurrent writers, with numbering running beside
 * them, still give numbers 1, 2, 3, … without gaps or repeats, each resource's versions in order.
 * Until numbered, events count in the backlog; $status numbers them; a deleted subscription keeps
 * no events, and writes after its deletion append none.
 */
import t from 'tap';
import type { Observation, Parameters, Bundle, Subscription } from '@medplum/fhirtypes';
import { BACKENDS } from '../helpers/db.js';
import { createTestApp, FHIR_HEADERS } from '../helpers/app.js';
import { readState, type DeliveryRow } from '../../src/subscriptions/index.js';
import { eventsAfter, numberEvents } from '../../src/subscriptions/state.js';
import { joinTransaction } from '../../src/store/index.js';
import { waitFor } from '../helpers/hook-receiver.js';

const CODE = { system: 'http://loinc.org', code: '2345-7' };
const WRITERS = 20;
const ROUNDS = 4;

function observation(id: string, value: number): Observation {
  return { resourceType: 'Observation', id, status: 'final', code: { coding: [CODE] }, valueQuantity: { value, unit: 'mmol/L' } };
}

for (const backend of BACKENDS) {
  t.test(backend, async (t) => {
    const ta = await createTestApp(backend);
    t.teardown(() => ta.close());
    const { app } = ta;
    const db = ta.tdb.db;
    const created = await app.inject({
      method: 'POST',
      url: '/fhir/Subscription',
      headers: FHIR_HEADERS,
      payload: { resourceType: 'Subscription', status: 'requested', reason: 'numbering', criteria: `Observation?code=${CODE.system}|${CODE.code}`, channel: { type: 'rest-hook', endpoint: 'https://platform.example.cn/hook' } } satisfies Subscription,
    });
    t.equal(created.statusCode, 201, created.body);
    const id = created.json<Subscription>().id as string;
    const put = async (rid: string, value: number) => {
      const res = await app.inject({ method: 'PUT', url: `/fhir/Observation/${rid}`, headers: FHIR_HEADERS, payload: observation(rid, value) });
      if (res.statusCode >= 300) t.fail(`PUT Observation/${rid}: ${res.statusCode} ${res.body}`);
    };
    const unnumbered = async () => (await db.query<{ n: number }>('SELECT count(*)::int AS n FROM subscription_event WHERE subscription_id = $1 AND event_number IS NULL', [id])).rows[0].n;

    await t.test('concurrent writers are numbered without gaps, in per-resource order', async (t) => {
      // 20 writers, each updating two resources shared by all several times, while two numberers
      // run beside them (as the dispatcher and a $status would).
      let writing = true;
      const numberer = async () => {
        let runs = 0;
        while (writing) {
          await numberEvents(db, id);
          runs++;
          await new Promise((r) => setTimeout(r, 5));
        }
        return runs;
      };
      // The shared resources exist first: concurrent creates of one new id are another matter
      // (a PUT that creates races another such PUT), not numbering.
      await put('shared-a', 0);
      await put('shared-b', 0);
      const numberers = [numberer(), numberer()];
      await Promise.all(
        Array.from({ length: WRITERS }, async (_, w) => {
          for (let r = 1; r <= ROUNDS; r++) {
            await put('shared-a', w * 100 + r);
            await put('shared-b', w * 100 + r);
          }
        }),
      );
      writing = false;
      t.ok((await Promise.all(numberers)).every((n) => n > 0), 'numbering ran while the writes went on');
      // Then a burst: events waiting, and several numberers at once.
      for (let i = 1; i <= 10; i++) await put('shared-a', 10_000 + i);
      const counts = await Promise.all(Array.from({ length: 8 }, () => numberEvents(db, id)));

      const total = WRITERS * ROUNDS * 2 + 2 + 10;
      t.equal(Math.max(...(counts as number[])), total, 'the numberers of the burst agree on the count');
      const state = await readState(db, id);
      t.equal(state?.events_count, total, 'one event per write');
      t.equal(await unnumbered(), 0, 'reading the state numbered every committed event');
      const events = await eventsAfter(db, id, 0, total + 10);
      t.same(
        events.map((e) => e.event_number),
        Array.from({ length: total }, (_, i) => i + 1),
        'numbers 1 to the count, none skipped or repeated',
      );
      const versions = new Map<string, number[]>();
      for (const e of events) versions.set(e.id, [...(versions.get(e.id) ?? []), e.version_id]);
      t.same(versions.get('shared-a'), Array.from({ length: WRITERS * ROUNDS + 11 }, (_, i) => i + 1), 'shared-a: every version once, in version order');
      t.same(versions.get('shared-b'), Array.from({ length: WRITERS * ROUNDS + 1 }, (_, i) => i + 1), 'shared-b: every version once, in version order');
    });

    // PGlite has one connection: a second numberer cannot even start while a transaction is open.
    if (backend === 'postgres') {
      await t.test('a numberer waits for the one numbering before it', async (t) => {
        const before = (await readState(db, id))?.events_count ?? 0;
        for (let i = 0; i < 3; i++) await put('shared-b', 20_000 + i);
        // One numbering, left uncommitted: its events look unnumbered to everyone else.
        let release = () => {};
        const held = new Promise<void>((r) => (release = r));
        let numbered = false;
        const first = db.tx(async (q) => {
          const count = await numberEvents(joinTransaction(db, q), id);
          numbered = true;
          await held;
          return count;
        });
        await waitFor('the first numbering', () => numbered);
        // A write commits meanwhile (appending does not wait for numbering), then a second numberer.
        await put('shared-b', 20_003);
        const second = numberEvents(db, id);
        await waitFor('the second numberer waiting on a lock', async () => {
          const { rows } = await db.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%subscription_%'`);
          return rows[0].n > 0;
        });
        release();
        t.equal(await first, before + 3, 'the first numbered the three');
        t.equal(await second, before + 4, 'the second, once the first committed, numbered the write after');
        t.equal((await readState(db, id))?.events_count, before + 4);
        const events = await eventsAfter(db, id, before, 10);
        t.same(events.map((e) => e.event_number), [1, 2, 3, 4].map((i) => before + i), 'numbers follow each other');
        const versions = events.map((e) => e.version_id);
        t.same(versions, [...versions].sort((a, b) => a - b), 'in version order');
      });
    }

    await t.test('unnumbered events are backlog; $status numbers them', async (t) => {
      const before = (await readState(db, id))?.events_count ?? 0;
      for (let i = 0; i < 3; i++) await put(`late-${i}`, i);
      t.equal(await unnumbered(), 3, 'the writes appended their events without numbers');
      const delivery = (await app.inject('/subscriptions/delivery')).json<{ subscriptions: DeliveryRow[] }>().subscriptions;
      t.match(delivery, [{ id, events: before + 3, deliveredThrough: 0, backlog: before + 3 }], 'the delivery view counts them');
      t.match((await app.inject('/metrics')).body, new RegExp(`gateway_subscription_backlog_events ${before + 3}\\n`), 'so does the backlog gauge');
      t.equal(await unnumbered(), 3, 'looking at the backlog numbers nothing');

      const status = (await app.inject(`/fhir/Subscription/${id}/$status`)).json<Bundle>();
      const params = status.entry?.[0]?.resource as Parameters;
      t.equal(params.parameter?.find((p) => p.name === 'events-since-subscription-start')?.valueString, String(before + 3), '$status counts them');
      t.equal(await unnumbered(), 0, 'numbered by $status');
      const events = (await app.inject(`/fhir/Subscription/${id}/$events?eventsSinceNumber=${before + 1}&content=id-only`)).json<Bundle>();
      const numbers = ((events.entry?.[0]?.resource as Parameters).parameter ?? [])
        .filter((p) => p.name === 'notification-event')
        .map((p) => p.part?.find((x) => x.name === 'event-number')?.valueString);
      t.same(numbers, [1, 2, 3].map((i) => String(before + i)), '$events gives the three events');
    });

    await t.test('deleting the subscription removes its events; later writes append none', async (t) => {
      await put('late-0', 10);
      t.equal(await unnumbered(), 1);
      t.equal((await app.inject({ method: 'DELETE', url: `/fhir/Subscription/${id}` })).statusCode < 300, true, 'deleted');
      await put('late-1', 10);
      const { rows } = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM subscription_event WHERE subscription_id = $1', [id]);
      t.equal(rows[0].n, 0, 'no event of the deleted subscription is left');
      t.equal(await numberEvents(db, id), undefined, 'nothing to number');
      t.equal(await readState(db, id), undefined);
    });
  });
}
