/**
 * The mapping engine: a parsed HL7 v2 message + compiled mappings → ONE FHIR transaction Bundle.
 * Pure: no I/O, no clock, no randomness. fullUrls are `urn:uuid:`s derived from MSH-10 and each
 * resource's rule and position, so a replayed message gives the same Bundle; every resource with a
 * natural key is written as a conditional update on its identifier, so a resend updates in place.
 */
import { createHash } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import type { Bundle, BundleEntry, CodeableConcept, Coding, Identifier, Resource } from '@medplum/fhirtypes';
import { INSTITUTION_TAG_SYSTEM, mrnSystem } from '../../../fhir/systems.js';
import { valueAt, type Hl7Location, type Hl7Message, type Hl7Segment } from '../model.js';
import { HL7_ERROR, MappingError, type MappingWarning } from './errors.js';
import { ConversionError, VALUE_FUNCTIONS, type FnEnv } from './functions.js';
import type { MappingRegistry } from './loader.js';
import { buildGroups, locationOf, resolve, scalar, test, type GroupNode, type Node, type Scope } from './path.js';
import type { CDatatype, CField, CMessage, CompiledMappings, CRule, CtxFact, CValue } from './types.js';

export interface SenderContext {
  /** Unified social credit code of the sending institution. */
  readonly institution?: string;
  /** Overrides `mrnSystem(institution)` as the system of the sender's own MRNs. */
  readonly mrnSystem?: string;
  /** PID-3.4.1 naming the sender's own MRNs, when it sends other authorities' ids too. */
  readonly assigningAuthority?: string;
  /** Site folder (`mappings/hl7v2/sites/<site>`) whose overrides apply. */
  readonly site?: string;
  /** UTC offset for timestamps without one; default `+08:00`. */
  readonly timezone?: string;
}

export interface MapContext {
  readonly sender: SenderContext;
  readonly mappings: CompiledMappings | MappingRegistry;
  /** Terminology hook: extra codings (LOINC, ICD-10 …) for a local coding of OBX-3, OBR-4, DG1-3. */
  readonly translate?: (coding: Coding) => Coding[];
}

export interface MapResult {
  readonly bundle: Bundle;
  readonly warnings: MappingWarning[];
  /** The message mapping that was used (`ORU_R01` …). */
  readonly mapping: string;
}

interface Instance {
  readonly rule: CRule;
  readonly scope: Scope;
  readonly fullUrl: string;
}

type Vars = ReadonlyMap<string, unknown>;

/** A UUID derived from a seed (the same seed, the same UUID), for the fullUrls of a replayable Bundle. */
export function deterministicUuid(seed: string): string {
  const h = createHash('sha256').update(seed).digest('hex');
  const variant = ((parseInt(h[16], 16) & 0x3) | 0x8).toString(16);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-${variant}${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

function isDescendantOrSelf(g: GroupNode, ancestor: GroupNode): boolean {
  for (let x: GroupNode | undefined = g; x; x = x.parent) if (x === ancestor) return true;
  return false;
}

function groupOfSegments(root: GroupNode): Map<Hl7Segment, GroupNode> {
  const out = new Map<Hl7Segment, GroupNode>();
  const walk = (g: GroupNode): void => {
    for (const s of g.segments) out.set(s, g);
    g.children.forEach(walk);
  };
  walk(root);
  return out;
}

/** Removes holes, empty strings, empty objects and empty arrays. */
function prune(v: unknown): unknown {
  if (Array.isArray(v)) {
    const a = v.map(prune).filter((x) => x !== undefined);
    return a.length ? a : undefined;
  }
  if (v !== null && typeof v === 'object') {
    const o: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) {
      const p = prune(x);
      if (p !== undefined) o[k] = p;
    }
    return Object.keys(o).length ? o : undefined;
  }
  return v === '' || v === null ? undefined : v;
}

/** Walks (creating as needed) to the holder of the last token. */
function container(root: Record<string, unknown>, tokens: readonly (string | number)[]): Record<string | number, unknown> {
  let cur = root as Record<string | number, unknown>;
  tokens.slice(0, -1).forEach((t, i) => {
    const next = tokens[i + 1];
    if (t === -1) {
      const o = {};
      (cur as unknown as unknown[]).push(o);
      cur = o;
      return;
    }
    if (cur[t] === undefined || cur[t] === null || typeof cur[t] !== 'object') cur[t] = typeof next === 'number' ? [] : {};
    cur = cur[t] as Record<string | number, unknown>;
  });
  return cur;
}

/**
 * Puts values at a target: append for `[]`, else the last value wins (later rules override). An
 * appended value equal to one already there is dropped: the same number may come from two fields
 * (PID-19 and a self-guarantor's GT1-12, PID-3 and IN2-61), and a list holds it once.
 */
function assign(out: unknown, target: readonly (string | number)[], vals: unknown[]): unknown {
  if (vals.length === 0) return out;
  if (target.length === 0) {
    const v = vals[0];
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) return Object.assign((out as object | undefined) ?? {}, v);
    return v;
  }
  const root = (out !== null && typeof out === 'object' ? out : {}) as Record<string, unknown>;
  const last = target[target.length - 1];
  const parent = container(root, target);
  if (last === -1) {
    const list = parent as unknown as unknown[];
    for (const v of vals) if (!list.some((x) => isDeepStrictEqual(x, v))) list.push(v);
  }
  else parent[last] = vals[0];
  return root;
}


