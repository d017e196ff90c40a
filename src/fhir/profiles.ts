/**
 * The community's conformance resources from profiles/: StructureDefinitions (profiles and
 * extensions), SearchParameters and CodeSystems, loaded and checked once at start.
 *
 * Profiles are written in differential form; medplum's validator needs a snapshot, so
 * `generateSnapshot` builds one from the R4 base type's snapshot. It handles the simple cases
 * the community needs: cardinality, constraints, fixed[x]/pattern[x], type narrowing, children of
 * complex data types (e.g. `Patient.identifier.system`) and extension slices by URL, whose `url`
 * and `value[x]` come from the extension's own definition in the same folder. Anything it cannot
 * place (an unknown path, a slice of a non-sliceable element, a loosened cardinality, a
 * constraint that does not parse) throws a ProfileError naming the file and the element: a bad
 * profile must stop the server from starting, not surface as odd validation later.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { isResourceType, parseFhirPath, parseStructureDefinition } from '@medplum/core';
import type { CodeSystem, ElementDefinition, Resource, SearchParameter, StructureDefinition } from '@medplum/fhirtypes';
import { addSearchParameter, BASE_DEFINITION_FILES, loadBaseDefinitions, readBaseDefinitions } from './definitions.js';

const HL7_SD = 'http://hl7.org/fhir/StructureDefinition/';
const DEFAULT_EXTENSION_SLICING: ElementDefinition['slicing'] = {
  discriminator: [{ type: 'value', path: 'url' }],
  description: 'Extensions are always sliced by (at least) url',
  rules: 'open',
};
/** Differential properties copied onto the snapshot element as they are. */
const COPIED_PROPERTIES = ['short', 'definition', 'comment', 'requirements', 'mustSupport', 'binding', 'label'] as const;

/** A conformance file that cannot be loaded. The message starts with the file name. */
export class ProfileError extends Error {
  constructor(
    readonly file: string,
    readonly detail: string,
    readonly elementPath?: string,
  ) {
    super(`${file}: ${elementPath ? `element "${elementPath}": ` : ''}${detail}`);
    this.name = 'ProfileError';
  }
}

export interface LoadedProfiles {
  /** Resource profiles (derivation constraint on a resource type), with generated snapshots. */
  readonly structureDefinitions: readonly StructureDefinition[];
  /** Extension definitions, with generated snapshots. */
  readonly extensions: readonly StructureDefinition[];
  /** SearchParameters, already registered with the search-parameter index. */
  readonly searchParameters: readonly SearchParameter[];
  readonly codeSystems: readonly CodeSystem[];
  /** Other conformance resources found in the folder (ValueSets, topics...), passed through unchecked. */
  readonly others: readonly Resource[];
}

/**
 * The R4 base StructureDefinitions with their snapshots, read while snapshots are generated and
 * released by loadProfiles afterwards: kept, they would hold some 60 MB of heap for nothing.
 */
let baseSnapshots: Map<string, StructureDefinition> | undefined;

/** R4 base StructureDefinitions (resources and data types) by type name. */
function baseDefinition(type: string): StructureDefinition | undefined {
  if (!baseSnapshots) {
    const map = new Map<string, StructureDefinition>();
    for (const file of BASE_DEFINITION_FILES) {
      for (const e of readBaseDefinitions(file).entry ?? []) {
        const sd = e.resource;
        if (sd?.resourceType === 'StructureDefinition' && sd.type && sd.derivation !== 'constraint' && sd.snapshot) map.set(sd.type, sd);
      }
    }
    baseSnapshots = map;
  }
  return baseSnapshots.get(type);
}

const clone = <T>(v: T): T => structuredClone(v);

/** `Patient.extension:level.url` → `Patient.extension.url` */
function pathOfId(id: string): string {
  return id
    .split('.')
    .map((s) => s.split(':')[0])
    .join('.');
}

function parentId(id: string): string {
  const i = id.lastIndexOf('.');
  return i < 0 ? '' : id.slice(0, i);
}

function cardinality(max: string | undefined): number {
  return max === '*' || max === undefined ? Infinity : Number(max);
}

