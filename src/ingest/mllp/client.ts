/**
 * A small MLLP client for tests, benchmarks and the demo: sends messages on one connection and
 * returns the ACK frames in order.
 */
import net from 'node:net';
import tls from 'node:tls';
import { frameMllp, MllpFrameDecoder } from './frame-decoder.js';

export interface SendMllpOptions {
  /** Connect with TLS (e.g. `{ rejectUnauthorized: false }` for a self-signed test cert). */
  readonly tls?: tls.ConnectionOptions;
  /** Give up after this long without all ACKs (default 30 s). */
  readonly timeoutMs?: number;
  /** Write all frames at once (default) or wait for each ACK before the next message. */
  readonly pipeline?: boolean;
}

/** Sends each message framed and resolves with one ACK per message, in order. */
export function sendMllp(host: string, port: number, messages: readonly Buffer[], options: SendMllpOptions = {}): Promise<Buffer[]> {
  return new Promise((resolve, reject) => {
    const acks: Buffer[] = [];
    const decoder = new MllpFrameDecoder(64 * 1024 * 1024);
    const pipeline = options.pipeline ?? true;
    const socket = options.tls ? tls.connect({ host, port, ...options.tls }) : net.connect({ host, port });
    const timer = setTimeout(() => finish(new Error(`MLLP: ${acks.length} of ${messages.length} ACKs after ${options.timeoutMs ?? 30_000} ms`)), options.timeoutMs ?? 30_000);
    let done = false;
    const finish = (err?: Error) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(acks);
    };
    socket.once(options.tls ? 'secureConnect' : 'connect', () => {
      if (messages.length === 0) return finish();
      if (pipeline) socket.write(Buffer.concat(messages.map(frameMllp)));
      else socket.write(frameMllp(messages[0]));
    });
    socket.on('data', (chunk: Buffer) => {
      for (const f of decoder.push(chunk).frames) {
        acks.push(f);
        if (acks.length === messages.length) return finish();
        if (!pipeline) socket.write(frameMllp(messages[acks.length]));
      }
    });
    socket.on('error', (err) => finish(err));
    socket.on('close', () => finish(acks.length === messages.length ? undefined : new Error(`MLLP: connection closed after ${acks.length} of ${messages.length} ACKs`)));
  });
}
