import { readFileSync } from 'node:fs';
import iconv from 'iconv-lite';
import t from 'tap';
import { Hl7ParseError, isHl7Batch, parseHl7, splitHl7Batch, valueAt } from '../../../src/ingest/hl7v2/index.js';

const dir = '/work/shared/fixtures/hl7v2/';

t.test('BHS … BTS with two ADT^A04 (python-hl7 sample)', async (t) => {
  const b = splitHl7Batch(readFileSync(dir + 'pyhl7__BATCH_BHS_two_ADT_A04.hl7'));
  t.equal(b.messages.length, 2);
  t.equal(b.declaredCount, 2);
  t.match(b.headers[0], /^BHS\|/);
  for (const m of b.messages.map((x) => parseHl7(x))) {
    t.same(m.segments.map((s) => s.name), ['MSH', 'EVN', 'PID', 'PD1', 'NK1', 'PV1']);
    t.equal(valueAt(m.segments[0], 9, 2), 'A04');
  }
});

t.test('a batch without MSH is an Hl7ParseError naming the first stray segment', async (t) => {
  const e = t.throws(() => splitHl7Batch(readFileSync(dir + 'pyhl7__BATCH_MALFORMED_no_MSH.hl7'))) as unknown as Hl7ParseError;
  t.ok(e instanceof Hl7ParseError);
  t.equal(e.code, 'HL7_NO_MSH');
  t.same(e.location, { segment: 'EVN', position: 2 });
});

t.test('FHS/BHS/BTS/FTS file, LF separators, each message in its own charset', async (t) => {
  const m1 = iconv.encode('MSH|^~\\&|HIS|县医院|HIE|卫健委|20240101||ADT^A01|1|P|2.5||||||GBK\rPID|1||1||李四', 'gbk');
  const m2 = Buffer.from('MSH|^~\\&|HIS|H|HIE|C|20240101||ADT^A08|2|P|2.5||||||UNICODE UTF-8\rPID|1||2||王五');
  const file = Buffer.concat([Buffer.from('FHS|^~\\&|HIS\nBHS|^~\\&|HIS\n'), m1, Buffer.from('\n'), m2, Buffer.from('\nBTS|2\nFTS|1\n')]);
  t.ok(isHl7Batch(file));
  const b = splitHl7Batch(file);
  t.equal(b.headers.length, 2);
  t.same(b.messages.map((m) => valueAt(parseHl7(m).segments[1], 5)), ['李四', '王五']);
});

t.test('BTS-1 disagreeing with the messages found is HL7_BAD_BATCH', async (t) => {
  const file = Buffer.from('BHS|^~\\&\rMSH|^~\\&|A|B|C|D|2024||ADT^A01|1|P|2.5\rPID|1\rBTS|3');
  const e = t.throws(() => splitHl7Batch(file)) as unknown as Hl7ParseError;
  t.equal(e.code, 'HL7_BAD_BATCH');
  t.notOk(isHl7Batch(Buffer.from('MSH|^~\\&|A')));
});