interface SnapshotContext {
  /** File name for error messages. */
  readonly file: string;
  /** Extension definitions (with snapshots) by url, for extension slices. */
  readonly extensions: ReadonlyMap<string, StructureDefinition>;
}

class SnapshotBuilder {
  private readonly elements: ElementDefinition[];

  constructor(
    private readonly sd: StructureDefinition,
    private readonly ctx: SnapshotContext,
    base: StructureDefinition,
  ) {
    this.elements = clone(base.snapshot?.element ?? []);
  }

  private fail(detail: string, id?: string): never {
    throw new ProfileError(this.ctx.file, detail, id);
  }

  private indexOf(id: string): number {
    return this.elements.findIndex((e) => e.id === id);
  }

  /** Position after the element `id` and everything under it (children and slices). */
  private endOf(id: string): number {
    let i = this.indexOf(id) + 1;
    while (i < this.elements.length) {
      const other = this.elements[i].id ?? '';
      if (!other.startsWith(id + '.') && !other.startsWith(id + ':')) break;
      i++;
    }
    return i;
  }

  /** Inserts the children of a complex data type under `id` when the differential reaches into it. */
  private expandDataType(id: string): boolean {
    const at = this.indexOf(id);
    if (at < 0) return false;
    const el = this.elements[at];
    const codes = (el.type ?? []).map((t) => t.code);
    if (codes.length !== 1 || el.contentReference) return false;
    const code = codes[0] as string;
    if (code === 'BackboneElement' || code === 'Element' || code === 'Resource' || isResourceType(code)) return false;
    const dt = baseDefinition(code);
    if (!dt || dt.kind !== 'complex-type') return false;
    if (this.elements.some((e) => e.id?.startsWith(id + '.'))) return false; // already expanded
    const path = el.path as string;
    const children = (dt.snapshot?.element ?? []).slice(1).map((c) => {
      const rest = (c.path as string).slice(code.length);
      return { ...clone(c), id: id + rest, path: path + rest };
    });
    this.elements.splice(at + 1, 0, ...children);
    return true;
  }

  /** Finds the element `id`, expanding data types on the way; fails when it does not exist. */
  private locate(id: string): number {
    let at = this.indexOf(id);
    if (at >= 0) return at;
    const parent = parentId(id);
    if (parent && this.locate(parent) >= 0 && this.expandDataType(parent)) at = this.indexOf(id);
    if (at < 0) this.fail(`does not exist in the base ${this.sd.type} definition`, id);
    return at;
  }

  private addSlice(diff: ElementDefinition, id: string): number {
    const sliceName = diff.sliceName as string;
    const slicedId = id.slice(0, id.length - sliceName.length - 1);
    if (!id.endsWith(':' + sliceName)) this.fail(`id must end with ":${sliceName}"`, id);
    const sliced = this.elements[this.locate(slicedId)];
    const isExtension = (sliced.type ?? []).some((t) => t.code === 'Extension');
    if (!sliced.slicing) {
      if (!isExtension) this.fail('slice on an element without slicing (only extensions are sliced implicitly)', id);
      sliced.slicing = clone(DEFAULT_EXTENSION_SLICING);
    }
    if (this.indexOf(id) >= 0) this.fail('slice defined twice', id);
    const slice: ElementDefinition = { ...clone(sliced), id, sliceName };
    delete slice.slicing;
    const where = this.endOf(slicedId);
    this.elements.splice(where, 0, slice);
    if (isExtension) {
      const url = diff.type?.[0]?.profile?.[0];
      if (!url) this.fail('an extension slice needs type[0].profile naming the extension definition', id);
      const ext = this.ctx.extensions.get(url);
      if (!ext) this.fail(`extension ${url} is not defined in the profiles folder`, id);
      const extElements = ext.snapshot?.element ?? [];
      const urlEl = extElements.find((e) => e.path === 'Extension.url');
      const valueEl = extElements.find((e) => e.path === 'Extension.value[x]');
      const children: ElementDefinition[] = [];
      if (urlEl) children.push({ ...clone(urlEl), id: `${id}.url`, path: `${sliced.path}.url`, fixedUri: url });
      if (valueEl) children.push({ ...clone(valueEl), id: `${id}.value[x]`, path: `${sliced.path}.value[x]` });
      this.elements.splice(where + 1, 0, ...children);
    }
    return where;
  }

