import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { buildAckBytes, parseHl7, parseHl7Text, valueAt } from '../../../src/ingest/hl7v2/index.js';
import { frameMllp, MllpFrameDecoder, sendMllp, startMllpServer, type MllpHandler, type MllpServerOptions } from '../../../src/ingest/mllp/index.js';

const silent = { info() {}, warn() {}, error() {}, debug() {} };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const msg = (id: string, extra = '') => Buffer.from(`MSH|^~\\&|LIS|H|HIE|C|20240101||ORU^R01^ORU_R01|${id}|P|2.5.1\rPID|1||${id}${extra}`);
const ackHandler: MllpHandler = async (frame) => buildAckBytes(parseHl7(frame), { code: 'AA' });
const msa2 = (ack: Buffer) => valueAt(parseHl7Text(ack.toString()).segments[1], 2);
const msa1 = (ack: Buffer) => valueAt(parseHl7Text(ack.toString()).segments[1], 1);

async function start(t: Test, over: Partial<MllpServerOptions> = {}) {
  const server = await startMllpServer({ host: '127.0.0.1', port: 0, maxFrameBytes: 1 << 20, idleTimeoutMs: 0, handler: ackHandler, logger: silent, ...over });
  t.teardown(() => server.close(100));
  return server;
}

/** A raw socket collecting ACK frames, for tests that control the bytes written. */
function raw(port: number) {
  const socket = net.connect({ host: '127.0.0.1', port });
  const decoder = new MllpFrameDecoder(1 << 20);
  const acks: Buffer[] = [];
  let closed = false;
  socket.on('data', (c: Buffer) => acks.push(...decoder.push(c).frames));
  socket.on('close', () => (closed = true));
  socket.on('error', () => {});
  const waitFor = async (n: number, ms = 5000) => {
    const end = Date.now() + ms;
    while (acks.length < n && Date.now() < end) await sleep(5);
    return acks;
  };
  return { socket, acks, waitFor, isClosed: () => closed, connected: new Promise((r) => socket.once('connect', r)) };
}

t.test('a frame sent in pieces across packets', async (t) => {
  const server = await start(t);
  const c = raw(server.port);
  await c.connected;
  const wire = frameMllp(msg('P1'));
  for (let i = 0; i < wire.length; i += 7) {
    c.socket.write(wire.subarray(i, i + 7));
    await sleep(1);
  }
  t.same((await c.waitFor(1)).map(msa2), ['P1']);
  c.socket.destroy();
});

t.test('two frames in one write, garbage between frames discarded and counted, ACKs in order', async (t) => {
  const server = await start(t, {
    // The first message is slow: its ACK must still come first.
    handler: async (frame) => {
      if (frame.includes('SLOW')) await sleep(100);
      return ackHandler(frame, { remoteAddress: '', localPort: 0, id: '' });
    },
  });
  const c = raw(server.port);
  await c.connected;
  c.socket.write(Buffer.concat([frameMllp(msg('A', 'SLOW')), Buffer.from('noise'), frameMllp(msg('B'))]));
  t.same((await c.waitFor(2)).map(msa2), ['A', 'B']);
  t.equal(server.stats.garbageBytes, 5);
  t.equal(server.stats.frames, 2);
  c.socket.destroy();
});

t.test('500 concurrent connections each get their own ACK', async (t) => {
  const server = await start(t, {
    handler: async (frame, conn) => {
      await sleep(Math.random() * 20);
      t.ok(conn.id.startsWith('mllp-'));
      return ackHandler(frame, conn);
    },
  });
  const ids = Array.from({ length: 500 }, (_, i) => `C${i}`);
  const acks = await Promise.all(ids.map((id) => sendMllp('127.0.0.1', server.port, [msg(id)])));
  t.same(acks.map((a) => msa2(a[0])), ids);
  t.equal(server.stats.connections, 500);
});

t.test('an oversized frame gets an AR and the connection is closed', async (t) => {
  const server = await start(t, { maxFrameBytes: 200 });
  const c = raw(server.port);
  await c.connected;
  c.socket.write(frameMllp(msg('BIG', 'x'.repeat(1000))));
  const [ack] = await c.waitFor(1);
  t.equal(msa1(ack), 'AR');
  t.equal(msa2(ack), 'BIG');
  t.match(ack.toString(), /larger than 200 bytes/);
  const end = Date.now() + 2000;
  while (!c.isClosed() && Date.now() < end) await sleep(5);
  t.ok(c.isClosed(), 'connection closed');
  t.equal(server.stats.oversizeFrames, 1);
});

