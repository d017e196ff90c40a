/**
 * The write path resolves the identifier conditions of a transaction together (a few statements
 * for the whole transaction): what each request matches must be exactly what it matches alone —
 * creates and updates by key, If-None-Exist no-ops, conditional deletes, several matches refused
 * at the right entry, escaped values — and two transactions writing the same keys concurrently, in
 * opposite orders, neither duplicate nor deadlock.
 */
import t from 'tap';
import type { Bundle, BundleEntry, Observation, OperationOutcome } from '@medplum/fhirtypes';
import { BACKENDS } from '../helpers/db.js';
import { createTestApp, FHIR_HEADERS } from '../helpers/app.js';

const SYS = 'https://fhir.county-hie.cn/sid/lab-result/test';
const PATIENT_SYS = 'https://fhir.county-hie.cn/sid/mrn/test';
/** A FHIR search token value: `\`, `|`, `,` and `$` escaped. */
const esc = (v: string) => v.replace(/[\\|,$]/g, (c) => `\\${c}`);
const key = (v: string) => `identifier=${encodeURIComponent(`${SYS}|${esc(v)}`)}`;

function obs(value: string, n: number): Observation {
  return {
    resourceType: 'Observation',
    status: 'final',
    identifier: [{ system: SYS, value }],
    code: { text: 'glucose' },
    valueQuantity: { value: n, unit: 'mmol/L' },
  };
}

const put = (value: string, n: number): BundleEntry => ({ resource: obs(value, n), request: { method: 'PUT', url: `Observation?${key(value)}` } });
const tx = (entry: BundleEntry[]): Bundle => ({ resourceType: 'Bundle', type: 'transaction', entry });

