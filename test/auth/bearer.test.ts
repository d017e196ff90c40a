import t, { type Test } from 'tap';
import { generateKeyPairSync } from 'node:crypto';
import { SignJWT } from 'jose';
import type { LightMyRequestResponse } from 'fastify';
import { issueToken, loadSigningKeys, SigningKeyError, generateSigningJwk, createAuthServices, InvalidTokenError } from '../../src/auth/index.js';
import { authApp, authFixture, NO_DB, TEST_BASE, unsignedJwt } from './fixture.js';

/** A 401 with an OperationOutcome naming the stable code and the Bearer challenge. */
function refused(t: Test, res: LightMyRequestResponse, code: string, issue: string, challenge: RegExp): void {
  t.equal(res.statusCode, 401, 'status 401');
  t.match(String(res.headers['content-type']), /^application\/fhir\+json/);
  t.match(String(res.headers['www-authenticate']), challenge);
  const body = res.json() as { resourceType: string; issue: Array<{ code: string; details: { coding: Array<{ code: string }> } }> };
  t.equal(body.resourceType, 'OperationOutcome');
  t.equal(body.issue[0].code, issue, `issue.code ${issue}`);
  t.equal(body.issue[0].details.coding[0].code, code);
}

const INVALID = /^Bearer realm="county-hie", error="invalid_token", error_description="[^"]+"$/;

t.test('bearer token verification', async (t) => {
  const f = await authFixture();
  const app = await authApp(f, NO_DB);
  t.teardown(() => app.close());
  const get = (headers: Record<string, string> = {}) => app.inject({ method: 'GET', url: '/fhir/Patient', headers });
  const bearer = (token: string, extra: Record<string, string> = {}) => get({ authorization: `Bearer ${token}`, ...extra });
  const county = f.clients.get('county-his')!;

  t.test('a valid token passes and sets request.auth', async (t) => {
    const res = await bearer(await app.auth.mint('township1-his', ['system/Patient.rs']));
    t.equal(res.statusCode, 200);
    t.same(res.json(), { auth: { clientId: 'township1-his', institution: '1233042447102341XF', scopes: ['system/Patient.rs'], role: 'his' } });
    const post = await app.inject({ method: 'POST', url: '/fhir/Patient', headers: { authorization: `bearer ${await app.auth.mint('admin')}` }, payload: {} });
    t.equal(post.statusCode, 200, 'scheme is case-insensitive');
    t.same(post.json(), { auth: { clientId: 'admin', scopes: ['system/*.cruds'], role: 'admin' } });
  });

  t.test('X-User-Id is passed on when well-formed and refused otherwise', async (t) => {
    const token = await app.auth.mint('county-his');
    const ok = await bearer(token, { 'x-user-id': 'Practitioner/110330424000101' });
    t.equal(ok.statusCode, 200);
    t.equal((ok.json() as { auth: { userId: string } }).auth.userId, 'Practitioner/110330424000101');
    for (const bad of ['', 'has space', '<script>', 'x'.repeat(129)]) {
      const res = await bearer(token, { 'x-user-id': bad });
      t.equal(res.statusCode, 400, `X-User-Id ${JSON.stringify(bad.slice(0, 20))} refused`);
    }
  });

  t.test('no token: 401 login with a Bearer challenge without error code (RFC 6750 §3.1)', async (t) => {
    refused(t, await get(), 'GW_ERR_UNAUTHORIZED', 'login', /^Bearer realm="county-hie"$/);
    refused(t, await get({ authorization: 'Basic Y291bnR5LWhpczpjb3VudHktaGlzLXNlY3JldA==' }), 'GW_ERR_UNAUTHORIZED', 'login', /^Bearer realm/);
    refused(t, await app.inject({ method: 'GET', url: '/no/such/route' }), 'GW_ERR_UNAUTHORIZED', 'login', /^Bearer/);
  });

  t.test('a malformed Authorization header is invalid_token', async (t) => {
    refused(t, await get({ authorization: 'Bearer' }), 'GW_ERR_INVALID_TOKEN', 'security', INVALID);
    refused(t, await get({ authorization: 'Bearer a b' }), 'GW_ERR_INVALID_TOKEN', 'security', INVALID);
    refused(t, await bearer('not-a-jwt'), 'GW_ERR_INVALID_TOKEN', 'security', INVALID);
  });

  t.test('a token with a bad signature is refused', async (t) => {
    const token = await app.auth.mint('county-his');
    const [h, p, s] = token.split('.');
    const flipped = `${s[0] === 'A' ? 'B' : 'A'}${s.slice(1)}`;
    refused(t, await bearer(`${h}.${p}.${flipped}`), 'GW_ERR_INVALID_TOKEN', 'security', INVALID);
    // Claims changed after signing (more scopes) no longer verify.
    const claims = JSON.parse(Buffer.from(p, 'base64url').toString()) as Record<string, unknown>;
    const forged = Buffer.from(JSON.stringify({ ...claims, client_id: 'admin', sub: 'admin' })).toString('base64url');
    refused(t, await bearer(`${h}.${forged}.${s}`), 'GW_ERR_INVALID_TOKEN', 'security', INVALID);
  });

  t.test('an expired token is refused', async (t) => {
    const now = Math.floor(Date.now() / 1000);
    const res = await bearer(await app.auth.mint('county-his', undefined, { now: now - 1000 }));
    refused(t, res, 'GW_ERR_INVALID_TOKEN', 'security', /error_description="the access token has expired"/);
  });

  t.test('a token for another audience or from another issuer is refused', async (t) => {
    const aud = await issueToken(f.keys, { ...app.auth.settings, audience: 'http://other-gateway.test/fhir' }, county);
    refused(t, await bearer(aud.accessToken), 'GW_ERR_INVALID_TOKEN', 'security', /aud/);
    const iss = await issueToken(f.keys, { ...app.auth.settings, issuer: 'http://other-gateway.test' }, county);
    refused(t, await bearer(iss.accessToken), 'GW_ERR_INVALID_TOKEN', 'security', /iss/);
  });

  t.test('an unsigned token (alg none) is refused', async (t) => {
    const now = Math.floor(Date.now() / 1000);
    const claims = { iss: TEST_BASE, sub: 'admin', client_id: 'admin', aud: `${TEST_BASE}/fhir`, scope: 'system/*.cruds', iat: now, exp: now + 300, jti: 'x' };
    refused(t, await bearer(unsignedJwt({ typ: 'at+jwt' }, claims)), 'GW_ERR_INVALID_TOKEN', 'security', INVALID);
    refused(t, await bearer(unsignedJwt({ typ: 'at+jwt', kid: f.keys.kid }, claims).slice(0, -1)), 'GW_ERR_INVALID_TOKEN', 'security', INVALID);
  });

  t.test('a token signed with another algorithm is refused (no HS256 with the public key)', async (t) => {
    const now = Math.floor(Date.now() / 1000);
    const secret = new TextEncoder().encode(JSON.stringify(f.keys.publicJwk));
    const hs = await new SignJWT({ client_id: 'admin', scope: 'system/*.cruds' })
      .setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', kid: f.keys.kid })
      .setIssuer(TEST_BASE)
      .setSubject('admin')
      .setAudience(`${TEST_BASE}/fhir`)
      .setIssuedAt(now)
      .setExpirationTime(now + 300)
      .setJti('hs')
      .sign(secret);
    refused(t, await bearer(hs), 'GW_ERR_INVALID_TOKEN', 'security', /algorithm/);
  });

  t.test('a token signed by another key is refused', async (t) => {
    const other = await loadSigningKeys(undefined);
    const token = await issueToken(other, app.auth.settings, county);
    refused(t, await bearer(token.accessToken), 'GW_ERR_INVALID_TOKEN', 'security', /signature/);
    // Same key id, different key: still refused.
    const sameKid = await issueToken({ ...other, kid: f.keys.kid }, app.auth.settings, county);
    refused(t, await bearer(sameKid.accessToken), 'GW_ERR_INVALID_TOKEN', 'security', INVALID);
  });

  t.test('a token of a client no longer registered is refused', async (t) => {
    const token = await issueToken(f.keys, app.auth.settings, { clientId: 'removed-his', scopes: ['system/*.cruds'] });
    refused(t, await bearer(token.accessToken), 'GW_ERR_INVALID_TOKEN', 'security', /no longer registered/);
  });

  t.test('public routes work without a token', async (t) => {
    for (const url of ['/fhir/metadata', '/healthz', '/readyz']) {
      t.equal((await app.inject({ method: 'GET', url })).statusCode, 200, `GET ${url}`);
    }
    t.equal((await app.inject({ method: 'HEAD', url: '/healthz' })).statusCode, 200, 'HEAD /healthz');
    t.equal((await app.inject({ method: 'GET', url: '/fhir/metadata?_format=json' })).statusCode, 200, 'with a query string');
    t.equal((await get()).statusCode, 401, 'but not the others');
  });
});

