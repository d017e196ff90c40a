/**
 * Who may subscribe to what, and where notifications may go: the subscription scope, the owner's
 * read rights over what it subscribes to, endpoints (https and public addresses only unless
 * allow-listed), and refusals of malformed subscriptions with precise OperationOutcomes.
 */
import t, { type Test } from 'tap';
import type { OperationOutcome, Subscription } from '@medplum/fhirtypes';
import { BACKENDS } from '../helpers/db.js';
import { createTestApp, FHIR_HEADERS } from '../helpers/app.js';
import { backoffMs, checkEndpoint, isPrivateAddress, readState } from '../../src/subscriptions/index.js';

const sub = (endpoint: string, extra: Partial<Subscription> = {}): Subscription => ({
  resourceType: 'Subscription',
  status: 'requested',
  reason: 'test',
  criteria: 'Observation?status=final',
  channel: { type: 'rest-hook', endpoint },
  ...extra,
});

t.test('endpoint rules', async (t) => {
  for (const a of ['127.0.0.1', '10.1.2.3', '172.20.0.1', '192.168.1.1', '169.254.169.254', '::1', 'fd00::1', '::ffff:10.0.0.1', '0.0.0.0']) t.ok(isPrivateAddress(a), `${a} is private`);
  for (const a of ['8.8.8.8', '2001:4860:4860::8888', '172.32.0.1']) t.notOk(isPrivateAddress(a), `${a} is public`);
  t.equal(checkEndpoint('https://platform.example.cn/hook', [], 'e').host, 'platform.example.cn');
  t.throws(() => checkEndpoint('http://platform.example.cn/hook', [], 'e'), /must use https/);
  t.throws(() => checkEndpoint('https://10.0.0.5/hook', [], 'e'), /private network address/);
  t.throws(() => checkEndpoint('https://[::1]:8443/hook', [], 'e'), /private network address/);
  t.throws(() => checkEndpoint('https://localhost/hook', [], 'e'), /private network address/);
  t.throws(() => checkEndpoint('ftp://x.example/hook', [], 'e'), /http\(s\) URL/);
  t.throws(() => checkEndpoint('https://u:p@x.example/hook', [], 'e'), /credentials/);
  t.throws(() => checkEndpoint('not a url', [], 'e'), /not an absolute URL/);
  t.equal(checkEndpoint('http://10.0.0.5:8080/hook', ['10.0.0.5:8080'], 'e').port, '8080', 'allow-listed host:port');
  t.throws(() => checkEndpoint('http://10.0.0.5:9090/hook', ['10.0.0.5:8080'], 'e'), /must use https/, 'only the listed port');
  t.ok(checkEndpoint('http://127.0.0.1:1/hook', ['127.0.0.1'], 'e'), 'allow-listed host, any port');
});

t.test('backoff doubles, is capped, and jitters within [half, full]', async (t) => {
  t.equal(backoffMs(1, 1000, 60_000, () => 1), 1000);
  t.equal(backoffMs(3, 1000, 60_000, () => 1), 4000);
  t.equal(backoffMs(3, 1000, 60_000, () => 0), 2000);
  t.equal(backoffMs(40, 1000, 60_000, () => 1), 60_000);
});

