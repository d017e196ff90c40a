/**
 * Console sessions: login with a client's id and secret, or with an operator account (a person
 * acting as a client), gives an httpOnly, SameSite=Strict cookie (never a token); the cookie works
 * only with the X-Console header; logout, idle time and a wrong secret end or refuse the session;
 * logins are audited, and an operator is the named user of everything the session does.
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

  t.test(`console session of an operator account (${backend})`, async (t) => {
    const ta = await createTestApp(backend);
    t.teardown(() => ta.close());
    const login = (payload: Record<string, string>) => ta.anonymous({ method: 'POST', url: '/auth/session', headers: { 'content-type': 'application/json' }, payload });

    const wrong = await login({ username: 'zhangwei', password: 'admin-secret' });
    t.equal(wrong.statusCode, 401, 'a wrong password is refused');
    t.match(wrong.json().issue[0].diagnostics, /Unknown operator or wrong password/);
    t.equal((await login({ username: 'nobody', password: 'x' })).statusCode, 401, 'an unknown operator is refused');
    const mixes: Record<string, string>[] = [{ username: 'zhangwei', clientSecret: 'zhangwei-secret' }, { clientId: 'admin', password: 'admin-secret' }, { username: 'zhangwei', password: 'zhangwei-secret', clientId: 'admin' }];
    for (const mixed of mixes) {
      t.equal((await login(mixed)).statusCode, 400, `${Object.keys(mixed).join(' and ')}: a client or an operator, not a mix`);
    }

    const ok = await login({ username: 'zhangwei', password: 'zhangwei-secret' });
    t.equal(ok.statusCode, 200);
    t.match(ok.json(), { clientId: 'admin', role: 'admin', operator: 'zhangwei', name: '张伟（信息中心）' }, 'the operator acts as the admin client, by name');
    const cookie = String(ok.headers['set-cookie']).split(';')[0];
    const asOperator = (url: string, extra: Record<string, string> = {}, method: 'GET' | 'DELETE' = 'GET') => ta.anonymous({ method, url, headers: { cookie, 'x-console': '1', ...extra } });
    t.match((await asOperator('/auth/session')).json(), { operator: 'zhangwei', clientId: 'admin' }, 'who am I');
    t.equal((await asOperator('/ingest/dead-letters')).statusCode, 200, 'with the client\'s rights');
    t.equal((await asOperator('/fhir/Organization?_count=1', { 'x-user-id': 'someone-else' })).statusCode, 200);

    // Everything the session does names the operator as its user, whatever X-User-Id says.
    const users = async (subtype: string) =>
      (await ta.tdb.db.query<{ user_id: string | null; client_id: string; outcome: string }>(`SELECT user_id, client_id, outcome FROM audit_event WHERE subtype = $1 ORDER BY recorded, seq`, [subtype])).rows;
    const searches = await users('search-type');
    t.ok(searches.length >= 2, 'the dead letters and the organisations were searched');
    t.same([...new Set(searches.map((r) => `${r.user_id}:${r.client_id}`))], ['zhangwei:admin'], 'as the operator, not the user the header named');
    t.same(
      (await users('token')).map((r) => `${r.user_id}:${r.client_id ?? ''}:${r.outcome}`),
      ['zhangwei::4', 'nobody::4', 'zhangwei:admin:0'],
      'failed logins name the username tried; the login names the operator',
    );
    t.equal((await asOperator('/auth/session', {}, 'DELETE')).statusCode, 204, 'logout');
    t.same((await users('console-logout')).map((r) => r.user_id), ['zhangwei'], 'audited as the operator\'s');
    t.equal((await asOperator('/ingest/dead-letters')).statusCode, 401, 'the session is gone');

    // An operator whose account is disabled (or removed) after login loses the session.
    const again = String((await login({ username: 'liming', password: 'liming-secret' })).headers['set-cookie']).split(';')[0];
    await ta.tdb.db.query(`UPDATE console_session SET operator = 'removed-operator' WHERE operator = 'liming'`);
    t.equal((await ta.anonymous({ url: '/fhir/AuditEvent?_count=1', headers: { cookie: again, 'x-console': '1' } })).statusCode, 401, 'no such operator any more: the session has ended');
  });
}
