import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { identifySender, isRefusal, loadSenders, parseSenders, SendersFileError } from '../../src/ingest/senders.js';

const base = { id: 'a', sendingApplication: 'APP', sendingFacility: 'FAC', institution: '1233042447101234XX', defaultCharset: 'UTF-8' };

t.test('the demo senders load and bind each MSH-3/MSH-4 to an institution', async (t) => {
  const reg = await loadSenders();
  t.same(reg.senders.map((s) => s.id), ['county-his', 'county-lis', 'township1-lis', 'township1-his', 'village1-his']);
  t.equal(reg.find('CGLIS', 'CGZWSY')?.defaultCharset, 'GBK');
  t.equal(reg.find('CGLIS', 'QSXRMYY'), undefined);
});

t.test('a bad senders file names every problem', async (t) => {
  t.throws(() => parseSenders({ senders: [{ ...base, institution: 'x', extra: 1 }] }), SendersFileError);
  try {
    parseSenders({ senders: [{ ...base, institution: 'x', defaultCharset: 'latin1' }] });
  } catch (e) {
    t.match((e as Error).message, /sender #0 \("a"\), field "institution" must be an 18-character/);
    t.match((e as Error).message, /defaultCharset/);
  }
  t.throws(() => parseSenders({ senders: [base, { ...base, id: 'b' }] }), /both claim MSH-3 "APP"/);
  t.throws(() => parseSenders({ senders: [base, { ...base, sendingFacility: 'F2' }] }), /sender id "a" appears twice/);
  const dir = mkdtempSync(join(tmpdir(), 'senders-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'bad.json'), '{ not json');
  await t.rejects(loadSenders(join(dir, 'bad.json')), SendersFileError);
});

t.test('identification: unknown, unbound client, wrong port, unregistered type', async (t) => {
  const reg = parseSenders({ senders: [{ ...base, clientId: 'his-a', mllpPorts: [2575], messageTypes: ['ORU^R01'] }] });
  const h = { sendingApplication: 'APP', sendingFacility: 'FAC', messageType: 'ORU^R01' };
  t.equal(identifySender(reg, h, { channel: 'mllp', localPort: 2575 }), reg.senders[0]);
  t.equal(identifySender(reg, h, { channel: 'http', clientId: 'his-a' }), reg.senders[0]);
  const reason = (x: ReturnType<typeof identifySender>) => (isRefusal(x) ? x.reason : 'ok');
  t.equal(reason(identifySender(reg, { ...h, sendingFacility: 'OTHER' }, { channel: 'mllp', localPort: 2575 })), 'unknown-sender');
  t.equal(reason(identifySender(reg, h, { channel: 'http', clientId: 'his-b' })), 'unbound-client');
  t.equal(reason(identifySender(reg, h, { channel: 'http' })), 'unbound-client');
  t.equal(reason(identifySender(reg, h, { channel: 'mllp', localPort: 2576 })), 'wrong-port');
  t.equal(reason(identifySender(reg, { ...h, messageType: 'ADT^A01' }, { channel: 'mllp', localPort: 2575 })), 'unsupported-type');
});
