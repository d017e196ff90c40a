/**
 * Subscription notification latency: a rest-hook subscriber on loopback, Observations written
 * one per request at a fixed rate (200 writes/s by default), and for each write the time from
 * its commit being acknowledged to the client (the HTTP 201) to its notification reaching the
 * subscriber. Run by bench/run.ts against the gateway it started (SUBSCRIPTION_ALLOWED_HOSTS
 * must let the gateway call 127.0.0.1).
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import pLimit from 'p-limit';
import type { Bundle, Parameters } from '@medplum/fhirtypes';
import { summarize } from './stats.js';

export interface SubscriptionResult {
  readonly name: string;
  readonly writesPerSecondTarget: number;
  readonly writesPerSecond: number;
  readonly writes: number;
  readonly notified: number;
  readonly missing: number;
  readonly writeErrors: number;
  /** Writes dropped because the gateway was still busy with earlier ones after the grace period. */
  readonly unsent: number;
  readonly latencyP50Ms: number;
  readonly latencyP95Ms: number;
  readonly latencyP99Ms: number;
  readonly latencyMaxMs: number;
  readonly durationSeconds: number;
}

const BENCH_CODE = { system: 'https://fhir.county-hie.cn/CodeSystem/bench', code: 'notify' };


/** Focus ids of an event notification. */
function focusIds(bundle: Bundle): string[] {
  const params = bundle.entry?.[0]?.resource as Parameters | undefined;
  if (params?.parameter?.find((p) => p.name === 'type')?.valueCode !== 'event-notification') return [];
  return (params.parameter ?? [])
    .filter((p) => p.name === 'notification-event')
    .map((p) => p.part?.find((x) => x.name === 'focus')?.valueReference?.reference?.split('/').pop() ?? '');
}

/**
 * One run. `maxCount` is the subscription's backport-max-count: 1 sends one notification per
 * event; more lets the gateway put the events waiting for a subscriber into one notification.
 */
export async function runSubscriptionLatency(baseUrl: string, authorization: string, o: { rate: number; durationSeconds: number; maxCount: number }): Promise<SubscriptionResult> {
  const received = new Map<string, number>();
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const at = performance.now();
      for (const id of focusIds(JSON.parse(Buffer.concat(chunks).toString('utf8')) as Bundle)) if (!received.has(id)) received.set(id, at);
      res.writeHead(200).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const headers = { authorization, 'content-type': 'application/fhir+json' };
  const created = await fetch(`${baseUrl}/fhir/Subscription`, {
    method: 'POST',
    headers,
    body: JSON.stringify({
      resourceType: 'Subscription',
      status: 'requested',
      reason: 'notification latency benchmark',
      criteria: `Observation?code=${BENCH_CODE.system}|${BENCH_CODE.code}`,
      channel: {
        type: 'rest-hook',
        endpoint: `http://127.0.0.1:${port}/hook`,
        ...(o.maxCount > 1 ? { extension: [{ url: 'http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/backport-max-count', valuePositiveInt: o.maxCount }] } : {}),
      },
    }),
  });
  if (created.status !== 201) throw new Error(`creating the subscription: HTTP ${created.status} ${await created.text()}`);
  const subscriptionId = ((await created.json()) as { id: string }).id;
  try {
    // Wait for the handshake to make it active, so the first writes do not wait for it.
    for (let i = 0; i < 200; i++) {
      const s = (await (await fetch(`${baseUrl}/fhir/Subscription/${subscriptionId}`, { headers })).json()) as { status: string };
      if (s.status === 'active') break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const acked = new Map<string, number>();
    let writeErrors = 0;
    const limit = pLimit(64);
    const total = o.rate * o.durationSeconds;
    const interval = 1000 / o.rate;
    const started = performance.now();
    const pending: Promise<void>[] = [];
    for (let i = 0; i < total; i++) {
      const due = started + i * interval;
      const wait = due - performance.now();
      if (wait > 1) await new Promise((r) => setTimeout(r, wait));
      pending.push(
        limit(async () => {
          const res = await fetch(`${baseUrl}/fhir/Observation`, {
            method: 'POST',
            headers,
            body: JSON.stringify({ resourceType: 'Observation', status: 'final', code: { coding: [BENCH_CODE] }, valueQuantity: { value: i, unit: '1' } }),
          });
          const at = performance.now();
          if (res.status !== 201) {
            writeErrors++;
            await res.body?.cancel();
            return;
          }
          acked.set(((await res.json()) as { id: string }).id, at);
        }).catch(() => {
          writeErrors++;
        }),
      );
    }
    // A gateway that cannot take the rate would keep the run going for as long as its backlog
    // lasts: writes not started within the grace period are dropped and counted as unsent.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(pending), new Promise((r) => (timer = setTimeout(r, Math.max(10, o.durationSeconds) * 1000)))]);
    clearTimeout(timer);
    const unsent = limit.pendingCount;
    limit.clearQueue();
    while (limit.activeCount > 0) await new Promise((r) => setTimeout(r, 20));
    const writeSeconds = (performance.now() - started) / 1000;
    const deadline = performance.now() + 30_000;
    while ([...acked.keys()].some((id) => !received.has(id)) && performance.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    // Committed → received; a notification can overtake the HTTP answer of its own write (0 then).
    const latencies = [...acked].filter(([id]) => received.has(id)).map(([id, at]) => Math.max(0, (received.get(id) as number) - at));
    const l = summarize(latencies);
    return {
      name: `rest-hook ${o.rate} writes/s, max-count ${o.maxCount}`,
      writesPerSecondTarget: o.rate,
      writesPerSecond: Math.round(acked.size / writeSeconds),
      writes: acked.size,
      notified: latencies.length,
      missing: acked.size - latencies.length,
      writeErrors,
      unsent,
      latencyP50Ms: l.p50,
      latencyP95Ms: l.p95,
      latencyP99Ms: l.p99,
      latencyMaxMs: l.max,
      durationSeconds: Number(writeSeconds.toFixed(2)),
    };
  } finally {
    await fetch(`${baseUrl}/fhir/Subscription/${subscriptionId}`, { method: 'DELETE', headers }).catch(() => undefined);
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
