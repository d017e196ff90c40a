import t from 'tap';
import type { Patient } from '@medplum/fhirtypes';
import { BACKENDS } from '../helpers/db.js';
import { getDeadLetter, listDeadLetters } from '../../src/ingest/dead-letters.js';
import { RETRY_TEXT } from '../../src/ingest/pipeline.js';
import { ackOf, createPipelineFixture } from './fixture.js';
import { mapStandIn, MappingError, oru } from './stand-ins.js';

const MLLP = { channel: 'mllp' as const, remoteAddress: '10.1.2.3', localPort: 2575 };
const msg = (o: Parameters<typeof oru>[0] = {}) => Buffer.from(oru(o), 'utf8');

for (const backend of BACKENDS) {
  t.test(backend, async (t) => {
    const f = await createPipelineFixture(backend);
    t.teardown(() => f.close());

    t.test('a valid message is stored, then answered AA, with its audit record and control id', async (t) => {
      const r = await f.pipeline.handleMessage(msg({ controlId: 'AA-1', mrn: 'AA1' }), MLLP);
      t.equal(r.outcome, 'stored');
      const ack = ackOf(r.ack);
      t.equal(ack.code, 'AA');
      t.equal(ack.controlId, 'AA-1');
      t.equal(await f.count(`resource WHERE type = 'Observation'`), 1);
      t.equal(await f.count(`hl7_processed WHERE sender_id = 'county-lis' AND control_id = 'AA-1'`), 1);
      const { rows } = await f.tdb.db.query<{ content: string }>(`SELECT content FROM resource WHERE type = 'Patient'`);
      const p = JSON.parse(rows[0].content) as Patient;
      t.ok(p.meta?.tag?.some((x) => x.code === '1233042447101234XX'), 'tagged with the sender institution');
      t.equal(p.meta?.source, 'urn:county-hie:client:county-lis');
      t.equal(await f.count(`audit_event WHERE subtype LIKE '%message%' AND client_id = 'county-lis' AND outcome = '0'`), 1);
    });

    t.test('the same MSH-10 twice: one write, the same ACK', async (t) => {
      const before = await f.count(`resource WHERE type = 'Observation'`);
      const a = await f.pipeline.handleMessage(msg({ controlId: 'DUP-1', mrn: 'D1' }), MLLP);
      const b = await f.pipeline.handleMessage(msg({ controlId: 'DUP-1', mrn: 'D1' }), MLLP);
      t.equal(a.outcome, 'stored');
      t.equal(b.outcome, 'duplicate');
      t.same(b.ack, a.ack, 'byte for byte the original ACK');
      t.equal(await f.count(`resource WHERE type = 'Observation'`), before + 1);
      // Concurrent copies: exactly one is stored.
      const copies = await Promise.all([1, 2, 3].map(() => f.pipeline.handleMessage(msg({ controlId: 'DUP-2', mrn: 'D2' }), MLLP)));
      t.same(copies.map((c) => c.outcome).sort(), ['duplicate', 'duplicate', 'stored']);
      t.equal(await f.count(`resource WHERE type = 'Observation'`), before + 2);
    });

    t.test('an unknown sender is answered AR and kept as a dead letter', async (t) => {
      const r = await f.pipeline.handleMessage(msg({ app: 'ROGUE', facility: 'NOWHERE', controlId: 'AR-1' }), MLLP);
      t.equal(r.outcome, 'rejected');
      const ack = ackOf(r.ack);
      t.equal(ack.code, 'AR');
      t.equal(ack.err?.[2], 'MSH^1^4^1');
      const d = await getDeadLetter(f.db, r.deadLetterId as number);
      t.equal(d?.errorCode, 'unknown-sender');
      t.equal(d?.senderId, undefined);
      t.equal(d?.controlId, 'AR-1');
      t.equal(d?.remoteAddress, '10.1.2.3');
      t.same(d?.raw, msg({ app: 'ROGUE', facility: 'NOWHERE', controlId: 'AR-1' }));
    });

    t.test('unsupported type or version: AR', async (t) => {
      const type = await f.pipeline.handleMessage(msg({ type: 'ADT^A01^ADT_A01', controlId: 'AR-2' }), MLLP);
      t.equal(ackOf(type.ack).code, 'AR');
      t.match(ackOf(type.ack).err?.[3], /^200\^/);
      const version = await f.pipeline.handleMessage(msg({ version: '3.0', controlId: 'AR-3' }), MLLP);
      t.equal(ackOf(version.ack).code, 'AR');
      t.match(ackOf(version.ack).err?.[3], /^203\^/);
    });

    t.test('a mapping error is answered AE naming segment and field, and kept', async (t) => {
      const r = await f.pipeline.handleMessage(msg({ mrn: '', controlId: 'AE-1' }), MLLP);
      t.equal(r.outcome, 'rejected');
      const ack = ackOf(r.ack);
      t.equal(ack.code, 'AE');
      t.equal(ack.err?.[2], 'PID^1^3^1^1');
      t.match(ack.err?.[3], /^101\^/);
      t.match(ack.err?.[8], /PID-3/);
      const d = await getDeadLetter(f.db, r.deadLetterId as number);
      t.equal(d?.errorCode, 'mapping-error');
      t.equal(d?.errorLocation, 'PID-3.1');
      t.equal(d?.senderId, 'county-lis');
      t.equal(await f.count(`hl7_processed WHERE control_id = 'AE-1'`), 0);
      t.equal(await f.count(`audit_event WHERE client_id = 'county-lis' AND outcome = '4' AND content LIKE '%AE-1%'`), 1, 'the refusal is audited');
    });

    t.test('a message that does not parse: AE with the parser reason, kept', async (t) => {
      const raw = Buffer.from(`${oru({ controlId: 'PARSE-1' })}\rno good segment|x`, 'utf8');
      const r = await f.pipeline.handleMessage(raw, MLLP);
      t.equal(r.outcome, 'rejected');
      t.equal(ackOf(r.ack).code, 'AE');
      t.equal(ackOf(r.ack).controlId, 'PARSE-1');
      const d = await getDeadLetter(f.db, r.deadLetterId as number);
      t.equal(d?.errorCode, 'HL7_BAD_SEGMENT_NAME');
      t.match(d?.errorLocation, /^[a-z ]*/);
      const none = await f.pipeline.handleMessage(Buffer.from('hello'), MLLP);
      t.equal(ackOf(none.ack).code, 'AR');
      t.equal((await getDeadLetter(f.db, none.deadLetterId as number))?.errorCode, 'parse-error');
    });

    t.test('a Bundle the write path refuses: AE with the FHIR expression, nothing written', async (t) => {
      const before = await f.count('resource');
      const r = await f.pipeline.handleMessage(msg({ obxStatus: 'bogus', controlId: 'AE-2', mrn: 'AE2' }), MLLP);
      t.equal(ackOf(r.ack).code, 'AE');
      t.match(ackOf(r.ack).err?.[8], /Bundle\.entry\[1\]/);
      t.equal(await f.count('resource'), before);
    });

    t.test('the database fails mid-transaction: no data, AE asking to resend, dead letter spooled, nothing lost', async (t) => {
      const before = await f.count('resource');
      f.faults.dieOn = /INSERT INTO resource_version/;
      const raw = msg({ controlId: 'DOWN-1', mrn: 'DOWN1' });
      const r = await f.pipeline.handleMessage(raw, MLLP);
      f.faults.dieOn = undefined;
      t.equal(r.outcome, 'error');
      const ack = ackOf(r.ack);
      t.equal(ack.code, 'AE');
      t.match(ack.err?.[3], /^207\^/);
      t.equal(ack.text, RETRY_TEXT.slice(0, 80).replace(/\|/g, ''));
      t.equal(await f.count('resource'), before, 'rolled back');
      t.equal(await f.count(`hl7_processed WHERE control_id = 'DOWN-1'`), 0);
      t.equal(await f.pipeline.spooled(), 1, 'kept in the spool');
      t.equal(await f.count(`dead_letter WHERE control_id = 'DOWN-1'`), 0);

      f.faults.down = false;
      t.equal(await f.pipeline.drainSpool(), 1);
      t.equal(await f.pipeline.drainSpool(), 0, 'moved once');
      t.equal(await f.pipeline.spooled(), 0);
      const page = await listDeadLetters(f.db, { error: 'storage-unavailable' }, 10);
      t.equal(page.items.length, 1);
      const d = page.items[0];
      t.same(d.raw, raw, 'the raw bytes survived');
      t.equal(d.status, 'new');
      const replay = await f.pipeline.replay(d.id);
      t.equal(replay?.outcome, 'stored');
      t.equal((await getDeadLetter(f.db, d.id))?.status, 'replayed');
      t.equal(await f.count(`hl7_processed WHERE control_id = 'DOWN-1'`), 1);
    });

    t.test('enhanced mode: accept and application ACKs as MSH-15/MSH-16 ask', async (t) => {
      const codes = (r: { acks: readonly Buffer[] }) => r.acks.map((a) => ackOf(a).code);
      const both = await f.pipeline.handleMessage(msg({ controlId: 'ENH-1', mrn: 'ENH1', acceptAck: 'AL', applicationAck: 'AL' }), MLLP);
      t.same(codes(both), ['CA', 'AA'], 'accept ACK once committed, then the application ACK');
      t.same(both.acks.map((a) => ackOf(a).controlId), ['ENH-1', 'ENH-1']);
      t.same(codes(await f.pipeline.handleMessage(msg({ controlId: 'ENH-1', mrn: 'ENH1', acceptAck: 'AL', applicationAck: 'AL' }), MLLP)), ['CA', 'AA'], 'a resend: both again, nothing written twice');
      t.equal(await f.count(`hl7_processed WHERE control_id = 'ENH-1'`), 1);
      t.same(codes(await f.pipeline.handleMessage(msg({ controlId: 'ENH-2', mrn: 'ENH2', acceptAck: 'AL', applicationAck: 'NE' }), MLLP)), ['CA']);
      t.same(codes(await f.pipeline.handleMessage(msg({ controlId: 'ENH-3', mrn: 'ENH3', acceptAck: 'NE', applicationAck: 'ER' }), MLLP)), [], 'success, and only errors were asked for');
      const bad = await f.pipeline.handleMessage(msg({ controlId: 'ENH-4', mrn: 'ENH4', obxStatus: 'bogus', acceptAck: 'NE', applicationAck: 'ER' }), MLLP);
      t.same(codes(bad), ['AE'], 'a content error: the application ACK asked for on error');
      t.equal(bad.outcome, 'rejected');
      const refused = await f.pipeline.handleMessage(msg({ type: 'ORU^R99^ORU_R01', controlId: 'ENH-5', acceptAck: 'AL', applicationAck: 'AL' }), MLLP);
      t.same(codes(refused), ['CR'], 'refused: CR and no application ACK');
      t.match(ackOf(refused.acks[0]).err?.[3], /^200\^/, 'ERR names the unsupported message type');
      f.faults.dieOn = /INSERT INTO resource_version/;
      const down = await f.pipeline.handleMessage(msg({ controlId: 'ENH-6', mrn: 'ENH6', acceptAck: 'AL', applicationAck: 'AL' }), MLLP);
      f.faults.dieOn = undefined;
      f.faults.down = false;
      t.same(codes(down), ['CE'], 'not committed: CE, the sender resends');
      t.same(codes(await f.pipeline.handleMessage(msg({ controlId: 'ENH-7', mrn: 'ENH7' }), MLLP)), ['AA'], 'original mode: the one ACK');
      await f.pipeline.drainSpool();
    });

    t.test('a batch: each message stored or refused alone, one batch acknowledgement', async (t) => {
      const batch = (ids: string[], file = false) =>
        Buffer.from(
          [
            ...(file ? ['FHS|^~\\&|QSLIS|QSXRMYY|COUNTY-HIE|QS|20250301083000||||F-1'] : []),
            'BHS|^~\\&|QSLIS|QSXRMYY|COUNTY-HIE|QS|20250301083000||||B-1',
            ...ids.map((id, i) => oru({ controlId: id, mrn: `BATCH${i}`, obxStatus: id.endsWith('BAD') ? 'bogus' : 'F' })),
            `BTS|${ids.length}`,
            ...(file ? ['FTS|1'] : []),
          ].join('\r'),
        );
      const r = await f.pipeline.handleMessage(batch(['BATCH-1', 'BATCH-2', 'BATCH-BAD']), MLLP);
      const segs = r.ack.toString('utf8').split('\r').map((s) => s.split('|'));
      t.same(segs[0].slice(0, 6), ['BHS', '^~\\&', 'COUNTY-HIE', 'QS', 'QSLIS', 'QSXRMYY'], 'sender and receiver swapped');
      t.equal(segs[0][11], 'B-1', 'BHS-12 refers to the batch answered');
      t.same(segs.filter((s) => s[0] === 'MSA').map((s) => [s[1], s[2]]), [['AA', 'BATCH-1'], ['AA', 'BATCH-2'], ['AE', 'BATCH-BAD']]);
      t.same(segs.at(-1), ['BTS', '3']);
      t.equal(r.outcome, 'rejected', 'the worst outcome of its messages');
      t.same(r.acks, [r.ack], 'one frame back');
      t.equal(await f.count(`hl7_processed WHERE control_id IN ('BATCH-1', 'BATCH-2')`), 2);
      t.equal(await f.count(`dead_letter WHERE control_id = 'BATCH-BAD'`), 1, 'the bad message is kept, alone');
      const again = await f.pipeline.handleMessage(batch(['BATCH-1', 'BATCH-2'], true), MLLP);
      const segs2 = again.ack.toString('utf8').split('\r').map((s) => s[0] + s.slice(1, 3));
      t.same(segs2.map((s) => s.slice(0, 3)), ['FHS', 'BHS', 'MSH', 'MSA', 'MSH', 'MSA', 'BTS', 'FTS'], 'a file of one batch is answered as a file');
      t.same(again.batch?.map((m) => m.outcome), ['duplicate', 'duplicate'], 'a resent batch writes nothing twice');
      const malformed = await f.pipeline.handleMessage(Buffer.from('BHS|^~\\&|QSLIS|QSXRMYY\rPID|1||X\rBTS|0'), MLLP);
      t.equal(ackOf(malformed.ack).code, 'AR', 'a batch that does not split is refused');
      t.ok(malformed.deadLetterId !== undefined, 'and kept');
    });

    t.test('the sender resends after a transient failure: stored once, its dead letter settled', async (t) => {
      f.faults.down = true;
      const raw = msg({ controlId: 'DOWN-2', mrn: 'DOWN2' });
      t.equal((await f.pipeline.handleMessage(raw, MLLP)).outcome, 'error');
      f.faults.down = false;
      await f.pipeline.drainSpool();
      t.equal((await f.pipeline.handleMessage(raw, MLLP)).outcome, 'stored');
      const page = await listDeadLetters(f.db, { sender: 'county-lis', error: 'storage-unavailable', status: 'replayed' }, 10);
      t.ok(page.items.some((d) => d.controlId === 'DOWN-2' && d.replayResult === 'stored'));
    });

    t.test('replay after a mapping fix stores the message', async (t) => {
      f.map.fn = () => {
        throw new MappingError('OBX-3 local code GLU is not mapped', { segment: 'OBX', position: 4, field: 3 }, 103);
      };
      const r = await f.pipeline.handleMessage(msg({ controlId: 'FIX-1', mrn: 'FIX1' }), MLLP);
      t.equal(ackOf(r.ack).code, 'AE');
      t.match(ackOf(r.ack).err?.[3], /^103\^/);
      const failed = await f.pipeline.replay(r.deadLetterId as number);
      t.equal(failed?.outcome, 'rejected');
      let d = await getDeadLetter(f.db, r.deadLetterId as number);
      t.equal(d?.status, 'new');
      t.equal(d?.attempts, 1);
      f.map.fn = mapStandIn;
      const ok = await f.pipeline.replay(r.deadLetterId as number);
      t.equal(ok?.outcome, 'stored');
      d = await getDeadLetter(f.db, r.deadLetterId as number);
      t.equal(d?.status, 'replayed');
      t.equal(d?.attempts, 2);
      t.equal(d?.replayResult, 'stored');
      await t.rejects(f.pipeline.replay(r.deadLetterId as number), { code: 'GW_ERR_CONFLICT' });
    });

    t.test('a GBK message without MSH-18 is decoded with the sender default', async (t) => {
      // 张三 in GBK.
      const head = oru({ app: 'CGLIS', facility: 'CGZWSY', controlId: 'GBK-1', mrn: 'G1', family: '@@' });
      const [before, after] = head.split('@@');
      const raw = Buffer.concat([Buffer.from(before, 'latin1'), Buffer.from([0xd5, 0xc5, 0xc8, 0xfd]), Buffer.from(after, 'latin1')]);
      const r = await f.pipeline.handleMessage(raw, MLLP);
      t.equal(r.outcome, 'stored');
      const { rows } = await f.tdb.db.query<{ content: string }>(`SELECT content FROM resource WHERE type = 'Patient' AND content LIKE '%G1%'`);
      t.equal((JSON.parse(rows[0].content) as Patient).name?.[0].family, '张三');
    });

    t.test('HTTP: a client not bound to the sender is refused AR; the bound client is accepted', async (t) => {
      const r = await f.pipeline.handleMessage(msg({ controlId: 'HTTP-1', mrn: 'H1' }), { channel: 'http', remoteAddress: '10.0.0.9', clientId: 'village1-his' });
      t.equal(ackOf(r.ack).code, 'AR');
      t.equal((await getDeadLetter(f.db, r.deadLetterId as number))?.errorCode, 'unbound-client');
      const ok = await f.pipeline.handleMessage(msg({ controlId: 'HTTP-1', mrn: 'H1' }), { channel: 'http', remoteAddress: '10.0.0.9', clientId: 'county-his' });
      t.equal(ok.outcome, 'stored');
    });

    t.test('metrics by sender and type', async (t) => {
      const text = await f.registry.metrics();
      t.match(text, /gateway_hl7_messages_total\{sender="county-lis",type="ORU\^R01",outcome="stored"\} \d+/);
      t.match(text, /gateway_hl7_messages_total\{sender="unknown",type="other",outcome="rejected"\} 3/);
      t.match(text, /gateway_hl7_dead_letters_total\{sender="county-lis",error="mapping-error"\}/);
      t.match(text, /gateway_hl7_pipeline_duration_seconds_count\{outcome="stored"\}/);
    });
  });
}
