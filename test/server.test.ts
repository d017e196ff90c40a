/**
 * The server as `npm start` runs it: listening on a port, the demo community loaded on first
 * start of the embedded store, and every write kept across a restart.
 */
import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { loadConfig, ConfigError } from '../src/config.js';
import { createLogger } from '../src/logger.js';
import { start } from '../src/server.js';
import { TEST_DATABASE_URL } from './helpers/db.js';

const logger = createLogger('silent');

/** Every request of these tests is made as the demo admin client, with a token from /auth/token. */
const tokens = new Map<string, string>();

async function token(base: string): Promise<string> {
  let tok = tokens.get(base);
  if (!tok) {
    const r = await fetch(`${base}/auth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'grant_type=client_credentials&client_id=admin&client_secret=admin-secret',
    });
    tok = ((await r.json()) as { access_token: string }).access_token;
    tokens.set(base, tok);
  }
  return tok;
}

async function json(url: string, init: RequestInit = {}): Promise<{ status: number; body: Record<string, unknown> }> {
  const base = new URL(url).origin;
  const headers = { ...(init.headers as Record<string, string> | undefined), authorization: `Bearer ${await token(base)}` };
  const r = await fetch(url, { ...init, headers });
  const text = await r.text();
  return { status: r.status, body: text ? (JSON.parse(text) as Record<string, unknown>) : {} };
}

async function startOn(env: Record<string, string>): Promise<{ base: string; stop: () => Promise<void> }> {
  // Port 0: the OS picks a free port; BASE_URL is only used in links, so the test reads the real one.
  const config = loadConfig({ HOST: '127.0.0.1', PORT: '0', MLLP_PORT: '0', LOG_LEVEL: 'silent', HL7_SPOOL_DIR: join(tmpdir(), `hie-spool-${process.pid}`), ...env });
  const { stop, address } = await start(config, logger);
  return { base: address, stop };
}

t.test('config errors name every bad variable', async (t) => {
  const err = (() => {
    try {
      loadConfig({ PORT: 'eighty', DATABASE_URL: 'not a url', LOG_LEVEL: 'loud' });
    } catch (e) {
      return e;
    }
  })();
  t.ok(err instanceof ConfigError);
  const msg = (err as ConfigError).message;
  t.match(msg, /PORT="eighty" is not a whole number/);
  t.match(msg, /DATABASE_URL="not a url" is not a URL/);
  t.match(msg, /LOG_LEVEL="loud" must be one of/);
  t.throws(() => loadConfig({ PORT: '70000' }), /PORT=70000 is above the maximum/);
});

t.test('embedded store: demo community on first start, data kept across restart', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'hie-data-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const first = await startOn({ DATA_DIR: dir });
  t.teardown(() => first.stop().catch(() => undefined));
  const anonymous = await fetch(`${first.base}/fhir/Organization`);
  t.equal(anonymous.status, 401, 'no token, no data');
  const ready = await json(`${first.base}/readyz`);
  t.equal(ready.status, 200);
  const orgs = await json(`${first.base}/fhir/Organization?_count=100`);
  t.equal(orgs.status, 200);
  t.equal((orgs.body.entry as unknown[]).length >= 6, true, 'demo organisations loaded');
  const created = await json(`${first.base}/fhir/Basic`, {
    method: 'POST',
    headers: { 'content-type': 'application/fhir+json' },
    body: JSON.stringify({ resourceType: 'Basic', code: { text: 'kept across restart' } }),
  });
  t.equal(created.status, 201);
  await first.stop();

  const second = await startOn({ DATA_DIR: dir });
  t.teardown(() => second.stop());
  const read = await json(`${second.base}/fhir/Basic/${String(created.body.id)}`);
  t.equal(read.status, 200);
  t.same((read.body.code as { text: string }).text, 'kept across restart');
  const orgs2 = await json(`${second.base}/fhir/Organization?_count=100&_total=accurate`);
  t.equal(orgs2.body.total, (orgs.body.entry as unknown[]).length, 'the demo is not loaded twice');
});

t.test('PostgreSQL: data kept across restart', { skip: TEST_DATABASE_URL ? false : 'TEST_DATABASE_URL not set' }, async (t) => {
  const schema = `srv_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await admin.connect();
  await admin.query(`CREATE SCHEMA ${schema}`);
  t.teardown(async () => {
    await admin.query(`DROP SCHEMA ${schema} CASCADE`);
    await admin.end();
  });
  const url = new URL(TEST_DATABASE_URL as string);
  url.searchParams.set('options', `-c search_path=${schema}`);
  const first = await startOn({ DATABASE_URL: url.toString() });
  t.teardown(() => first.stop().catch(() => undefined));
  const created = await json(`${first.base}/fhir/Basic`, {
    method: 'POST',
    headers: { 'content-type': 'application/fhir+json' },
    body: JSON.stringify({ resourceType: 'Basic', code: { text: 'on the server' } }),
  });
  t.equal(created.status, 201);
  const orgs = await json(`${first.base}/fhir/Organization`);
  t.equal((orgs.body.entry as unknown[] | undefined)?.length ?? 0, 0, 'no demo data on a real server unless asked');
  await first.stop();
  const second = await startOn({ DATABASE_URL: url.toString() });
  t.teardown(() => second.stop());
  const read = await json(`${second.base}/fhir/Basic/${String(created.body.id)}`);
  t.equal(read.status, 200);
});
