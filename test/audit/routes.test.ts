import t from 'tap';
import Fastify, { type FastifyInstance } from 'fastify';
import type { AuditEvent, Bundle, OperationOutcome, Parameters } from '@medplum/fhirtypes';
import { loadConfig } from '../../src/config.js';
import { outcomeOf } from '../../src/fhir/outcome.js';
import { createFhirServices, fhirPlugin } from '../../src/fhir/index.js';
import { BACKENDS, openTestDb, type Backend, type TestDb } from '../helpers/db.js';
import { TEST_BASE } from '../helpers/app.js';
import { appendAuditEvents, auditRoutes } from '../../src/audit/index.js';
import { CLINIC, HIS, count, tamper } from './helpers.js';

const AUDITOR = 'system/AuditEvent.rs';

interface AuditApp {
  app: FastifyInstance;
  tdb: TestDb;
}

/** The audit routes under /fhir, with the generic FHIR routes after them as the gateway has them. */
async function auditApp(backend: Backend, withFhir = false): Promise<AuditApp> {
  const config = loadConfig({ BASE_URL: TEST_BASE, LOG_LEVEL: 'silent', DEFAULT_PAGE_SIZE: '50' });
  const tdb = await openTestDb(backend);
  const app = Fastify();
  app.setErrorHandler((err, _req, reply) => {
    const { status, outcome } = outcomeOf(err);
    void reply.code(status).header('content-type', 'application/fhir+json; charset=utf-8').send(outcome);
  });
  // Stands in for the auth plugin: the scopes of the "token" come in a test header.
  app.addHook('onRequest', async (req) => {
    const scopes = req.headers['x-test-scopes'];
    if (typeof scopes === 'string') req.auth = { clientId: 'auditor-1', institution: 'org-health-commission', scopes: scopes.split(' ').filter((s) => s) };
  });
  await app.register(auditRoutes, { prefix: '/fhir', db: tdb.db, config });
  if (withFhir) await app.register(fhirPlugin, { prefix: '/fhir', config, services: await createFhirServices(config, tdb.db) });
  await app.ready();
  return { app, tdb };
}

/** Five accesses in early 2025, oldest first. */
async function seed(tdb: TestDb): Promise<void> {
  const at = (d: string) => ({ recorded: new Date(d) });
  await appendAuditEvents(tdb.db, HIS, [{ interaction: 'read', outcome: '0', resources: ['Patient/p1/_history/1'], patients: ['Patient/p1'] }], at('2025-01-10T02:00:00Z'));
  await appendAuditEvents(tdb.db, HIS, [{ interaction: 'create', outcome: '0', resources: ['Observation/o1/_history/1'], patients: ['Patient/p1'] }], at('2025-02-10T02:00:00Z'));
  await appendAuditEvents(
    tdb.db,
    CLINIC,
    [{ interaction: 'search-type', outcome: '0', resources: ['Observation/o2', 'Observation/o3'], patients: ['Patient/p2', 'Patient/p3'], query: 'Observation?code=x' }],
    at('2025-03-10T02:00:00Z'),
  );
  await appendAuditEvents(tdb.db, CLINIC, [{ interaction: 'read', outcome: '4', outcomeText: 'refused', resources: ['Patient/p9'], patients: [] }], at('2025-03-20T02:00:00Z'));
  await appendAuditEvents(tdb.db, HIS, [{ interaction: 'delete', outcome: '0', resources: ['Observation/o1/_history/2'], patients: ['Patient/p1'] }], at('2025-04-01T02:00:00Z'));
}

