/**
 * The rest-hook channel: one POST of the notification Bundle to the subscriber's endpoint through
 * undici (a pooled, keep-alive Agent; connect, header and body timeouts), with the subscription's
 * headers and, when it has a secret, an HMAC-SHA256 signature of the exact body bytes:
 * `X-Signature: sha256=<hex>`. Any 2xx is a delivery; anything else, or no answer, a failure.
 */
import { createHmac } from 'node:crypto';
import { Agent, request } from 'undici';
import { guardedLookup } from './endpoint.js';

export const SIGNATURE_HEADER = 'x-signature';

export function sign(secret: string, body: string | Buffer): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;
}

export interface HookCall {
  readonly endpoint: string;
  readonly body: string;
  readonly headers: readonly (readonly [string, string])[];
  readonly secret?: string;
  readonly timeoutMs: number;
  readonly eventNumbers?: string;
  readonly signal?: AbortSignal;
}

export class RestHookSender {
  private readonly agent: Agent;

  constructor(allowedHosts: readonly string[], connectTimeoutMs: number) {
    this.agent = new Agent({
      connections: 8,
      keepAliveTimeout: 30_000,
      connect: { timeout: connectTimeoutMs, lookup: guardedLookup(allowedHosts) as never },
    });
  }

  /** Sends; resolves on a 2xx answer, throws an Error saying what went wrong otherwise. */
  async send(call: HookCall): Promise<void> {
    const headers: Record<string, string> = {};
    for (const [k, v] of call.headers) headers[k] = v;
    headers['content-type'] = 'application/fhir+json; charset=utf-8';
    if (call.secret) headers[SIGNATURE_HEADER] = sign(call.secret, call.body);
    if (call.eventNumbers) headers['x-event-numbers'] = call.eventNumbers;
    let status: number;
    try {
      const res = await request(call.endpoint, {
        method: 'POST',
        body: call.body,
        headers,
        dispatcher: this.agent,
        headersTimeout: call.timeoutMs,
        bodyTimeout: call.timeoutMs,
        signal: call.signal,
      });
      status = res.statusCode;
      await res.body.dump();
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      throw new Error(`${call.endpoint}: ${err.code ? `${err.code} ` : ''}${err.message}`, { cause: e });
    }
    if (status < 200 || status > 299) throw new Error(`${call.endpoint} answered HTTP ${status}`);
  }

  async close(): Promise<void> {
    await this.agent.close();
  }
}
