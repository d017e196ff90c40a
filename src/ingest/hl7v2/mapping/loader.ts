/**
 * Loads mappings/hl7v2/: every file checked against mapping.schema.json, then compiled (paths,
 * conditions, templates, function names, variables, tables) once, at start. A bad file stops
 * loading with its name, a JSON pointer and the reason. Site folders (`sites/<name>/…`) override
 * base files of the same relative name and may add new ones.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { Ajv, type ErrorObject } from 'ajv';
import { MappingLoadError } from './errors.js';
import { VALUE_FUNCTIONS } from './functions.js';
import { compileCondition, compilePath } from './path.js';
import type {
  CDatatype,
  CField,
  CIdentity,
  CMessage,
  CompiledMappings,
  CRule,
  CValue,
  DatatypeTemplateFile,
  FieldRule,
  Identity,
  MappingFile,
  MessageFile,
  Path,
  ResourceTemplateFile,
  TablesFile,
  ValueExpr,
} from './types.js';

export const SCHEMA_FILE = 'mapping.schema.json';
export const SITES_DIR = 'sites';

export interface MappingRegistry {
  readonly base: CompiledMappings;
  readonly sites: readonly string[];
  /** The mappings of one site (base when the site has no folder). */
  forSite(site: string | undefined): CompiledMappings;
}

interface RawFile {
  readonly name: string;
  readonly path: string;
  readonly data: MappingFile;
}

function listJson(dir: string, skipSites: boolean): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const entry of readdirSync(d).sort()) {
      const full = join(d, entry);
      if (statSync(full).isDirectory()) {
        if (!(skipSites && d === dir && entry === SITES_DIR)) walk(full);
      } else if (entry.endsWith('.json') && !(d === dir && entry === SCHEMA_FILE)) out.push(full);
    }
  };
  walk(dir);
  return out;
}

function ajvPointer(e: ErrorObject): string {
  return e.instancePath;
}

type Validate = (file: string, data: unknown) => MappingFile;

function makeValidator(schemaPath: string): Validate {
  const schema = JSON.parse(readFileSync(schemaPath, 'utf8')) as object;
  const ajv = new Ajv({ allErrors: false, strict: false });
  const check = ajv.compile(schema);
  return (file, data) => {
    if (!check(data)) {
      const errors = check.errors ?? [];
      // The deepest error says most about what is wrong.
      const e = [...errors].sort((a, b) => b.instancePath.length - a.instancePath.length)[0];
      throw new MappingLoadError(file, e ? ajvPointer(e) : '', e ? `${e.message ?? 'invalid'}${e.params ? ` ${JSON.stringify(e.params)}` : ''}` : 'invalid');
    }
    return data as MappingFile;
  };
}

function readFiles(dir: string, skipSites: boolean, validate: Validate): Map<string, RawFile> {
  const files = new Map<string, RawFile>();
  for (const full of listJson(dir, skipSites)) {
    const name = relative(dir, full).split(sep).join('/').replace(/\.json$/, '');
    let data: unknown;
    try {
      data = JSON.parse(readFileSync(full, 'utf8'));
    } catch (e) {
      throw new MappingLoadError(full, '', `not JSON: ${(e as Error).message}`);
    }
    files.set(name, { name, path: full, data: validate(full, data) });
  }
  return files;
}

// ---------------------------------------------------------------- compilation

class Compiler {
  readonly datatypes = new Map<string, { c: CDatatype; raw: DatatypeTemplateFile; path: string }>();
  readonly templates = new Map<string, { raw: ResourceTemplateFile; path: string }>();
  readonly tables = new Map<string, Map<string, unknown>>();

  constructor(readonly files: Map<string, RawFile>) {
    for (const f of files.values()) {
      const base = f.name.split('/').pop() as string;
      if (f.data.kind === 'datatype') {
        this.expectName(f, f.data.name, base);
        this.datatypes.set(f.data.name, { c: { name: f.data.name, fields: [] }, raw: f.data, path: f.path });
      } else if (f.data.kind === 'resource') {
        this.expectName(f, f.data.name, base);
        this.templates.set(f.name, { raw: f.data, path: f.path });
      } else if (f.data.kind === 'tables') {
        this.addTables(f.data);
      }
    }
    for (const { c, raw, path } of this.datatypes.values()) {
      const scope = { file: path, vars: new Set(raw.params ?? []), relative: true };
      c.fields = raw.fields.map((fr, i) => this.field(fr, `/fields/${i}`, scope));
    }
    this.checkCycles();
  }

