/**
 * The recognition scenario of the issue, over HTTP: HbA1c at the county hospital on day 0; a
 * township orders HbA1c on day 3 (recognised), a village orders a CBC on day 3 (no result), the
 * township orders again on day 40 (expired); the county lab suspended from day 1: a day-2 result is
 * not recognised, the day-0 one still is. Then decisions, the recognised mark, and the statistics
 * checked against counts kept by the test itself.
 */
import t from 'tap';
import type { Observation, Parameters, ParametersParameter, Patient } from '@medplum/fhirtypes';
import { createTestApp, FHIR_HEADERS, type TestApp } from '../helpers/app.js';
import { BACKENDS } from '../helpers/db.js';
import { loadDemoCommunity } from '../../src/demo/index.js';
import { processBundle, SYSTEM_CONTEXT } from '../../src/fhir/index.js';
import { addDays } from '../../src/recognition/index.js';

const COUNTY = '1233042447101234XX';
const TOWNSHIP = '1233042447102341XF';
const VILLAGE = '52330424681045633Y';
const DAY0 = '2026-03-02';
const LOINC = 'http://loinc.org';

type Part = ParametersParameter;
const part = (p: Part | undefined, name: string): Part | undefined => p?.part?.find((x) => x.name === name);
const items = (body: Parameters): Part[] => (body.parameter ?? []).filter((p) => p.name === 'item');

async function setup(backend: (typeof BACKENDS)[number]): Promise<{ t: TestApp; bearer: (c: string) => Promise<Record<string, string>>; patient: string }> {
  const ta = await createTestApp(backend);
  await loadDemoCommunity((bundle) => processBundle(ta.fhir.repository, bundle, { ...SYSTEM_CONTEXT, channel: 'demo' }, { minimal: true }));
  const bearer = async (c: string) => ({ authorization: `Bearer ${await ta.token(c)}`, ...FHIR_HEADERS });
  // The same person registered at the county hospital and at the township centre, linked.
  const county = await ta.app.inject({
    method: 'POST',
    url: '/fhir/Patient',
    headers: await bearer('county-his'),
    payload: { resourceType: 'Patient', identifier: [{ system: 'https://fhir.county-hie.cn/sid/mrn/1233042447101234XX', value: 'C-1001' }], name: [{ family: '赵', given: ['一'] }], gender: 'female', birthDate: '1960-05-01' } satisfies Patient,
  });
  const countyId = (county.json() as Patient).id as string;
  const township = await ta.app.inject({
    method: 'POST',
    url: '/fhir/Patient',
    headers: await bearer('township1-his'),
    payload: {
      resourceType: 'Patient',
      identifier: [{ system: 'https://fhir.county-hie.cn/sid/mrn/1233042447102341XF', value: 'T-77' }],
      name: [{ family: '赵', given: ['一'] }],
      gender: 'female',
      birthDate: '1960-05-01',
      link: [{ other: { reference: `Patient/${countyId}` }, type: 'seealso' }],
    } satisfies Patient,
  });
  return { t: ta, bearer, patient: (township.json() as Patient).id as string };
}

