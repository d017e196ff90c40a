/**
 * The HL7 v2 ingest pipeline, the same for MLLP and HTTP:
 *   read the MSH envelope → identify the sender (AR if unknown or not allowed by this door) →
 *   parse (MSH-18, else the sender's character set) → map to a transaction Bundle → in ONE
 *   database transaction: claim (sender, MSH-10) with the ACK to answer, write the Bundle through
 *   the one write path, append the `message` AuditEvent → commit → ACK AA.
 * A message already stored from that sender is answered with its original ACK, nothing written.
 * Whatever is not stored is kept as a dead letter (in a local spool while the database is down).
 *
 * Transient failures (database unavailable, internal errors) are answered AE with ERR-3 207
 * (application internal error) and a text asking to resend: HL7 original mode has no "retry"
 * code, and AE (unlike AR) tells the sender the message itself was not refused, so interface
 * engines keep it queued and resend. Nothing is acknowledged AA that is not committed.
 */
import pLimit, { type LimitFunction } from 'p-limit';
import type { Bundle } from '@medplum/fhirtypes';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { GatewayError, isGatewayError, type GwErrorCode } from '../errors.js';
import { processBundle, type FhirServices, type Repository, type RequestContext } from '../fhir/index.js';
import { recordAccess } from '../audit/index.js';
import { joinTransaction, type Db } from '../store/index.js';
import { ackCodeFor, ackDue, acksRequestedBy, buildBatchAck, formatLocation, isHl7Batch, parseHl7, splitHl7Batch, type Hl7Location, type Hl7Message } from './hl7v2/index.js';
import { hl7Ack, readEnvelope, type AckBuilder, type Envelope } from './envelope.js';
import { identifySender, isRefusal, type Origin, type Sender, type SenderRegistry } from './senders.js';
import { DeadLetterSpool, getDeadLetter, insertDeadLetter, recordReplay, settleDeadLetters, type DeadLetterInput } from './dead-letters.js';

export type Outcome = 'stored' | 'duplicate' | 'rejected' | 'error';

export interface PipelineResult {
  /** The application ACK (AA/AE/AR; in original mode the one ACK), as kept for a resend. */
  readonly ack: Buffer;
  readonly outcome: Outcome;
  /** Set when the message was not stored. */
  readonly failure?: Failure;
  /** Id of the dead letter kept (undefined when spooled or when replaying). */
  readonly deadLetterId?: number;
}

/** Parses message bytes; throws an error with `location` (Hl7Location) when they do not parse. */
export type ParseFn = (bytes: Buffer, options: { defaultCharset: string }) => Hl7Message;

export interface MappingContext {
  readonly sender: Sender;
  readonly senderId: string;
  readonly institution: string;
  readonly receivedAt: Date;
}

/**
 * A message mapped: its transaction Bundle and, optionally, where in the message each part of the
 * Bundle came from, so that a refusal by the write path (a FHIR expression such as
 * `Bundle.entry[3].status`) is answered with an ERR naming the segment and field.
 */
export interface Mapped {
  readonly bundle: Bundle;
  readonly locate?: (expression: string) => Hl7Location | undefined;
  /**
   * Work of another concern run in the message's transaction once the Bundle is stored, through
   * the repository joined to it (the reading workflow an ORU^R01 closes, src/reading/hl7.ts):
   * `stored` is the transaction response, entry for entry; `ctx` the sender's context.
   */
  readonly afterStore?: (repo: Repository, stored: Bundle, ctx: RequestContext) => Promise<void>;
}

/** Maps a message to a transaction Bundle; throws a MappingError (location, HL7 error code) on content it cannot map. */
export type MapFn = (message: Hl7Message, ctx: MappingContext) => Mapped | Promise<Mapped>;

export interface Logger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  debug(obj: object, msg?: string): void;
}

