/**
 * "An unmapped code is stored as-is and counted": an HL7 v2 result with a local lab code that no
 * ConceptMap knows is stored with its local coding, and counted once per OBX in the terminology's
 * counters and on /metrics; a mapped code is not counted.
 */
import t from 'tap';
import type { Bundle, Observation } from '@medplum/fhirtypes';
import { BACKENDS } from '../helpers/db.js';
import { createTestApp } from '../helpers/app.js';
import { UNMAPPED_METRIC } from '../../src/terminology/index.js';

const oru = (controlId: string) =>
  [
    `MSH|^~\\&|QSLIS|QSXRMYY|COUNTY-HIE|QS|20261120081500||ORU^R01^ORU_R01|${controlId}|P|2.5|||||CHN|UNICODE UTF-8`,
    'PID|1||UM1001^^^QSXRMYY^MR||钱^立新||19751103|M',
    `OBR|1|UM-${controlId}|UMF-${controlId}|CBC^血常规^L`,
    'OBX|1|NM|ZZQ9^某新项目^L||3.2|mmol/L|||||F',
    'OBX|2|NM|HBA1C^糖化血红蛋白^L||6.1|%|4-6|H|||F',
  ].join('\r');

for (const backend of BACKENDS) {
  t.test(backend, async (t) => {
    const ta = await createTestApp(backend);
    t.teardown(() => ta.close());
    const post = async (controlId: string) =>
      ta.app.inject({ method: 'POST', url: '/ingest/hl7v2', headers: { 'content-type': 'x-application/hl7-v2+er7', authorization: `Bearer ${await ta.token('county-his')}` }, payload: oru(controlId) });
    t.match((await post('UM-1')).body, /MSA\|AA\|UM-1/);
    const found = (await ta.app.inject('/fhir/Observation?patient.identifier=UM1001&_count=10')).json() as Bundle<Observation>;
    const unknown = found.entry?.map((e) => e.resource as Observation).find((o) => o.code.coding?.[0].code === 'ZZQ9');
    const local = unknown?.code.coding?.[0];
    t.ok(local?.system?.includes('/CodeSystem/local/'), 'stored with its local coding');
    t.equal(unknown?.code.coding?.length, 1, 'and nothing beside it');
    const counted = () => ta.fhir.terminology.unmappedCount(local?.system ?? '', 'ZZQ9');
    t.equal(counted(), 1, 'counted once');
    t.equal(ta.fhir.terminology.unmappedCodes().some((c) => c.code === 'HBA1C'), false, 'the mapped code is not counted');
    await post('UM-2');
    t.equal(counted(), 2, 'counted again for the next message');
    const metrics = (await ta.app.inject('/metrics')).body;
    t.match(metrics, new RegExp(`${UNMAPPED_METRIC}\\{system="[^"]*",code="ZZQ9"\\} 2`), 'on /metrics');
  });
}
