/**
 * The recognition service: judges orders ($recognize, CDS Hooks), records what the ordering
 * institution decided, marks recognised results, keeps the qualification history, and counts.
 */
import type { Coding, Meta, Resource } from '@medplum/fhirtypes';
import type { Db } from '../store/index.js';
import type { Repository } from '../fhir/repository.js';
import { SYSTEM_CONTEXT, type RequestContext } from '../fhir/context.js';
import { GatewayError } from '../errors.js';
import { recordAccess } from '../audit/index.js';
import { FHIR_BASE } from '../fhir/systems.js';
import type { Catalogue, ItemCategory } from './catalogue.js';
import { recognize, type OrderedItem, type RecognizeAnswer } from './recognize.js';
import { linkedPatients, type PatientKey } from './patients.js';
import { addEvent, addQualification, listQualifications, recognitionStats, type QualificationChange, type QualificationStatus, type StatsFilter, type StatsRow } from './store.js';

/** The mark every institution sees on a result that was recognised instead of repeated. */
export const RECOGNISED_TAG: Readonly<Coding> = Object.freeze({ system: `${FHIR_BASE}/CodeSystem/recognition`, code: 'recognised', display: '已互认 recognised' });

export const REPEAT_REASON_SYSTEM = `${FHIR_BASE}/CodeSystem/recognition-repeat-reason`;
/** Why a clinician repeated a test that could have been recognised. */
export const REPEAT_REASONS = ['clinical-change', 'patient-request', 'result-questioned', 'other'] as const;
export type RepeatReason = (typeof REPEAT_REASONS)[number];

const CATEGORIES: readonly ItemCategory[] = ['lab', 'imaging', 'ecg'];
const DAY = /^\d{4}-\d{2}-\d{2}$/;

export interface RecognitionDeps {
  readonly db: Db;
  readonly repository: Repository;
  readonly catalogue: Catalogue;
  readonly standardCodings: (coding: Coding) => Coding[];
}

export interface RecognizeRequest {
  readonly patient: PatientKey;
  readonly orders: readonly OrderedItem[];
  /** YYYY-MM-DD; default today (UTC+8, the community's day). */
  readonly orderDate?: string;
  /** USCC of the ordering institution; default the client's. */
  readonly institution?: string;
}

export interface DecisionRequest {
  readonly patient: PatientKey;
  /** Catalogue item id. */
  readonly item: string;
  readonly decision: 'accepted' | 'repeated';
  readonly reason?: RepeatReason;
  /** Results recognised (for `accepted`). */
  readonly results: readonly string[];
  readonly orderDate?: string;
  readonly institution?: string;
}

/** Today in the community's time zone (China Standard Time, UTC+8). */
export function today(now = new Date()): string {
  return new Date(now.getTime() + 8 * 3600_000).toISOString().slice(0, 10);
}

function checkDay(v: string | undefined, name: string): string | undefined {
  if (v !== undefined && (!DAY.test(v) || Number.isNaN(Date.parse(v)))) throw new GatewayError('GW_ERR_BAD_REQUEST', `${name} must be a date (YYYY-MM-DD), not "${v}"`, { expression: name });
  return v;
}

export class RecognitionService {
  constructor(private readonly deps: RecognitionDeps) {}

  get catalogue(): Catalogue {
    return this.deps.catalogue;
  }

  /** The ordering institution: the client's own; a client acting for none (administrator) names one. */
  private institutionOf(ctx: RequestContext, asked: string | undefined): string | undefined {
    if (asked && ctx.institution && asked !== ctx.institution) {
      throw new GatewayError('GW_ERR_FORBIDDEN', `Client "${ctx.clientId ?? ''}" orders for institution ${ctx.institution}, not ${asked}`, { expression: 'institution' });
    }
    return ctx.institution ?? asked;
  }

  async recognize(req: RecognizeRequest, ctx: RequestContext): Promise<RecognizeAnswer> {
    if (req.orders.length === 0) throw new GatewayError('GW_ERR_BAD_REQUEST', 'Name what is ordered: a ServiceRequest or at least one code', { expression: 'code' });
    const orderDate = checkDay(req.orderDate, 'date') ?? today();
    const institution = this.institutionOf(ctx, req.institution);
    const patients = await linkedPatients(this.deps.db, req.patient);
    const answer = await recognize(this.deps, { patients, orders: req.orders, orderDate, ...(institution ? { institution } : {}) }, ctx);
    if (institution && answer.version) {
      for (const a of answer.items) {
        if (!a.recognised || !a.item) continue;
        await addEvent(this.deps.db, {
          kind: 'offered',
          institution,
          item: a.item.id,
          catalogueVersion: answer.version.version,
          patient: patients[0],
          orderDate,
          results: a.results.filter((r) => r.reason === 'recognised').map((r) => r.reference),
          ...(ctx.clientId ? { clientId: ctx.clientId } : {}),
        });
      }
    }
    return answer;
  }