/** FHIR search escaping: `\`, `|`, `,` and `$` in a value are preceded by a backslash. */
export function searchEscape(value: string): string {
  return value.replace(/[\\|,$]/g, (c) => `\\${c}`);
}

class Run {
  readonly warnings: MappingWarning[] = [];
  readonly instances: Instance[] = [];
  readonly env: FnEnv;
  private readonly controlId: string;
  private readonly trigger: string;

  constructor(
    readonly msg: Hl7Message,
    readonly cm: CompiledMappings,
    readonly message: CMessage,
    readonly ctx: MapContext,
    trigger: string,
  ) {
    this.env = { timezone: ctx.sender.timezone ?? '+08:00', tables: cm.tables };
    this.controlId = valueAt(msg.segments[0], 10);
    this.trigger = trigger;
  }

  fact(f: CtxFact): unknown {
    switch (f) {
      case 'institution':
        return this.ctx.sender.institution;
      case 'mrnSystem': {
        const { mrnSystem: own, institution } = this.ctx.sender;
        return own ?? (institution ? mrnSystem(institution) : undefined);
      }
      case 'assigningAuthority':
        return this.ctx.sender.assigningAuthority;
      case 'controlId':
        return this.controlId;
      case 'trigger':
        return this.trigger;
    }
  }

  value(v: CValue, scope: Scope, vars: Vars): unknown {
    switch (v.kind) {
      case 'path':
        return resolve(v.path, scope);
      case 'const':
        return v.value;
      case 'var':
        return vars.get(v.name);
      case 'ctx':
        return this.fact(v.fact);
    }
  }

  problem(f: CField, e: ConversionError, loc: Hl7Location | undefined): void {
    if (f.onError === 'error') throw new MappingError(e.hl7Code, loc, e.message);
    if (f.onError === 'warn') this.warnings.push({ message: `${f.targetText}: ${e.message}`, location: loc, hl7Code: e.hl7Code });
  }

  convert(f: CField, node: Node | undefined, scope: Scope, vars: Vars): unknown {
    let v: unknown;
    if (f.datatype) v = this.datatype(f.datatype, node as Node, scope, new Map(f.vars.map(([k, x]) => [k, this.value(x, scope, vars)])));
    else if (f.fn) {
      const args: Record<string, unknown> = {};
      for (const [k, x] of f.args) args[k] = this.value(x, scope, vars);
      v = VALUE_FUNCTIONS[f.fn].run(node, args, this.env);
    } else v = scalar(node) || undefined;
    if (f.lookup !== undefined && v !== undefined) {
      const table = this.cm.tables.get(f.lookup) as ReadonlyMap<string, unknown>;
      const key = String(v).trim();
      const hit = table.get(key) ?? table.get(key.toUpperCase());
      if (hit === undefined) throw new ConversionError(`"${key}" is not in table ${f.lookup}`, HL7_ERROR.TABLE_VALUE_NOT_FOUND);
      v = hit;
    }
    if (f.translate && this.ctx.translate && v && typeof v === 'object') v = this.translated(v as CodeableConcept);
    return v;
  }

