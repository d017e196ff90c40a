/**
 * The hand-over between finding work (a subscription with something to send) and delivering it.
 * Two implementations behind one interface: in process, or a Redis stream read by a consumer
 * group, so that several gateway instances share the deliveries and the entries a crashed
 * instance had taken are claimed by another (XAUTOCLAIM) once they have been idle a lease long.
 * Either way an item only names a subscription; what to send is read from the database.
 */
import type { Redis } from 'ioredis';
import pLimit from 'p-limit';
import type { Logger } from '../logger.js';

export interface WorkItem {
  readonly id: string;
  /** The claim token the item was queued under (subscription_state.lease_owner). */
  readonly token: string;
}

export type WorkHandler = (item: WorkItem) => Promise<void>;

export interface WorkQueue {
  readonly kind: 'process' | 'redis';
  push(items: readonly WorkItem[]): Promise<void>;
  start(handler: WorkHandler): Promise<void>;
  /** Stops taking items and waits for the ones being handled. */
  stop(): Promise<void>;
}

export class LocalQueue implements WorkQueue {
  readonly kind = 'process';
  private handler?: WorkHandler;
  private readonly limit: ReturnType<typeof pLimit>;
  private readonly running = new Set<Promise<void>>();
  private stopped = false;

  constructor(concurrency: number, private readonly logger: Logger) {
    this.limit = pLimit(concurrency);
  }

  async start(handler: WorkHandler): Promise<void> {
    this.handler = handler;
    this.stopped = false;
  }

  async push(items: readonly WorkItem[]): Promise<void> {
    for (const item of items) {
      if (this.stopped || !this.handler) return;
      const handler = this.handler;
      const p = this.limit(() => handler(item)).catch((err: unknown) => this.logger.error({ err, subscription: item.id }, 'subscription delivery failed unexpectedly'));
      this.running.add(p);
      void p.finally(() => this.running.delete(p));
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.limit.clearQueue();
    await Promise.all([...this.running]);
  }
}

type StreamEntry = [id: string, fields: string[]];

function itemOf(fields: string[]): WorkItem | undefined {
  const m = new Map<string, string>();
  for (let i = 0; i + 1 < fields.length; i += 2) m.set(fields[i], fields[i + 1]);
  const id = m.get('id');
  return id ? { id, token: m.get('token') ?? '' } : undefined;
}

export interface RedisQueueOptions {
  readonly redis: Redis;
  /** Key prefix (several gateways, or tests, sharing one Redis). */
  readonly prefix: string;
  /** This instance's consumer name in the group. */
  readonly consumer: string;
  /** Entries another consumer left pending this long are claimed (its lease has run out). */
  readonly claimIdleMs: number;
  readonly concurrency: number;
  readonly logger: Logger;
}

export const STREAM_GROUP = 'dispatchers';

export class RedisQueue implements WorkQueue {
  readonly kind = 'redis';
  readonly stream: string;
  private reader?: Redis;
  private loop?: Promise<void>;
  private stopped = false;
  private readonly limit: ReturnType<typeof pLimit>;

  constructor(private readonly o: RedisQueueOptions) {
    this.stream = `${o.prefix}subscriptions:work`;
    this.limit = pLimit(o.concurrency);
  }

  async push(items: readonly WorkItem[]): Promise<void> {
    if (items.length === 0) return;
    const pipe = this.o.redis.pipeline();
    for (const it of items) pipe.xadd(this.stream, 'MAXLEN', '~', '100000', '*', 'id', it.id, 'token', it.token);
    const results = await pipe.exec();
    const failed = results?.find(([err]) => err);
    if (failed) throw failed[0] as Error;
  }

  async start(handler: WorkHandler): Promise<void> {
    try {
      await this.o.redis.xgroup('CREATE', this.stream, STREAM_GROUP, '0', 'MKSTREAM');
    } catch (e) {
      if (!/BUSYGROUP/.test((e as Error).message)) throw e;
    }
    this.stopped = false;
    // A blocking read holds its connection: it gets one of its own.
    this.reader = this.o.redis.duplicate();
    this.loop = this.run(handler);
  }

  private async handle(handler: WorkHandler, entries: StreamEntry[]): Promise<void> {
    await Promise.all(
      entries.map(([entryId, fields]) =>
        this.limit(async () => {
          const item = itemOf(fields);
          if (item) await handler(item);
          // Acknowledged only once handled: an entry of a consumer that dies stays pending.
          await this.o.redis.xack(this.stream, STREAM_GROUP, entryId);
        }).catch((err: unknown) => this.o.logger.warn({ err, entry: entryId }, 'subscription work item left pending')),
      ),
    );
  }

  private async run(handler: WorkHandler): Promise<void> {
    const reader = this.reader as Redis;
    let lastClaim = 0;
    while (!this.stopped) {
      try {
        if (Date.now() - lastClaim >= this.o.claimIdleMs / 2) {
          lastClaim = Date.now();
          const claimed = (await this.o.redis.xautoclaim(this.stream, STREAM_GROUP, this.o.consumer, this.o.claimIdleMs, '0-0', 'COUNT', 32)) as [string, StreamEntry[]];
          const entries = (claimed[1] ?? []).filter((e) => Array.isArray(e[1]));
          if (entries.length > 0) await this.handle(handler, entries);
        }
        const res = (await reader.xreadgroup('GROUP', STREAM_GROUP, this.o.consumer, 'COUNT', 32, 'BLOCK', 200, 'STREAMS', this.stream, '>')) as
          | [string, StreamEntry[]][]
          | null;
        if (this.stopped) break;
        for (const [, entries] of res ?? []) await this.handle(handler, entries);
      } catch (err) {
        if (this.stopped) break;
        this.o.logger.warn({ err }, 'subscription stream read failed; retrying');
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
    this.reader?.disconnect();
  }
}
