/**
 * ConceptMap/$translate over HTTP: GET and POST, type and instance level, the R4 parameters,
 * errors, and read rights on ConceptMap.
 */
import t from 'tap';
import type { Parameters, ParametersParameter } from '@medplum/fhirtypes';
import { BACKENDS } from '../helpers/db.js';
import { createTestApp, FHIR_HEADERS } from '../helpers/app.js';
import { localCodeSystem, LOINC_SYSTEM, ICD10_SYSTEM } from '../../src/terminology/index.js';

const COUNTY = '1233042447101234XX';
const LAB = localCodeSystem(COUNTY, 'lab');
const DX = localCodeSystem(COUNTY, 'diagnosis');
const q = (params: Record<string, string>) => new URLSearchParams(params).toString();
const param = (p: Parameters, name: string): ParametersParameter | undefined => p.parameter?.find((x) => x.name === name);
const matches = (p: Parameters) =>
  (p.parameter ?? [])
    .filter((x) => x.name === 'match')
    .map((m) => Object.fromEntries((m.part ?? []).map((part) => [part.name, part.valueCode ?? part.valueCoding ?? part.valueUri])));

for (const backend of BACKENDS) {
  t.test(backend, async (t) => {
    const ta = await createTestApp(backend);
    t.teardown(() => ta.close());
    const { app } = ta;

    t.test('GET by code and system', async (t) => {
      const res = await app.inject({ method: 'GET', url: `/fhir/ConceptMap/$translate?${q({ system: LAB, code: 'HBA1C' })}` });
      t.equal(res.statusCode, 200);
      t.match(res.headers['content-type'], /application\/fhir\+json/);
      const body = res.json() as Parameters;
      t.equal(param(body, 'result')?.valueBoolean, true);
      t.same(matches(body), [
        {
          equivalence: 'equivalent',
          concept: { system: LOINC_SYSTEM, code: '4548-4', display: 'Hemoglobin A1c/Hemoglobin.total in Blood' },
          source: 'https://fhir.county-hie.cn/ConceptMap/county-lis-lab-loinc',
        },
      ]);
    });

    t.test('unknown code: result false with a message', async (t) => {
      const res = await app.inject({ method: 'GET', url: `/fhir/ConceptMap/$translate?${q({ system: LAB, code: 'NOPE' })}` });
      t.equal(res.statusCode, 200);
      const body = res.json() as Parameters;
      t.equal(param(body, 'result')?.valueBoolean, false);
      t.match(param(body, 'message')?.valueString, /No mapping for .*\|NOPE/);
      t.same(matches(body), []);
    });

    t.test('targetsystem filters the targets', async (t) => {
      const res = await app.inject({ method: 'GET', url: `/fhir/ConceptMap/$translate?${q({ system: DX, code: 'HIS-DX-0001', targetsystem: ICD10_SYSTEM })}` });
      t.same(
        matches(res.json() as Parameters).map((m) => (m.concept as { code: string }).code),
        ['I10'],
      );
      const none = await app.inject({ method: 'GET', url: `/fhir/ConceptMap/$translate?${q({ system: DX, code: 'HIS-DX-0001', targetsystem: LOINC_SYSTEM })}` });
      t.equal(param(none.json() as Parameters, 'result')?.valueBoolean, false);
    });

    t.test('POST with a coding and with a codeableConcept', async (t) => {
      const byCoding = await app.inject({
        method: 'POST',
        url: '/fhir/ConceptMap/$translate',
        headers: FHIR_HEADERS,
        payload: { resourceType: 'Parameters', parameter: [{ name: 'coding', valueCoding: { system: LAB, code: 'ALT' } }] },
      });
      t.equal(byCoding.statusCode, 200);
      t.equal((matches(byCoding.json() as Parameters)[0].concept as { code: string }).code, '1742-6');
      const byConcept = await app.inject({
        method: 'POST',
        url: '/fhir/ConceptMap/$translate',
        headers: FHIR_HEADERS,
        payload: {
          resourceType: 'Parameters',
          parameter: [
            { name: 'codeableConcept', valueCodeableConcept: { coding: [{ system: LAB, code: 'TC' }, { system: LAB, code: 'TG' }], text: '血脂' } },
            { name: 'targetsystem', valueUri: LOINC_SYSTEM },
          ],
        },
      });
      t.same(
        matches(byConcept.json() as Parameters).map((m) => (m.concept as { code: string }).code),
        ['14647-2', '14927-8'],
      );
    });

    t.test('GET coding as system|code, and url restricting the map', async (t) => {
      const res = await app.inject({ method: 'GET', url: `/fhir/ConceptMap/$translate?${q({ coding: `${LAB}|CREA` })}` });
      t.equal((matches(res.json() as Parameters)[0].concept as { code: string }).code, '14682-9');
      const other = await app.inject({
        method: 'GET',
        url: `/fhir/ConceptMap/$translate?${q({ system: LAB, code: 'CREA', url: 'https://fhir.county-hie.cn/ConceptMap/county-exam-loinc' })}`,
      });
      t.equal(param(other.json() as Parameters, 'result')?.valueBoolean, false);
      const unknown = await app.inject({ method: 'GET', url: `/fhir/ConceptMap/$translate?${q({ system: LAB, code: 'CREA', url: 'https://example.org/none' })}` });
      t.equal(unknown.statusCode, 404);
    });

    t.test('instance level', async (t) => {
      const ok = await app.inject({ method: 'GET', url: `/fhir/ConceptMap/county-lis-lab-loinc/$translate?${q({ system: LAB, code: 'PLT' })}` });
      t.equal(ok.statusCode, 200);
      t.equal((matches(ok.json() as Parameters)[0].concept as { code: string }).code, '777-3');
      const wrongMap = await app.inject({ method: 'GET', url: `/fhir/ConceptMap/county-exam-loinc/$translate?${q({ system: LAB, code: 'PLT' })}` });
      t.equal(param(wrongMap.json() as Parameters, 'result')?.valueBoolean, false);
      const missing = await app.inject({ method: 'GET', url: `/fhir/ConceptMap/no-such-map/$translate?${q({ system: LAB, code: 'PLT' })}` });
      t.equal(missing.statusCode, 404);
    });

    t.test('an inline conceptMap is used instead of the loaded ones, and checked', async (t) => {
      const conceptMap = {
        resourceType: 'ConceptMap',
        url: 'https://example.org/ConceptMap/inline',
        status: 'draft',
        group: [{ source: 'urn:x', target: LOINC_SYSTEM, element: [{ code: 'Hb', target: [{ code: '718-7', equivalence: 'equivalent' }] }] }],
      };
      const res = await app.inject({
        method: 'POST',
        url: '/fhir/ConceptMap/$translate',
        headers: FHIR_HEADERS,
        payload: { resourceType: 'Parameters', parameter: [{ name: 'conceptMap', resource: conceptMap }, { name: 'system', valueUri: 'urn:x' }, { name: 'code', valueCode: 'Hb' }] },
      });
      t.equal((matches(res.json() as Parameters)[0].concept as { code: string }).code, '718-7');
      const bad = await app.inject({
        method: 'POST',
        url: '/fhir/ConceptMap/$translate',
        headers: FHIR_HEADERS,
        payload: { resourceType: 'Parameters', parameter: [{ name: 'conceptMap', resource: { ...conceptMap, group: [{ source: 'urn:x', element: [] }] } }, { name: 'coding', valueCoding: { system: 'urn:x', code: 'Hb' } }] },
      });
      t.equal(bad.statusCode, 400);
      t.match(bad.body, /ConceptMap\.group\[0\]\.target is required/);
    });

    t.test('invocations that cannot run are 400s', async (t) => {
      const cases: [string, RegExp][] = [
        [q({ code: 'HBA1C' }), /needs system/],
        [q({ system: LAB }), /needs code and system, coding, or codeableConcept/],
        [q({ system: LAB, code: 'HBA1C', coding: `${LAB}|HBA1C` }), /only one of/],
        [q({ system: LAB, code: 'HBA1C', reverse: 'true' }), /reverse=true is not supported/],
        [q({ system: LAB, code: 'HBA1C', bogus: 'x' }), /Unknown parameter bogus/],
        [`system=${encodeURIComponent(LAB)}&code=A&code=B`, /more than once/],
      ];
      for (const [query, message] of cases) {
        const res = await app.inject({ method: 'GET', url: `/fhir/ConceptMap/$translate?${query}` });
        t.equal(res.statusCode, 400, query);
        t.match(res.body, message, query);
      }
      const conflict = await app.inject({
        method: 'POST',
        url: `/fhir/ConceptMap/$translate?${q({ code: 'ALT' })}`,
        headers: FHIR_HEADERS,
        payload: { resourceType: 'Parameters', parameter: [{ name: 'system', valueUri: LAB }, { name: 'code', valueCode: 'AST' }] },
      });
      t.equal(conflict.statusCode, 400);
      t.match(conflict.body, /given twice with different values/);
      const notParameters = await app.inject({ method: 'POST', url: '/fhir/ConceptMap/$translate', headers: FHIR_HEADERS, payload: { resourceType: 'Patient' } });
      t.equal(notParameters.statusCode, 400);
    });

    t.test('read rights on ConceptMap are needed', async (t) => {
      const url = `/fhir/ConceptMap/$translate?${q({ system: LAB, code: 'HBA1C' })}`;
      const his = await app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${await ta.token('county-his')}` } });
      t.equal(his.statusCode, 200, 'a HIS with system/*.cruds may translate');
      const auditor = await app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${await ta.token('auditor')}` } });
      t.equal(auditor.statusCode, 403, 'the auditor has no ConceptMap scope');
      t.match(auditor.body, /system\/ConceptMap\.r/);
      const post = await app.inject({
        method: 'POST',
        url: '/fhir/ConceptMap/$translate',
        headers: { ...FHIR_HEADERS, authorization: `Bearer ${await ta.token('auditor')}` },
        payload: { resourceType: 'Parameters', parameter: [{ name: 'coding', valueCoding: { system: LAB, code: 'HBA1C' } }] },
      });
      t.equal(post.statusCode, 403);
      const anonymous = await ta.anonymous({ method: 'GET', url });
      t.equal(anonymous.statusCode, 401);
    });

    t.test('the CapabilityStatement lists $translate on ConceptMap; other ConceptMap routes still work', async (t) => {
      const cap = await app.inject({ method: 'GET', url: '/fhir/metadata' });
      const cm = (cap.json() as { rest: { resource: { type: string; operation?: { name: string }[] }[] }[] }).rest[0].resource.find((r) => r.type === 'ConceptMap');
      t.ok(cm?.operation?.some((o) => o.name === 'translate'));
      const read = await app.inject({ method: 'GET', url: '/fhir/ConceptMap/does-not-exist' });
      t.equal(read.statusCode, 404, 'read of a stored ConceptMap still reaches the REST routes');
      const validate = await app.inject({ method: 'GET', url: '/fhir/ConceptMap/does-not-exist/$validate' });
      t.equal(validate.statusCode, 404, '$validate on a ConceptMap instance still routes');
    });
  });
}
