import t from 'tap';
import type { InjectOptions } from 'fastify';
import type { OperationOutcome, Patient } from '@medplum/fhirtypes';
import { BACKENDS } from '../helpers/db.js';
import { createTestApp, FHIR_HEADERS, TEST_BASE, type TestApp } from '../helpers/app.js';

const patient = (mrn: string, extra: Partial<Patient> = {}): Patient => ({
  resourceType: 'Patient',
  identifier: [{ system: 'https://fhir.county-hie.cn/mrn/county-hospital', value: mrn }],
  name: [{ family: '王', given: ['小明'] }],
  gender: 'male',
  birthDate: '1975-06-01',
  ...extra,
});

async function counts(ta: TestApp): Promise<{ resources: number; versions: number; audit: number }> {
  const one = async (table: string) => (await ta.tdb.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`)).rows[0].n;
  return { resources: await one('resource'), versions: await one('resource_version'), audit: await one('audit_event') };
}

function outcome(body: string): OperationOutcome {
  const o = JSON.parse(body) as OperationOutcome;
  if (o.resourceType !== 'OperationOutcome') throw new Error(`not an OperationOutcome: ${body.slice(0, 200)}`);
  return o;
}

for (const backend of BACKENDS) {
  t.test(backend, async (t) => {
    const ta = await createTestApp(backend);
    t.teardown(() => ta.close());
    const { app } = ta;

    t.test('create, read, vread, update, history, delete, 410', async (t) => {
      const created = await app.inject({ method: 'POST', url: '/fhir/Patient', headers: FHIR_HEADERS, payload: patient('A1') });
      t.equal(created.statusCode, 201, created.body);
      t.match(created.headers['content-type'], /application\/fhir\+json/);
      const body = created.json() as Patient;
      t.ok(body.id, 'server assigned an id');
      t.equal(body.meta?.versionId, '1');
      t.equal(created.headers.location, `${TEST_BASE}/fhir/Patient/${body.id}/_history/1`);
      t.equal(created.headers.etag, 'W/"1"');
      t.ok(created.headers['last-modified']);

      const read = await app.inject({ method: 'GET', url: `/fhir/Patient/${body.id}` });
      t.equal(read.statusCode, 200);
      t.same(read.json(), body, 'read returns what was stored');
      t.equal(read.headers.etag, 'W/"1"');
      const notModified = await app.inject({ method: 'GET', url: `/fhir/Patient/${body.id}`, headers: { 'if-none-match': 'W/"1"' } });
      t.equal(notModified.statusCode, 304);

      const updated = await app.inject({ method: 'PUT', url: `/fhir/Patient/${body.id}`, headers: FHIR_HEADERS, payload: { ...body, gender: 'female' } });
      t.equal(updated.statusCode, 200, updated.body);
      t.equal((updated.json() as Patient).meta?.versionId, '2');

      const v1 = await app.inject({ method: 'GET', url: `/fhir/Patient/${body.id}/_history/1` });
      t.equal((v1.json() as Patient).gender, 'male', 'version 1 is immutable');
      const v9 = await app.inject({ method: 'GET', url: `/fhir/Patient/${body.id}/_history/9` });
      t.equal(v9.statusCode, 404);

      const hist = await app.inject({ method: 'GET', url: `/fhir/Patient/${body.id}/_history` });
      const h = hist.json();
      t.equal(h.type, 'history');
      t.same(
        h.entry.map((e: { resource: Patient }) => e.resource.meta?.versionId),
        ['2', '1'],
        'newest first',
      );

      const del = await app.inject({ method: 'DELETE', url: `/fhir/Patient/${body.id}` });
      t.equal(del.statusCode, 204);
      const gone = await app.inject({ method: 'GET', url: `/fhir/Patient/${body.id}` });
      t.equal(gone.statusCode, 410);
      t.equal(outcome(gone.body).issue[0].code, 'deleted');
      const again = await app.inject({ method: 'DELETE', url: `/fhir/Patient/${body.id}` });
      t.equal(again.statusCode, 204, 'deleting a deleted resource is idempotent');
      const hist2 = (await app.inject({ method: 'GET', url: `/fhir/Patient/${body.id}/_history` })).json();
      t.equal(hist2.entry.length, 3, 'the deletion is a version');
      t.equal(hist2.entry[0].request.method, 'DELETE');
      t.notOk(hist2.entry[0].resource);

      const revived = await app.inject({ method: 'PUT', url: `/fhir/Patient/${body.id}`, headers: FHIR_HEADERS, payload: { ...body, meta: undefined } });
      t.equal(revived.statusCode, 201, 'update after delete re-creates');
      t.equal((revived.json() as Patient).meta?.versionId, '4');
    });

    t.test('create-on-update with a client id, and id mismatch', async (t) => {
      const r = await app.inject({ method: 'PUT', url: '/fhir/Patient/client-chosen-1', headers: FHIR_HEADERS, payload: { ...patient('B1'), id: 'client-chosen-1' } });
      t.equal(r.statusCode, 201);
      const bad = await app.inject({ method: 'PUT', url: '/fhir/Patient/other', headers: FHIR_HEADERS, payload: { ...patient('B2'), id: 'client-chosen-1' } });
      t.equal(bad.statusCode, 400);
      t.same(outcome(bad.body).issue[0].expression, ['Patient.id']);
    });

    t.test('If-Match version checks', async (t) => {
      const c = (await app.inject({ method: 'POST', url: '/fhir/Patient', headers: FHIR_HEADERS, payload: patient('C1') })).json() as Patient;
      const ok = await app.inject({ method: 'PUT', url: `/fhir/Patient/${c.id}`, headers: { ...FHIR_HEADERS, 'if-match': 'W/"1"' }, payload: { ...c, gender: 'female' } });
      t.equal(ok.statusCode, 200);
      t.equal(ok.headers.etag, 'W/"2"');
      const before = await counts(ta);
      const stale = await app.inject({ method: 'PUT', url: `/fhir/Patient/${c.id}`, headers: { ...FHIR_HEADERS, 'if-match': 'W/"1"' }, payload: c });
      t.equal(stale.statusCode, 412);
      t.equal(outcome(stale.body).issue[0].code, 'conflict');
      t.same(await counts(ta), before, 'nothing written');
      const badHeader = await app.inject({ method: 'PUT', url: `/fhir/Patient/${c.id}`, headers: { ...FHIR_HEADERS, 'if-match': 'nonsense' }, payload: c });
      t.equal(badHeader.statusCode, 400);
    });

    t.test('an update that changes nothing keeps the version, writes no history, and is audited', async (t) => {
      const e = (await app.inject({ method: 'POST', url: '/fhir/Patient', headers: FHIR_HEADERS, payload: patient('E1') })).json() as Patient;
      const before = await counts(ta);
      const same = await app.inject({ method: 'PUT', url: `/fhir/Patient/${e.id}`, headers: FHIR_HEADERS, payload: { ...e, meta: undefined } });
      t.equal(same.statusCode, 200);
      t.equal(same.headers.etag, 'W/"1"', 'still version 1');
      t.equal((same.json() as Patient).meta?.lastUpdated, e.meta?.lastUpdated, 'the stored version is the answer');
      const after = await counts(ta);
      t.equal(after.versions, before.versions, 'no version written');
      t.equal(after.audit, before.audit + 1, 'the update is audited');
      const history = (await app.inject({ method: 'GET', url: `/fhir/Patient/${e.id}/_history`, headers: FHIR_HEADERS })).json() as { entry?: unknown[] };
      t.equal(history.entry?.length, 1, 'one version in the history');
      const changed = await app.inject({ method: 'PUT', url: `/fhir/Patient/${e.id}`, headers: FHIR_HEADERS, payload: { ...e, birthDate: '1975-06-02' } });
      t.equal(changed.headers.etag, 'W/"2"', 'a change is a new version');
      const patchSame = await app.inject({ method: 'PATCH', url: `/fhir/Patient/${e.id}`, headers: { ...FHIR_HEADERS, 'content-type': 'application/json-patch+json' }, payload: [{ op: 'replace', path: '/birthDate', value: '1975-06-02' }] });
      t.equal(patchSame.statusCode, 200);
      t.equal(patchSame.headers.etag, 'W/"2"', 'a patch that changes nothing keeps the version too');
    });

    t.test('Prefer return=minimal and return=OperationOutcome', async (t) => {
      const minimal = await app.inject({ method: 'POST', url: '/fhir/Patient', headers: { ...FHIR_HEADERS, prefer: 'return=minimal' }, payload: patient('D1') });
      t.equal(minimal.statusCode, 201);
      t.equal(minimal.body, '');
      t.ok(minimal.headers.location);
      const oo = await app.inject({ method: 'POST', url: '/fhir/Patient', headers: { ...FHIR_HEADERS, prefer: 'return=OperationOutcome' }, payload: patient('D2') });
      t.equal(oo.statusCode, 201);
      t.equal(outcome(oo.body).issue[0].severity, 'information');
    });

    t.test('JSON Patch', async (t) => {
      const c = (await app.inject({ method: 'POST', url: '/fhir/Patient', headers: FHIR_HEADERS, payload: patient('E1') })).json() as Patient;
      const p = await app.inject({
        method: 'PATCH',
        url: `/fhir/Patient/${c.id}`,
        headers: { 'content-type': 'application/json-patch+json', 'if-match': 'W/"1"' },
        payload: [
          { op: 'replace', path: '/gender', value: 'female' },
          { op: 'add', path: '/telecom', value: [{ system: 'phone', value: '13800000000' }] },
        ],
      });
      t.equal(p.statusCode, 200, p.body);
      t.equal((p.json() as Patient).gender, 'female');
      t.equal((p.json() as Patient).meta?.versionId, '2');
      const idChange = await app.inject({
        method: 'PATCH',
        url: `/fhir/Patient/${c.id}`,
        headers: { 'content-type': 'application/json-patch+json' },
        payload: [{ op: 'replace', path: '/id', value: 'hijack' }],
      });
      t.equal(idChange.statusCode, 400);
      const badOp = await app.inject({
        method: 'PATCH',
        url: `/fhir/Patient/${c.id}`,
        headers: { 'content-type': 'application/json-patch+json' },
        payload: [{ op: 'test', path: '/gender', value: 'male' }],
      });
      t.equal(badOp.statusCode, 400, 'a failing test op refuses the patch');
      const invalid = await app.inject({
        method: 'PATCH',
        url: `/fhir/Patient/${c.id}`,
        headers: { 'content-type': 'application/json-patch+json' },
        payload: [{ op: 'replace', path: '/gender', value: 42 }],
      });
      t.equal(invalid.statusCode, 400, 'the patched resource is validated');
      const wrongType = await app.inject({ method: 'PATCH', url: `/fhir/Patient/${c.id}`, headers: FHIR_HEADERS, payload: [] });
      t.equal(wrongType.statusCode, 415);
    });

    t.test('conditional create and conditional update', async (t) => {
      const ident = 'https://fhir.county-hie.cn/mrn/county-hospital|F1';
      const first = await app.inject({ method: 'POST', url: '/fhir/Patient', headers: { ...FHIR_HEADERS, 'if-none-exist': `identifier=${ident}` }, payload: patient('F1') });
      t.equal(first.statusCode, 201);
      const second = await app.inject({ method: 'POST', url: '/fhir/Patient', headers: { ...FHIR_HEADERS, 'if-none-exist': `identifier=${ident}` }, payload: patient('F1') });
      t.equal(second.statusCode, 200, 'matched: nothing created');
      t.equal((second.json() as Patient).id, (first.json() as Patient).id);

      const upd = await app.inject({ method: 'PUT', url: `/fhir/Patient?identifier=${encodeURIComponent(ident)}`, headers: FHIR_HEADERS, payload: patient('F1', { gender: 'female' }) });
      t.equal(upd.statusCode, 200, upd.body);
      t.equal((upd.json() as Patient).id, (first.json() as Patient).id);
      const fresh = await app.inject({ method: 'PUT', url: `/fhir/Patient?identifier=${encodeURIComponent('https://fhir.county-hie.cn/mrn/county-hospital|F2')}`, headers: FHIR_HEADERS, payload: patient('F2') });
      t.equal(fresh.statusCode, 201, 'no match: created');

      await app.inject({ method: 'POST', url: '/fhir/Patient', headers: FHIR_HEADERS, payload: patient('F3', { name: [{ family: 'Dup' }] }) });
      await app.inject({ method: 'POST', url: '/fhir/Patient', headers: FHIR_HEADERS, payload: patient('F4', { name: [{ family: 'Dup' }] }) });
      const multi = await app.inject({ method: 'PUT', url: '/fhir/Patient?family=Dup', headers: FHIR_HEADERS, payload: patient('F5') });
      t.equal(multi.statusCode, 412);
      t.equal(outcome(multi.body).issue[0].code, 'multiple-matches');
    });

    t.test('concurrent conditional creates create one resource', async (t) => {
      const ident = 'https://fhir.county-hie.cn/mrn/county-hospital|RACE1';
      const results = await Promise.all(
        Array.from({ length: 8 }, () => app.inject({ method: 'POST', url: '/fhir/Patient', headers: { ...FHIR_HEADERS, 'if-none-exist': `identifier=${ident}` }, payload: patient('RACE1') })),
      );
      t.same(results.map((r) => r.statusCode).sort(), [200, 200, 200, 200, 200, 200, 200, 201]);
      t.equal(new Set(results.map((r) => (r.json() as Patient).id)).size, 1);
    });

    t.test('bad input: precise OperationOutcome and no change to the store', async (t) => {
      const before = await counts(ta);
      const cases: [string, InjectOptions, number, string][] = [
        ['unknown type', { method: 'POST', url: '/fhir/Patientz', headers: FHIR_HEADERS, payload: { resourceType: 'Patientz' } }, 404, 'not-supported'],
        ['unknown type read', { method: 'GET', url: '/fhir/Foo/1' }, 404, 'not-supported'],
        ['malformed JSON', { method: 'POST', url: '/fhir/Patient', headers: FHIR_HEADERS, payload: '{"resourceType": "Patient", ' }, 400, 'structure'],
        ['unsupported Content-Type', { method: 'POST', url: '/fhir/Patient', headers: { 'content-type': 'application/xml' }, payload: '<Patient/>' }, 415, 'not-supported'],
        ['invalid resource', { method: 'POST', url: '/fhir/Patient', headers: FHIR_HEADERS, payload: { resourceType: 'Patient', active: 'yes', identifier: [{ value: 'x' }] } }, 400, 'structure'],
        ['type mismatch', { method: 'POST', url: '/fhir/Patient', headers: FHIR_HEADERS, payload: { resourceType: 'Observation' } }, 400, 'structure'],
        ['not an object', { method: 'POST', url: '/fhir/Patient', headers: FHIR_HEADERS, payload: '[1,2]' }, 400, 'structure'],
        ['prototype pollution', { method: 'POST', url: '/fhir/Patient', headers: FHIR_HEADERS, payload: '{"resourceType":"Patient","__proto__":{"x":1}}' }, 400, 'structure'],
        ['10 MB body', { method: 'POST', url: '/fhir/Patient', headers: FHIR_HEADERS, payload: JSON.stringify({ resourceType: 'Patient', text: { div: 'x'.repeat(10 * 1024 * 1024) } }) }, 413, 'too-long'],
        ['XML asked', { method: 'GET', url: '/fhir/Patient?_format=xml' }, 406, 'not-supported'],
        ['read missing', { method: 'GET', url: '/fhir/Patient/does-not-exist' }, 404, 'not-found'],
        ['bad id', { method: 'PUT', url: '/fhir/Patient/bad$id', headers: FHIR_HEADERS, payload: { resourceType: 'Patient', id: 'bad$id' } }, 400, 'invalid'],
        ['unknown route', { method: 'GET', url: '/nothing-here' }, 404, 'not-found'],
      ];
      for (const [name, req, status, code] of cases) {
        const r = await app.inject(req);
        t.equal(r.statusCode, status, `${name}: status (${r.body.slice(0, 160)})`);
        t.match(r.headers['content-type'], /application\/fhir\+json/, `${name}: FHIR JSON`);
        const o = outcome(r.body);
        t.equal(o.issue[0].code, code, `${name}: issue code`);
        t.ok(o.issue[0].diagnostics, `${name}: diagnostics`);
      }
      const invalid = outcome((await app.inject({ method: 'POST', url: '/fhir/Patient', headers: FHIR_HEADERS, payload: { resourceType: 'Patient', active: 'yes', identifier: [{ value: 'x' }] } })).body);
      t.ok(invalid.issue.some((i) => i.expression?.some((e) => e === 'Patient.active')), 'invalid element named in expression');
      t.same(await counts(ta), before, 'the store is unchanged');
    });

    t.test('every write is stored with its version and audited in its own transaction', async (t) => {
      const before = await counts(ta);
      await app.inject({ method: 'POST', url: '/fhir/Patient', headers: FHIR_HEADERS, payload: patient('G1') });
      const after = await counts(ta);
      // A version of the Patient, and one of the Person (golden record) the master patient index
      // made or updated for it.
      t.equal(after.versions, before.versions + 2);
      t.ok(after.audit >= before.audit + 1);
      const ev = await ta.tdb.db.query<{ content: string }>(`SELECT content FROM audit_event WHERE subtype = 'create' ORDER BY recorded DESC, seq DESC LIMIT 2`);
      const audit = ev.rows.map((r) => JSON.parse(r.content)).find((a) => /^Patient\//.test(a.entity[0].what.reference));
      t.equal(audit.action, 'C');
      t.match(audit.entity[0].what.reference, /^Patient\//);
    });

    t.test('metadata is generated from the server', async (t) => {
      const r = await app.inject({ method: 'GET', url: '/fhir/metadata' });
      t.equal(r.statusCode, 200);
      const cs = r.json();
      t.equal(cs.resourceType, 'CapabilityStatement');
      t.equal(cs.fhirVersion, '4.0.1');
      const obs = cs.rest[0].resource.find((x: { type: string }) => x.type === 'Observation');
      t.ok(obs.searchParam.some((p: { name: string }) => p.name === 'code'));
      t.ok(obs.interaction.some((i: { code: string }) => i.code === 'patch'));
      t.ok(cs.rest[0].resource.length > 140, 'every R4 resource type');
      t.ok(cs.rest[0].interaction.some((i: { code: string }) => i.code === 'transaction'));
    });
  });
}
