import { readFileSync } from 'node:fs';
import t from 'tap';
import {
  ackCodeFor,
  ackDue,
  ackHeaderFromBytes,
  buildAck,
  buildAckBytes,
  parseHl7,
  parseHl7Text,
  requestedAcks,
  valueAt,
} from '../../../src/ingest/hl7v2/index.js';

const dir = '/work/shared/fixtures/hl7v2/';
const now = new Date(2024, 2, 1, 8, 30, 0);

t.test('v2.3 ADT^A01: MSH swapped, MSH-9 ACK^A01, ERR-1 with table 0357 code', async (t) => {
  const m = parseHl7(readFileSync(dir + 'pyhl7__sample_msh_ADT_A01_v23_insurance.hl7'));
  const msh = m.segments[0];
  const ack = buildAck(m, {
    code: 'AE',
    text: 'PID-3 missing',
    controlId: 'ACK1',
    now,
    errors: [{ location: { segment: 'PID', position: 2, field: 3 }, hl7ErrorCode: '101', severity: 'E', text: 'no MRN' }],
  });
  const a = parseHl7Text(ack);
  t.same(a.segments.map((s) => s.name), ['MSH', 'MSA', 'ERR']);
  const amsh = a.segments[0];
  t.equal(valueAt(amsh, 3), valueAt(msh, 5));
  t.equal(valueAt(amsh, 4), valueAt(msh, 6));
  t.equal(valueAt(amsh, 5), valueAt(msh, 3));
  t.equal(valueAt(amsh, 6), valueAt(msh, 4));
  t.match(valueAt(amsh, 7), /^20240301083000[+-]\d{4}$/);
  t.same(amsh.fields[9], [[['ACK'], ['A01']]], 'no MSH-9.3 before v2.3.1');
  t.equal(valueAt(amsh, 10), 'ACK1');
  t.equal(valueAt(amsh, 12), '2.3');
  t.same(a.segments[1].fields.slice(1), [[[['AE']]], [[[valueAt(msh, 10)]]], [[['PID-3 missing']]]]);
  t.same(a.segments[2].fields[1], [[['PID'], ['1'], ['3'], ['101', 'no MRN', 'HL70357']]]);
});

t.test('v2.5.1 ORU^R01: ERR-2 location, ERR-3 code, ERR-4 severity, ERR-8 text, several ERRs', async (t) => {
  const m = parseHl7(readFileSync(dir + 'msft__LRI_2.0-NG_CBC_Typ_Message.hl7'));
  const secondObx = m.segments.filter((s) => s.name === 'OBX')[1];
  const ack = buildAck(m, {
    code: 'AE',
    now,
    errors: [
      { location: { segment: 'PID', position: 2, field: 3, repetition: 1, component: 1 }, hl7ErrorCode: '101', severity: 'E', text: 'PID-3 | missing' },
      { location: { segment: 'OBX', position: secondObx.position, field: 6 }, hl7ErrorCode: '103', severity: 'W', text: 'unknown unit' },
    ],
  });
  const a = parseHl7Text(ack);
  t.same(a.segments.map((s) => s.name), ['MSH', 'MSA', 'ERR', 'ERR']);
  t.same(a.segments[0].fields[9], [[['ACK'], ['R01'], ['ACK']]]);
  t.equal(valueAt(a.segments[0], 12), '2.5.1');
  const [e1, e2] = [a.segments[2], a.segments[3]];
  t.same(e1.fields[2], [[['PID'], ['1'], ['3'], ['1'], ['1']]], 'ERR-2 PID^1^3^1^1');
  t.same(e1.fields[3], [[['101'], ['Required field missing'], ['HL70357']]]);
  t.equal(valueAt(e1, 4), 'E');
  t.equal(valueAt(e1, 8), 'PID-3 | missing', 'text escaped and decoded back');
  t.match(ack, /\\F\\/);
  t.same(e2.fields[2], [[['OBX'], ['2'], ['6'], ['1']]], 'ERR-2.2 is the occurrence of OBX, not its position');
  t.equal(valueAt(e2, 4), 'W');
});

t.test('enhanced mode: requested ACKs and codes', async (t) => {
  const base = 'MSH|^~\\&|LIS|H|HIE|C|20240101||ORU^R01^ORU_R01|X1|P|2.5.1';
  const original = parseHl7Text(base);
  t.same(requestedAcks(original), { mode: 'original', accept: 'NE', application: 'AL' });
  const enhanced = parseHl7Text(`${base}|||AL|ER`);
  t.same(requestedAcks(enhanced), { mode: 'enhanced', accept: 'AL', application: 'ER' });
  t.ok(ackDue('AL', true));
  t.notOk(ackDue('ER', true));
  t.ok(ackDue('ER', false));
  t.notOk(ackDue('NE', false));
  t.ok(ackDue('SU', true));
  t.equal(ackCodeFor('accept', 'ok'), 'CA');
  t.equal(ackCodeFor('accept', 'reject'), 'CR');
  t.equal(ackCodeFor('application', 'error'), 'AE');
  const accept = parseHl7Text(buildAck(enhanced, { code: ackCodeFor('accept', 'ok') }));
  t.equal(valueAt(accept.segments[1], 1), 'CA');
  t.equal(valueAt(accept.segments[1], 2), 'X1');
});

t.test('same delimiters as the message', async (t) => {
  const m = parseHl7(readFileSync(dir + 'medplum__ACK_nonstandard_field_separator.hl7'));
  const ack = buildAck(m, { code: 'AA', now });
  t.match(ack, /^MSH_\^~\\&_iFW_ABC_Main_XYZ_/);
  t.match(ack, /\rMSA_AA_9B38584D$/);
});

t.test('a broken message still gets a best-effort AR', async (t) => {
  const bytes = Buffer.from('MSH|^~\\&|HIS|H|HIE|C|20240101||ADT^A01|C77|P|2.4\rEVN|A01\r4563-8EBD|x');
  const ack = buildAck(ackHeaderFromBytes(bytes), {
    code: 'AR',
    errors: [{ location: { segment: 'MSH', position: 1 }, hl7ErrorCode: '100', severity: 'E', text: 'bad segment' }],
  });
  const a = parseHl7Text(ack);
  t.equal(valueAt(a.segments[0], 3), 'HIE');
  t.equal(valueAt(a.segments[0], 5), 'HIS');
  t.equal(valueAt(a.segments[0], 12), '2.4');
  t.same(a.segments[1].fields.slice(1, 3), [[[['AR']]], [[['C77']]]]);
  // Garbage with no MSH at all: default delimiters and version.
  const g = parseHl7Text(buildAck(ackHeaderFromBytes(Buffer.from('\x00\x01garbage')), { code: 'AR', text: 'no MSH' }));
  t.equal(valueAt(g.segments[0], 12), '2.5.1');
  t.equal(valueAt(g.segments[1], 1), 'AR');
});

t.test('the ACK bytes use the message charset', async (t) => {
  const m = parseHl7(Buffer.from('MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5||||||8859/1\rPID|1', 'latin1'));
  const b = buildAckBytes(m, { code: 'AE', text: 'Müller' });
  t.ok(b.includes(Buffer.from('M\xfcller', 'latin1')));
  t.match(b.toString('latin1'), /\|8859\/1\r/);
});