  private apply(target: ElementDefinition, diff: ElementDefinition, id: string): void {
    const baseMin = target.min ?? 0;
    const baseMax = cardinality(target.max);
    if (diff.min !== undefined) {
      if (diff.min < baseMin && !diff.sliceName) this.fail(`min ${diff.min} loosens the base minimum ${baseMin}`, id);
      target.min = diff.min;
    }
    if (diff.max !== undefined) {
      if (!/^(\*|[0-9]+)$/.test(diff.max)) this.fail(`max "${diff.max}" is not a number or *`, id);
      if (cardinality(diff.max) > baseMax) this.fail(`max ${diff.max} loosens the base maximum ${target.max}`, id);
      target.max = diff.max;
    }
    if ((target.min ?? 0) > cardinality(target.max)) this.fail(`min ${target.min} is above max ${target.max}`, id);
    if (diff.type) {
      const allowed = new Set((target.type ?? []).map((t) => t.code));
      const bad = diff.type.filter((t) => !allowed.has(t.code));
      if (bad.length > 0) this.fail(`type ${bad.map((t) => t.code).join(', ')} is not allowed by the base`, id);
      target.type = clone(diff.type);
    }
    for (const c of diff.constraint ?? []) {
      if (!c.key || !c.expression || !c.severity || !c.human) this.fail('a constraint needs key, severity, human and expression', id);
      if (this.elements.some((e) => e.constraint?.some((o) => o.key === c.key))) this.fail(`constraint key ${c.key} is used twice`, id);
      try {
        parseFhirPath(c.expression);
      } catch (err) {
        this.fail(`constraint ${c.key} does not parse: ${(err as Error).message}`, id);
      }
      target.constraint = [...(target.constraint ?? []), { ...clone(c), source: this.sd.url }];
    }
    const out = target as unknown as Record<string, unknown>;
    for (const [k, v] of Object.entries(diff)) {
      if (k.startsWith('fixed') || k.startsWith('pattern')) out[k] = clone(v);
    }
    for (const k of COPIED_PROPERTIES) {
      if (diff[k] !== undefined) out[k] = clone(diff[k]);
    }
    if (diff.slicing) target.slicing = clone(diff.slicing);
  }

  build(): ElementDefinition[] {
    const root = this.sd.type as string;
    for (const diff of this.sd.differential?.element ?? []) {
      const id = diff.id ?? (diff.sliceName ? `${diff.path}:${diff.sliceName}` : (diff.path ?? ''));
      if (!diff.path || pathOfId(id) !== diff.path) this.fail(`path "${diff.path ?? ''}" does not match the id`, id);
      if (diff.path !== root && !diff.path.startsWith(root + '.')) this.fail(`path must start with ${root}`, id);
      const at = diff.sliceName ? this.addSlice(diff, id) : this.locate(id);
      this.apply(this.elements[at], diff, id);
    }
    return this.elements;
  }
}

/**
 * Returns the StructureDefinition with a snapshot generated from its differential on top of
 * the R4 base type. Only profiles of base R4 types are supported (no profile-on-profile).
 */
export function generateSnapshot(sd: StructureDefinition, ctx: SnapshotContext): StructureDefinition {
  const fail = (detail: string): never => {
    throw new ProfileError(ctx.file, detail);
  };
  if (!sd.url || !sd.name || !sd.type) fail('a StructureDefinition needs url, name and type');
  if (sd.derivation !== 'constraint') fail('only constraint profiles (derivation "constraint") are supported');
  const type = sd.type as string;
  if (sd.baseDefinition !== HL7_SD + type) fail(`baseDefinition must be ${HL7_SD + type} (profiles of profiles are not supported)`);
  const base = baseDefinition(type);
  if (!base) fail(`type ${type} is not an R4 resource or data type`);
  if (!sd.differential?.element?.length) fail('differential has no elements');
  const element = new SnapshotBuilder(sd, ctx, base as StructureDefinition).build();
  const result: StructureDefinition = { ...sd, snapshot: { element } };
  try {
    parseStructureDefinition(result);
  } catch (err) {
    fail(`generated snapshot is not usable: ${(err as Error).message}`);
  }
  return result;
}