t.test('the signing key', async (t) => {
  t.test('a configured EC or RSA JWK, or a PEM, signs tokens the same key verifies', async (t) => {
    const f = await authFixture();
    const client = f.clients.get('county-his')!;
    const ec = JSON.stringify(await generateSigningJwk('ES256'));
    const rsa = JSON.stringify(await generateSigningJwk('RS256'));
    const pem = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    for (const [text, alg] of [
      [ec, 'ES256'],
      [rsa, 'RS256'],
      [pem, 'ES256'],
      [pem.replace(/\n/g, '\\n'), 'ES256'],
    ] as const) {
      const keys = await loadSigningKeys(text);
      t.equal(keys.alg, alg);
      t.equal(keys.ephemeral, false);
      const again = await loadSigningKeys(text);
      t.equal(again.kid, keys.kid, 'the same key gives the same kid on every instance');
      const services = createAuthServices(f.clients, again, { issuer: TEST_BASE, audience: `${TEST_BASE}/fhir`, ttlSeconds: 300 });
      const token = await issueToken(keys, services.settings, client);
      t.equal((await services.verify(token.accessToken)).clientId, 'county-his', 'another instance with the same key accepts it');
    }
    const generated = await loadSigningKeys(undefined);
    t.equal(generated.ephemeral, true);
    t.equal(generated.alg, 'ES256');
    const services = createAuthServices(f.clients, generated, { issuer: TEST_BASE, audience: `${TEST_BASE}/fhir`, ttlSeconds: 300 });
    await t.rejects(services.verify((await issueToken(await loadSigningKeys(ec), services.settings, client)).accessToken), InvalidTokenError);
  });

  t.test('a bad key fails with a message that does not repeat it', async (t) => {
    const secretish = 'ThisIsNotAKey-0123456789';
    const err = await loadSigningKeys(secretish).then(
      () => undefined,
      (e: unknown) => e,
    );
    t.ok(err instanceof SigningKeyError, 'SigningKeyError');
    t.notMatch((err as Error).message, secretish, 'the key text is not in the message');
    const publicOnly = { ...(await generateSigningJwk('ES256')) };
    delete publicOnly.d;
    await t.rejects(loadSigningKeys(JSON.stringify(publicOnly)), /no private part/);
    const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    await t.rejects(loadSigningKeys(p384), /P-256/);
    const rsa1024 = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    await t.rejects(loadSigningKeys(rsa1024), /2048/);
  });
});
