import iconv from 'iconv-lite';
import t from 'tap';
import { Hl7ParseError, buildAckBytes, parseHl7, resolveCharset, valueAt } from '../../../src/ingest/hl7v2/index.js';

const ORU = (msh18: string) =>
  [
    `MSH|^~\\&|LIS|县医院检验科|HIE|县卫健委|20240301083000||ORU^R01^ORU_R01|LAB0001|P|2.5.1|||AL|NE|CHN|${msh18}`,
    'PID|1||330821199001011234^^^县人民医院^MR||张三丰^^^^^^L||19900101|M|||城关镇人民路1号^^衢州^浙江',
    'OBR|1||L2024|CBC^血常规^L',
    'OBX|1|NM|WBC^白细胞计数^L||6.5|10*9/L|3.5-9.5||||F',
    'OBX|2|ST|NOTE^备注^L||标本轻度溶血\\.br\\请复查',
  ].join('\r');

t.test('a GBK ORU^R01 without MSH-18 decodes with the sender default', async (t) => {
  const bytes = iconv.encode(ORU(''), 'gbk');
  t.not(bytes.toString('utf8'), ORU(''), 'the bytes are really not UTF-8');
  const m = parseHl7(bytes, { defaultCharset: 'GBK' });
  t.equal(m.charset, 'GBK');
  t.equal(valueAt(m.segments[1], 5), '张三丰');
  t.equal(valueAt(m.segments[1], 3, 4), '县人民医院');
  t.equal(valueAt(m.segments[0], 4), '县医院检验科');
  t.equal(valueAt(m.segments[3], 3, 2), '白细胞计数');
  t.equal(valueAt(m.segments[4], 5), '标本轻度溶血\n请复查');
});

t.test('MSH-18 wins over the default: GB 18030-2000, GBK, UNICODE UTF-8', async (t) => {
  for (const [name, enc] of [
    ['GB 18030-2000', 'gb18030'],
    ['GB18030', 'gb18030'],
    ['GBK', 'gbk'],
    ['UNICODE UTF-8', 'utf8'],
    ['UTF-8', 'utf8'],
  ]) {
    const m = parseHl7(iconv.encode(ORU(name), enc), { defaultCharset: 'ISO-8859-1' });
    t.equal(m.charset, name);
    t.equal(valueAt(m.segments[1], 5), '张三丰', name);
  }
});

t.test('GB 18030 four-byte characters (CJK extension B, rare surname characters) survive', async (t) => {
  const rare = '𠀀𪚥䶮'; // U+20000, U+2A6A5 (4-byte in GB 18030), U+4DAE
  const bytes = iconv.encode(ORU('GB18030').replace('张三丰', `${rare}明`), 'gb18030');
  t.ok(bytes.length > 0);
  const m = parseHl7(bytes);
  t.equal(valueAt(m.segments[1], 5), `${rare}明`);
  // And the ACK goes back in GB 18030.
  const ack = buildAckBytes(m, { code: 'AA', text: `收到${rare}` });
  t.match(iconv.decode(ack, 'gb18030'), `MSA|AA|LAB0001|收到${rare}`);
  t.match(iconv.decode(ack, 'gb18030'), /\|GB18030$/m);
});

t.test('ASCII and 8859/1', async (t) => {
  const m = parseHl7(Buffer.from('MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.3||||||8859/1\rPID|1||1||M\xfcller^Jos\xe9', 'latin1'));
  t.equal(valueAt(m.segments[1], 5), 'Müller');
  t.equal(valueAt(m.segments[1], 5, 2), 'José');
  t.equal(resolveCharset(' ascii '), 'ascii');
  t.equal(resolveCharset('CNS 11643-1992'), undefined);
});

t.test('an unknown MSH-18 is a parse error naming MSH-18', async (t) => {
  const e = t.throws(() => parseHl7(Buffer.from('MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5||||||KLINGON\rPID|1'))) as unknown as Hl7ParseError;
  t.ok(e instanceof Hl7ParseError);
  t.equal(e.code, 'HL7_UNKNOWN_CHARSET');
  t.same(e.location, { segment: 'MSH', position: 1, field: 18 });
  t.match(e.message, /MSH-18.*KLINGON/);
  const e2 = t.throws(() => parseHl7(Buffer.from('MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5||||||CNS 11643-1992'))) as unknown as Hl7ParseError;
  t.equal(e2.code, 'HL7_UNKNOWN_CHARSET');
});

t.test('MSH-18 with repetitions and components: the first character set counts', async (t) => {
  const m = parseHl7(iconv.encode(ORU('GBK~UNICODE UTF-8'), 'gbk'));
  t.equal(m.charset, 'GBK');
  t.equal(valueAt(m.segments[1], 5), '张三丰');
});
