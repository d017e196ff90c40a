/**
 * The websocket channel (Backport IG flow): $get-ws-binding-token, connect to /ws, bind with the
 * token, receive the handshake and then each event notification in order; a bad token is refused.
 */
import t from 'tap';
import type { Bundle, OperationOutcome, Parameters, Subscription } from '@medplum/fhirtypes';
import { BACKENDS } from '../helpers/db.js';
import { createTestApp, FHIR_HEADERS } from '../helpers/app.js';
import { eventsOf, paramValue, statusOf, waitFor } from '../helpers/hook-receiver.js';

for (const backend of BACKENDS) {
  t.test(backend, async (t) => {
    const ta = await createTestApp(backend, { SUBSCRIPTION_POLL_MS: '20', SUBSCRIPTION_ALLOWED_HOSTS: 'hooks.example:8080' });
    t.teardown(() => ta.close());
    const { app } = ta;
    const platform = { ...FHIR_HEADERS, authorization: `Bearer ${await ta.token('regional-platform')}` };
    const created = await app.inject({
      method: 'POST',
      url: '/fhir/Subscription',
      headers: platform,
      payload: { resourceType: 'Subscription', status: 'requested', reason: 'platform dashboard', criteria: 'Observation?status=final', channel: { type: 'websocket' } },
    });
    t.equal(created.statusCode, 201, created.body);
    const id = (created.json() as Subscription).id as string;

    const tokenRes = await app.inject({ url: `/fhir/Subscription/${id}/$get-ws-binding-token`, headers: platform });
    t.equal(tokenRes.statusCode, 200, tokenRes.body);
    const params = tokenRes.json() as Parameters;
    const token = params.parameter?.find((p) => p.name === 'token')?.valueString as string;
    t.ok(token, 'a binding token');
    t.match(params.parameter?.find((p) => p.name === 'websocket-url')?.valueUrl, /^ws:\/\/gateway\.test\/ws$/);
    t.equal(params.parameter?.find((p) => p.name === 'subscription')?.valueString, id);
    t.ok(Date.parse(params.parameter?.find((p) => p.name === 'expiration')?.valueDateTime as string) > Date.now());

    await app.subscriptions.start();
    const ws = await app.injectWS('/ws');
    t.teardown(() => ws.terminate());
    const messages: unknown[] = [];
    ws.on('message', (d) => messages.push(JSON.parse(String(d))));
    ws.send(`bind-with-token ${token}`);
    await waitFor('handshake', () => messages.length > 0);
    const hs = messages[0] as Bundle;
    t.equal(paramValue(statusOf(hs), 'type'), 'handshake');
    await waitFor('active', async () => ((await app.inject({ url: `/fhir/Subscription/${id}`, headers: platform })).json() as Subscription).status === 'active');

    for (let i = 0; i < 3; i++) {
      const res = await app.inject({ method: 'POST', url: '/fhir/Observation', headers: FHIR_HEADERS, payload: { resourceType: 'Observation', status: 'final', code: { text: `t${i}` } } });
      t.equal(res.statusCode, 201);
    }
    const events = () => (messages.slice(1) as Bundle[]).filter((b) => paramValue(statusOf(b), 'type') === 'event-notification').flatMap((b) => eventsOf(b));
    await waitFor('3 events over the socket', () => events().length >= 3);
    t.same(
      events().map((e) => e.eventNumber),
      [1, 2, 3],
      'in order',
    );

    const rest = await app.inject({
      method: 'POST',
      url: '/fhir/Subscription',
      headers: platform,
      payload: { resourceType: 'Subscription', status: 'off', reason: 'x', criteria: 'Observation?status=final', channel: { type: 'rest-hook', endpoint: 'http://hooks.example:8080/x' } },
    });
    const restId = (rest.json() as Subscription).id as string;
    t.equal((await app.inject({ url: `/fhir/Subscription/${restId}/$get-ws-binding-token`, headers: platform })).statusCode, 422, 'not a websocket subscription');

    const bad = await app.injectWS('/ws');
    const badMessages: unknown[] = [];
    const closed = new Promise<number>((resolve) => bad.on('close', (code) => resolve(code)));
    bad.on('message', (d) => badMessages.push(JSON.parse(String(d))));
    bad.send(`bind-with-token ${token.slice(0, -4)}AAAA`);
    t.equal(await closed, 1008, 'a bad token closes the socket');
    t.equal((badMessages[0] as OperationOutcome).resourceType, 'OperationOutcome');
    await app.subscriptions.stop();
  });
}