export interface PipelineOptions {
  readonly db: Db;
  readonly fhir: Pick<FhirServices, 'repository' | 'validator'>;
  readonly senders: SenderRegistry;
  /** Parser; default the hl7v2 folder's parseHl7. */
  readonly parse?: ParseFn;
  readonly map: MapFn;
  /** ACK builder; default the hl7v2 folder's, in the sender's version, delimiters and charset. */
  readonly ack?: AckBuilder;
  /** Local directory of dead letters written while the database is down. */
  readonly spoolDir: string;
  /** Registry for the ingest metrics (the app's `app.metrics`); none: not measured. */
  readonly metrics?: Registry;
  readonly logger?: Logger;
  /** Scopes of a sender's writes; default `system/*.cruds` (the institution policy still applies). */
  readonly senderScopes?: readonly string[];
  /**
   * Messages processed at once; the rest wait their turn, without a deadline. Sized to the
   * database pool, so a burst of senders queues here instead of timing out waiting for a
   * connection (which would be mistaken for the database being down). Default 8.
   */
  readonly maxConcurrent?: number;
}

/** Why a message was not stored. */
export interface Failure {
  readonly ack: 'AE' | 'AR';
  readonly hl7Code: string;
  /** Dead-letter error code. */
  readonly errorCode: string;
  readonly text: string;
  readonly location?: Hl7Location;
  /** A FHIR expression when the write path refused the Bundle. */
  readonly expression?: string;
  /** The database or the gateway failed, not the message: the sender should resend. */
  readonly transient: boolean;
}

class Refused extends Error {
  constructor(readonly failure: Failure) {
    super(failure.text);
  }
}

const CONNECTION_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', '57P01', '57P02', '57P03', '08000', '08003', '08006']);
const HL7_CODE_BY_GW: Partial<Record<GwErrorCode, string>> = {
  GW_ERR_NOT_FOUND: '204',
  GW_ERR_MULTIPLE_MATCHES: '204',
  GW_ERR_INVALID_RESOURCE: '102',
  GW_ERR_PROFILE_VIOLATION: '102',
  GW_ERR_UNKNOWN_TYPE: '102',
};
export const RETRY_TEXT = 'Message not stored: the gateway cannot store it now; resend it later';

function asLocation(x: unknown): Hl7Location | undefined {
  const l = x as Hl7Location | undefined;
  return l && typeof l === 'object' && typeof l.segment === 'string' ? l : undefined;
}

/** Classifies any error of parsing, mapping or storing as the ACK and dead letter it leads to. */
export function classify(e: unknown): Failure {
  if (e instanceof Refused) return e.failure;
  const err = e as { name?: string; message?: string; location?: unknown; hl7Code?: unknown; hl7ErrorCode?: unknown; code?: unknown };
  if (err?.name === 'Hl7ParseError' || err?.name === 'MappingError') {
    const code = [err.hl7ErrorCode, err.hl7Code].map((c) => (c === undefined ? '' : String(c))).find((c) => /^\d{1,3}$/.test(c));
    const parse = err.name === 'Hl7ParseError';
    return {
      ack: 'AE',
      hl7Code: code ?? (parse ? '102' : '207'),
      // The parser's reason (HL7_NO_MSH …) names the problem more precisely than "parse-error".
      errorCode: parse ? (typeof err.code === 'string' && /^HL7_[A-Z_]+$/.test(err.code) ? err.code : 'parse-error') : 'mapping-error',
      text: String(err.message),
      location: asLocation(err.location),
      transient: false,
    };
  }
  if (isGatewayError(e)) {
    if (e.code === 'GW_ERR_UNAVAILABLE' || e.statusCode >= 500) {
      return { ack: 'AE', hl7Code: '207', errorCode: e.code === 'GW_ERR_UNAVAILABLE' ? 'storage-unavailable' : 'internal-error', text: RETRY_TEXT, transient: true };
    }
    const expression = e.outcome.issue.find((i) => i.expression?.length)?.expression?.[0];
    const refused = e.code === 'GW_ERR_FORBIDDEN' || e.code === 'GW_ERR_METHOD_NOT_ALLOWED';
    return { ack: refused ? 'AR' : 'AE', hl7Code: HL7_CODE_BY_GW[e.code] ?? '207', errorCode: e.code, text: e.message, expression, transient: false };
  }
  const transient = CONNECTION_CODES.has(String(err?.code ?? '')) || /connection|terminated|timeout/i.test(String(err?.message ?? ''));
  return { ack: 'AE', hl7Code: '207', errorCode: transient ? 'storage-unavailable' : 'internal-error', text: RETRY_TEXT, transient: true };
}

const refuse = (f: Omit<Failure, 'transient'>) => new Refused({ ...f, transient: false });

