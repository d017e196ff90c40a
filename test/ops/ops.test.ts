import t from 'tap';
import Fastify, { type FastifyInstance } from 'fastify';
import { opsPlugin, type OpsOptions } from '../../src/ops/index.js';
import { openTestDb } from '../helpers/db.js';

/** A minimal app: the ops plugin plus a few routes standing in for FHIR routes. */
async function appWith(db: OpsOptions['db'], defaultMetrics = true): Promise<FastifyInstance> {
  const app = Fastify();
  await app.register(opsPlugin, { db, defaultMetrics });
  await app.register(
    async (fhir) => {
      fhir.get('/Patient/:id', { config: { interaction: 'read' } }, async (req) => ({ resourceType: 'Patient', id: (req.params as { id: string }).id }));
      fhir.get('/Observation', { config: { interaction: 'search-type' } }, async (_req, reply) => reply.code(400).send({ resourceType: 'OperationOutcome' }));
      fhir.get('/metadata', async () => ({ resourceType: 'CapabilityStatement' }));
    },
    { prefix: '/fhir' },
  );
  t.teardown(() => app.close());
  return app;
}

const fakeDb = (ping: () => Promise<void>): OpsOptions['db'] => ({ kind: 'postgres', ping });

t.test('healthz answers ok without touching the database', async (t) => {
  let pinged = false;
  const app = await appWith(fakeDb(async () => void (pinged = true)));
  const res = await app.inject('/healthz');
  t.equal(res.statusCode, 200);
  t.same(res.json(), { status: 'ok' });
  t.notOk(pinged);
});

t.test('readyz is 200 when the database answers', async (t) => {
  const tdb = await openTestDb('pglite');
  t.teardown(() => tdb.close());
  const app = await appWith(tdb.db);
  const res = await app.inject('/readyz');
  t.equal(res.statusCode, 200);
  t.same(res.json(), { status: 'ready', database: 'pglite' });
});

t.test('readyz is 503 when the database ping fails', async (t) => {
  const app = await appWith(
    fakeDb(async () => {
      throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
    }),
  );
  const res = await app.inject('/readyz');
  t.equal(res.statusCode, 503);
  t.same(res.json(), { status: 'unavailable', database: 'postgres' });
});

t.test('metrics are labelled by interaction, method and status class, never by raw URL', async (t) => {
  const app = await appWith(fakeDb(async () => undefined));
  await app.inject('/fhir/Patient/abc');
  await app.inject('/fhir/Patient/def');
  await app.inject('/fhir/Observation?code=http://loinc.org|718-7&subject=Patient/abc');
  await app.inject('/fhir/metadata');
  await app.inject('/no/such/route/123');
  const res = await app.inject('/metrics');
  t.equal(res.statusCode, 200);
  t.match(res.headers['content-type'], /^text\/plain; version=0\.0\.4/);
  const body = res.body;
  t.match(body, 'gateway_http_requests_total{interaction="read",method="GET",status_class="2xx"} 2');
  t.match(body, 'gateway_http_requests_total{interaction="search-type",method="GET",status_class="4xx"} 1');
  t.match(body, 'gateway_http_requests_total{interaction="/fhir/metadata",method="GET",status_class="2xx"} 1', 'route pattern when no interaction is declared');
  t.match(body, 'gateway_http_requests_total{interaction="unmatched",method="GET",status_class="4xx"} 1');
  t.match(body, /gateway_http_request_duration_seconds_bucket\{le="0\.005",interaction="read",method="GET",status_class="2xx"\} \d/);
  t.match(body, 'gateway_http_request_duration_seconds_count{interaction="read",method="GET",status_class="2xx"} 2');
  t.match(body, /^process_cpu_user_seconds_total /m, 'default process metrics');
  t.notMatch(body, 'abc', 'no resource id in any label');
  t.notMatch(body, 'loinc', 'no query string in any label');
  t.notMatch(body, '/no/such/route', 'no raw URL of an unmatched request');
});

t.test('each app has its own registry, open to other features', async (t) => {
  const a = await appWith(fakeDb(async () => undefined));
  const b = await appWith(fakeDb(async () => undefined));
  t.not(a.metrics, b.metrics);
  const { Counter } = await import('prom-client');
  const ingested = new Counter({ name: 'gateway_hl7_messages_total', help: 'HL7 v2 messages received.', registers: [a.metrics] });
  ingested.inc(3);
  await a.inject('/fhir/Patient/x');
  t.match((await a.inject('/metrics')).body, 'gateway_hl7_messages_total 3');
  const other = (await b.inject('/metrics')).body;
  t.notMatch(other, 'gateway_hl7_messages_total');
  t.notMatch(other, 'interaction="read"', 'requests to one app are not counted by another');
});

t.test('default process metrics can be turned off', async (t) => {
  const app = await appWith(fakeDb(async () => undefined), false);
  const body = (await app.inject('/metrics')).body;
  t.notMatch(body, 'process_cpu_user_seconds_total');
  t.match(body, 'gateway_http_requests_total');
});