function checkSearchParameter(sp: SearchParameter, file: string): void {
  if (!sp.url || !sp.code || !sp.type || !sp.expression || !sp.base?.length) {
    throw new ProfileError(file, 'a SearchParameter needs url, code, type, base and expression');
  }
  for (const b of sp.base) if (!isResourceType(b)) throw new ProfileError(file, `base ${b} is not a resource type`);
  try {
    parseFhirPath(sp.expression);
  } catch (err) {
    throw new ProfileError(file, `expression does not parse: ${(err as Error).message}`);
  }
}

async function readConformanceFiles(dir: string): Promise<{ file: string; resource: Resource }[]> {
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => n.endsWith('.json')).sort();
  } catch (err) {
    throw new ProfileError(dir, `cannot read the profiles folder: ${(err as Error).message}`);
  }
  const out: { file: string; resource: Resource }[] = [];
  for (const name of names) {
    const file = join(dir, name);
    let parsed: unknown;
    try {
      parsed = JSON.parse(await readFile(file, 'utf8'));
    } catch (err) {
      throw new ProfileError(file, `not valid JSON: ${(err as Error).message}`);
    }
    const rt = (parsed as { resourceType?: unknown })?.resourceType;
    if (typeof rt !== 'string') throw new ProfileError(file, 'not a FHIR resource (no resourceType)');
    out.push({ file, resource: parsed as Resource });
  }
  return out;
}

/**
 * Loads every `*.json` conformance resource of `dir`: generates snapshots for profiles and
 * extensions, checks and registers SearchParameters. Throws ProfileError on the first bad file.
 */
export async function loadProfiles(dir: string): Promise<LoadedProfiles> {
  try {
    return await loadProfileFiles(dir);
  } finally {
    baseSnapshots = undefined;
  }
}

async function loadProfileFiles(dir: string): Promise<LoadedProfiles> {
  loadBaseDefinitions();
  const files = await readConformanceFiles(dir);
  const urls = new Map<string, string>();
  for (const { file, resource } of files) {
    const url = (resource as { url?: string }).url;
    if (!url) continue;
    const seen = urls.get(url);
    if (seen) throw new ProfileError(file, `url ${url} is already defined in ${seen}`);
    urls.set(url, file);
  }

  const sds = files.filter((f) => f.resource.resourceType === 'StructureDefinition') as { file: string; resource: StructureDefinition }[];
  const extensionMap = new Map<string, StructureDefinition>();
  const noExtensions = new Map<string, StructureDefinition>();
  for (const { file, resource } of sds.filter((f) => f.resource.type === 'Extension')) {
    extensionMap.set(resource.url, generateSnapshot(resource, { file, extensions: noExtensions }));
  }
  const structureDefinitions: StructureDefinition[] = [];
  for (const { file, resource } of sds.filter((f) => f.resource.type !== 'Extension')) {
    if (resource.kind !== 'resource') throw new ProfileError(file, 'only resource profiles and extensions are supported');
    structureDefinitions.push(generateSnapshot(resource, { file, extensions: extensionMap }));
  }

  const searchParameters: SearchParameter[] = [];
  for (const { file, resource } of files) {
    if (resource.resourceType !== 'SearchParameter') continue;
    checkSearchParameter(resource, file);
    searchParameters.push(resource);
  }
  for (const sp of searchParameters) addSearchParameter(sp);

  return {
    structureDefinitions,
    extensions: [...extensionMap.values()],
    searchParameters,
    codeSystems: files.filter((f) => f.resource.resourceType === 'CodeSystem').map((f) => f.resource as CodeSystem),
    others: files
      .filter((f) => !['StructureDefinition', 'SearchParameter', 'CodeSystem'].includes(f.resource.resourceType))
      .map((f) => f.resource),
  };
}
