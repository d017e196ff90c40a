import t from 'tap';
import { frameMllp, MllpFrameDecoder } from '../../../src/ingest/mllp/index.js';

const f = (s: string) => frameMllp(Buffer.from(s));

t.test('a frame split at every byte boundary, including between FS and CR', async (t) => {
  const wire = Buffer.concat([f('MSH|one'), f('MSH|two')]);
  for (let cut = 0; cut <= wire.length; cut++) {
    const d = new MllpFrameDecoder(1000);
    const frames = [...d.push(wire.subarray(0, cut)).frames, ...d.push(wire.subarray(cut)).frames];
    t.same(frames.map(String), ['MSH|one', 'MSH|two'], `cut at ${cut}`);
    t.equal(d.garbageBytes, 0);
  }
});

t.test('byte by byte', async (t) => {
  const d = new MllpFrameDecoder(1000);
  const out: string[] = [];
  for (const b of f('MSH|abc\rPID|1')) out.push(...d.push(Buffer.from([b])).frames.map(String));
  t.same(out, ['MSH|abc\rPID|1']);
});

t.test('garbage outside frames is counted, CR/LF between frames is not', async (t) => {
  const d = new MllpFrameDecoder(1000);
  const r = d.push(Buffer.concat([Buffer.from('junk'), f('A'), Buffer.from('\r\n'), Buffer.from('xy'), f('B')]));
  t.same(r.frames.map(String), ['A', 'B']);
  t.equal(d.garbageBytes, 6);
});

t.test('a VT inside a frame drops the unfinished frame; a lone FS ends a frame', async (t) => {
  const d = new MllpFrameDecoder(1000);
  const r = d.push(Buffer.from('\x0bhalf\x0bwhole\x1c\x0bnext\x1c\r'));
  t.same(r.frames.map(String), ['whole', 'next']);
  t.equal(d.garbageBytes, 4);
});

t.test('an oversize frame is reported once with its head, then skipped; the next frame is fine', async (t) => {
  const d = new MllpFrameDecoder(10);
  const r1 = d.push(Buffer.from('\x0bMSH|^~\\&|0123456789'));
  t.same(r1.frames, []);
  t.equal(String(r1.oversize), 'MSH|^~\\&|0123456789');
  const r2 = d.push(Buffer.from('more more more\x1c\r\x0bok\x1c\r'));
  t.equal(r2.oversize, undefined);
  t.same(r2.frames.map(String), ['ok']);
  t.equal(d.oversizeFrames, 1);
});