  translated(cc: CodeableConcept): CodeableConcept {
    const codings = [...(cc.coding ?? [])];
    for (const c of cc.coding ?? []) {
      for (const t of this.ctx.translate?.(c) ?? []) {
        if (!codings.some((x) => x.system === t.system && x.code === t.code)) codings.push(t);
      }
    }
    return { ...cc, coding: codings };
  }

  field(f: CField, scope: Scope, vars: Vars): unknown[] {
    if (f.when && !test(f.when, scope)) return [];
    if (f.ref !== undefined) return this.refs(f.ref, f.refAll, scope);
    if (f.hasConst) return [structuredClone(f.constValue)];
    if (f.variable !== undefined) {
      const v = vars.get(f.variable);
      return v === undefined || v === '' ? [] : [v];
    }
    const nodes: (Node | undefined)[] = f.from ? resolve(f.from, scope) : [undefined];
    if (f.from && nodes.length === 0) {
      if (f.required) throw new MappingError(HL7_ERROR.REQUIRED_FIELD_MISSING, locationOf(f.from, scope), `required value for ${f.targetText} is missing`);
      return [];
    }
    const out: unknown[] = [];
    for (const n of nodes) {
      try {
        const v = prune(this.convert(f, n, n ? { ...scope, node: n } : scope, vars));
        if (v !== undefined) out.push(v);
      } catch (e) {
        if (!(e instanceof ConversionError)) throw e;
        this.problem(f, e, n?.loc ?? (f.from ? locationOf(f.from, scope) : undefined));
      }
    }
    if (out.length === 0 && f.required) {
      throw new MappingError(HL7_ERROR.REQUIRED_FIELD_MISSING, f.from ? locationOf(f.from, scope) : undefined, `required value for ${f.targetText} is missing`);
    }
    return out;
  }

  datatype(d: CDatatype, node: Node, scope: Scope, vars: Vars): unknown {
    let out: unknown;
    const inner: Scope = { ...scope, node };
    for (const f of d.fields) out = assign(out, f.target, this.field(f, inner, vars));
    return out;
  }

  refs(ruleId: string, all: boolean, scope: Scope): unknown[] {
    const of = this.instances.filter((i) => i.rule.id === ruleId);
    if (all) return of.filter((i) => isDescendantOrSelf(i.scope.group, scope.group)).map((i) => ({ reference: i.fullUrl }));
    for (let g: GroupNode | undefined = scope.group; g; g = g.parent) {
      // The rule's own group or an ancestor first, then a sibling group (an order's specimen).
      const hit = of.find((i) => i.scope.group === g) ?? of.find((i) => i.scope.group.parent === g);
      if (hit) return [{ reference: hit.fullUrl }];
    }
    return of.length ? [{ reference: of[0].fullUrl }] : [];
  }

  plan(): void {
    const { root, byName } = buildGroups(this.msg, this.message.groups);
    const segGroups = groupOfSegments(root);
    for (const rule of this.message.rules) {
      let scopes: Scope[];
      if (rule.forGroup) scopes = (byName.get(rule.forGroup) ?? []).map((group) => ({ group }));
      else if (rule.forSegment) scopes = this.msg.segments.filter((s) => s.name === rule.forSegment).map((segment) => ({ group: segGroups.get(segment) as GroupNode, segment }));
      else scopes = [{ group: root }];
      scopes.forEach((scope, index) => {
        if (rule.when && !test(rule.when, scope)) return;
        const seed = `${this.controlId || createHash('sha256').update(this.msg.text).digest('hex')}|${rule.id}|${index}`;
        this.instances.push({ rule, scope, fullUrl: `urn:uuid:${deterministicUuid(seed)}` });
      });
    }
  }