  private expectName(f: RawFile, declared: string, base: string): void {
    if (declared !== base) throw new MappingLoadError(f.path, '/name', `name "${declared}" differs from the file name "${base}"`);
  }

  private addTables(t: TablesFile): void {
    for (const [name, table] of Object.entries(t.tables)) this.tables.set(name, new Map(Object.entries(table.map)));
  }

  private checkCycles(): void {
    const state = new Map<string, 1 | 2>();
    const visit = (name: string, trail: string[]): void => {
      if (state.get(name) === 2) return;
      const d = this.datatypes.get(name);
      if (!d) return;
      if (state.get(name) === 1) throw new MappingLoadError(d.path, '', `data-type templates include each other: ${[...trail, name].join(' → ')}`);
      state.set(name, 1);
      for (const f of d.c.fields) if (f.datatype) visit(f.datatype.name, [...trail, name]);
      state.set(name, 2);
    };
    for (const name of this.datatypes.keys()) visit(name, []);
  }

  path(text: string, pointer: string, scope: { file: string; relative: boolean }): Path {
    const p = compilePath(text);
    if (typeof p === 'string') throw new MappingLoadError(scope.file, pointer, p);
    if (p.relative && !scope.relative) throw new MappingLoadError(scope.file, pointer, `relative path "${text}" is only allowed in a data-type template`);
    return p;
  }

  value(v: ValueExpr, pointer: string, scope: { file: string; vars: Set<string>; relative: boolean; message?: boolean }): CValue {
    if (typeof v === 'string') return { kind: 'path', path: this.path(v, pointer, scope) };
    if ('const' in v) return { kind: 'const', value: v.const };
    if ('var' in v) {
      if (!scope.vars.has(v.var)) throw new MappingLoadError(scope.file, pointer, `variable "${v.var}" is not declared here (declared: ${[...scope.vars].join(', ') || 'none'})`);
      return { kind: 'var', name: v.var };
    }
    if (!scope.message) throw new MappingLoadError(scope.file, pointer, `"ctx" values are only allowed in message files; pass them to templates as variables`);
    return { kind: 'ctx', fact: v.ctx };
  }

  values(
    vs: Readonly<Record<string, ValueExpr>> | undefined,
    pointer: string,
    scope: { file: string; vars: Set<string>; relative: boolean; message?: boolean },
  ): (readonly [string, CValue])[] {
    return Object.entries(vs ?? {}).map(([k, v]) => [k, this.value(v, `${pointer}/${k}`, scope)] as const);
  }

