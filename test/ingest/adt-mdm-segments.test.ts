/**
 * ADT next of kin (NK1), allergies (AL1) and insurance (IN1), and MDM documents with their orders
 * and OBX observations, stored through the pipeline: each becomes its resource once, and a later
 * A08 or resend updates it in place.
 */
import t from 'tap';
import { loadMappings } from '../../src/ingest/hl7v2/mapping/index.js';
import { engineMap } from '../../src/ingest/index.js';
import { BACKENDS } from '../helpers/db.js';
import { ackOf, createPipelineFixture, type PipelineFixture } from './fixture.js';

const MLLP = { channel: 'mllp' as const, remoteAddress: '10.1.2.3', localPort: 2575 };

function adt(trigger: string, controlId: string, allergySeverity: string): Buffer {
  return Buffer.from(
    [
      `MSH|^~\\&|QSHIS|QSXRMYY|COUNTY-HIE|QS|20250301083000+0800||ADT^${trigger}^ADT_A01|${controlId}|P|2.5||||||UNICODE UTF-8`,
      `EVN|${trigger}|20250301083000+0800`,
      'PID|1||NK1TEST^^^QSHIS^MR||张^三||19650312|1',
      'PV1|1|I|W1^101^1||||||||||||||||V-NK1',
      'NK1|1|李^四|SPO^配偶^HL70063|青山镇幸福村3组^^青山县^浙江省|13800138000^PRN^CP||EMC^紧急联系人^HL70131',
      `AL1|1|DA^药物^HL70127|P001^青霉素^QSHIS|${allergySeverity}^^HL70128|皮疹|20240105`,
      'IN1|1|CXJM^城乡居民基本医疗保险|330100^青山县医疗保障局|青山县医疗保障局||||||||20250101|20251231||||SEL^本人|||||||||||||||||||YB330100123|||||||||||||330100196503120011',
    ].join('\r'),
  );
}

async function resources(f: PipelineFixture, type: string): Promise<Record<string, unknown>[]> {
  const { rows } = await f.tdb.db.query<{ content: string }>(`SELECT content FROM resource WHERE type = $1 AND NOT deleted ORDER BY rid`, [type]);
  return rows.map((r) => JSON.parse(r.content) as Record<string, unknown>);
}