t.test('an idle connection is closed after the idle timeout, a busy one is not', async (t) => {
  const server = await start(t, {
    idleTimeoutMs: 150,
    handler: async (frame) => {
      await sleep(400);
      return ackHandler(frame, { remoteAddress: '', localPort: 0, id: '' });
    },
  });
  const idle = raw(server.port);
  await idle.connected;
  const t0 = Date.now();
  while (!idle.isClosed() && Date.now() - t0 < 3000) await sleep(5);
  t.ok(idle.isClosed());
  t.ok(Date.now() - t0 >= 100, `closed after ${Date.now() - t0} ms`);
  // The handler takes longer than the idle timeout: the ACK still arrives.
  const acks = await sendMllp('127.0.0.1', server.port, [msg('SLOW1')]);
  t.equal(msa2(acks[0]), 'SLOW1');
});

t.test('close while in flight: ACKs of received frames are sent, then connections close', async (t) => {
  const server = await startMllpServer({
    host: '127.0.0.1',
    port: 0,
    maxFrameBytes: 1 << 20,
    idleTimeoutMs: 0,
    logger: silent,
    handler: async (frame) => {
      await sleep(200);
      return ackHandler(frame, { remoteAddress: '', localPort: 0, id: '' });
    },
  });
  const c = raw(server.port);
  await c.connected;
  c.socket.write(Buffer.concat([frameMllp(msg('F1')), frameMllp(msg('F2'))]));
  await sleep(50);
  const closed = server.close(5000);
  // No new connections once closing started.
  const refused = await sendMllp('127.0.0.1', server.port, [msg('LATE')], { timeoutMs: 1000 }).then(
    () => false,
    () => true,
  );
  t.ok(refused, 'new connection refused');
  await closed;
  t.same(c.acks.map(msa2), ['F1', 'F2']);
  t.ok(c.isClosed() || (await sleep(50), c.isClosed()));
});

t.test('handler failure answers AR and the connection keeps working', async (t) => {
  const server = await start(t, {
    handler: async (frame) => {
      if (frame.includes('BOOM')) throw new Error('boom');
      return ackHandler(frame, { remoteAddress: '', localPort: 0, id: '' });
    },
  });
  const acks = await sendMllp('127.0.0.1', server.port, [msg('X1', 'BOOM'), msg('X2')]);
  t.same(acks.map(msa1), ['AR', 'AA']);
  t.same(acks.map(msa2), ['X1', 'X2']);
  t.equal(server.stats.handlerErrors, 1);
});

t.test('an accept ACK then an application ACK: both frames, in order, on the connection', async (t) => {
  const server = await start(t, {
    handler: async (frame) => {
      const m = parseHl7(frame);
      return [buildAckBytes(m, { code: 'CA' }), buildAckBytes(m, { code: 'AA' })];
    },
  });
  const c = raw(server.port);
  await c.connected;
  c.socket.write(Buffer.concat([frameMllp(msg('E1')), frameMllp(msg('E2'))]));
  const acks = await c.waitFor(4);
  t.same(acks.map(msa1), ['CA', 'AA', 'CA', 'AA']);
  t.same(acks.map(msa2), ['E1', 'E1', 'E2', 'E2']);
  c.socket.destroy();
});

t.test('undefined from the handler sends nothing', async (t) => {
  const server = await start(t, { handler: async (frame) => (frame.includes('QUIET') ? undefined : ackHandler(frame, { remoteAddress: '', localPort: 0, id: '' })) });
  const c = raw(server.port);
  await c.connected;
  c.socket.write(Buffer.concat([frameMllp(msg('Q', 'QUIET')), frameMllp(msg('LOUD'))]));
  t.same((await c.waitFor(1)).map(msa2), ['LOUD']);
  await sleep(50);
  t.equal(c.acks.length, 1);
  c.socket.destroy();
});

t.test('TLS with key and cert files', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'mllp-tls-'));
  const keyFile = join(dir, 'key.pem');
  const certFile = join(dir, 'cert.pem');
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '1', '-subj', '/CN=localhost'], {
      stdio: 'ignore',
    });
  } catch {
    t.pass('openssl not available: TLS not tested');
    return;
  }
  const server = await start(t, { tls: { keyFile, certFile } });
  const acks = await sendMllp('127.0.0.1', server.port, [msg('T1'), msg('T2')], { tls: { rejectUnauthorized: false } });
  t.same(acks.map(msa2), ['T1', 'T2']);
});