const TYPE_RE = /^[A-Z0-9]{3}\^[A-Z0-9]{3}$/;

function metricsOf(registry: Registry | undefined) {
  if (!registry) return undefined;
  const get = <T>(name: string, make: () => T): T => (registry.getSingleMetric(name) as T | undefined) ?? make();
  const registers = [registry];
  return {
    received: get('gateway_hl7_messages_received_total', () => new Counter({ name: 'gateway_hl7_messages_received_total', help: 'HL7 v2 messages received, by sender and message type.', labelNames: ['sender', 'type'], registers })),
    outcomes: get('gateway_hl7_messages_total', () => new Counter({ name: 'gateway_hl7_messages_total', help: 'HL7 v2 messages answered, by sender, message type and outcome (stored, duplicate, rejected, error).', labelNames: ['sender', 'type', 'outcome'], registers })),
    deadLetters: get('gateway_hl7_dead_letters_total', () => new Counter({ name: 'gateway_hl7_dead_letters_total', help: 'HL7 v2 dead letters kept, by sender and error code.', labelNames: ['sender', 'error'], registers })),
    duration: get('gateway_hl7_pipeline_duration_seconds', () => new Histogram({ name: 'gateway_hl7_pipeline_duration_seconds', help: 'Time from receiving an HL7 v2 message to its ACK, in seconds, by outcome.', labelNames: ['outcome'], buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10], registers })),
    spooled: get('gateway_hl7_dead_letters_spooled', () => new Gauge({ name: 'gateway_hl7_dead_letters_spooled', help: 'Dead letters waiting in the local spool for the database.', registers })),
    replays: get('gateway_hl7_replays_total', () => new Counter({ name: 'gateway_hl7_replays_total', help: 'Dead-letter replays, by outcome.', labelNames: ['outcome'], registers })),
  };
}

/** A message answered to its sender: the result and the ACK messages to send back, in order. */
export interface HandledMessage extends PipelineResult {
  /**
   * Original mode (MSH-15/16 empty): the one ACK. Enhanced mode: the accept ACK (CA once the
   * message is committed or kept as a dead letter, CE when it could not be, CR when refused) if
   * MSH-15 asks for it, then the application ACK (AA/AE) if MSH-16 asks and it was accepted.
   * Empty when the sender asked for none.
   */
  readonly acks: readonly Buffer[];
  /** For a batch: each message's own result, in order. */
  readonly batch?: readonly HandledMessage[];
}

export interface ReplayResult extends PipelineResult {
  readonly id: number;
}

export class IngestPipeline {
  private readonly ack: AckBuilder;
  private readonly parse: ParseFn;
  private readonly spool: DeadLetterSpool;
  private readonly metrics: ReturnType<typeof metricsOf>;
  private readonly scopes: readonly string[];
  private spoolDirty = true;
  private draining?: Promise<number>;

  private readonly gate: LimitFunction;

  constructor(private readonly opts: PipelineOptions) {
    this.ack = opts.ack ?? hl7Ack;
    this.parse = opts.parse ?? ((bytes, o) => parseHl7(bytes, o));
    this.spool = new DeadLetterSpool(opts.spoolDir);
    this.metrics = metricsOf(opts.metrics);
    this.scopes = Object.freeze([...(opts.senderScopes ?? ['system/*.cruds'])]);
    this.gate = pLimit(Math.max(1, opts.maxConcurrent ?? 8));
  }

  /**
   * Handles one message as received over MLLP or HTTP and returns the ACKs to send. A batch
   * (FHS/BHS … BTS/FTS) is split and each of its messages handled as if sent alone; the answer is
   * one batch acknowledgement holding the ACKs its messages asked for.
   */
  async handleMessage(bytes: Buffer, origin: Origin): Promise<HandledMessage> {
    if (isHl7Batch(bytes)) {
      let batch: ReturnType<typeof splitHl7Batch> | undefined;
      try {
        batch = splitHl7Batch(bytes);
      } catch {
        // Not a well-formed batch: handled (refused and kept) like any other unreadable message.
      }
      if (batch) return this.handleBatch(batch, origin);
    }
    return this.handleOne(bytes, origin);
  }