for (const backend of BACKENDS) {
  t.test(backend, async (t) => {
    const { t: ta, bearer, patient } = await setup(backend);
    t.teardown(() => ta.close());
    const app = ta.app;
    const countyPatient = ((await app.inject({ url: `/fhir/Patient/${patient}` })).json() as Patient).link?.[0].other.reference as string;

    const hba1c = async (day: string, value: number): Promise<string> => {
      const r = await app.inject({
        method: 'POST',
        url: '/fhir/Observation',
        headers: await bearer('county-his'),
        payload: {
          resourceType: 'Observation',
          status: 'final',
          code: { coding: [{ system: LOINC, code: '4548-4', display: 'Hemoglobin A1c' }] },
          subject: { reference: countyPatient },
          effectiveDateTime: `${day}T08:30:00+08:00`,
          valueQuantity: { value, unit: '%', system: 'http://unitsofmeasure.org', code: '%' },
        } satisfies Observation,
      });
      t.equal(r.statusCode, 201, `HbA1c of ${day} stored`);
      return `Observation/${(r.json() as Observation).id}`;
    };
    const recognize = async (client: string, day: string, code: string, query = `patient=Patient/${patient}`) => {
      const r = await app.inject({ url: `/fhir/$recognize?${query}&code=${encodeURIComponent(`${LOINC}|${code}`)}&date=${day}`, headers: await bearer(client) });
      t.equal(r.statusCode, 200, r.body.slice(0, 300));
      return items(r.json() as Parameters)[0];
    };
    const reason = (item: Part | undefined) => part(item, 'reason')?.valueCoding?.code;

    // Qualifications: the county lab from before day 0; the township lab too.
    const qualify = (institution: string, status: string, effectiveFrom: string, reason?: string) =>
      app.inject({ method: 'POST', url: '/recognition/qualifications', payload: { institution, category: 'lab', status, effectiveFrom, ...(reason ? { reason } : {}) } });
    t.equal((await qualify(COUNTY, 'qualified', '2026-01-01')).statusCode, 201);
    t.equal((await qualify(TOWNSHIP, 'qualified', '2026-01-01')).statusCode, 201);

    const day0 = await hba1c(DAY0, 6.8);

    t.test('day 3: the township orders HbA1c → recognised, from the county hospital', async (t) => {
      const item = await recognize('township1-his', addDays(DAY0, 3), '4548-4');
      t.equal(part(item, 'recognised')?.valueBoolean, true);
      t.equal(reason(item), 'recognised');
      t.equal(part(item, 'catalogueItem')?.valueCoding?.code, 'hba1c');
      const result = part(item, 'result');
      t.equal(part(result, 'reference')?.valueReference?.reference, day0);
      t.equal(part(result, 'institution')?.valueIdentifier?.value, COUNTY);
      t.equal(part(result, 'date')?.valueDate, DAY0);
      t.same(part(result, 'value')?.valueQuantity?.value, 6.8);
    });

    t.test('any linked identifier finds the person', async (t) => {
      const byMrn = await recognize('township1-his', addDays(DAY0, 3), '4548-4', `identifier=${encodeURIComponent('https://fhir.county-hie.cn/sid/mrn/1233042447101234XX|C-1001')}`);
      t.equal(part(byMrn, 'recognised')?.valueBoolean, true);
    });

    t.test('day 3: a village orders a CBC → not recognised, no result', async (t) => {
      const item = await recognize('village1-his', addDays(DAY0, 3), '58410-2');
      t.equal(part(item, 'recognised')?.valueBoolean, false);
      t.equal(reason(item), 'no-result');
    });

    t.test('day 40: HbA1c → expired', async (t) => {
      const item = await recognize('township1-his', addDays(DAY0, 40), '4548-4');
      t.equal(part(item, 'recognised')?.valueBoolean, false);
      t.equal(reason(item), 'expired');
    });

    t.test('not in the catalogue', async (t) => {
      t.equal(reason(await recognize('township1-his', addDays(DAY0, 3), '8867-4')), 'not-in-catalogue');
    });

    t.test('the county lab suspended from day 1: a day-2 result is not recognised, the day-0 one still is', async (t) => {
      t.equal((await qualify(COUNTY, 'suspended', addDays(DAY0, 1), '室间质评不合格 failed external quality assessment')).statusCode, 201);
      const day2 = await hba1c(addDays(DAY0, 2), 7.1);
      const item = await recognize('township1-his', addDays(DAY0, 3), '4548-4');
      t.equal(part(item, 'recognised')?.valueBoolean, true, 'the day-0 result still counts');
      const results = (item?.part ?? []).filter((p) => p.name === 'result');
      const byRef = new Map(results.map((r) => [part(r, 'reference')?.valueReference?.reference, reason(r)]));
      t.equal(byRef.get(day0), 'recognised');
      t.equal(byRef.get(day2), 'institution-not-qualified');
      t.equal(part(results[0], 'reference')?.valueReference?.reference, day0, 'recognisable results come first');
    });

    t.test('qualifications: administrator only, refused without reason, listed with history', async (t) => {
      const his = await app.inject({ method: 'POST', url: '/recognition/qualifications', headers: { authorization: `Bearer ${await ta.token('county-his')}` }, payload: { institution: COUNTY, category: 'lab', status: 'qualified', effectiveFrom: '2026-01-01' } });
      t.equal(his.statusCode, 403);
      t.equal((await qualify(VILLAGE, 'suspended', '2026-01-01')).statusCode, 400, 'a suspension needs a reason');
      const bad = await app.inject({ method: 'POST', url: '/recognition/qualifications', payload: { institution: COUNTY, category: 'blood', status: 'qualified', effectiveFrom: '2026-01-01' } });
      t.equal(bad.statusCode, 400);
      t.equal((bad.json() as { resourceType: string }).resourceType, 'OperationOutcome');
      const list = (await app.inject({ url: `/recognition/qualifications?institution=${COUNTY}` })).json() as { qualifications: { status: string; effectiveFrom: string }[] };
      t.same(list.qualifications.map((q) => [q.status, q.effectiveFrom]), [['qualified', '2026-01-01'], ['suspended', addDays(DAY0, 1)]]);
      const audit = await ta.tdb.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM audit_event WHERE content LIKE '%recognition-qualification%'`);
      t.ok(audit.rows[0].n >= 4, 'each change, and the refusal, is audited');
      const refused = await ta.tdb.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM audit_event WHERE content LIKE '%recognition-qualification%' AND outcome = '4' AND client_id = 'county-his'`);
      t.equal(refused.rows[0].n, 1, 'the refusal is audited');
    });

    t.test('decisions: accepted marks the result and counts, repeated needs a reason; stats equal our own counts', async (t) => {
      const expected = { offered: 0, accepted: 0, repeated: 0, saved: 0, reasons: {} as Record<string, number> };
      // Offers counted so far: each recognised $recognize by the township (day 3 ×3 incl. the identifier one).
      expected.offered = 3;
      const decide = async (payload: Parameters) => app.inject({ method: 'POST', url: '/fhir/$recognition-decision', headers: await bearer('township1-his'), payload });
      const p = (name: string, v: Omit<Part, 'name'>): Part => ({ name, ...v });
      const accepted = await decide({
        resourceType: 'Parameters',
        parameter: [p('patient', { valueReference: { reference: `Patient/${patient}` } }), p('item', { valueCode: 'hba1c' }), p('decision', { valueCode: 'accepted' }), p('result', { valueReference: { reference: day0 } }), p('date', { valueDate: addDays(DAY0, 3) })],
      });
      t.equal(accepted.statusCode, 200, accepted.body.slice(0, 300));
      expected.accepted++;
      expected.saved += 60;
      const tagged = (await app.inject({ url: `/fhir/${day0}` })).json() as Observation;
      t.ok(tagged.meta?.tag?.some((x) => x.code === 'recognised'), 'the recognised result carries the mark');
      t.ok(tagged.meta?.tag?.some((x) => x.code === COUNTY), 'and still belongs to the county hospital');

      const noReason = await decide({ resourceType: 'Parameters', parameter: [p('patient', { valueReference: { reference: `Patient/${patient}` } }), p('item', { valueCode: 'hba1c' }), p('decision', { valueCode: 'repeated' })] });
      t.equal(noReason.statusCode, 400);
      for (const why of ['clinical-change', 'patient-request', 'clinical-change']) {
        const r = await decide({
          resourceType: 'Parameters',
          parameter: [p('patient', { valueReference: { reference: `Patient/${patient}` } }), p('item', { valueCode: 'hba1c' }), p('decision', { valueCode: 'repeated' }), p('reason', { valueCode: why }), p('date', { valueDate: addDays(DAY0, 4) })],
        });
        t.equal(r.statusCode, 200);
        expected.repeated++;
        expected.reasons[why] = (expected.reasons[why] ?? 0) + 1;
      }
      const wrongPatient = await decide({
        resourceType: 'Parameters',
        parameter: [p('patient', { valueReference: { reference: (await app.inject({ url: '/fhir/Patient?_count=1&name=' + encodeURIComponent('张') })).json().entry?.[0]?.fullUrl?.replace(/^.*\/fhir\//, '') ?? 'Patient/none' } }), p('item', { valueCode: 'hba1c' }), p('decision', { valueCode: 'accepted' }), p('result', { valueReference: { reference: day0 } })],
      });
      t.not(wrongPatient.statusCode, 200, "a result of another person cannot be recognised for this one");

      const stats = (await app.inject({ url: `/fhir/$recognition-stats?institution=${TOWNSHIP}&start=${DAY0}&end=${addDays(DAY0, 10)}` })).json() as Parameters;
      const rows = (stats.parameter ?? []).filter((x) => x.name === 'row');
      t.equal(rows.length, 1);
      const row = rows[0];
      t.equal(part(row, 'item')?.valueCoding?.code, 'hba1c');
      t.equal(part(row, 'offered')?.valueInteger, expected.offered);
      t.equal(part(row, 'accepted')?.valueInteger, expected.accepted);
      t.equal(part(row, 'repeated')?.valueInteger, expected.repeated);
      t.equal(part(row, 'saved')?.valueMoney?.value, expected.saved);
      const reasons = Object.fromEntries((row.part ?? []).filter((x) => x.name === 'repeatedReason').map((x) => [part(x, 'reason')?.valueCoding?.code, part(x, 'count')?.valueInteger]));
      t.same(reasons, expected.reasons);
      const none = (await app.inject({ url: `/fhir/$recognition-stats?institution=${TOWNSHIP}&start=${addDays(DAY0, 100)}` })).json() as Parameters;
      t.same(none.parameter ?? [], [], 'nothing outside the period');
    });

    t.test('bad input is an OperationOutcome', async (t) => {
      const noCode = await app.inject({ url: `/fhir/$recognize?patient=Patient/${patient}` });
      t.equal(noCode.statusCode, 400);
      const badDate = await app.inject({ url: `/fhir/$recognize?patient=Patient/${patient}&code=${encodeURIComponent(`${LOINC}|4548-4`)}&date=03/05/2026` });
      t.equal(badDate.statusCode, 400);
      const unknown = await app.inject({ url: `/fhir/$recognize?patient=Patient/nobody&code=${encodeURIComponent(`${LOINC}|4548-4`)}` });
      t.equal(unknown.statusCode, 404);
      const other = await app.inject({ url: `/fhir/$recognize?patient=Patient/${patient}&code=${encodeURIComponent(`${LOINC}|4548-4`)}&institution=${COUNTY}`, headers: await bearer('township1-his') });
      t.equal(other.statusCode, 403, 'a client orders only for its own institution');
      t.equal((await ta.anonymous({ url: `/fhir/$recognize?patient=Patient/${patient}&code=x|y` })).statusCode, 401);
      // A client that may not search results: refused, and the refusal is in the audit trail.
      const narrow = await ta.token('township1-his', ['system/Patient.rs']);
      const refusals = async () => (await ta.tdb.db.query<{ n: number }>(`SELECT count(*)::int AS n FROM audit_event WHERE outcome = '4' AND client_id = 'township1-his'`)).rows[0].n;
      const before = await refusals();
      const refused = await app.inject({ url: `/fhir/$recognize?patient=Patient/${patient}&code=${encodeURIComponent(`${LOINC}|4548-4`)}`, headers: { authorization: `Bearer ${narrow}` } });
      t.equal(refused.statusCode, 403, refused.body.slice(0, 200));
      t.equal((await refusals()) - before, 1, 'the refusal is audited, once');
    });
  });
}