for (const backend of BACKENDS) {
  t.test(`${backend}: ADT NK1, AL1 and IN1`, async (t) => {
    const f = await createPipelineFixture(backend);
    t.teardown(() => f.close());
    f.map.fn = engineMap(loadMappings('mappings/hl7v2'));

    const first = await f.pipeline.handleMessage(adt('A01', 'NK1-1', 'MO'), MLLP);
    t.equal(ackOf(first.ack).code, 'AA', first.failure?.text ?? 'stored');
    const [patient] = await resources(f, 'Patient');
    const subject = `Patient/${String(patient.id)}`;

    const [related] = await resources(f, 'RelatedPerson');
    t.match(related, {
      patient: { reference: subject },
      name: [{ family: '李', given: ['四'] }],
      relationship: [{ coding: [{ code: 'SPO', display: '配偶' }, { system: 'http://terminology.hl7.org/CodeSystem/v3-RoleCode', code: 'SPS' }] }, { coding: [{ code: 'EMC' }] }],
      telecom: [{ system: 'phone', value: '13800138000' }],
      address: [{ line: ['青山镇幸福村3组'], city: '青山县', state: '浙江省' }],
    });

    const [allergy] = await resources(f, 'AllergyIntolerance');
    t.match(allergy, {
      patient: { reference: subject },
      clinicalStatus: { coding: [{ code: 'active' }] },
      category: ['medication'],
      code: { coding: [{ code: 'P001', display: '青霉素' }] },
      criticality: 'low',
      reaction: [{ manifestation: [{ text: '皮疹' }], severity: 'moderate' }],
      onsetDateTime: '2024-01-05',
    });

    const [coverage] = await resources(f, 'Coverage');
    t.match(coverage, {
      status: 'active',
      beneficiary: { reference: subject },
      payor: [{ identifier: { value: '330100' }, display: '青山县医疗保障局' }],
      relationship: { coding: [{ code: 'self' }] },
      subscriberId: '330100196503120011',
      period: { start: '2025-01-01', end: '2025-12-31' },
      class: [{ type: { coding: [{ code: 'plan' }] }, value: 'CXJM', name: '城乡居民基本医疗保险' }],
      identifier: [{}, { value: 'YB330100123' }],
    });

    // An A08 with a changed severity updates the same allergy; nothing is duplicated.
    const update = await f.pipeline.handleMessage(adt('A08', 'NK1-2', 'SV'), MLLP);
    t.equal(ackOf(update.ack).code, 'AA', update.failure?.text ?? 'stored');
    for (const type of ['RelatedPerson', 'AllergyIntolerance', 'Coverage']) t.equal(await f.count(`resource WHERE type = '${type}'`), 1, `one ${type}`);
    const [updated] = await resources(f, 'AllergyIntolerance');
    t.equal(updated.criticality, 'high');
    t.match(updated, { meta: { versionId: '2' }, reaction: [{ severity: 'severe' }] });
  });

  t.test(`${backend}: MDM document with its order and OBX observations`, async (t) => {
    const f = await createPipelineFixture(backend);
    t.teardown(() => f.close());
    f.map.fn = engineMap(loadMappings('mappings/hl7v2'));
    const mdm = (controlId: string): Buffer =>
      Buffer.from(
        [
          `MSH|^~\\&|QSHIS|QSXRMYY|COUNTY-HIE|QS|20250302090000+0800||MDM^T02^MDM_T02|${controlId}|P|2.5||||||UNICODE UTF-8`,
          'EVN|T02|20250302090000+0800',
          'PID|1||MDMTEST^^^QSHIS^MR||王^五||19700101|2',
          'PV1|1|O|ECG^1^1||||||||||||||||V-MDM',
          'ORC|RE|ECG-P1|ECG-F1',
          'OBR|1|ECG-P1|ECG-F1|ECG12^十二导联心电图^QSHIS',
          'NTE|1||order note',
          'TXA|1|ECGRPT|TX|20250302085500||||||||DOC-ECG-1||||||AU',
          'OBX|1|TX|CONCL^心电图诊断^QSHIS|1|窦性心律，正常心电图||||||F',
          'NTE|1||first observation note',
          'OBX|2|NM|8867-4^心率^LN|1|72|/min|60-100|N|||F',
        ].join('\r'),
      );
    const first = await f.pipeline.handleMessage(mdm('MDM-1'), MLLP);
    t.equal(ackOf(first.ack).code, 'AA', first.failure?.text ?? 'stored');
    const [order] = await resources(f, 'ServiceRequest');
    t.match(order, { identifier: [{ value: 'ECG-P1' }, { value: 'ECG-F1' }], note: [{ text: 'order note' }] });
    const observations = await resources(f, 'Observation');
    t.equal(observations.length, 2, 'one Observation per OBX of the document');
    t.match(observations[0], { valueString: '窦性心律，正常心电图', note: [{ text: 'first observation note' }] });
    t.notOk(observations[1].note, "an OBX's notes are its own NTEs, not a neighbour's");
    t.match(observations[1], { valueQuantity: { value: 72 }, interpretation: [{ coding: [{ code: 'N' }] }] });
    const [doc] = await resources(f, 'DocumentReference');
    t.match(doc, { masterIdentifier: { value: 'DOC-ECG-1' }, context: { related: [{ reference: `ServiceRequest/${String(order.id)}` }] } });

    const resend = await f.pipeline.handleMessage(mdm('MDM-2'), MLLP);
    t.equal(ackOf(resend.ack).code, 'AA', 'a resend under a new control id updates in place');
    for (const [type, n] of [['Observation', 2], ['ServiceRequest', 1], ['DocumentReference', 1]] as const) t.equal(await f.count(`resource WHERE type = '${type}'`), n, `${n} ${type}`);
  });
}
