/**
 * Remote reading (基层检查、县级诊断): a township sends its ImagingStudy to a reading centre
 * (the county imaging or ECG centre) as a ServiceRequest with a Task; the centre claims the Task
 * and completes it with its DiagnosticReport, which is linked to the study and the request.
 *
 * The Task and the ServiceRequest belong to the requesting township, yet the centre moves them on:
 * the workflow rules here (only the owner of the Task claims and completes it, in order) decide
 * that, and those writes then run without the per-institution write restriction, still with the
 * client's identity and scopes, in one transaction through the one write path. Everything else
 * (the report itself) is tagged with the centre's institution. The writes reach subscribers
 * through the outbox like any other write.
 */
import type { Bundle, BundleEntry, CodeableConcept, DiagnosticReport, ImagingStudy, Organization, Reference, ServiceRequest, Task } from '@medplum/fhirtypes';
import { randomUUID } from 'node:crypto';
import { GatewayError } from '../errors.js';
import { processBundle, Repository, type FhirServices, type RequestContext } from '../fhir/index.js';
import { FHIR_BASE, INSTITUTION_TAG_SYSTEM, USCC_SYSTEM } from '../fhir/systems.js';
import { joinTransaction, type Db, type Queryable } from '../store/index.js';

export const READING_CATEGORIES = ['imaging', 'ecg'] as const;
export type ReadingCategory = (typeof READING_CATEGORIES)[number];

/** Identifier system of reading requests (value: a UUID the gateway assigns). */
export const READING_REQUEST_SYSTEM = `${FHIR_BASE}/sid/reading-request`;
const SNOMED = 'http://snomed.info/sct';
/** ServiceRequest.category: SNOMED CT 363679005 Imaging, 29303009 Electrocardiographic procedure. */
const CATEGORY: Record<ReadingCategory, CodeableConcept> = {
  imaging: { coding: [{ system: SNOMED, code: '363679005', display: 'Imaging' }], text: '影像诊断' },
  ecg: { coding: [{ system: SNOMED, code: '29303009', display: 'Electrocardiographic procedure' }], text: '心电诊断' },
};
const TASK_CODE: CodeableConcept = { coding: [{ system: 'http://hl7.org/fhir/CodeSystem/task-code', code: 'fulfill' }] };

export interface ReadingDeps {
  readonly db: Db;
  readonly fhir: Pick<FhirServices, 'repository' | 'validator'>;
}

export interface ReadingRequest {
  /** USCC of the reading centre. */
  readonly performer: string;
  readonly category: ReadingCategory;
  readonly note?: string;
}

export interface ReadingResult {
  readonly task: Task;
  readonly serviceRequest: ServiceRequest;
  readonly report?: DiagnosticReport;
}

type Ctx = RequestContext & { institution: string };

function tag(institution: string) {
  return { tag: [{ system: INSTITUTION_TAG_SYSTEM, code: institution }] };
}

/** A reading Task: fulfil the request, with the study to read as input. */
export function isReadingTask(task: Task): boolean {
  return task.code?.coding?.[0]?.code === 'fulfill' && !!task.input?.some((i) => i.type?.text === 'ImagingStudy');
}

/** A reading request being answered: its Task and ServiceRequest as read (with their versions). */
export interface ReadingLink {
  readonly task: Task & { id: string; meta?: { versionId?: string } };
  readonly sr: ServiceRequest & { id: string; meta?: { versionId?: string } };
}

/** The writes that close a reading request with its report: the Task completed with the report as output, the ServiceRequest completed. */
function completion(link: ReadingLink, report: string): BundleEntry[] {
  const { task, sr } = link;
  const output = [...(task.output ?? []).filter((o) => o.valueReference?.reference !== report), { type: { text: 'DiagnosticReport' }, valueReference: { reference: report } }];
  return [
    {
      resource: { ...task, status: 'completed', lastModified: new Date().toISOString(), output },
      request: { method: 'PUT', url: `Task/${task.id}`, ifMatch: `W/"${task.meta?.versionId ?? ''}"` },
    },
    { resource: { ...sr, status: 'completed' }, request: { method: 'PUT', url: `ServiceRequest/${sr.id}`, ifMatch: `W/"${sr.meta?.versionId ?? ''}"` } },
  ];
}

/** The id of a literal reference to a `type` resource (`Type/id`), else undefined. */
export function idOf(ref: Reference | undefined, type: string): string | undefined {
  const m = new RegExp(`^${type}/([^/]+)$`).exec(ref?.reference ?? '');
  return m?.[1];
}

export class ReadingService {
  constructor(private readonly deps: ReadingDeps) {}

  /**
   * Runs fn in one transaction with the repository joined to it: its writes get the same hooks as
   * any other (subscription events, so the requesting township is notified; identity linking).
   */
  private tx<T>(fn: (repo: Repository, q: Queryable) => Promise<T>): Promise<T> {
    const { db, fhir } = this.deps;
    return db.tx((q) => fn(fhir.repository.on(joinTransaction(db, q)), q));
  }