  /**
   * Records the ordering institution's decision. An accepted recognition is counted at the item's
   * price and marks each result recognised; a repeat needs a reason.
   */
  async decide(req: DecisionRequest, ctx: RequestContext): Promise<{ id: number; catalogueVersion: string; tagged: string[] }> {
    const orderDate = checkDay(req.orderDate, 'date') ?? today();
    const institution = this.institutionOf(ctx, req.institution);
    if (!institution) throw new GatewayError('GW_ERR_BAD_REQUEST', 'The ordering institution is required (institution)', { expression: 'institution' });
    const version = this.deps.catalogue.inForce(orderDate);
    const item = version ? this.deps.catalogue.item(version, req.item) : undefined;
    if (!version || !item) throw new GatewayError('GW_ERR_BAD_REQUEST', `Item "${req.item}" is not in the recognition catalogue in force on ${orderDate}`, { expression: 'item' });
    if (req.decision === 'repeated' && !req.reason) {
      throw new GatewayError('GW_ERR_BAD_REQUEST', `A repeated test needs a reason: ${REPEAT_REASONS.join(', ')}`, { expression: 'reason' });
    }
    if (req.decision === 'accepted' && req.results.length === 0) throw new GatewayError('GW_ERR_BAD_REQUEST', 'An accepted recognition names the results recognised', { expression: 'result' });
    const patients = await linkedPatients(this.deps.db, req.patient);
    // Only results of this person can be recorded as recognised for them.
    for (const ref of req.results) {
      const [type, id] = ref.split('/');
      const row = await this.deps.repository.read(type, id, ctx);
      const subject = (JSON.parse(row.content as string) as { subject?: { reference?: string } }).subject?.reference;
      if (!subject || !patients.includes(subject)) throw new GatewayError('GW_ERR_BAD_REQUEST', `${ref} is not a result of this patient`, { expression: 'result' });
    }
    const id = await addEvent(this.deps.db, {
      kind: req.decision,
      institution,
      item: item.id,
      catalogueVersion: version.version,
      patient: patients[0],
      orderDate,
      results: req.results,
      ...(req.reason ? { reason: req.reason } : {}),
      ...(req.decision === 'accepted' && item.price !== undefined ? { price: item.price } : {}),
      ...(ctx.clientId ? { clientId: ctx.clientId } : {}),
    });
    const tagged = req.decision === 'accepted' ? await this.markRecognised(req.results, ctx) : [];
    await recordAccess(this.deps.db, ctx, [{ interaction: 'operation', operation: '$recognition-decision', outcome: '0', resources: req.results, patients: [patients[0]] }]);
    return { id, catalogueVersion: version.version, tagged };
  }

  /** Adds the recognised tag to each result (a new version, by the gateway, retried on a concurrent change). */
  private async markRecognised(refs: readonly string[], ctx: RequestContext): Promise<string[]> {
    const done: string[] = [];
    const writer: RequestContext = { ...SYSTEM_CONTEXT, ...(ctx.requestId ? { requestId: ctx.requestId } : {}) };
    for (const ref of refs) {
      const [type, id] = ref.split('/');
      for (let attempt = 0; ; attempt++) {
        const row = await this.deps.repository.read(type, id, writer);
        const resource = JSON.parse(row.content as string) as Resource;
        const meta: Meta = resource.meta ?? {};
        if (meta.tag?.some((t) => t.system === RECOGNISED_TAG.system && t.code === RECOGNISED_TAG.code)) break;
        resource.meta = { ...meta, tag: [...(meta.tag ?? []), { ...RECOGNISED_TAG }] };
        try {
          await this.deps.repository.update(type, id, resource, writer, Number(row.versionId));
          done.push(ref);
          break;
        } catch (e) {
          if (!(e instanceof GatewayError && e.code === 'GW_ERR_VERSION_CONFLICT') || attempt >= 3) throw e;
        }
      }
    }
    return done;
  }

  /** Audits a refused request (403) of an operation. */
  async refused(ctx: RequestContext, operation: string, text: string): Promise<void> {
    await recordAccess(this.deps.db, ctx, [{ interaction: 'operation', operation, outcome: '4', outcomeText: text, resources: [], patients: [] }]);
  }

  stats(filter: StatsFilter): Promise<StatsRow[]> {
    checkDay(filter.from, 'start');
    checkDay(filter.to, 'end');
    return recognitionStats(this.deps.db, filter);
  }

  qualifications(filter: { institution?: string; category?: string }): Promise<QualificationChange[]> {
    return listQualifications(this.deps.db, filter);
  }

  async qualify(input: { institution: string; category: string; status: string; effectiveFrom: string; reason?: string }, ctx: RequestContext): Promise<QualificationChange> {
    if (!CATEGORIES.includes(input.category as ItemCategory)) throw new GatewayError('GW_ERR_BAD_REQUEST', `category must be one of ${CATEGORIES.join(', ')}`, { expression: 'category' });
    if (input.status !== 'qualified' && input.status !== 'suspended') throw new GatewayError('GW_ERR_BAD_REQUEST', 'status must be qualified or suspended', { expression: 'status' });
    checkDay(input.effectiveFrom, 'effectiveFrom');
    if (input.status === 'suspended' && !input.reason) throw new GatewayError('GW_ERR_BAD_REQUEST', 'A suspension needs a reason (e.g. failed external quality assessment)', { expression: 'reason' });
    return this.deps.db.tx(async (q) => {
      const change = await addQualification(q, {
        institution: input.institution,
        category: input.category as ItemCategory,
        status: input.status as QualificationStatus,
        effectiveFrom: input.effectiveFrom,
        ...(input.reason ? { reason: input.reason } : {}),
        recordedBy: ctx.clientId ?? 'gateway',
      });
      await recordAccess(q, ctx, [
        { interaction: 'operation', operation: 'recognition-qualification', outcome: '0', resources: [], patients: [], query: `institution=${input.institution}&category=${input.category}&status=${input.status}&from=${input.effectiveFrom}` },
      ]);
      return change;
    });
  }
}
