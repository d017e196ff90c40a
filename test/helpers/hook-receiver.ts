/**
 * A rest-hook subscriber on loopback for subscription tests: records every notification Bundle
 * it is sent (with its headers), can answer with an error, and can be stopped and started again
 * on the same port to play a subscriber that goes away for a while.
 */
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { Socket } from 'node:net';
import type { Bundle, Parameters, Resource } from '@medplum/fhirtypes';
import { freePort } from './net.js';

export interface Received {
  readonly bundle: Bundle;
  readonly body: string;
  readonly headers: IncomingHttpHeaders;
  readonly at: number;
}

export interface HookReceiver {
  readonly url: string;
  readonly port: number;
  readonly received: Received[];
  /** Answer with this status instead of 200 (undefined: 200). */
  failWith?: number;
  /** Called with each notification as it arrives; the answer waits for a promise it returns. */
  onNotification?: (r: Received) => void | Promise<void>;
  start(): Promise<void>;
  /** Stops listening and cuts open connections, as a subscriber that went down. */
  stop(): Promise<void>;
}

export async function startReceiver(path = '/hook'): Promise<HookReceiver> {
  const port = await freePort();
  let server: Server | undefined;
  const sockets = new Set<Socket>();
  const r: HookReceiver = {
    url: `http://127.0.0.1:${port}${path}`,
    port,
    received: [],
    async start() {
      server = createServer((req, res) => {
        const chunks: Buffer[] = [];
        req.on('data', (c: Buffer) => chunks.push(c));
        req.on('end', () => {
          if (r.failWith) {
            res.writeHead(r.failWith).end();
            return;
          }
          const body = Buffer.concat(chunks).toString('utf8');
          const got: Received = { bundle: JSON.parse(body) as Bundle, body, headers: req.headers, at: Date.now() };
          r.received.push(got);
          void Promise.resolve(r.onNotification?.(got)).then(() => {
            if (!res.destroyed) res.writeHead(200).end();
          });
        });
      });
      server.on('connection', (s) => {
        sockets.add(s);
        s.on('close', () => sockets.delete(s));
      });
      await new Promise<void>((resolve, reject) => {
        server?.once('error', reject);
        server?.listen(port, '127.0.0.1', () => resolve());
      });
    },
    async stop() {
      const s = server;
      server = undefined;
      if (!s) return;
      const closed = new Promise<void>((resolve) => s.close(() => resolve()));
      for (const sock of sockets) sock.destroy();
      await closed;
    },
  };
  await r.start();
  return r;
}

/** The SubscriptionStatus Parameters of a notification (its first entry). */
export function statusOf(bundle: Bundle): Parameters {
  return bundle.entry?.[0]?.resource as Parameters;
}

export function paramValue(p: Parameters, name: string): unknown {
  const x = p.parameter?.find((q) => q.name === name);
  return x?.valueCode ?? x?.valueString ?? x?.valueCanonical ?? x?.valueReference?.reference;
}

/** Event numbers and focus references of a notification, in order. */
export function eventsOf(bundle: Bundle): { eventNumber: number; focus?: string }[] {
  const params = statusOf(bundle);
  return (params.parameter ?? [])
    .filter((p) => p.name === 'notification-event')
    .map((p) => ({
      eventNumber: Number(p.part?.find((x) => x.name === 'event-number')?.valueString),
      focus: p.part?.find((x) => x.name === 'focus')?.valueReference?.reference,
    }));
}

/** Polls until `check` is true; fails after `timeoutMs` with `what`. Not a timing assertion: a bound on a hang. */
export async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export interface Receipt {
  readonly eventNumber: number;
  readonly focus?: string;
  /** meta.versionId of the resource carried (full-resource content). */
  readonly versionId?: string;
  readonly r: Received;
}

/** Event notifications received, one per event: the first receipt of each number, in arrival order. */
export function firstReceipts(received: readonly Received[]): Receipt[] {
  const seen = new Set<number>();
  const out: Receipt[] = [];
  for (const r of received) {
    if (paramValue(statusOf(r.bundle), 'type') !== 'event-notification') continue;
    for (const [i, e] of eventsOf(r.bundle).entries()) {
      if (seen.has(e.eventNumber)) continue;
      seen.add(e.eventNumber);
      out.push({ ...e, versionId: (r.bundle.entry?.[1 + i]?.resource as Resource | undefined)?.meta?.versionId, r });
    }
  }
  return out;
}

/** Every event notification received (duplicates included), with its event number and focus. */
export function allReceipts(received: readonly Received[]): { eventNumber: number; focus?: string }[] {
  return received.filter((r) => paramValue(statusOf(r.bundle), 'type') === 'event-notification').flatMap((r) => eventsOf(r.bundle));
}