for (const backend of BACKENDS) {
  t.test(backend, async (t) => {
    const ta = await createTestApp(backend, { SUBSCRIPTION_ALLOWED_HOSTS: 'hooks.internal.example:8080' });
    t.teardown(() => ta.close());
    const { app } = ta;
    const post = async (clientId: string, body: unknown, scopes?: string[]) =>
      app.inject({ method: 'POST', url: '/fhir/Subscription', headers: { ...FHIR_HEADERS, authorization: `Bearer ${await ta.token(clientId, scopes)}` }, payload: body as object });
    const refused = (t: Test, res: Awaited<ReturnType<typeof post>>, status: number, pattern: RegExp, what: string) => {
      t.equal(res.statusCode, status, `${what}: ${res.body}`);
      t.match((res.json() as OperationOutcome).issue?.[0]?.diagnostics, pattern, what);
    };

    t.test('the subscription scope is needed', async (t) => {
      refused(t, await post('auditor', sub('https://platform.example.cn/hook')), 403, /no scope to create Subscription/, 'auditor');
      refused(t, await post('regional-platform', sub('https://platform.example.cn/hook'), ['system/*.rs']), 403, /no scope to create Subscription/, 'read-only token');
    });

    t.test('only what the owner could read', async (t) => {
      refused(t, await post('regional-platform', sub('https://platform.example.cn/hook'), ['system/Subscription.cruds']), 403, /no scope to search Observation/, 'no Observation rights');
      const ok = await post('regional-platform', sub('https://platform.example.cn/hook'), ['system/Subscription.cruds', 'system/Observation.rs']);
      t.equal(ok.statusCode, 201, ok.body);
      const state = await readState(ta.tdb.db, (ok.json() as Subscription).id as string);
      t.equal(state?.owner_client, 'regional-platform', 'the owner is recorded');
    });

    t.test('endpoints', async (t) => {
      refused(t, await post('regional-platform', sub('http://platform.example.cn/hook')), 422, /must use https/, 'plain http');
      refused(t, await post('regional-platform', sub('https://192.168.10.20/hook')), 422, /private network/, 'private address');
      const listed = await post('regional-platform', sub('http://hooks.internal.example:8080/hook'));
      t.equal(listed.statusCode, 201, `allow-listed: ${listed.body}`);
    });

    t.test('malformed subscriptions', async (t) => {
      refused(t, await post('regional-platform', sub('https://p.example.cn/h', { criteria: 'Observation?nonsense=1' })), 400, /nonsense/, 'unknown search parameter');
      refused(t, await post('regional-platform', sub('https://p.example.cn/h', { criteria: 'Observation?_sort=date' })), 400, /filters only/, 'result parameter');
      refused(t, await post('regional-platform', sub('https://p.example.cn/h', { criteria: 'Nope?x=1' })), 404, /Unknown resource type/, 'unknown type');
      refused(t, await post('regional-platform', sub('https://p.example.cn/h', { criteria: 'https://fhir.county-hie.cn/SubscriptionTopic/none' })), 404, /not known/, 'unknown topic');
      refused(t, await post('regional-platform', { ...sub('https://p.example.cn/h'), channel: { type: 'email', endpoint: 'mailto:a@b.cn' } }), 422, /not supported/, 'email channel');
      refused(
        t,
        await post('regional-platform', { ...sub('https://p.example.cn/h'), channel: { type: 'rest-hook', endpoint: 'https://p.example.cn/h', header: ['Bad header'] } }),
        400,
        /not an HTTP header/,
        'bad header',
      );
      refused(
        t,
        await post('regional-platform', {
          ...sub('https://p.example.cn/h'),
          criteria: 'https://fhir.county-hie.cn/SubscriptionTopic/encounter-finished',
          _criteria: { extension: [{ url: 'http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-filter-criteria', valueString: 'Encounter?status=finished' }] },
        }),
        400,
        /does not allow filtering Encounter by "status"/,
        'filter the topic does not offer',
      );
    });

    t.test('a client cannot set the server-managed status', async (t) => {
      const res = await post('regional-platform', sub('https://platform.example.cn/hook', { status: 'active' }));
      t.equal(res.statusCode, 201, res.body);
      t.equal((res.json() as Subscription).status, 'requested');
    });

    t.test('the server does not overturn a status its client set', async (t) => {
      const res = await post('regional-platform', sub('https://platform.example.cn/hook', { status: 'off' }));
      const id = (res.json() as Subscription).id as string;
      await app.subscriptions.dispatcher.setResourceStatus(id, 'active');
      await app.subscriptions.dispatcher.setResourceStatus(id, 'error', 'no answer');
      const now = (await app.inject({ url: `/fhir/Subscription/${id}` })).json() as Subscription;
      t.equal(now.status, 'off', 'off stays off');
      t.equal((await readState(ta.tdb.db, id))?.status, 'off');
    });

    t.test('deleting a subscription drops its state and events', async (t) => {
      const res = await post('regional-platform', sub('https://platform.example.cn/hook'));
      const id = (res.json() as Subscription).id as string;
      const del = await app.inject({ method: 'DELETE', url: `/fhir/Subscription/${id}`, headers: { authorization: `Bearer ${await ta.token('regional-platform')}` } });
      t.equal(del.statusCode, 204);
      t.equal(await readState(ta.tdb.db, id), undefined);
      t.equal((await app.inject({ url: `/fhir/Subscription/${id}/$status` })).statusCode, 404);
    });
  });
}