  entry(inst: Instance): BundleEntry {
    const { rule, scope } = inst;
    const vars = new Map(rule.vars.map(([k, v]) => [k, this.value(v, scope, new Map())]));
    let body: Record<string, unknown> = { resourceType: rule.resourceType };
    for (const f of rule.fields) body = assign(body, f.target, this.field(f, scope, vars)) as Record<string, unknown>;
    const institution = this.ctx.sender.institution;
    if (institution) body.meta = { tag: [{ system: INSTITUTION_TAG_SYSTEM, code: institution }] };
    const resource = prune(body) as Resource;
    const key = rule.identity ? this.key(rule, resource, scope, vars) : undefined;
    let request: BundleEntry['request'];
    if (key && rule.identity?.method === 'create') request = { method: 'POST', url: rule.resourceType, ifNoneExist: key };
    else if (key) request = { method: 'PUT', url: `${rule.resourceType}?${key}` };
    else request = { method: 'POST', url: rule.resourceType };
    return { fullUrl: inst.fullUrl, resource, request };
  }

  /** The search criteria (`identifier=system|value`) a resource is keyed on for a conditional write. */
  key(rule: CRule, resource: Resource, scope: Scope, vars: Vars): string | undefined {
    const ids = ((resource as { identifier?: Identifier[] }).identifier ?? []).filter((i) => i.system && i.value);
    const identity = rule.identity as NonNullable<CRule['identity']>;
    for (const p of identity.prefer) {
      const want = this.value(p, scope, vars);
      const v = typeof want === 'string' ? want : Array.isArray(want) ? scalar(want[0] as Node | undefined) : undefined;
      if (!v) continue;
      const hit = v === '*' ? ids[0] : ids.find((i) => i.system === v);
      if (hit) return `identifier=${encodeURIComponent(searchEscape(hit.system as string))}|${encodeURIComponent(searchEscape(hit.value as string))}`;
    }
    if (identity.required) {
      throw new MappingError(HL7_ERROR.REQUIRED_FIELD_MISSING, locationOf(identity.required, scope), `no identifier to key the ${rule.resourceType} on`);
    }
    this.warnings.push({ message: `${rule.resourceType} (${rule.id}) has no key identifier: written as a plain create, a resend will duplicate it` });
    return undefined;
  }
}

function isRegistry(m: CompiledMappings | MappingRegistry): m is MappingRegistry {
  return 'forSite' in m;
}

/** Which mapping and trigger a message uses: MSH-9 type^event; EVN-1 when MSH-9.2 is empty. */
export function triggerOf(msg: Hl7Message): { type: string; event: string } {
  const msh = msg.segments[0];
  const evn = msg.segments.find((s) => s.name === 'EVN');
  return { type: valueAt(msh, 9, 1).trim().toUpperCase(), event: (valueAt(msh, 9, 2) || valueAt(evn, 1)).trim().toUpperCase() };
}

export function mapMessage(msg: Hl7Message, ctx: MapContext): MapResult {
  const cm = isRegistry(ctx.mappings) ? ctx.mappings.forSite(ctx.sender.site) : ctx.mappings;
  const msh = msg.segments[0] as Hl7Segment | undefined;
  if (msh?.name !== 'MSH') throw new MappingError(HL7_ERROR.REQUIRED_FIELD_MISSING, { segment: 'MSH', position: 1 }, 'the message does not start with MSH');
  const { type, event } = triggerOf(msg);
  const trigger = `${type}^${event}`;
  const message = cm.byTrigger.get(trigger);
  if (!message) {
    const known = cm.messageTypes.has(type);
    throw new MappingError(
      known ? HL7_ERROR.UNSUPPORTED_EVENT_CODE : HL7_ERROR.UNSUPPORTED_MESSAGE_TYPE,
      { segment: 'MSH', position: 1, field: 9, component: known ? 2 : 1 },
      known ? `event ${event || '(none)'} of ${type} is not supported` : `message type ${type || '(none)'} is not supported`,
    );
  }
  for (const name of message.requires) {
    if (!msg.segments.some((s) => s.name === name)) throw new MappingError(HL7_ERROR.REQUIRED_FIELD_MISSING, { segment: name }, `segment ${name} is required in ${message.name}`);
  }
  const run = new Run(msg, cm, message, ctx, trigger);
  run.plan();
  const entry = run.instances.map((i) => run.entry(i));
  return { bundle: { resourceType: 'Bundle', type: 'transaction', entry }, warnings: run.warnings, mapping: message.name };
}