  private async handleBatch(batch: ReturnType<typeof splitHl7Batch>, origin: Origin): Promise<HandledMessage> {
    const results: HandledMessage[] = [];
    for (const m of batch.messages) results.push(await this.handleOne(m, origin));
    const ack = buildBatchAck(batch.headers, results.flatMap((r) => r.acks));
    const rank: Outcome[] = ['stored', 'duplicate', 'rejected', 'error'];
    const worst = results.reduce<Outcome>((w, r) => (rank.indexOf(r.outcome) > rank.indexOf(w) ? r.outcome : w), 'stored');
    const failed = results.find((r) => r.failure);
    return { ack, acks: [ack], outcome: worst, ...(failed?.failure ? { failure: failed.failure } : {}), batch: results };
  }

  private async handleOne(bytes: Buffer, origin: Origin): Promise<HandledMessage> {
    const started = performance.now();
    const env = readEnvelope(bytes);
    const known = env ? this.opts.senders.find(env.sendingApplication, env.sendingFacility) : undefined;
    const labels = { sender: known?.id ?? 'unknown', type: known && env && TYPE_RE.test(env.messageType) ? env.messageType : 'other' };
    this.metrics?.received.inc(labels);
    const result = await this.gate(() => this.process(bytes, origin, env, true));
    this.metrics?.outcomes.inc({ ...labels, outcome: result.outcome });
    this.metrics?.duration.observe({ outcome: result.outcome }, (performance.now() - started) / 1000);
    return { ...result, acks: this.acksFor(bytes, env, result) };
  }

  /** The ACK messages the sender asked for (MSH-15/16), given how the message fared. */
  private acksFor(bytes: Buffer, env: Envelope | undefined, result: PipelineResult): Buffer[] {
    const asked = acksRequestedBy(env?.acceptAckType ?? '', env?.applicationAckType ?? '');
    if (asked.mode === 'original') return [result.ack];
    const f = result.failure;
    // Accepted: committed, or kept as a dead letter for replay (a content error is still received).
    const accept: 'ok' | 'error' | 'reject' = !f ? 'ok' : f.ack === 'AR' ? 'reject' : f.transient ? 'error' : 'ok';
    const out: Buffer[] = [];
    if (ackDue(asked.accept, accept === 'ok')) {
      const errors = accept === 'ok' || !f ? [] : [{ hl7Code: f.hl7Code, severity: 'E' as const, location: f.location, text: f.text }];
      out.push(this.ack({ raw: bytes, code: ackCodeFor('accept', accept), ...(f && accept !== 'ok' ? { text: f.text } : {}), errors }));
    }
    if (accept === 'ok' && ackDue(asked.application, !f)) out.push(result.ack);
    return out;
  }

  /** Runs a dead letter through the pipeline again (e.g. after a mapping fix), as it first came in. */
  async replay(id: number): Promise<ReplayResult | undefined> {
    const d = await getDeadLetter(this.opts.db, id);
    if (!d) return undefined;
    if (d.status !== 'new') throw new GatewayError('GW_ERR_CONFLICT', `Dead letter ${id} is ${d.status}; only new dead letters are replayed`, { expression: 'status' });
    // DICOM posts and extract rows share the store but are not HL7: they are replayed by the DICOM
    // store and the extract loader (see routes.ts), not here.
    if (d.messageType?.startsWith('DICOM') || d.messageType?.startsWith('EXTRACT ')) {
      throw new GatewayError('GW_ERR_BUSINESS_RULE', `Dead letter ${id} is a ${d.messageType} post, not an HL7 message; it is not replayed by the HL7 pipeline`, { expression: 'messageType' });
    }
    const origin: Origin = { channel: d.channel, remoteAddress: d.remoteAddress, localPort: d.localPort, clientId: d.clientId };
    const result = await this.gate(() => this.process(d.raw, origin, readEnvelope(d.raw), false));
    const done = result.outcome === 'stored' || result.outcome === 'duplicate';
    const text = done ? result.outcome : `${result.failure?.errorCode ?? 'error'}: ${result.failure?.text ?? ''}`;
    await recordReplay(this.opts.db, id, { done, text });
    this.metrics?.replays.inc({ outcome: result.outcome });
    return { ...result, id };
  }

