/**
 * Console sessions: login with a client's id and secret gives an httpOnly, SameSite=Strict
 * cookie (never a token); the cookie works only with the X-Console header; logout, idle time and
 * a wrong secret end or refuse the session; logins are audited.
 */
import t from 'tap';
import { BACKENDS } from '../helpers/db.js';
import { createTestApp } from '../helpers/app.js';

for (const backend of BACKENDS) {
  t.test(`console session (${backend})`, async (t) => {
    const ta = await createTestApp(backend, { CONSOLE_IDLE_MINUTES: '1' });
    t.teardown(() => ta.close());
    const login = (clientId: string, clientSecret: string) =>
      ta.anonymous({ method: 'POST', url: '/auth/session', headers: { 'content-type': 'application/json' }, payload: { clientId, clientSecret } });

    const bad = await login('admin', 'wrong');
    t.equal(bad.statusCode, 401, 'a wrong secret is refused');
    t.notOk(bad.headers['set-cookie'], 'and sets no cookie');
    t.equal((await ta.anonymous({ method: 'POST', url: '/auth/session', headers: { 'content-type': 'application/json' }, payload: { clientId: 'admin' } })).statusCode, 400, 'a login without a secret is a bad request');

    const ok = await login('admin', 'admin-secret');
    t.equal(ok.statusCode, 200);
    const setCookie = String(ok.headers['set-cookie']);
    t.match(setCookie, /^hie_console=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Strict$/, 'httpOnly, SameSite=Strict session cookie, not Secure over http');
    t.notOk(/token/i.test(ok.body), 'the answer carries no token');
    t.same(ok.json().clientId, 'admin');
    const cookie = setCookie.split(';')[0];

    const withCookie = (url: string, extra: Record<string, string> = { 'x-console': '1' }, method: 'GET' | 'DELETE' = 'GET') =>
      ta.anonymous({ method, url, headers: { cookie, ...extra } });
    t.equal((await withCookie('/ingest/dead-letters', {})).statusCode, 401, 'the cookie alone (a cross-site form) is not enough');
    const listed = await withCookie('/ingest/dead-letters');
    t.equal(listed.statusCode, 200, 'cookie and X-Console act as the client');
    t.equal(listed.headers['cache-control'], 'no-store', 'what the console is shown may not be cached');
    t.equal((await withCookie('/fhir/Patient?_count=1')).headers['cache-control'], 'no-store', 'FHIR answers to the console neither');
    t.equal((await withCookie('/auth/session')).json().role, 'admin', 'who am I');
    t.equal((await ta.anonymous({ url: '/ingest/dead-letters', headers: { cookie: 'hie_console=xyz', 'x-console': '1' } })).statusCode, 401, 'an unknown session is refused');

    // Idle: the session was last used more than CONSOLE_IDLE_MINUTES ago.
    await ta.tdb.db.query(`UPDATE console_session SET last_seen = now() - interval '2 minutes'`);
    const idle = await withCookie('/ingest/dead-letters');
    t.equal(idle.statusCode, 401, 'an idle session has ended');
    t.match(idle.json().issue[0].diagnostics, /session has ended/);

    const again = String((await login('auditor', 'auditor-secret')).headers['set-cookie']).split(';')[0];
    const auditor = (url: string, method: 'GET' | 'DELETE' = 'GET') => ta.anonymous({ method, url, headers: { cookie: again, 'x-console': '1' } });
    t.equal((await auditor('/ingest/dead-letters')).statusCode, 403, 'the session has only its client\'s rights');
    t.equal((await auditor('/fhir/AuditEvent?subtype=token&_count=50')).statusCode, 200);
    const out = await auditor('/auth/session', 'DELETE');
    t.equal(out.statusCode, 204, 'logout');
    t.match(String(out.headers['set-cookie']), /hie_console=; .*Max-Age=0/, 'the cookie is cleared');
    t.equal((await auditor('/fhir/AuditEvent')).statusCode, 401, 'after logout the session is gone');

    const { rows } = await ta.tdb.db.query<{ client_id: string; outcome: string; subtype: string }>(
      `SELECT client_id, outcome, subtype FROM audit_event WHERE subtype IN ('token', 'console-logout') ORDER BY recorded, seq`,
    );
    t.same(
      rows.map((r) => `${r.client_id}:${r.outcome}:${r.subtype}`),
      ['admin:4:token', 'admin:0:token', 'auditor:0:token', 'auditor:0:console-logout'],
      'failed and successful logins and the logout are audited',
    );
  });
}
