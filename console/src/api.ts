/**
 * Calls to the gateway with the console session: the browser sends the httpOnly session cookie
 * by itself and the X-Console header that the gateway requires with it. No token is ever held.
 * The gateway's own payloads are typed from openapi/gateway.yaml (src/openapi/types.ts), FHIR
 * resources by @medplum/fhirtypes.
 */
import type { ParametersParameter } from '@medplum/fhirtypes';
import type { components } from '../../src/openapi/types';

type Schemas = components['schemas'];
export type Session = Schemas['SessionInfo'];
export type FeedReport = Schemas['FeedReport'];
export type Feed = Schemas['Feed'];
export type DeadLetter = Schemas['DeadLetter'];
export type DeadLetterDetail = Schemas['DeadLetterDetail'];
export type DeadLetterPage = Schemas['DeadLetterPage'];
export type ReplayResult = Schemas['ReplayResult'];
export type ReplayBatch = Schemas['ReplayBatch'];
export type SubscriptionDelivery = Schemas['SubscriptionDelivery'];

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

let onSessionEnded: () => void = () => undefined;

/** What to do when the gateway answers 401 (session ended by idle time, logout or restart). */
export function whenSessionEnds(fn: () => void): void {
  onSessionEnded = fn;
}

async function send(path: string, init: RequestInit = {}): Promise<Response> {
  const res = await fetch(path, { ...init, credentials: 'same-origin', cache: 'no-store', headers: { 'X-Console': '1', ...(init.headers ?? {}) } });
  if (res.status === 401) {
    onSessionEnded();
    throw new ApiError(401, 'session ended');
  }
  if (!res.ok) {
    let message = res.statusText;
    try {
      const body = (await res.json()) as { issue?: { diagnostics?: string }[]; error_description?: string };
      message = body.issue?.[0]?.diagnostics ?? body.error_description ?? message;
    } catch {
      // not JSON
    }
    throw new ApiError(res.status, message);
  }
  return res;
}

export async function getJson<T>(path: string): Promise<T> {
  return (await (await send(path)).json()) as T;
}

export async function postJson<T>(path: string, body?: unknown): Promise<T | undefined> {
  const res = await send(path, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body ?? {}) });
  return res.status === 204 ? undefined : ((await res.json()) as T);
}

/** A file the gateway answers (an export), handed to the browser as a download, never stored. */
export async function download(path: string, filename: string): Promise<void> {
  const blob = await (await send(path)).blob();
  saveBlob(blob, filename);
}

export function saveBlob(blob: Blob, filename: string): void {
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = filename;
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

/** Logs in as a registered client, or as an operator (a person acting as a client). */
export async function login(credentials: Schemas['SessionLogin']): Promise<Session> {
  const res = await fetch('/auth/session', { method: 'POST', credentials: 'same-origin', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(credentials) });
  if (!res.ok) throw new ApiError(res.status, 'login failed');
  return (await res.json()) as Session;
}

export async function currentSession(): Promise<Session | undefined> {
  const res = await fetch('/auth/session', { credentials: 'same-origin', cache: 'no-store', headers: { 'X-Console': '1' } });
  return res.ok ? ((await res.json()) as Session) : undefined;
}

export async function logout(): Promise<void> {
  await fetch('/auth/session', { method: 'DELETE', credentials: 'same-origin', headers: { 'X-Console': '1' } }).catch(() => undefined);
}

/** A Parameters value (or part) by name. */
export function param(list: ParametersParameter[] | undefined, name: string): ParametersParameter | undefined {
  return list?.find((p) => p.name === name);
}

export function num(list: ParametersParameter[] | undefined, name: string): number {
  const p = param(list, name);
  return p?.valueInteger ?? p?.valueDecimal ?? p?.valueMoney?.value ?? 0;
}