  private async organization(repo: Repository, uscc: string, ctx: RequestContext, q: Queryable, expression: string): Promise<Organization & { id: string }> {
    const found = await repo.search('Organization', { identifier: `${USCC_SYSTEM}|${uscc}` }, ctx, q);
    const org = found.entry?.[0]?.resource as (Organization & { id: string }) | undefined;
    if (!org) throw new GatewayError('GW_ERR_BUSINESS_RULE', `No member institution with USCC ${uscc}`, { expression });
    return org;
  }

  private async resource<T>(repo: Repository, type: string, id: string, ctx: RequestContext, q: Queryable): Promise<T & { id: string; meta?: { versionId?: string } }> {
    const row = await repo.read(type, id, ctx, q);
    return JSON.parse(row.content as string) as T & { id: string; meta?: { versionId?: string } };
  }

  private static response(bundle: Bundle, i: number): string {
    const location = bundle.entry?.[i]?.response?.location ?? '';
    return location.replace(/\/_history\/.*$/, '');
  }

  /** The township asks the centre to read one of its studies: ServiceRequest + Task, and the study based on the request. */
  async request(studyId: string, input: ReadingRequest, ctx: Ctx): Promise<ReadingResult> {
    return this.tx(async (repo, q) => {
      const study = await this.resource<ImagingStudy>(repo, 'ImagingStudy', studyId, ctx, q);
      const owner = study.meta?.tag?.find((t) => t.system === INSTITUTION_TAG_SYSTEM)?.code;
      if (owner !== ctx.institution) {
        throw new GatewayError('GW_ERR_FORBIDDEN', `ImagingStudy/${studyId} belongs to ${owner ?? 'no institution'}; only its own institution sends it for reading`, { expression: 'ImagingStudy' });
      }
      if (input.performer === ctx.institution) throw new GatewayError('GW_ERR_BUSINESS_RULE', 'The reading centre must be another institution', { expression: 'performer' });
      const centre = await this.organization(repo, input.performer, ctx, q, 'performer');
      const requester = await this.organization(repo, ctx.institution, ctx, q, 'institution');
      const srUrl = `urn:uuid:${randomUUID()}`;
      const modalities = (study.modality ?? []).map((m) => m.code).filter(Boolean).join('/');
      const serviceRequest: ServiceRequest = {
        resourceType: 'ServiceRequest',
        meta: tag(ctx.institution),
        identifier: [{ system: READING_REQUEST_SYSTEM, value: randomUUID() }],
        status: 'active',
        intent: 'order',
        category: [CATEGORY[input.category]],
        code: { text: `${input.category === 'ecg' ? '心电' : '影像'}远程诊断${modalities ? ` (${modalities})` : ''}` },
        subject: study.subject,
        authoredOn: new Date().toISOString(),
        requester: { reference: `Organization/${requester.id}`, display: requester.name },
        performer: [{ reference: `Organization/${centre.id}`, display: centre.name }],
        supportingInfo: [{ reference: `ImagingStudy/${study.id}` }],
        ...(input.note ? { note: [{ text: input.note }] } : {}),
      };
      const task: Task = {
        resourceType: 'Task',
        meta: tag(ctx.institution),
        status: 'requested',
        intent: 'order',
        code: TASK_CODE,
        basedOn: [{ reference: srUrl }],
        focus: { reference: srUrl },
        for: study.subject,
        authoredOn: serviceRequest.authoredOn,
        requester: serviceRequest.requester,
        owner: serviceRequest.performer?.[0],
        input: [{ type: { text: 'ImagingStudy' }, valueReference: { reference: `ImagingStudy/${study.id}` } }],
      };
      const updated: ImagingStudy = { ...study, basedOn: [...(study.basedOn ?? []), { reference: srUrl }] };
      const bundle: Bundle = {
        resourceType: 'Bundle',
        type: 'transaction',
        entry: [
          { fullUrl: srUrl, resource: serviceRequest, request: { method: 'POST', url: 'ServiceRequest' } },
          { resource: task, request: { method: 'POST', url: 'Task' } },
          { resource: updated, request: { method: 'PUT', url: `ImagingStudy/${study.id}`, ifMatch: `W/"${study.meta?.versionId ?? ''}"` } },
        ],
      };
      const res = await processBundle(repo, bundle, ctx, { minimal: true });
      const [srId, taskId] = [ReadingService.response(res, 0), ReadingService.response(res, 1)];
      return {
        serviceRequest: await this.resource<ServiceRequest>(repo, 'ServiceRequest', srId.split('/')[1], ctx, q),
        task: await this.resource<Task>(repo, 'Task', taskId.split('/')[1], ctx, q),
      };
    });
  }

