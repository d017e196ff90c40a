/**
 * Hostile input: each is answered with a 4xx OperationOutcome (or an empty search) and leaves
 * the data as it was.
 */
import t from 'tap';
import type { Bundle, OperationOutcome } from '@medplum/fhirtypes';
import { BACKENDS } from '../helpers/db.js';
import { createTestApp, FHIR_HEADERS, type TestApp } from '../helpers/app.js';
import { jsonDepth } from '../../src/fhir/json-body.js';

const INJECTIONS = ["' OR '1'='1", "x'); DROP TABLE resource; --", '1 OR 1=1', "\\' UNION SELECT content FROM resource --", '%', '_', '$1'];

async function snapshot(ta: TestApp): Promise<string> {
  const { rows } = await ta.tdb.db.query<{ n: number; v: number; t: number }>(
    `SELECT (SELECT count(*)::int FROM resource) AS n, (SELECT count(*)::int FROM resource_version) AS v, (SELECT count(*)::int FROM sp_token) AS t`,
  );
  return JSON.stringify(rows[0]);
}

t.test('JSON depth scan', async (t) => {
  t.equal(jsonDepth('{"a":[{"b":"[[[["}]}'), 3, 'brackets inside strings do not count');
  t.equal(jsonDepth('{"a":"\\"[["}'), 1, 'escaped quotes handled');
  t.equal(jsonDepth('['.repeat(5000), 100), 101, 'stops just past the limit');
});

for (const backend of BACKENDS) {
  t.test(backend, async (t) => {
    const ta = await createTestApp(backend);
    t.teardown(() => ta.close());
    const { app } = ta;
    const seeded = await app.inject({
      method: 'POST',
      url: '/fhir',
      headers: FHIR_HEADERS,
      payload: {
        resourceType: 'Bundle',
        type: 'transaction',
        entry: [
          {
            fullUrl: 'urn:uuid:00000000-0000-4000-8000-00000000000a',
            resource: { resourceType: 'Patient', identifier: [{ system: 'urn:mrn', value: 'H1' }], name: [{ family: 'Safe' }], birthDate: '1980-01-01' },
            request: { method: 'POST', url: 'Patient' },
          },
          {
            resource: {
              resourceType: 'Observation',
              status: 'final',
              code: { coding: [{ system: 'http://loinc.org', code: '4548-4' }] },
              subject: { reference: 'urn:uuid:00000000-0000-4000-8000-00000000000a' },
              valueQuantity: { value: 6.1, system: 'http://unitsofmeasure.org', code: '%' },
              effectiveDateTime: '2024-01-01',
            },
            request: { method: 'POST', url: 'Observation' },
          },
        ],
      },
    });
    t.equal(seeded.statusCode, 200);
    const before = await snapshot(ta);

    t.test('SQL-injection strings in every search parameter type', async (t) => {
      const params: [string, string][] = [
        ['Patient', 'name'],
        ['Patient', 'name:exact'],
        ['Patient', 'name:contains'],
        ['Patient', 'identifier'],
        ['Patient', '_id'],
        ['Observation', 'code'],
        ['Observation', 'code:text'],
        ['Observation', 'subject'],
        ['Observation', 'subject:Patient.name'],
        ['Observation', 'date'],
        ['Observation', 'value-quantity'],
        ['RiskAssessment', 'probability'],
        ['Patient', '_profile'],
        ['Patient', '_source'],
        ['Patient', '_has:Observation:subject:code'],
        ['Observation', '_sort'],
        ['Observation', '_count'],
        ['Observation', '_include'],
      ];
      for (const [type, name] of params) {
        for (const value of INJECTIONS) {
          const r = await app.inject({ method: 'GET', url: `/fhir/${type}?${encodeURIComponent(name)}=${encodeURIComponent(value)}` });
          const label = `${type}?${name}=${value}`;
          if (r.statusCode === 200) {
            const b = r.json() as Bundle;
            t.equal(b.entry?.filter((e) => e.search?.mode === 'match').length ?? 0, 0, `${label}: matches nothing`);
          } else {
            t.ok(r.statusCode >= 400 && r.statusCode < 500, `${label}: 4xx (${r.statusCode})`);
            t.equal((r.json() as OperationOutcome).resourceType, 'OperationOutcome', `${label}: OperationOutcome`);
          }
        }
      }
      t.equal(await snapshot(ta), before, 'no change to data');
    });

    t.test('hostile bodies', async (t) => {
      const deep = '{"resourceType":"Basic","code":{"text":"x"},"extension":' + '[{"url":"http://x","extension":'.repeat(200) + '[]' + '}]'.repeat(200) + '}';
      const huge = JSON.stringify({ resourceType: 'Patient', identifier: Array.from({ length: 300_000 }, () => 7) });
      const cases: [string, string | Buffer, RegExp][] = [
        ['deeply nested JSON', deep, /nested deeper/],
        ['__proto__ key', '{"resourceType":"Patient","__proto__":{"admin":true}}', /forbidden key/],
        ['nested __proto__ key', '{"resourceType":"Patient","name":[{"__proto__":{"x":1}}]}', /forbidden key/],
        ['constructor.prototype', '{"resourceType":"Patient","constructor":{"prototype":{"x":1}}}', /forbidden key/],
        ['huge array of wrong items', huge, /./],
        ['invalid UTF-8', Buffer.concat([Buffer.from('{"resourceType":"Patient","name":[{"family":"'), Buffer.from([0xc3, 0x28, 0xff]), Buffer.from('"}]}')]), /UTF-8/],
        ['GBK bytes sent as UTF-8', Buffer.concat([Buffer.from('{"resourceType":"Patient","name":[{"family":"'), Buffer.from([0xd5, 0xc5]), Buffer.from('"}]}')]), /UTF-8/],
        ['empty body', '', /empty/],
        ['a JSON string', '"Patient"', /./],
      ];
      for (const [name, payload, message] of cases) {
        const r = await app.inject({ method: 'POST', url: '/fhir/Patient', headers: FHIR_HEADERS, payload });
        t.ok(r.statusCode >= 400 && r.statusCode < 500, `${name}: 4xx (${r.statusCode})`);
        const o = r.json() as OperationOutcome;
        t.equal(o.resourceType, 'OperationOutcome', `${name}: OperationOutcome`);
        t.match(o.issue[0].diagnostics ?? '', message, `${name}: says why`);
        t.ok(o.issue.length <= 101, `${name}: outcome size bounded (${o.issue.length} issues)`);
      }
      t.equal(({} as Record<string, unknown>).admin, undefined, 'Object.prototype untouched');
      t.equal(await snapshot(ta), before, 'no change to data');
    });
  });
}
