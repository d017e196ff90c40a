/**
 * Retry now ($retry) and the delivery view (GET /subscriptions/delivery) of the console: the
 * owner or the administrator makes the next attempt due at once, a subscription in error goes
 * back to requested with its failures counted afresh, one that is off is refused; others are
 * forbidden. The delivery view shows the caller's subscriptions with their backlog.
 */
import t from 'tap';
import type { Subscription } from '@medplum/fhirtypes';
import { BACKENDS } from '../helpers/db.js';
import { createTestApp, FHIR_HEADERS } from '../helpers/app.js';
import { readState, type DeliveryRow } from '../../src/subscriptions/index.js';

for (const backend of BACKENDS) {
  t.test(backend, async (t) => {
    const ta = await createTestApp(backend);
    t.teardown(() => ta.close());
    const { app } = ta;
    const as = async (clientId: string) => ({ ...FHIR_HEADERS, authorization: `Bearer ${await ta.token(clientId)}` });
    const created = await app.inject({
      method: 'POST',
      url: '/fhir/Subscription',
      headers: await as('regional-platform'),
      payload: { resourceType: 'Subscription', status: 'requested', reason: 'test', criteria: 'Observation?status=final', channel: { type: 'rest-hook', endpoint: 'https://platform.example.cn/hook' } } satisfies Subscription,
    });
    t.equal(created.statusCode, 201);
    const id = created.json<Subscription>().id as string;
    // One matching write: one event waiting (the dispatcher is not running in this test).
    t.equal((await app.inject({ method: 'POST', url: '/fhir/Observation', headers: FHIR_HEADERS, payload: { resourceType: 'Observation', status: 'final', code: { text: 'x' } } })).statusCode, 201);

    // The subscriber failed until the server gave up: status error, with a last error.
    await app.subscriptions.dispatcher.setResourceStatus(id, 'error', 'connection refused');
    await ta.tdb.db.query(`UPDATE subscription_state SET status = 'error', failures = 10, last_error = 'connection refused', next_attempt = now() + interval '1 hour' WHERE id = $1`, [id]);

    const delivery = async (clientId: string) => (await app.inject({ url: '/subscriptions/delivery', headers: await as(clientId) })).json<{ subscriptions: DeliveryRow[] }>().subscriptions;
    t.match(await delivery('regional-platform'), [{ id, status: 'error', owner: 'regional-platform', events: 1, backlog: 1, failures: 10, lastError: 'connection refused' }], 'the owner sees its subscription');
    t.same(await delivery('county-his'), [], 'another client sees none of it');
    t.equal((await delivery('admin')).length, 1, 'the administrator sees all');

    t.equal((await app.inject({ method: 'POST', url: `/fhir/Subscription/${id}/$retry`, headers: await as('county-his'), payload: { resourceType: 'Parameters' } })).statusCode, 403, 'not the owner');
    const retried = await app.inject({ method: 'POST', url: `/fhir/Subscription/${id}/$retry`, headers: await as('regional-platform'), payload: { resourceType: 'Parameters' } });
    t.equal(retried.statusCode, 200, retried.body);
    const state = await readState(ta.tdb.db, id);
    t.match(state, { status: 'requested', failures: 0 }, 'back to requested, failures counted afresh');
    t.ok(Date.parse(String(state?.next_attempt)) <= Date.now() + 1000, 'the next attempt is due now');
    const resource = (await app.inject({ url: `/fhir/Subscription/${id}` })).json<Subscription>();
    t.equal(resource.status, 'requested', 'the resource says so too');

    // Admin may retry any; a subscription that is off is refused.
    t.equal((await app.inject({ method: 'POST', url: `/fhir/Subscription/${id}/$retry` })).statusCode, 200, 'the administrator may retry');
    await ta.tdb.db.query(`UPDATE subscription_state SET status = 'off' WHERE id = $1`, [id]);
    t.equal((await app.inject({ method: 'POST', url: `/fhir/Subscription/${id}/$retry` })).statusCode, 422, 'a subscription that is off is not retried');
    t.equal((await app.inject({ method: 'POST', url: '/fhir/Subscription/nope/$retry' })).statusCode, 404);

    const { rows } = await ta.tdb.db.query<{ client_id: string }>(`SELECT client_id FROM audit_event WHERE subtype = '$retry' AND outcome = '0' ORDER BY recorded`);
    t.same(rows.map((r) => r.client_id), ['regional-platform', 'admin'], 'each retry is audited');
  });
}
