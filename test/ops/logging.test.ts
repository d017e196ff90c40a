import t, { type Test } from 'tap';
import { Writable } from 'node:stream';
import Fastify from 'fastify';
import { createLogger } from '../../src/logger.js';
import { opsPlugin } from '../../src/ops/index.js';

const NAME = '张三';
const ID_CARD = '110105199003071234';
const PHONE = '13800138000';

/** Personal data in any form it could take in a log line: raw, percent-encoded, JSON-escaped. */
const FORBIDDEN = [NAME, encodeURIComponent(NAME), JSON.stringify(NAME).slice(1, -1), '\\u5f20\\u4e09', ID_CARD, PHONE, '1990-03-07'];

function captured(): { stream: Writable; lines: string[] } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      done();
    },
  });
  return { stream, lines };
}

async function appLoggingTo(stream: Writable) {
  const app = Fastify({ loggerInstance: createLogger('info', stream) });
  // As in buildApp: fastify's default not-found handler would log the full URL with its query.
  app.setNotFoundHandler((request, reply) => {
    void reply.code(404).send({ resourceType: 'OperationOutcome', diagnostics: `No route for ${request.method} ${request.url.split('?')[0]}` });
  });
  await app.register(opsPlugin, { db: { kind: 'pglite', ping: async () => undefined }, defaultMetrics: false });
  await app.register(
    async (fhir) => {
      fhir.get('/Patient', { config: { interaction: 'search-type' } }, async () => ({ resourceType: 'Bundle', type: 'searchset', total: 0 }));
      fhir.post('/Patient', { config: { interaction: 'create' } }, async (request, reply) => {
        // A handler that carelessly logs what it received must still leak nothing.
        request.log.info({ body: request.body, patient: request.body }, 'received');
        return reply.code(201).send(request.body);
      });
      fhir.post('/Patient/$match', async () => {
        throw new Error('matching failed');
      });
    },
    { prefix: '/fhir' },
  );
  t.teardown(() => app.close());
  return app;
}

const patient = {
  resourceType: 'Patient',
  name: [{ text: NAME, family: '张', given: ['三'] }],
  identifier: [{ system: 'urn:oid:2.16.156.10011.1.3', value: ID_CARD }],
  telecom: [{ system: 'phone', value: PHONE }],
  birthDate: '1990-03-07',
};

function assertClean(t: Test, lines: string[]): void {
  t.ok(lines.length > 0, 'something was logged');
  for (const value of FORBIDDEN) {
    const leak = lines.find((line) => line.includes(value));
    t.equal(leak, undefined, `no log line contains ${JSON.stringify(value)}`);
  }
}

t.test('a search URL with a name and an ID card number is logged without its query', async (t) => {
  const { stream, lines } = captured();
  const app = await appLoggingTo(stream);
  const res = await app.inject(`/fhir/Patient?name=${encodeURIComponent(NAME)}&identifier=${ID_CARD}&telecom=${PHONE}`);
  t.equal(res.statusCode, 200);
  t.ok(lines.some((l) => l.includes('/fhir/Patient?[query redacted]')), 'the path is still logged');
  assertClean(t, lines);
});

t.test('a request body with a name is never logged, even when a handler logs it', async (t) => {
  const { stream, lines } = captured();
  const app = await appLoggingTo(stream);
  const res = await app.inject({ method: 'POST', url: '/fhir/Patient', payload: patient });
  t.equal(res.statusCode, 201);
  t.ok(lines.some((l) => l.includes('"msg":"received"')), 'the handler logged');
  assertClean(t, lines);
});

t.test('failures log no personal data from the request', async (t) => {
  const { stream, lines } = captured();
  const app = await appLoggingTo(stream);
  const failed = await app.inject({ method: 'POST', url: `/fhir/Patient/$match?name=${encodeURIComponent(NAME)}`, payload: patient });
  t.equal(failed.statusCode, 500);
  const unparsable = await app.inject({
    method: 'POST',
    url: '/fhir/Patient',
    headers: { 'content-type': 'application/json' },
    payload: `{"resourceType":"Patient","name":[{"text":"${NAME}"}],"identifier":[{"value":"${ID_CARD}"}]`,
  });
  t.equal(unparsable.statusCode, 400);
  // JSON.parse quotes the start of the text in its message: `Unexpected token ... "{"name":"张三"..." is not valid JSON`.
  const badToken = await app.inject({
    method: 'POST',
    url: '/fhir/Patient',
    headers: { 'content-type': 'application/json' },
    payload: `{"name":[{"text":"${NAME}"}],"identifier":[{"value":"${ID_CARD}"}], oops}`,
  });
  t.equal(badToken.statusCode, 400);
  const unknown = await app.inject(`/fhir/Nope?identifier=${ID_CARD}`);
  t.equal(unknown.statusCode, 404);
  assertClean(t, lines);
});