  field(f: FieldRule, pointer: string, scope: { file: string; vars: Set<string>; relative: boolean; message?: boolean }): CField {
    const problems: { pointer: string; reason: string }[] = [];
    const when = f.when ? compileCondition(f.when, `${pointer}/when`, problems) : undefined;
    if (problems.length) throw new MappingLoadError(scope.file, problems[0].pointer, problems[0].reason);
    if (when && !scope.relative) this.noRelative(when, `${pointer}/when`, scope.file);
    let datatype: CDatatype | undefined;
    if (f.type !== undefined) {
      const d = this.datatypes.get(f.type);
      if (!d) throw new MappingLoadError(scope.file, `${pointer}/type`, `unknown data-type template "${f.type}" (known: ${[...this.datatypes.keys()].join(', ')})`);
      datatype = d.c;
      const need = d.raw.params ?? [];
      const given = Object.keys(f.vars ?? {});
      const missing = need.filter((n) => !given.includes(n));
      const extra = given.filter((n) => !need.includes(n));
      if (missing.length) throw new MappingLoadError(scope.file, `${pointer}/vars`, `template "${f.type}" needs variables ${missing.join(', ')}`);
      if (extra.length) throw new MappingLoadError(scope.file, `${pointer}/vars`, `template "${f.type}" declares no variables ${extra.join(', ')}`);
    } else if (f.vars) {
      throw new MappingLoadError(scope.file, `${pointer}/vars`, 'variables are passed only to a data-type template ("type")');
    }
    if (f.fn !== undefined) {
      const fn = VALUE_FUNCTIONS[f.fn] as (typeof VALUE_FUNCTIONS)[string] | undefined;
      if (!fn) throw new MappingLoadError(scope.file, `${pointer}/fn`, `unknown value function "${f.fn}" (known: ${Object.keys(VALUE_FUNCTIONS).join(', ')})`);
      for (const a of Object.keys(f.args ?? {})) {
        if (!fn.params.includes(a)) throw new MappingLoadError(scope.file, `${pointer}/args/${a}`, `function "${f.fn}" takes no argument "${a}" (takes: ${fn.params.join(', ') || 'none'})`);
      }
      if (fn.input && f.from === undefined) throw new MappingLoadError(scope.file, pointer, `function "${f.fn}" converts a value: give "from"`);
      if (!fn.input && f.from !== undefined) throw new MappingLoadError(scope.file, `${pointer}/from`, `function "${f.fn}" reads only its arguments: drop "from"`);
      if (datatype) throw new MappingLoadError(scope.file, pointer, 'give either "fn" or "type", not both');
    } else if (f.args) {
      throw new MappingLoadError(scope.file, `${pointer}/args`, 'arguments are passed only to a value function ("fn")');
    }
    if (f.lookup !== undefined && !this.tables.has(f.lookup)) {
      throw new MappingLoadError(scope.file, `${pointer}/lookup`, `unknown lookup table "${f.lookup}" (known: ${[...this.tables.keys()].join(', ')})`);
    }
    if (f.var !== undefined && !scope.vars.has(f.var)) throw new MappingLoadError(scope.file, `${pointer}/var`, `variable "${f.var}" is not declared here`);
    if (f.refAll && f.ref === undefined) throw new MappingLoadError(scope.file, `${pointer}/refAll`, '"refAll" needs "ref"');
    return {
      target: compileTarget(f.target),
      targetText: f.target,
      from: f.from === undefined ? undefined : this.path(f.from, `${pointer}/from`, scope),
      datatype,
      fn: f.fn,
      args: this.values(f.args, `${pointer}/args`, scope),
      lookup: f.lookup,
      constValue: f.const,
      hasConst: 'const' in f,
      variable: f.var,
      ref: f.ref,
      refAll: f.refAll === true,
      vars: this.values(f.vars, `${pointer}/vars`, scope),
      when,
      required: f.required === true,
      onError: f.onError ?? 'warn',
      translate: f.translate === true,
    };
  }

  private noRelative(c: import('./types.js').CCondition, pointer: string, file: string): void {
    const paths: Path[] = [];
    const walk = (x: import('./types.js').CCondition): void => {
      if (x.kind === 'not') walk(x.item);
      else if (x.kind === 'equals' || x.kind === 'present') paths.push(x.path);
      else x.items.forEach(walk);
    };
    walk(c);
    const bad = paths.find((p) => p.relative);
    if (bad) throw new MappingLoadError(file, pointer, `relative path "${bad.text}" is only allowed in a data-type template`);
  }

  identity(i: Identity, pointer: string, scope: { file: string; vars: Set<string>; relative: boolean; message?: boolean }): CIdentity {
    return {
      prefer: i.prefer.map((v, k) => this.value(v, `${pointer}/prefer/${k}`, scope)),
      method: i.method ?? 'update',
      required: i.required === undefined ? undefined : this.path(i.required, `${pointer}/required`, scope),
    };
  }

