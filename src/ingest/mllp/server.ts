/**
 * MLLP listener: HL7 v2 senders (HIS, LIS, PACS) keep a TCP (or TLS) connection open and send
 * framed messages, each answered by an ACK. Frames of one connection are handled one after the
 * other and answered in order; connections are independent. The handler returns the ACK bytes
 * (already encoded in the sender's charset) or undefined to send nothing.
 */
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { ackHeaderFromBytes, buildAckBytes } from '../hl7v2/index.js';
import { frameMllp, MllpFrameDecoder } from './frame-decoder.js';

export interface MllpConnectionInfo {
  readonly remoteAddress: string;
  readonly localPort: number;
  /** Unique per server, for logs and dead letters. */
  readonly id: string;
}

/** Answers a frame with the messages to send back, in order (none, one ACK, or an accept then an application ACK). */
export type MllpHandler = (frame: Buffer, conn: MllpConnectionInfo) => Promise<Buffer | readonly Buffer[] | undefined>;

/** The subset of pino the listener logs through. */
export interface MllpLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  debug(obj: object, msg?: string): void;
}

export interface MllpTlsOptions {
  readonly keyFile?: string;
  readonly certFile?: string;
  readonly key?: string | Buffer;
  readonly cert?: string | Buffer;
}

export interface MllpServerOptions {
  readonly host: string;
  /** 0: an ephemeral port (tests); the bound port is returned. */
  readonly port: number;
  readonly tls?: MllpTlsOptions;
  /** Largest frame accepted; a larger one gets an AR and the connection is closed. */
  readonly maxFrameBytes: number;
  /** A connection with no traffic and nothing in flight for this long is closed. 0: never. */
  readonly idleTimeoutMs: number;
  readonly handler: MllpHandler;
  readonly logger: MllpLogger;
}

export interface MllpStats {
  connections: number;
  openConnections: number;
  frames: number;
  garbageBytes: number;
  oversizeFrames: number;
  handlerErrors: number;
}

export interface MllpServer {
  readonly port: number;
  readonly stats: Readonly<MllpStats>;
  /**
   * Stops accepting, lets every connection finish the frames it has received (their ACKs are
   * sent), then closes them. Connections still busy after `graceMs` (default 10 s) are destroyed.
   */
  close(graceMs?: number): Promise<void>;
}

interface Connection {
  readonly socket: net.Socket;
  readonly info: MllpConnectionInfo;
  inFlight: number;
  chain: Promise<void>;
  closing: boolean;
}

/** Frames handled but not yet answered before a connection stops reading (back-pressure). */
const MAX_QUEUED = 64;

function tlsContext(t: MllpTlsOptions): tls.TlsOptions {
  const key = t.key ?? (t.keyFile ? readFileSync(t.keyFile) : undefined);
  const cert = t.cert ?? (t.certFile ? readFileSync(t.certFile) : undefined);
  if (!key || !cert) throw new Error('MLLP TLS needs both a key and a certificate');
  return { key, cert };
}

