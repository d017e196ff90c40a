import t from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';
import { buildApp } from '../../src/app.js';
import { prepareAudit } from '../../src/audit/index.js';
import { createFhirServices } from '../../src/fhir/index.js';
import { canManageDeadLetters, type Ingest, type MapFn } from '../../src/ingest/index.js';
import { BACKENDS, openTestDb } from '../helpers/db.js';
import { ackOf } from './fixture.js';
import { mapStandIn, MappingError, oru } from './stand-ins.js';

const HL7 = { 'content-type': 'x-application/hl7-v2+er7' };

t.test('access decision: the administrator only', async (t) => {
  t.ok(canManageDeadLetters({ role: 'admin' }));
  t.notOk(canManageDeadLetters({ role: 'admin', institution: '1233042447101234XX' }), 'an admin of one institution is not the community administrator');
  for (const role of ['his', 'platform', 'auditor', undefined]) t.notOk(canManageDeadLetters({ role }), String(role));
  t.notOk(canManageDeadLetters(undefined));
});

for (const backend of BACKENDS) {
  t.test(backend, async (t) => {
    const spoolDir = mkdtempSync(join(tmpdir(), 'hl7-spool-'));
    const config = loadConfig({ BASE_URL: 'http://gateway.test', LOG_LEVEL: 'silent', HL7_SPOOL_DIR: spoolDir });
    const tdb = await openTestDb(backend);
    await prepareAudit(tdb.db, config);
    const fhir = await createFhirServices(config, tdb.db);
    const mapping = { fn: mapStandIn as MapFn };
    const app: FastifyInstance = await buildApp(config, { db: tdb.db, logger: createLogger('silent'), fhir, hl7Map: (m, c) => mapping.fn(m, c) });
    await app.ready();
    const ingest: Ingest = app.ingest;
    t.teardown(async () => {
      ingest.stop();
      await app.close();
      await tdb.close();
      rmSync(spoolDir, { recursive: true, force: true });
    });
    const bearer = async (client: string) => ({ authorization: `Bearer ${await app.auth.mint(client)}` });
    const admin = await bearer('admin');
    const post = async (client: string, body: string | Buffer) =>
      app.inject({ method: 'POST', url: '/ingest/hl7v2', headers: { ...HL7, ...(await bearer(client)) }, payload: body });

    t.test('HTTP ingest: the bound client stores, another client is refused AR', async (t) => {
      const ok = await post('county-his', oru({ controlId: 'H-1', mrn: 'HTTP1' }));
      t.equal(ok.statusCode, 200);
      t.equal(ok.headers['content-type'], 'x-application/hl7-v2+er7');
      t.equal(ackOf(ok.rawPayload).code, 'AA');
      const other = await post('village1-his', oru({ controlId: 'H-2', mrn: 'HTTP2' }));
      t.equal(other.statusCode, 200);
      t.equal(ackOf(other.rawPayload).code, 'AR');
      t.match(ackOf(other.rawPayload).err?.[8], /may not post messages of sender "county-lis"/);
      const plain = await app.inject({ method: 'POST', url: '/ingest/hl7v2', headers: { 'content-type': 'text/plain', ...(await bearer('county-his')) }, payload: oru({ controlId: 'H-1', mrn: 'HTTP1' }) });
      t.same(plain.rawPayload, ok.rawPayload, 'a resend is answered with the same ACK');
      const none = await app.inject({ method: 'POST', url: '/ingest/hl7v2', headers: HL7, payload: oru({ controlId: 'H-3' }) });
      t.equal(none.statusCode, 401);
      const json = await app.inject({ method: 'POST', url: '/ingest/hl7v2', headers: { 'content-type': 'application/json', ...(await bearer('county-his')) }, payload: '{}' });
      t.equal(json.statusCode, 415);
    });

    t.test('HTTP ingest in enhanced mode: the application ACK, else the accept ACK, else 204', async (t) => {
      const both = await post('county-his', oru({ controlId: 'H-ENH-1', mrn: 'HTTPENH1', acceptAck: 'AL', applicationAck: 'AL' }));
      t.equal(both.statusCode, 200);
      t.equal(ackOf(both.rawPayload).code, 'AA');
      const accept = await post('county-his', oru({ controlId: 'H-ENH-2', mrn: 'HTTPENH2', acceptAck: 'AL', applicationAck: 'NE' }));
      t.equal(ackOf(accept.rawPayload).code, 'CA');
      const none = await post('county-his', oru({ controlId: 'H-ENH-3', mrn: 'HTTPENH3', acceptAck: 'NE', applicationAck: 'ER' }));
      t.equal(none.statusCode, 204);
      t.equal(none.rawPayload.length, 0);
    });

    t.test('HTTP ingest keeps the raw bytes: GBK without MSH-18, from the township LIS', async (t) => {
      const [before, after] = oru({ app: 'CGLIS', facility: 'CGZWSY', controlId: 'GBK-H1', mrn: 'GBKH1', family: '@@' }).split('@@');
      const raw = Buffer.concat([Buffer.from(before, 'latin1'), Buffer.from([0xd5, 0xc5, 0xc8, 0xfd]), Buffer.from(after, 'latin1')]);
      const r = await post('township1-his', raw);
      t.equal(ackOf(r.rawPayload).code, 'AA');
      const found = await app.inject({ url: '/fhir/Patient?identifier=https://fhir.county-hie.cn/mrn/township1-lis|GBKH1', headers: admin });
      t.equal(found.json().entry?.[0]?.resource?.name?.[0]?.family, '张三');
    });

    t.test('dead-letter API: no token 401, clinical and other clients 403, administrator 200', async (t) => {
      const { rows } = await tdb.db.query<{ id: number }>('SELECT id FROM dead_letter ORDER BY id LIMIT 1');
      const id = rows[0].id;
      const calls = [
        { method: 'GET' as const, url: '/ingest/dead-letters' },
        { method: 'GET' as const, url: `/ingest/dead-letters/${id}` },
        { method: 'POST' as const, url: `/ingest/dead-letters/${id}/$replay` },
        { method: 'POST' as const, url: '/ingest/dead-letters/$replay', payload: {} },
        { method: 'POST' as const, url: `/ingest/dead-letters/${id}/$discard`, payload: { reason: 'test' } },
      ];
      for (const c of calls) {
        t.equal((await app.inject(c)).statusCode, 401, `${c.method} ${c.url} without token`);
        for (const client of ['county-his', 'township1-his', 'village1-his', 'regional-platform', 'auditor']) {
          const r = await app.inject({ ...c, headers: await bearer(client) });
          t.equal(r.statusCode, 403, `${client} ${c.method} ${c.url}`);
        }
      }
      t.equal((await app.inject({ url: '/ingest/dead-letters', headers: admin })).statusCode, 200);
      const { rows: refused } = await tdb.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM audit_event WHERE client_id = 'county-his' AND outcome = '4' AND content LIKE '%dead-letters%'`);
      t.equal(refused[0].n, 5, 'each refusal audited');
    });

    t.test('list, filter, page and read a dead letter', async (t) => {
      await post('village1-his', oru({ controlId: 'H-4' }));
      const list = await app.inject({ url: '/ingest/dead-letters?sender=county-lis&error=unbound-client&status=new&_count=1', headers: admin });
      t.equal(list.statusCode, 200);
      const page = list.json();
      t.equal(page.items.length, 1);
      t.equal(page.items[0].controlId, 'H-4', 'newest first');
      t.equal(page.items[0].clientId, 'village1-his');
      t.notOk('raw' in page.items[0], 'no raw bytes in the list');
      t.match(page.next, /_after=\d+/);
      const next = await app.inject({ url: `/ingest/dead-letters?sender=county-lis&error=unbound-client&status=new&_count=1&_after=${page.items[0].id}`, headers: admin });
      t.equal(next.json().items[0].controlId, 'H-2');
      const one = await app.inject({ url: `/ingest/dead-letters/${page.items[0].id}`, headers: admin });
      t.equal(one.statusCode, 200);
      t.match(one.json().message, /^MSH\|\^~\\&\|QSLIS\|QSXRMYY/);
      t.equal(Buffer.from(one.json().raw, 'base64').toString('utf8'), oru({ controlId: 'H-4' }));
      t.equal((await app.inject({ url: '/ingest/dead-letters/999999', headers: admin })).statusCode, 404);
      t.equal((await app.inject({ url: '/ingest/dead-letters/abc', headers: admin })).statusCode, 404);
      t.equal((await app.inject({ url: '/ingest/dead-letters?status=lost', headers: admin })).statusCode, 400);
    });

    t.test('replay one after a mapping fix, replay many by filter', async (t) => {
      mapping.fn = () => {
        throw new MappingError('OBX-3 local code is not mapped', { segment: 'OBX', position: 4, field: 3 }, 103);
      };
      const failed = [];
      for (const n of [1, 2, 3]) failed.push(ackOf((await post('county-his', oru({ controlId: `FIX-${n}`, mrn: `FIX${n}` }))).rawPayload));
      t.same(failed.map((a) => a.code), ['AE', 'AE', 'AE']);
      const { rows } = await tdb.db.query<{ id: number }>(`SELECT id FROM dead_letter WHERE error_code = 'mapping-error' ORDER BY id`);
      const still = await app.inject({ method: 'POST', url: `/ingest/dead-letters/${rows[0].id}/$replay`, headers: admin });
      t.equal(still.json().outcome, 'rejected');
      mapping.fn = mapStandIn;
      const one = await app.inject({ method: 'POST', url: `/ingest/dead-letters/${rows[0].id}/$replay`, headers: admin });
      t.equal(one.statusCode, 200);
      t.equal(one.json().outcome, 'stored');
      t.match(one.json().ack, /MSA\|AA\|FIX-1/);
      t.equal((await app.inject({ method: 'POST', url: `/ingest/dead-letters/${rows[0].id}/$replay`, headers: admin })).statusCode, 409);
      const many = await app.inject({ method: 'POST', url: '/ingest/dead-letters/$replay', headers: admin, payload: { error: 'mapping-error', sender: 'county-lis' } });
      t.equal(many.statusCode, 200);
      t.same(many.json().results.map((r: { outcome: string }) => r.outcome), ['stored', 'stored']);
      const left = await app.inject({ url: '/ingest/dead-letters?error=mapping-error&status=new', headers: admin });
      t.equal(left.json().items.length, 0);
      t.equal((await app.inject({ method: 'POST', url: '/ingest/dead-letters/$replay', headers: admin, payload: { colour: 'red' } })).statusCode, 400);
    });

    t.test('discard with a reason, audited; not twice; not without a reason', async (t) => {
      const { rows } = await tdb.db.query<{ id: number }>(`SELECT id FROM dead_letter WHERE status = 'new' ORDER BY id LIMIT 1`);
      const id = rows[0].id;
      const url = `/ingest/dead-letters/${id}/$discard`;
      t.equal((await app.inject({ method: 'POST', url, headers: admin, payload: {} })).statusCode, 400);
      const r = await app.inject({ method: 'POST', url, headers: admin, payload: { reason: 'Test message from the village clinic, not a patient' } });
      t.equal(r.statusCode, 200);
      t.equal(r.json().status, 'discarded');
      t.equal(r.json().discardedBy, 'admin');
      t.equal(r.json().discardReason, 'Test message from the village clinic, not a patient');
      t.equal((await app.inject({ method: 'POST', url, headers: admin, payload: { reason: 'again' } })).statusCode, 409);
      const { rows: audits } = await tdb.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM audit_event WHERE client_id = 'admin' AND content LIKE '%$discard%' AND $1 = ANY(entity_refs)`, [`DeadLetter/${id}`]);
      t.equal(audits[0].n, 1);
    });

    t.test('ingest metrics on the app registry', async (t) => {
      const r = await app.inject({ url: '/metrics', headers: admin });
      t.match(r.body, /gateway_hl7_messages_total\{sender="county-lis",type="ORU\^R01",outcome="stored"\}/);
      t.match(r.body, /gateway_hl7_dead_letters_total\{sender="county-lis",error="unbound-client"\}/);
    });
  });
}