  /** Moves spooled dead letters into the database; returns how many moved. Safe to call often. */
  async drainSpool(): Promise<number> {
    this.draining ??= this.spool
      .drain((d, spoolId) => insertDeadLetter(this.opts.db, d, spoolId))
      .then(async (n) => {
        this.spoolDirty = (await this.spool.pending()).length > 0;
        this.metrics?.spooled.set((await this.spool.pending()).length);
        if (n > 0) this.opts.logger?.info({ moved: n }, 'spooled HL7 dead letters moved into the database');
        return n;
      })
      .finally(() => (this.draining = undefined));
    return this.draining;
  }

  /** Dead letters still waiting in the local spool. */
  async spooled(): Promise<number> {
    return (await this.spool.pending()).length;
  }

  private async process(bytes: Buffer, origin: Origin, env: Envelope | undefined, keep: boolean): Promise<PipelineResult> {
    const receivedAt = new Date();
    let sender: Sender | undefined;
    let message: Hl7Message | undefined;
    // The sender the MSH names, even when it may not send this way (kept on the dead letter).
    const named = env ? this.opts.senders.find(env.sendingApplication, env.sendingFacility) : undefined;
    try {
      if (!env) throw refuse({ ack: 'AR', hl7Code: '100', errorCode: 'parse-error', text: 'The message does not begin with an MSH segment', location: { segment: 'MSH', position: 1 } });
      const who = identifySender(this.opts.senders, env, origin);
      if (isRefusal(who)) {
        const field = who.reason === 'unsupported-type' ? 9 : 4;
        throw refuse({ ack: 'AR', hl7Code: who.reason === 'unsupported-type' ? '200' : '207', errorCode: who.reason, text: who.text, location: { segment: 'MSH', position: 1, field } });
      }
      sender = who;
      if (!/^2\.\d/.test(env.version)) {
        throw refuse({ ack: 'AR', hl7Code: '203', errorCode: 'unsupported-version', text: `Unsupported HL7 version "${env.version}"; 2.x is accepted`, location: { segment: 'MSH', position: 1, field: 12 } });
      }
      if (!env.controlId) throw refuse({ ack: 'AE', hl7Code: '101', errorCode: 'missing-control-id', text: 'MSH-10 (message control id) is required', location: { segment: 'MSH', position: 1, field: 10 } });
      message = this.parse(bytes, { defaultCharset: sender.defaultCharset });
      const stored = await this.store(bytes, message, env, sender, origin, receivedAt);
      if (this.spoolDirty) void this.drainSpool().catch(() => undefined);
      return stored;
    } catch (e) {
      const failure = classify(e);
      const ack = this.ack({ raw: bytes, message, fallbackCharset: named?.defaultCharset, code: failure.ack, text: failure.text, errors: [{ hl7Code: failure.hl7Code, severity: 'E', location: failure.location, text: failure.expression ? `${failure.expression}: ${failure.text}` : failure.text }] });
      const outcome: Outcome = failure.transient ? 'error' : 'rejected';
      this.opts.logger?.[failure.transient ? 'error' : 'warn'](
        { sender: named?.id ?? 'unknown', type: env?.messageType, controlId: env?.controlId, error: failure.errorCode, hl7Code: failure.hl7Code, ...(failure.transient ? { err: e } : {}) },
        'HL7 message not stored',
      );
      if (!keep) return { ack, outcome, failure };
      const deadLetterId = await this.keep({
        receivedAt,
        raw: bytes,
        charset: message?.charset ?? (env?.charset || named?.defaultCharset),
        senderId: named?.id,
        remoteAddress: origin.remoteAddress,
        channel: origin.channel,
        clientId: origin.clientId,
        localPort: origin.localPort,
        messageType: env?.messageType || undefined,
        controlId: env?.controlId || undefined,
        ackCode: failure.ack,
        errorCode: failure.errorCode,
        errorText: failure.text,
        errorLocation: failure.location ? formatLocation(failure.location) : failure.expression,
      });
      if (sender && !failure.transient) await this.auditFailure(sender, origin, env as Envelope, failure);
      return { ack, outcome, failure, deadLetterId };
    }
  }

  private context(sender: Sender, origin: Origin): RequestContext {
    return { channel: 'hl7v2', clientId: sender.id, institution: sender.institution, sourceIp: origin.remoteAddress, scopes: this.scopes };
  }