for (const backend of BACKENDS) {
  t.test(backend, async (t) => {
    const { app, tdb } = await auditApp(backend);
    t.teardown(async () => {
      await app.close();
      await tdb.close();
    });
    await seed(tdb);
    const get = (url: string, scopes = AUDITOR) => app.inject({ method: 'GET', url, headers: { 'x-test-scopes': scopes } });
    /** Subtypes of the seeded events a search finds (the audits of the searches themselves are recorded now, after 2025). */
    const find = async (query: string): Promise<string[]> => {
      const r = await get(`/fhir/AuditEvent?${query}&date=lt2025-12`);
      t.equal(r.statusCode, 200, r.body);
      return ((r.json() as Bundle<AuditEvent>).entry ?? []).map((e) => `${e.resource?.subtype?.[0].code}@${e.resource?.recorded?.slice(0, 10)}`);
    };

    t.test('search by each parameter', async (t) => {
      t.same(await find('patient=p1'), ['delete@2025-04-01', 'create@2025-02-10', 'read@2025-01-10'], 'newest first');
      t.same(await find('patient=Patient/p2'), ['search-type@2025-03-10']);
      t.same(await find(`patient=${encodeURIComponent(`${TEST_BASE}/fhir/Patient/p3`)}`), ['search-type@2025-03-10']);
      t.equal((await find('patient=p2,p1')).length, 4, 'comma: any of');
      t.same(await find('agent=his-town-clinic'), ['read@2025-03-20', 'search-type@2025-03-10']);
      t.same(await find('altid=doctor-li&outcome=0'), ['search-type@2025-03-10']);
      t.same(await find('entity=Observation/o1'), ['delete@2025-04-01', 'create@2025-02-10'], 'any version of the entity');
      t.same(await find('entity=Observation/o3'), ['search-type@2025-03-10']);
      t.same(await find('date=2025-02'), ['create@2025-02-10']);
      t.same(await find('date=ge2025-02-01&date=lt2025-03-15'), ['search-type@2025-03-10', 'create@2025-02-10'], 'a range from two prefixes');
      t.same(await find('date=gt2025-03'), ['delete@2025-04-01']);
      t.same(await find('date=le2025-01-10'), ['read@2025-01-10']);
      t.same(await find('date=eq2025-03-20T10:00:00%2B08:00'), ['read@2025-03-20'], 'an instant with an offset');
      t.same(await find('action=C'), ['create@2025-02-10']);
      t.same(await find('action=D,C'), ['delete@2025-04-01', 'create@2025-02-10']);
      t.same(await find('outcome=4'), ['read@2025-03-20']);
      t.same(await find('subtype=read'), ['read@2025-03-20', 'read@2025-01-10']);
      t.same(await find('subtype=http://hl7.org/fhir/restful-interaction|delete'), ['delete@2025-04-01']);
      t.same(await find('address=10.9.8.7'), ['read@2025-03-20', 'search-type@2025-03-10']);
      t.same(await find('_sort=date&patient=p1'), ['read@2025-01-10', 'create@2025-02-10', 'delete@2025-04-01']);
    });

    t.test('keyset paging with next links', async (t) => {
      const seen: string[] = [];
      let url: string | undefined = '/fhir/AuditEvent?_count=2&date=lt2025-12';
      let pages = 0;
      while (url) {
        const r = await get(url);
        t.equal(r.statusCode, 200, r.body);
        const b = r.json() as Bundle<AuditEvent>;
        seen.push(...(b.entry ?? []).map((e) => e.resource?.recorded ?? ''));
        const next = b.link?.find((l) => l.relation === 'next')?.url;
        url = next?.replace(TEST_BASE, '');
        pages++;
      }
      t.equal(pages, 3);
      t.equal(seen.length, 5);
      t.same(seen, [...seen].sort().reverse(), 'newest first across pages');
    });

    t.test('bad searches are refused with an OperationOutcome', async (t) => {
      for (const q of ['action=X', 'outcome=3', 'date=2025-13', 'date=sa2025', 'name=x', 'patient=Observation/o1', 'entity=o1', '_sort=agent', '_count=x', '_cursor=zz']) {
        const r = await get(`/fhir/AuditEvent?${q}`);
        t.equal(r.statusCode, 400, q);
        t.equal((r.json() as OperationOutcome).resourceType, 'OperationOutcome');
      }
    });

    t.test('read by id', async (t) => {
      const { rows } = await tdb.db.query<{ id: string }>(`SELECT id FROM audit_event WHERE action = 'C' LIMIT 1`);
      const r = await get(`/fhir/AuditEvent/${rows[0].id}`);
      t.equal(r.statusCode, 200);
      t.match(r.json(), { resourceType: 'AuditEvent', id: rows[0].id, action: 'C' });
      t.equal((await get('/fhir/AuditEvent/no-such-event')).statusCode, 404);
    });

    t.test('only auditors read the trail, and every read of it is recorded', async (t) => {
      const before = await count(tdb.db, `client_id = 'auditor-1' AND outcome = '4'`);
      for (const scopes of ['', 'system/*.rs', 'system/*.cruds', 'system/Patient.rs', 'system/AuditEvent.r']) {
        const r = await get('/fhir/AuditEvent?patient=p1', scopes);
        t.equal(r.statusCode, 403, `search with "${scopes}"`);
      }
      t.equal((await get('/fhir/AuditEvent/$verify', 'system/AuditEvent.s')).statusCode, 403);
      t.equal((await get('/fhir/AuditEvent?patient=p1', 'system/AuditEvent.read')).statusCode, 200, 'v1 read grants search');
      t.equal(await count(tdb.db, `client_id = 'auditor-1' AND outcome = '4'`), before + 6, 'refusals recorded');

      const n = await count(tdb.db);
      const r = await get('/fhir/AuditEvent?patient=p2');
      t.equal(r.statusCode, 200);
      t.equal(await count(tdb.db), n + 1, 'one AuditEvent for the search');
      const { rows } = await tdb.db.query<{ content: string; subtype: string; patient_refs: string[]; entity_refs: string[] }>(
        `SELECT content, subtype, patient_refs, entity_refs FROM audit_event WHERE client_id = 'auditor-1' ORDER BY recorded DESC, seq DESC LIMIT 1`,
      );
      t.equal(rows[0].subtype, 'search-type');
      t.same(rows[0].patient_refs, ['Patient/p2'], 'the patient whose trail was read');
      t.ok(rows[0].entity_refs.some((e) => e.startsWith('AuditEvent/')), 'the AuditEvents returned');
      const ev = JSON.parse(rows[0].content) as AuditEvent;
      t.match(Buffer.from(ev.entity?.find((e) => e.role?.code === '24')?.query ?? '', 'base64').toString(), /^AuditEvent\?patient=p2/);
    });

    t.test('writes through the API answer 405 and are recorded as refused', async (t) => {
      const n = await count(tdb.db);
      const body = JSON.stringify({ resourceType: 'AuditEvent' });
      for (const [method, url] of [
        ['POST', '/fhir/AuditEvent'],
        ['PUT', '/fhir/AuditEvent/x1'],
        ['PATCH', '/fhir/AuditEvent/x1'],
        ['DELETE', '/fhir/AuditEvent/x1'],
        ['DELETE', '/fhir/AuditEvent?patient=p1'],
      ] as const) {
        const r = await app.inject({ method, url, headers: { 'x-test-scopes': 'system/AuditEvent.cruds', 'content-type': 'application/fhir+json' }, payload: body });
        t.equal(r.statusCode, 405, `${method} ${url}`);
        t.match(r.json(), { resourceType: 'OperationOutcome', issue: [{ code: 'not-supported' }] });
      }
      t.equal(await count(tdb.db), n + 5);
      t.equal(await count(tdb.db, `outcome = '4' AND subtype = 'delete' AND 'AuditEvent/x1' = ANY(entity_refs)`), 1);
    });

    t.test('NDJSON export of a range, oldest first', async (t) => {
      const r = await get('/fhir/AuditEvent/$export?start=2025-02&end=2025-03');
      t.equal(r.statusCode, 200, r.body);
      t.match(r.headers['content-type'], /^application\/fhir\+ndjson/);
      const lines = r.body.split('\n').filter((l) => l);
      t.same(lines.map((l) => (JSON.parse(l) as AuditEvent).recorded?.slice(0, 10)), ['2025-02-10', '2025-03-10', '2025-03-20']);
      t.ok(r.body.endsWith('\n'));
      const all = await get('/fhir/AuditEvent/$export?start=2025');
      const recorded = all.body.split('\n').filter((l) => l).map((l) => (JSON.parse(l) as AuditEvent).recorded ?? '');
      t.ok(recorded.length >= 5, 'to now');
      t.same(recorded, [...recorded].sort(), 'newest last');
      t.equal((await get('/fhir/AuditEvent/$export')).statusCode, 400);
      t.equal((await get('/fhir/AuditEvent/$export?start=2025-03&end=2025-02')).statusCode, 400);
      t.equal((await get('/fhir/AuditEvent/$export?start=2025&patient=p1')).statusCode, 400);
    });

    t.test('$verify over HTTP', async (t) => {
      const ok = await get('/fhir/AuditEvent/$verify');
      t.equal(ok.statusCode, 200);
      const p = ok.json() as Parameters;
      t.match(p.parameter?.find((x) => x.name === 'result'), { valueBoolean: true });
      t.equal(p.parameter?.filter((x) => x.name === 'chain').length, 8);
      const posted = await app.inject({ method: 'POST', url: '/fhir/AuditEvent/$verify', headers: { 'x-test-scopes': AUDITOR, 'content-type': 'application/fhir+json' }, payload: '{"resourceType":"Parameters"}' });
      t.equal(posted.statusCode, 200);

      const { rows } = await tdb.db.query<{ id: string; chain: number; seq: number }>(`SELECT id, chain, seq FROM audit_event WHERE action = 'C' AND outcome = '0' LIMIT 1`);
      await tamper(tdb.db, `UPDATE audit_event SET content = replace(content, 'Observation/o1', 'Observation/o7') WHERE id = $1`, [rows[0].id]);
      const broken = (await get('/fhir/AuditEvent/$verify')).json() as Parameters;
      t.match(broken.parameter?.find((x) => x.name === 'result'), { valueBoolean: false });
      const first = broken.parameter?.find((x) => x.name === 'firstBroken')?.part ?? [];
      t.match(first.find((x) => x.name === 'record'), { valueReference: { reference: `AuditEvent/${rows[0].id}` } });
      t.match(first.find((x) => x.name === 'reason'), { valueCode: 'hash-mismatch' });
      t.match(first.find((x) => x.name === 'seq'), { valueInteger: rows[0].seq });
    });
  });

  t.test(`${backend}: registered before the generic FHIR routes, the audit routes win`, async (t) => {
    const { app, tdb } = await auditApp(backend, true);
    t.teardown(async () => {
      await app.close();
      await tdb.close();
    });
    await seed(tdb);
    const r = await app.inject({ method: 'GET', url: '/fhir/AuditEvent?patient=p1&date=lt2025-12', headers: { 'x-test-scopes': AUDITOR } });
    t.equal(r.statusCode, 200, r.body);
    t.equal((r.json() as Bundle).entry?.length, 3);
    const w = await app.inject({ method: 'POST', url: '/fhir/AuditEvent', headers: { 'x-test-scopes': AUDITOR, 'content-type': 'application/fhir+json' }, payload: '{"resourceType":"AuditEvent"}' });
    t.equal(w.statusCode, 405);
    const s = await app.inject({ method: 'POST', url: '/fhir/AuditEvent/_search', headers: { 'x-test-scopes': AUDITOR, 'content-type': 'application/x-www-form-urlencoded' }, payload: 'patient=p2&date=lt2025-12' });
    t.equal(s.statusCode, 200, s.body);
    t.equal((s.json() as Bundle).entry?.length, 1);
  });
}