for (const backend of BACKENDS) {
  t.test(backend, async (t) => {
    const ta = await createTestApp(backend);
    t.teardown(() => ta.close());
    const { app } = ta;
    const post = (b: Bundle) => app.inject({ method: 'POST', url: '/fhir', headers: FHIR_HEADERS, payload: b });
    const count = async () => (await ta.tdb.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM resource WHERE type = 'Observation' AND NOT deleted`)).rows[0].n;
    const byKey = async (value: string) => (await app.inject({ url: `/fhir/Observation?${key(value)}` })).json<Bundle>().entry?.map((e) => e.resource as Observation) ?? [];

    await t.test('conditional updates by identifier: new keys created, known keys updated, values with escapes', async (t) => {
      const values = ['A1', 'A2', 'R1|L001', 'x,y', 'c$d', 'back\\slash'];
      const first = await post(tx(values.map((v, i) => put(v, i))));
      t.equal(first.statusCode, 200, first.body.slice(0, 400));
      t.ok(first.json<Bundle>().entry?.every((e) => e.response?.status === '201 Created'));
      t.equal(await count(), values.length);
      const ids = new Map<string, string>();
      for (const v of values) {
        const found = await byKey(v);
        t.equal(found.length, 1, `${v} found by its key`);
        ids.set(v, found[0].id as string);
      }

      // Known and new keys mixed: the known ones keep their id and get version 2.
      const second = await post(tx([put('A2', 20), put('A3', 30), put('R1|L001', 40), put('c$d', 50)]));
      t.equal(second.statusCode, 200, second.body.slice(0, 400));
      const statuses = second.json<Bundle>().entry?.map((e) => e.response?.status);
      t.same(statuses, ['200 OK', '201 Created', '200 OK', '200 OK']);
      t.equal(await count(), values.length + 1);
      const a2 = (await byKey('A2'))[0];
      t.equal(a2.id, ids.get('A2'));
      t.equal(a2.meta?.versionId, '2');
      t.equal(a2.valueQuantity?.value, 20);
      t.equal((await byKey('R1|L001'))[0].valueQuantity?.value, 40);
      t.equal((await byKey('c$d'))[0].id, ids.get('c$d'));
    });

    await t.test('If-None-Exist by identifier: matched ones are no-ops, the others created', async (t) => {
      const create = (value: string, n: number): BundleEntry => ({ resource: obs(value, n), request: { method: 'POST', url: 'Observation', ifNoneExist: key(value) } });
      const before = await count();
      const res = await post(tx([create('A1', 100), create('B1', 101), create('A3', 102), create('B2', 103)]));
      t.equal(res.statusCode, 200, res.body.slice(0, 400));
      t.same(res.json<Bundle>().entry?.map((e) => e.response?.status), ['200 OK', '201 Created', '200 OK', '201 Created']);
      t.equal(await count(), before + 2);
      t.equal((await byKey('A1'))[0].valueQuantity?.value, 0, 'a matched create changes nothing');
    });

    await t.test('a reference to a conditional entry of the same transaction', async (t) => {
      const res = await post(
        tx([
          { resource: { resourceType: 'Patient', identifier: [{ system: PATIENT_SYS, value: 'P1' }] }, request: { method: 'POST', url: 'Patient', ifNoneExist: `identifier=${PATIENT_SYS}|P1` } },
          { resource: { ...obs('C1', 1), subject: { reference: `Patient?identifier=${PATIENT_SYS}|P1` } }, request: { method: 'PUT', url: `Observation?${key('C1')}` } },
          { resource: { ...obs('C2', 2), subject: { reference: `Patient?identifier=${PATIENT_SYS}|P1` } }, request: { method: 'PUT', url: `Observation?${key('C2')}` } },
        ]),
      );
      t.equal(res.statusCode, 200, res.body.slice(0, 400));
      const pid = res.json<Bundle>().entry?.[0].response?.location?.split('/')[1];
      t.equal((await byKey('C1'))[0].subject?.reference, `Patient/${pid}`);
      t.equal((await byKey('C2'))[0].subject?.reference, `Patient/${pid}`);
    });

    await t.test('conditional deletes by identifier', async (t) => {
      const before = await count();
      const del = (value: string): BundleEntry => ({ request: { method: 'DELETE', url: `Observation?${key(value)}` } });
      const res = await post(tx([del('B1'), del('B2'), del('never-stored')]));
      t.equal(res.statusCode, 200, res.body.slice(0, 400));
      t.same(res.json<Bundle>().entry?.map((e) => e.response?.status), ['200 OK', '200 OK', '204 No Content']);
      t.equal(await count(), before - 2);
      t.same(await byKey('B1'), []);
    });

    await t.test('a key matching two resources refuses the transaction at that entry', async (t) => {
      // Two resources share a key only when written without a condition.
      for (const n of [1, 2]) {
        const r = await app.inject({ method: 'POST', url: '/fhir/Observation', headers: FHIR_HEADERS, payload: obs('DUP', n) });
        t.equal(r.statusCode, 201);
      }
      const before = await count();
      const res = await post(tx([put('D1', 1), put('DUP', 3), put('D2', 2)]));
      t.equal(res.statusCode, 412, res.body.slice(0, 400));
      const outcome = res.json<OperationOutcome>();
      t.match(outcome.issue[0].diagnostics, /More than one Observation matches/);
      t.match(outcome.issue[0].expression?.[0], /^Bundle\.entry\[1\]/);
      t.equal(await count(), before, 'nothing of the transaction stored');
    });

    await t.test('two transactions writing the same keys at once, in opposite orders: no duplicate, no deadlock', async (t) => {
      const keys = Array.from({ length: 40 }, (_, i) => `K${i}`);
      const before = await count();
      const results = await Promise.all([post(tx(keys.map((k, i) => put(k, i)))), post(tx([...keys].reverse().map((k, i) => put(k, 100 + i))))]);
      t.same(
        results.map((r) => r.statusCode),
        [200, 200],
        results.map((r) => r.body.slice(0, 200)).join('\n'),
      );
      t.equal(await count(), before + keys.length, 'each key stored once');
      for (const k of ['K0', 'K39']) {
        const found = await byKey(k);
        t.equal(found.length, 1);
        t.equal(found[0].meta?.versionId, '2', `${k}: created by one, updated by the other`);
      }
    });

    await t.test('concurrent PUTs creating the same new id: one creates, the others update or get 409, none fails', async (t) => {
      const id = 'put-race-1';
      const results = await Promise.all(
        Array.from({ length: 8 }, (_, i) =>
          app.inject({ method: 'PUT', url: `/fhir/Observation/${id}`, headers: FHIR_HEADERS, payload: { ...obs(`race-${i}`, i), id } }),
        ),
      );
      const codes = results.map((r) => r.statusCode);
      t.ok(
        codes.every((c) => c === 200 || c === 201 || c === 409),
        results.map((r) => `${r.statusCode} ${r.body.slice(0, 160)}`).join('\n'),
      );
      t.equal(codes.filter((c) => c === 201).length, 1, 'exactly one create');
      for (const r of results.filter((x) => x.statusCode === 409)) t.equal(r.json<OperationOutcome>().issue[0].code, 'conflict', 'a lost race says conflict');
      const read = await app.inject({ url: `/fhir/Observation/${id}` });
      t.equal(read.statusCode, 200);
      t.equal(read.json<Observation>().meta?.versionId, String(codes.filter((c) => c === 200 || c === 201).length), 'one version per successful PUT');
    });
  });
}
