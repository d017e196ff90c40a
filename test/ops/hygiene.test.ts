/**
 * Rate limits per client (in process, and shared through Redis across two app instances),
 * security headers, and oversized headers.
 */
import t from 'tap';
import { Redis } from 'ioredis';
import { randomBytes } from 'node:crypto';
import { createTestApp } from '../helpers/app.js';

const TEST_REDIS_URL = process.env.TEST_REDIS_URL || undefined;

t.test('rate limit per client, in process', async (t) => {
  const ta = await createTestApp('pglite', { RATE_LIMIT_MAX: '5', RATE_LIMIT_WINDOW_MS: '60000' });
  t.teardown(() => ta.close());
  const county = await ta.token('county-his');
  const village = await ta.token('village1-his');
  const codes: number[] = [];
  for (let i = 0; i < 7; i++) {
    codes.push((await ta.app.inject({ method: 'GET', url: '/fhir/Patient', headers: { authorization: `Bearer ${county}` } })).statusCode);
  }
  t.same(codes, [200, 200, 200, 200, 200, 429, 429], 'the sixth request of the window is refused');
  const refused = await ta.app.inject({ method: 'GET', url: '/fhir/Patient', headers: { authorization: `Bearer ${county}` } });
  t.equal(refused.json().resourceType, 'OperationOutcome');
  t.equal(refused.json().issue[0].code, 'throttled');
  t.ok(refused.headers['retry-after'], 'Retry-After sent');
  const other = await ta.app.inject({ method: 'GET', url: '/fhir/Patient', headers: { authorization: `Bearer ${village}` } });
  t.equal(other.statusCode, 200, 'another client has its own budget');
  const probe = await ta.anonymous({ method: 'GET', url: '/healthz' });
  t.equal(probe.statusCode, 200, 'probes are never throttled');
});

t.test('rate limit shared through Redis by two instances', { skip: TEST_REDIS_URL ? false : 'TEST_REDIS_URL not set' }, async (t) => {
  const prefix = randomBytes(4).toString('hex');
  // Same signing key on both instances, as a load-balanced deployment has.
  const { generateSigningJwk } = await import('../../src/auth/index.js');
  const key = JSON.stringify(await generateSigningJwk());
  const redisA = new Redis(TEST_REDIS_URL as string, { keyPrefix: prefix });
  const redisB = new Redis(TEST_REDIS_URL as string, { keyPrefix: prefix });
  const env = { RATE_LIMIT_MAX: '6', RATE_LIMIT_WINDOW_MS: '60000', AUTH_SIGNING_KEY: key };
  const a = await createTestApp('pglite', env, { redis: redisA });
  const b = await createTestApp('pglite', env, { redis: redisB });
  t.teardown(async () => {
    await a.close();
    await b.close();
    const keys = await redisA.keys('*');
    if (keys.length) await redisA.del(...keys.map((k) => k.slice(prefix.length)));
    redisA.disconnect();
    redisB.disconnect();
  });
  const tok = await a.token('township1-his');
  const codes: number[] = [];
  for (let i = 0; i < 8; i++) {
    const app = i % 2 === 0 ? a.app : b.app;
    codes.push((await app.inject({ method: 'GET', url: '/fhir/Patient', headers: { authorization: `Bearer ${tok}` } })).statusCode);
  }
  t.same(codes, [200, 200, 200, 200, 200, 200, 429, 429], 'both instances count against one budget');
});

t.test('security headers and header limits', async (t) => {
  const ta = await createTestApp('pglite');
  t.teardown(() => ta.close());
  const r = await ta.app.inject({ method: 'GET', url: '/fhir/metadata' });
  t.equal(r.headers['x-content-type-options'], 'nosniff');
  t.match(r.headers['content-security-policy'], /default-src 'none'/);
  t.match(r.headers['strict-transport-security'], /max-age=/);
  t.equal(r.headers['x-frame-options'], 'SAMEORIGIN');
  t.notOk(r.headers['x-powered-by']);

  const address = await ta.app.listen({ host: '127.0.0.1', port: 0 });
  const huge = await fetch(`${address}/fhir/metadata`, { headers: { 'x-filler': 'x'.repeat(20 * 1024) } }).catch((e: Error) => e);
  t.ok(huge instanceof Error || huge.status === 431, 'headers over 16 KiB are refused before any handler runs');
});