export async function startMllpServer(options: MllpServerOptions): Promise<MllpServer> {
  const { handler, logger, maxFrameBytes, idleTimeoutMs } = options;
  const stats: MllpStats = { connections: 0, openConnections: 0, frames: 0, garbageBytes: 0, oversizeFrames: 0, handlerErrors: 0 };
  const open = new Set<Connection>();
  let closing = false;
  let nextId = 0;

  const endWhenIdle = (c: Connection) => {
    if (c.inFlight === 0 && !c.socket.destroyed) c.socket.end();
  };

  const refuse = (frame: Buffer, text: string): Buffer =>
    buildAckBytes(ackHeaderFromBytes(frame), {
      code: 'AR',
      text,
      errors: [{ location: { segment: 'MSH', position: 1 }, hl7ErrorCode: '207', severity: 'E', text }],
    });

  const onSocket = (socket: net.Socket) => {
    if (closing) {
      socket.destroy();
      return;
    }
    stats.connections++;
    stats.openConnections++;
    const info: MllpConnectionInfo = {
      remoteAddress: socket.remoteAddress ?? '',
      localPort: socket.localPort ?? 0,
      id: `mllp-${(++nextId).toString(36)}`,
    };
    const c: Connection = { socket, info, inFlight: 0, chain: Promise.resolve(), closing: false };
    open.add(c);
    const decoder = new MllpFrameDecoder(maxFrameBytes);
    socket.setNoDelay(true);
    if (idleTimeoutMs > 0) socket.setTimeout(idleTimeoutMs);
    logger.debug({ conn: info.id, remote: info.remoteAddress }, 'MLLP connection opened');

    const send = (ack: Buffer) => {
      if (!socket.destroyed && socket.writable) socket.write(frameMllp(ack));
    };

    const handle = async (frame: Buffer) => {
      try {
        const answer = await handler(frame, info);
        for (const ack of Buffer.isBuffer(answer) ? [answer] : (answer ?? [])) send(ack);
      } catch (err) {
        stats.handlerErrors++;
        logger.error({ err, conn: info.id }, 'MLLP handler failed; answered AR');
        send(refuse(frame, 'internal error, please resend later'));
      } finally {
        c.inFlight--;
        if (c.inFlight < MAX_QUEUED / 2 && socket.isPaused() && !c.closing) socket.resume();
        if (c.closing) endWhenIdle(c);
      }
    };

    socket.on('data', (chunk: Buffer) => {
      if (c.closing) return;
      const before = decoder.garbageBytes;
      const { frames, oversize } = decoder.push(chunk);
      stats.garbageBytes += decoder.garbageBytes - before;
      if (decoder.garbageBytes > before) logger.warn({ conn: info.id, bytes: decoder.garbageBytes - before }, 'MLLP bytes outside frames discarded');
      for (const frame of frames) {
        stats.frames++;
        c.inFlight++;
        c.chain = c.chain.then(() => handle(frame));
      }
      if (oversize) {
        stats.oversizeFrames++;
        logger.warn({ conn: info.id, maxFrameBytes }, 'MLLP frame too large; refused and connection closed');
        c.closing = true;
        socket.pause();
        c.inFlight++;
        c.chain = c.chain.then(() => {
          send(refuse(oversize, `message larger than ${maxFrameBytes} bytes refused`));
          c.inFlight--;
          endWhenIdle(c);
        });
        return;
      }
      if (c.inFlight >= MAX_QUEUED) socket.pause();
    });
    socket.on('timeout', () => {
      if (c.inFlight > 0) return; // waiting on our handler is not the sender being idle
      logger.info({ conn: info.id, idleTimeoutMs }, 'MLLP connection idle; closing');
      c.closing = true;
      socket.end();
      // A peer that never answers our FIN must not keep the socket forever.
      setTimeout(() => socket.destroy(), 5000).unref();
    });
    socket.on('error', (err) => logger.warn({ err, conn: info.id }, 'MLLP socket error'));
    socket.on('close', () => {
      open.delete(c);
      stats.openConnections--;
      logger.debug({ conn: info.id }, 'MLLP connection closed');
      c.closing = true;
    });
  };

  const server: net.Server = options.tls ? tls.createServer(tlsContext(options.tls), onSocket) : net.createServer(onSocket);
  if (options.tls) {
    server.on('tlsClientError', (err: Error) => logger.warn({ err }, 'MLLP TLS handshake failed'));
  }
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: options.host, port: options.port, backlog: 1024 }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (err) => logger.error({ err }, 'MLLP server error'));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  logger.info({ host: options.host, port, tls: Boolean(options.tls) }, 'MLLP listener started');

  return {
    port,
    stats,
    async close(graceMs = 10_000) {
      closing = true;
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const c of open) {
        c.closing = true;
        c.socket.pause();
        endWhenIdle(c);
      }
      const deadline = setTimeout(() => {
        for (const c of open) c.socket.destroy();
      }, graceMs);
      deadline.unref();
      await closed;
      clearTimeout(deadline);
      logger.info({ port }, 'MLLP listener closed');
    },
  };
}