  /** Checks that the client's institution owns the Task and that it is in `from`. */
  private async ownTask(repo: Repository, taskId: string, ctx: Ctx, q: Queryable, from: Task['status']): Promise<{ task: Task & { id: string }; centre: Organization & { id: string } }> {
    const task = await this.resource<Task>(repo, 'Task', taskId, ctx, q);
    if (!isReadingTask(task)) {
      throw new GatewayError('GW_ERR_BUSINESS_RULE', `Task/${taskId} is not a reading request`, { expression: 'Task' });
    }
    const centre = await this.organization(repo, ctx.institution, ctx, q, 'institution');
    if (idOf(task.owner, 'Organization') !== centre.id) {
      throw new GatewayError('GW_ERR_FORBIDDEN', `Task/${taskId} is owned by ${task.owner?.display ?? task.owner?.reference ?? 'nobody'}; only the reading centre it names may work on it`, { expression: 'Task.owner' });
    }
    if (task.status !== from) throw new GatewayError('GW_ERR_CONFLICT', `Task/${taskId} is ${task.status}, not ${from}`, { expression: 'Task.status' });
    return { task, centre };
  }

  /** The workflow's own writes on the requester's Task and ServiceRequest: the client's identity and scopes, no institution restriction. */
  private static workflow(ctx: RequestContext): RequestContext {
    return { ...ctx, institution: undefined, subordinates: false };
  }

  /** The centre takes the request: requested → in-progress. */
  async claim(taskId: string, ctx: Ctx): Promise<Task> {
    return this.tx(async (repo, q) => {
      const { task } = await this.ownTask(repo, taskId, ctx, q, 'requested');
      const next: Task = { ...task, status: 'in-progress', lastModified: new Date().toISOString() };
      const [r] = await repo.write([{ method: 'PUT', type: 'Task', id: task.id, resource: next, ifMatch: Number(task.meta?.versionId) }], ReadingService.workflow(ctx));
      return r.resource as Task;
    });
  }

  /** The centre's report: stored, linked to the study and the request; Task and ServiceRequest completed. */
  async complete(taskId: string, report: DiagnosticReport, ctx: Ctx): Promise<ReadingResult> {
    if (report?.resourceType !== 'DiagnosticReport') throw new GatewayError('GW_ERR_INVALID_RESOURCE', 'The report parameter must be a DiagnosticReport', { expression: 'report' });
    return this.tx(async (repo, q) => {
      const { task, centre } = await this.ownTask(repo, taskId, ctx, q, 'in-progress');
      const srId = idOf(task.focus, 'ServiceRequest');
      const studyRef = task.input?.find((i) => i.type?.text === 'ImagingStudy')?.valueReference;
      if (!srId || !studyRef) throw new GatewayError('GW_ERR_BUSINESS_RULE', `Task/${taskId} names no ServiceRequest or study`, { expression: 'Task.focus' });
      const sr = await this.resource<ServiceRequest>(repo, 'ServiceRequest', srId, ctx, q);
      const reportUrl = `urn:uuid:${randomUUID()}`;
      const stored: DiagnosticReport = {
        ...report,
        meta: tag(ctx.institution),
        status: report.status ?? 'final',
        category: report.category ?? sr.category,
        basedOn: [{ reference: `ServiceRequest/${srId}` }],
        subject: task.for as DiagnosticReport['subject'],
        imagingStudy: [studyRef as Reference<ImagingStudy>],
        performer: report.performer ?? [{ reference: `Organization/${centre.id}`, display: centre.name }],
        issued: report.issued ?? new Date().toISOString(),
      };
      delete (stored as { id?: string }).id;
      const entries: BundleEntry[] = [{ fullUrl: reportUrl, resource: stored, request: { method: 'POST', url: 'DiagnosticReport' } }, ...completion({ task, sr }, reportUrl)];
      // The report is the centre's own write; Task and ServiceRequest are moved on by the workflow.
      const res = await processBundle(repo, { resourceType: 'Bundle', type: 'transaction', entry: entries }, ReadingService.workflow(ctx), { minimal: true });
      const reportId = ReadingService.response(res, 0).split('/')[1];
      return {
        report: await this.resource<DiagnosticReport>(repo, 'DiagnosticReport', reportId, ctx, q),
        task: await this.resource<Task>(repo, 'Task', task.id, ctx, q),
        serviceRequest: await this.resource<ServiceRequest>(repo, 'ServiceRequest', srId, ctx, q),
      };
    });
  }

  /**
   * Closes a reading request whose report another door stored (an ORU^R01 of the centre,
   * reading/hl7.ts), in that write's transaction (`repo` joined to it): the Task completed with the
   * report as output, the ServiceRequest completed, with the workflow's rights as `complete` does.
   */
  static async finish(repo: Repository, link: ReadingLink, report: string, ctx: RequestContext): Promise<void> {
    await processBundle(repo, { resourceType: 'Bundle', type: 'transaction', entry: completion(link, report) }, ReadingService.workflow(ctx), { minimal: true });
  }
}