  /** Maps and stores a message in one transaction with its control-id row and audit record. */
  private async store(bytes: Buffer, message: Hl7Message, env: Envelope, sender: Sender, origin: Origin, receivedAt: Date): Promise<PipelineResult> {
    const ctx = this.context(sender, origin);
    const { bundle, locate, afterStore } = await this.opts.map(message, { sender, senderId: sender.id, institution: sender.institution, receivedAt });
    if (bundle?.resourceType !== 'Bundle' || bundle.type !== 'transaction') {
      throw new GatewayError('GW_ERR_INVALID_BUNDLE', 'The mapping did not produce a transaction Bundle');
    }
    const ack = this.ack({ raw: bytes, message, code: 'AA' });
    const { db, fhir } = this.opts;
    return this.located(locate, () => db.tx(async (q) => {
      // Claim the control id first: a concurrent copy of the message waits here until this one
      // commits (then sees the row) or rolls back (then stores it itself).
      const claimed = await q.query(
        `INSERT INTO hl7_processed (sender_id, control_id, message_type, ack, channel) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (sender_id, control_id) DO NOTHING RETURNING 1`,
        [sender.id, env.controlId, env.messageType, ack, origin.channel],
      );
      if (claimed.rows.length === 0) {
        const { rows } = await q.query<{ ack: Uint8Array }>('SELECT ack FROM hl7_processed WHERE sender_id = $1 AND control_id = $2', [sender.id, env.controlId]);
        return { ack: Buffer.from(rows[0].ack), outcome: 'duplicate' as const };
      }
      const repo = fhir.repository.on(joinTransaction(db, q));
      const response = await processBundle(repo, bundle, ctx, { minimal: true });
      if (afterStore) await afterStore(repo, response, ctx);
      const resources = (response.entry ?? []).map((e) => e.response?.location?.replace(/\/_history\/.*$/, '')).filter((l): l is string => !!l);
      await recordAccess(q, ctx, [
        { interaction: 'message', outcome: '0', resources, patients: resources.filter((r) => r.startsWith('Patient/')), messageType: env.messageType, messageControlId: env.controlId },
      ]);
      await settleDeadLetters(q, sender.id, env.controlId, 'stored');
      this.opts.logger?.info({ sender: sender.id, type: env.messageType, controlId: env.controlId, resources: resources.length, channel: origin.channel }, 'HL7 message stored');
      return { ack, outcome: 'stored' as const };
    }));
  }

  /** Runs a write; a refusal naming a FHIR expression is re-thrown with the HL7 location the mapping gives it. */
  private async located<T>(locate: Mapped['locate'], fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      const failure = classify(e);
      const location = !failure.transient && !failure.location && failure.expression ? locate?.(failure.expression) : undefined;
      throw location ? new Refused({ ...failure, location }) : e;
    }
  }

  /** Keeps a dead letter: in the table, or in the local spool when the database cannot take it. */
  private async keep(d: DeadLetterInput): Promise<number | undefined> {
    this.metrics?.deadLetters.inc({ sender: d.senderId ?? 'unknown', error: d.errorCode });
    try {
      return await insertDeadLetter(this.opts.db, d);
    } catch (dbErr) {
      try {
        await this.spool.write(d);
        this.spoolDirty = true;
        this.metrics?.spooled.inc();
        this.opts.logger?.warn({ sender: d.senderId ?? 'unknown', controlId: d.controlId, err: (dbErr as Error).message }, 'HL7 dead letter spooled: database unavailable');
      } catch (spoolErr) {
        // Neither store took it: the sender was answered AE and keeps the message to resend.
        this.opts.logger?.error({ sender: d.senderId ?? 'unknown', controlId: d.controlId, err: spoolErr }, 'HL7 dead letter could not be kept');
      }
      return undefined;
    }
  }

  /** Records the refused or failed message in the audit trail (outside the rolled-back transaction). */
  private async auditFailure(sender: Sender, origin: Origin, env: Envelope, failure: Failure): Promise<void> {
    try {
      await recordAccess(this.opts.db, this.context(sender, origin), [
        { interaction: 'message', outcome: '4', outcomeText: `${failure.errorCode}: ${failure.text}`.slice(0, 500), resources: [], patients: [], messageType: env.messageType, messageControlId: env.controlId },
      ]);
    } catch (e) {
      this.opts.logger?.warn({ sender: sender.id, controlId: env.controlId, err: (e as Error).message }, 'failed HL7 message not audited');
    }
  }
}
