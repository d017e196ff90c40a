import t, { type Test } from 'tap';
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { BACKENDS, openTestDb } from '../helpers/db.js';
import { assertion, authApp, authFixture, basic, clientKey, postToken, TEST_BASE, unsignedJwt } from './fixture.js';
import { CLIENT_ASSERTION_TYPE } from '../../src/auth/index.js';

const CC = 'client_credentials';

function oauthError(t: Test, res: { statusCode: number; json(): unknown; headers: Record<string, unknown> }, status: number, error: string): void {
  t.equal(res.statusCode, status, `status ${status}`);
  const body = res.json() as { error: string; error_description?: string };
  t.equal(body.error, error, `error ${error}`);
  t.type(body.error_description, 'string', 'error_description');
  t.match(String(res.headers['content-type']), /^application\/json/);
  t.equal(res.headers['cache-control'], 'no-store');
}

for (const backend of BACKENDS) {
  t.test(backend, async (t) => {
    const tdb = await openTestDb(backend);
    const f = await authFixture();
    const app = await authApp(f, tdb.db);
    t.teardown(async () => {
      await app.close();
      await tdb.close();
    });
    const jwtParams = async (a: string) => ({ grant_type: CC, client_assertion_type: CLIENT_ASSERTION_TYPE, client_assertion: a });

    t.test('client_secret_basic issues a token with the RFC 6749 §5.1 answer', async (t) => {
      const res = await postToken(app, { grant_type: CC }, { authorization: basic('county-his', 'county-his-secret') });
      t.equal(res.statusCode, 200);
      t.equal(res.headers['cache-control'], 'no-store');
      t.match(String(res.headers['content-type']), /^application\/json/);
      const body = res.json() as { access_token: string; token_type: string; expires_in: number; scope: string };
      t.same(Object.keys(body).sort(), ['access_token', 'expires_in', 'scope', 'token_type']);
      t.equal(body.token_type, 'Bearer');
      t.equal(body.expires_in, 300);
      t.equal(body.scope, 'system/*.cruds');
      const header = decodeProtectedHeader(body.access_token);
      t.equal(header.alg, 'ES256');
      t.equal(header.typ, 'at+jwt');
      const claims = decodeJwt(body.access_token);
      t.equal(claims.iss, TEST_BASE);
      t.equal(claims.sub, 'county-his');
      t.equal(claims.client_id, 'county-his');
      t.equal(claims.aud, `${TEST_BASE}/fhir`);
      t.equal(claims.scope, 'system/*.cruds');
      t.equal(claims.institution, '1233042447101234XX');
      t.equal(claims.exp! - claims.iat!, 300);
      t.type(claims.jti, 'string');
      // The token works on a protected route.
      const use = await app.inject({ method: 'GET', url: '/fhir/Patient', headers: { authorization: `Bearer ${body.access_token}` } });
      t.equal(use.statusCode, 200);
      t.match(use.json(), { auth: { clientId: 'county-his', institution: '1233042447101234XX', scopes: ['system/*.cruds'], role: 'his', subordinates: true } });
    });

    t.test('client_secret_post issues a token; a requested scope is granted and v1 scopes are normalised', async (t) => {
      const res = await postToken(app, { grant_type: CC, client_id: 'regional-platform', client_secret: 'regional-platform-secret', scope: 'system/Patient.read system/Subscription.cruds' });
      t.equal(res.statusCode, 200);
      const body = res.json() as { access_token: string; scope: string };
      t.equal(body.scope, 'system/Patient.rs system/Subscription.cruds');
      const claims = decodeJwt(body.access_token);
      t.equal(claims.institution, undefined, 'platform client without institution');
      t.equal(claims.scope, body.scope);
    });

    t.test('a requested scope is narrowed to what the client may have', async (t) => {
      const res = await postToken(app, { grant_type: CC, scope: 'system/Observation.cruds system/Patient.rs' }, { authorization: basic('regional-platform', 'regional-platform-secret') });
      t.equal(res.statusCode, 200);
      t.equal((res.json() as { scope: string }).scope, 'system/Observation.rs system/Patient.rs');
    });

    t.test('private_key_jwt with RS384 and with ES384', async (t) => {
      for (const [key, id] of [
        [f.rsKey, 'lis-rs384'],
        [f.esKey, 'pacs-es384'],
      ] as const) {
        const res = await postToken(app, await jwtParams(await assertion(key, id)));
        t.equal(res.statusCode, 200, `${key.alg} accepted`);
        const claims = decodeJwt((res.json() as { access_token: string }).access_token);
        t.equal(claims.client_id, id);
        t.equal(claims.institution, '1233042447101234XX');
      }
      // client_id in the body is allowed when it matches.
      const withId = await postToken(app, { ...(await jwtParams(await assertion(f.rsKey, 'lis-rs384'))), client_id: 'lis-rs384' });
      t.equal(withId.statusCode, 200);
      const mismatch = await postToken(app, { ...(await jwtParams(await assertion(f.rsKey, 'lis-rs384'))), client_id: 'pacs-es384' });
      oauthError(t, mismatch, 401, 'invalid_client');
    });

    t.test('a wrong secret is invalid_client, with WWW-Authenticate: Basic when Basic was used', async (t) => {
      const viaBasic = await postToken(app, { grant_type: CC }, { authorization: basic('county-his', 'wrong-secret') });
      oauthError(t, viaBasic, 401, 'invalid_client');
      t.match(String(viaBasic.headers['www-authenticate']), /^Basic realm=/);
      const viaPost = await postToken(app, { grant_type: CC, client_id: 'county-his', client_secret: 'township1-his-secret' });
      oauthError(t, viaPost, 401, 'invalid_client');
      t.equal(viaPost.headers['www-authenticate'], undefined);
    });

    t.test('an unknown client is invalid_client, described as a wrong secret is', async (t) => {
      const unknown = await postToken(app, { grant_type: CC }, { authorization: basic('nobody', 'nobody-secret') });
      const wrong = await postToken(app, { grant_type: CC }, { authorization: basic('county-his', 'nobody-secret') });
      oauthError(t, unknown, 401, 'invalid_client');
      t.equal((unknown.json() as { error_description: string }).error_description, (wrong.json() as { error_description: string }).error_description);
      const jwtUnknown = await postToken(app, await jwtParams(await assertion(f.rsKey, 'nobody')));
      oauthError(t, jwtUnknown, 401, 'invalid_client');
      const noCredentials = await postToken(app, { grant_type: CC, client_id: 'county-his' });
      oauthError(t, noCredentials, 401, 'invalid_client');
    });

    t.test('an expired client assertion is refused', async (t) => {
      const res = await postToken(app, await jwtParams(await assertion(f.rsKey, 'lis-rs384', { exp: -120 })));
      oauthError(t, res, 401, 'invalid_client');
      t.match((res.json() as { error_description: string }).error_description, /expired/);
    });

    t.test('an assertion expiring more than five minutes ahead is refused', async (t) => {
      const res = await postToken(app, await jwtParams(await assertion(f.rsKey, 'lis-rs384', { exp: 3600 })));
      oauthError(t, res, 401, 'invalid_client');
      t.match((res.json() as { error_description: string }).error_description, /five minutes/);
    });

    t.test('a replayed assertion (same jti) is refused, also by a second gateway instance', async (t) => {
      const a = await assertion(f.esKey, 'pacs-es384');
      t.equal((await postToken(app, await jwtParams(a))).statusCode, 200);
      const again = await postToken(app, await jwtParams(a));
      oauthError(t, again, 401, 'invalid_client');
      t.match((again.json() as { error_description: string }).error_description, /used before/);
      // Another instance on the same database: a new assertion with a used jti is still a replay.
      const other = await authApp(f, tdb.db);
      t.teardown(() => other.close());
      const reused = await assertion(f.esKey, 'pacs-es384', { jti: (decodeJwt(a).jti as string) });
      oauthError(t, await postToken(other, await jwtParams(reused)), 401, 'invalid_client');
      // The same jti from another client is not a replay of this one.
      const lis = await assertion(f.rsKey, 'lis-rs384', { jti: decodeJwt(a).jti as string });
      t.equal((await postToken(other, await jwtParams(lis))).statusCode, 200);
    });

    t.test('an assertion without jti is refused', async (t) => {
      oauthError(t, await postToken(app, await jwtParams(await assertion(f.rsKey, 'lis-rs384', { jti: null }))), 401, 'invalid_client');
    });

    t.test('an assertion with the wrong aud is refused', async (t) => {
      const res = await postToken(app, await jwtParams(await assertion(f.rsKey, 'lis-rs384', { aud: `${TEST_BASE}/fhir` })));
      oauthError(t, res, 401, 'invalid_client');
      t.match((res.json() as { error_description: string }).error_description, /aud/);
    });

    t.test('an assertion whose sub is not the client is refused', async (t) => {
      oauthError(t, await postToken(app, await jwtParams(await assertion(f.rsKey, 'lis-rs384', { sub: 'pacs-es384' }))), 401, 'invalid_client');
    });

    t.test('an assertion signed with an unregistered key is refused', async (t) => {
      const stranger = await clientKey('RS384', 'lis-key-1');
      oauthError(t, await postToken(app, await jwtParams(await assertion(stranger, 'lis-rs384'))), 401, 'invalid_client');
      const otherKid = await clientKey('ES384', 'not-registered');
      oauthError(t, await postToken(app, await jwtParams(await assertion(otherKid, 'pacs-es384'))), 401, 'invalid_client');
      // A key registered for another client does not authenticate this one.
      oauthError(t, await postToken(app, await jwtParams(await assertion(f.esKey, 'lis-rs384'))), 401, 'invalid_client');
    });

    t.test('an unsigned assertion (alg none) is refused', async (t) => {
      const now = Math.floor(Date.now() / 1000);
      const none = unsignedJwt({ kid: f.rsKey.kid }, { iss: 'lis-rs384', sub: 'lis-rs384', aud: `${TEST_BASE}/auth/token`, exp: now + 60, jti: 'none-1' });
      const res = await postToken(app, await jwtParams(none));
      oauthError(t, res, 401, 'invalid_client');
      t.match((res.json() as { error_description: string }).error_description, /RS384 or ES384/);
    });

    t.test('a wrong client_assertion_type is refused', async (t) => {
      const res = await postToken(app, { grant_type: CC, client_assertion_type: 'urn:example:saml', client_assertion: await assertion(f.rsKey, 'lis-rs384') });
      oauthError(t, res, 401, 'invalid_client');
    });

    t.test('a missing grant_type is invalid_request', async (t) => {
      oauthError(t, await postToken(app, {}, { authorization: basic('county-his', 'county-his-secret') }), 400, 'invalid_request');
    });

    t.test('an unsupported grant_type is unsupported_grant_type', async (t) => {
      for (const grant of ['authorization_code', 'password', 'urn:ietf:params:oauth:grant-type:jwt-bearer']) {
        oauthError(t, await postToken(app, { grant_type: grant }, { authorization: basic('county-his', 'county-his-secret') }), 400, 'unsupported_grant_type');
      }
    });

    t.test('a scope beyond the allowed ones is invalid_scope', async (t) => {
      const res = await postToken(app, { grant_type: CC, scope: 'system/Patient.rs' }, { authorization: basic('auditor', 'auditor-secret') });
      oauthError(t, res, 400, 'invalid_scope');
      const write = await postToken(app, { grant_type: CC, scope: 'system/AuditEvent.c' }, { authorization: basic('auditor', 'auditor-secret') });
      oauthError(t, write, 400, 'invalid_scope');
      const notSystem = await postToken(app, { grant_type: CC, scope: 'patient/*.read openid' }, { authorization: basic('county-his', 'county-his-secret') });
      oauthError(t, notSystem, 400, 'invalid_scope');
      const audit = await postToken(app, { grant_type: CC, scope: 'system/AuditEvent.rs' }, { authorization: basic('regional-platform', 'regional-platform-secret') });
      oauthError(t, audit, 400, 'invalid_scope');
      const ok = await postToken(app, { grant_type: CC, scope: 'system/AuditEvent.rs' }, { authorization: basic('auditor', 'auditor-secret') });
      t.equal(ok.statusCode, 200);
    });

    t.test('malformed requests are invalid_request', async (t) => {
      const twice = await app.inject({
        method: 'POST',
        url: '/auth/token',
        headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic('county-his', 'county-his-secret') },
        payload: 'grant_type=client_credentials&grant_type=client_credentials',
      });
      oauthError(t, twice, 400, 'invalid_request');
      const json = await app.inject({ method: 'POST', url: '/auth/token', headers: { authorization: basic('county-his', 'county-his-secret') }, payload: { grant_type: CC } });
      oauthError(t, json, 400, 'invalid_request');
      const twoMethods = await postToken(app, { grant_type: CC, client_id: 'county-his', client_secret: 'county-his-secret' }, { authorization: basic('county-his', 'county-his-secret') });
      oauthError(t, twoMethods, 400, 'invalid_request');
      const bearer = await postToken(app, { grant_type: CC }, { authorization: 'Bearer abc' });
      oauthError(t, bearer, 400, 'invalid_request');
    });

    t.test('the token endpoint needs no access token', async (t) => {
      const res = await postToken(app, { grant_type: CC, client_id: 'village1-his', client_secret: 'village1-his-secret' });
      t.equal(res.statusCode, 200);
      t.equal(decodeJwt((res.json() as { access_token: string }).access_token).institution, '52330424681045633Y');
    });
  });
}