  message(f: RawFile & { data: MessageFile }): CMessage {
    const m = f.data;
    const groupNames = new Set((m.groups ?? []).map((g) => g.name));
    (m.groups ?? []).forEach((g, i) => {
      if (g.parent !== undefined && !groupNames.has(g.parent)) throw new MappingLoadError(f.path, `/groups/${i}/parent`, `unknown group "${g.parent}"`);
    });
    const ids = new Set<string>();
    const rules: CRule[] = m.resources.map((r, i) => {
      const pointer = `/resources/${i}`;
      if (ids.has(r.id)) throw new MappingLoadError(f.path, `${pointer}/id`, `duplicate resource id "${r.id}"`);
      ids.add(r.id);
      if (r.for && 'group' in r.for && !groupNames.has(r.for.group)) throw new MappingLoadError(f.path, `${pointer}/for/group`, `unknown group "${r.for.group}"`);
      const msgScope = { file: f.path, vars: new Set<string>(), relative: false, message: true };
      const vars = this.values(r.vars, `${pointer}/vars`, msgScope);
      const inner = { file: f.path, vars: new Set(vars.map(([k]) => k)), relative: false, message: true };
      let resourceType = r.resourceType as string;
      let fields: CField[] = [];
      let identity = r.identity ? this.identity(r.identity, `${pointer}/identity`, inner) : undefined;
      if (r.template !== undefined) {
        const t = this.templates.get(r.template);
        if (!t) throw new MappingLoadError(f.path, `${pointer}/template`, `unknown resource template "${r.template}"`);
        const need = t.raw.params ?? [];
        const missing = need.filter((n) => !inner.vars.has(n));
        if (missing.length) throw new MappingLoadError(f.path, `${pointer}/vars`, `template "${r.template}" needs variables ${missing.join(', ')}`);
        const tScope = { file: t.path, vars: new Set(need), relative: false };
        resourceType = t.raw.resourceType;
        fields = t.raw.fields.map((fr, k) => this.field(fr, `/fields/${k}`, tScope));
        identity ??= t.raw.identity ? this.identity(t.raw.identity, '/identity', tScope) : undefined;
      }
      fields = fields.concat((r.fields ?? []).map((fr, k) => this.field(fr, `${pointer}/fields/${k}`, inner)));
      const problems: { pointer: string; reason: string }[] = [];
      const when = r.when ? compileCondition(r.when, `${pointer}/when`, problems) : undefined;
      if (problems.length) throw new MappingLoadError(f.path, problems[0].pointer, problems[0].reason);
      return {
        id: r.id,
        resourceType,
        forGroup: r.for && 'group' in r.for ? r.for.group : undefined,
        forSegment: r.for && 'segment' in r.for ? r.for.segment : undefined,
        when,
        vars,
        identity,
        fields,
      };
    });
    // A message's own fields must name its resources; a template's may name ones a message lacks (no reference then).
    m.resources.forEach((r, i) => {
      (r.fields ?? []).forEach((fl, k) => {
        if (fl.ref !== undefined && !ids.has(fl.ref)) throw new MappingLoadError(f.path, `/resources/${i}/fields/${k}/ref`, `unknown resource id "${fl.ref}"`);
      });
    });
    return { name: m.name, file: f.path, triggers: m.triggers, groups: m.groups ?? [], requires: m.requires ?? [], rules };
  }
}

function compileTarget(text: string): (string | number)[] {
  if (text === '.') return [];
  const out: (string | number)[] = [];
  for (const part of text.split('.')) {
    const m = /^([A-Za-z][A-Za-z0-9]*)(?:\[(\d*)\])?$/.exec(part) as RegExpExecArray;
    out.push(m[1]);
    if (m[2] !== undefined) out.push(m[2] === '' ? -1 : Number(m[2]));
  }
  return out;
}

function compileSet(files: Map<string, RawFile>, site: string | undefined): CompiledMappings {
  const c = new Compiler(files);
  const byTrigger = new Map<string, CMessage>();
  const messageTypes = new Set<string>();
  for (const f of files.values()) {
    if (f.data.kind !== 'message') continue;
    const m = c.message(f as RawFile & { data: MessageFile });
    m.triggers.forEach((t, i) => {
      const other = byTrigger.get(t);
      if (other) throw new MappingLoadError(f.path, `/triggers/${i}`, `trigger ${t} is already mapped by ${other.file}`);
      byTrigger.set(t, m);
      messageTypes.add(t.split('^')[0]);
    });
  }
  const sources = new Map([...files.values()].map((f) => [f.name, f.path]));
  return { site, byTrigger, messageTypes, tables: c.tables, sources };
}

/** Loads and compiles the base mappings and every site folder under `dir`. */
export function loadMappings(dir: string): MappingRegistry {
  const validate = makeValidator(join(dir, SCHEMA_FILE));
  const baseFiles = readFiles(dir, true, validate);
  const base = compileSet(baseFiles, undefined);
  const sitesDir = join(dir, SITES_DIR);
  let siteNames: string[];
  try {
    siteNames = readdirSync(sitesDir).filter((n) => statSync(join(sitesDir, n)).isDirectory()).sort();
  } catch {
    siteNames = [];
  }
  const sites = new Map<string, CompiledMappings>();
  for (const name of siteNames) {
    const merged = new Map(baseFiles);
    for (const [k, v] of readFiles(join(sitesDir, name), false, validate)) merged.set(k, v);
    sites.set(name, compileSet(merged, name));
  }
  return {
    base,
    sites: siteNames,
    forSite: (site) => (site !== undefined ? (sites.get(site) ?? base) : base),
  };
}
