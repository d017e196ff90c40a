import t from 'tap';
import { loadMappings } from '../../src/ingest/hl7v2/mapping/index.js';
import { engineMap } from '../../src/ingest/index.js';
import { BACKENDS } from '../helpers/db.js';
import { ackOf, createPipelineFixture } from './fixture.js';
import { oru } from './stand-ins.js';

const MLLP = { channel: 'mllp' as const, remoteAddress: '10.1.2.3', localPort: 2575 };

for (const backend of BACKENDS) {
  t.test(`${backend}: the real parser, mapping engine and ACK builder`, async (t) => {
    const f = await createPipelineFixture(backend);
    t.teardown(() => f.close());
    f.map.fn = engineMap(loadMappings('mappings/hl7v2'));
    const adt = [
      'MSH|^~\\&|QSHIS|QSXRMYY|COUNTY-HIE|QS|20250301083000+0800||ADT^A01^ADT_A01|E2E-1|P|2.5||||||UNICODE UTF-8',
      'EVN|A01|20250301083000+0800',
      'PID|1||E2E1^^^QSHIS^MR||Li^Si||19650312|M',
      'PV1|1|I|W1^101^1',
    ].join('\r');
    const r = await f.pipeline.handleMessage(Buffer.from(adt), MLLP);
    t.equal(ackOf(r.ack).code, 'AA', r.failure?.text ?? 'stored');
    t.equal(r.outcome, 'stored');
    t.equal(await f.count(`resource WHERE type = 'Patient'`), 1);
    t.equal((await f.pipeline.handleMessage(Buffer.from(adt), MLLP)).outcome, 'duplicate');
    const unsupported = await f.pipeline.handleMessage(Buffer.from(oru({ controlId: 'E2E-2', type: 'ORU^R99^ORU_R01' })), MLLP);
    t.equal(ackOf(unsupported.ack).code, 'AR', 'refused by the sender registration first');
  });
}

for (const backend of BACKENDS) {
  t.test(`${backend}: regression: an ORU whose observation key holds '|' is stored, and stored once`, async (t) => {
    const f = await createPipelineFixture(backend);
    t.teardown(() => f.close());
    f.map.fn = engineMap(loadMappings('mappings/hl7v2'));
    const msg = [
      'MSH|^~\\&|QSLIS|QSXRMYY|COUNTY-HIE|QS|20250301083000+0800||ORU^R01^ORU_R01|E2E-ORU-1|P|2.5||||||UNICODE UTF-8',
      'PID|1||E2E2^^^QSHIS^MR||Wang^Wu||19700101|F',
      'OBR|1|P1|FIL1|2345-7^Glucose^LN',
      'OBX|1|NM|2345-7^Glucose^LN||5.6|mmol/L|3.9-6.1|N|||F',
    ].join('\r');
    const first = await f.pipeline.handleMessage(Buffer.from(msg), MLLP);
    t.equal(ackOf(first.ack).code, 'AA', first.failure?.text ?? 'stored');
    const copy = msg.replace('E2E-ORU-1', 'E2E-ORU-2');
    const second = await f.pipeline.handleMessage(Buffer.from(copy), MLLP);
    t.equal(ackOf(second.ack).code, 'AA', 'a resend under a new control id updates in place');
    t.equal(await f.count(`resource WHERE type = 'Observation'`), 1);
    // Nothing in it changed: no new version of the patient, the order, the report or the result.
    const { rows } = await f.tdb.db.query<{ type: string; version_id: number }>(`SELECT type, version_id FROM resource WHERE type IN ('Patient', 'ServiceRequest', 'DiagnosticReport', 'Observation') ORDER BY type`);
    t.same(rows.map((r) => [r.type, Number(r.version_id)]), [['DiagnosticReport', 1], ['Observation', 1], ['Patient', 1], ['ServiceRequest', 1]]);
    const third = await f.pipeline.handleMessage(Buffer.from(msg.replace('E2E-ORU-1', 'E2E-ORU-3').replace('||5.6|', '||5.9|')), MLLP);
    t.equal(ackOf(third.ack).code, 'AA');
    const { rows: after } = await f.tdb.db.query<{ version_id: number }>(`SELECT version_id FROM resource WHERE type = 'Observation'`);
    t.equal(Number(after[0].version_id), 2, 'a changed value is a new version');
  });
}
