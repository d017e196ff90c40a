/**
 * Paths and conditions: compiled once at load, evaluated against a message's segment groups.
 */
import type { Hl7Location, Hl7Message, Hl7Repetition, Hl7Segment } from '../model.js';
import type { CCondition, Condition, GroupDef, Path } from './types.js';

const ABSOLUTE = /^([A-Z][A-Z0-9]{2})(\*)?(?:-(\d+)(?:\[(\d+|\*)\])?(?:\.(\d+)(?:\.(\d+))?)?)?$/;
const RELATIVE = /^\.(?:(\d+)(?:\.(\d+))?)?$/;

/** Returns the compiled path, or a reason why the text is not one. */
export function compilePath(text: string): Path | string {
  let m = ABSOLUTE.exec(text);
  if (m) {
    const rep = m[4] === undefined ? 1 : m[4] === '*' ? '*' : Number(m[4]);
    if (rep === 0 || m[3] === '0' || m[5] === '0' || m[6] === '0') return `positions in "${text}" are 1-based`;
    return {
      text,
      relative: false,
      segment: m[1],
      allSegments: m[2] === '*',
      field: m[3] === undefined ? undefined : Number(m[3]),
      repetition: rep,
      component: m[5] === undefined ? undefined : Number(m[5]),
      subcomponent: m[6] === undefined ? undefined : Number(m[6]),
    };
  }
  m = RELATIVE.exec(text);
  if (m) {
    if (m[1] === '0' || m[2] === '0') return `positions in "${text}" are 1-based`;
    return {
      text,
      relative: true,
      allSegments: false,
      repetition: 1,
      component: m[1] === undefined ? undefined : Number(m[1]),
      subcomponent: m[2] === undefined ? undefined : Number(m[2]),
    };
  }
  return `"${text}" is not a path (expected e.g. PID-5, PID-3[*], OBX-5.1, NTE*-3 or .2)`;
}

// ---------------------------------------------------------------- segment groups

export interface GroupNode {
  readonly name: string;
  readonly index: number;
  readonly segments: Hl7Segment[];
  readonly parent?: GroupNode;
  readonly children: GroupNode[];
}

/** Splits the segments into the groups a message file declares (root holds everything else). */
export function buildGroups(msg: Hl7Message, defs: readonly GroupDef[]): { root: GroupNode; byName: Map<string, GroupNode[]> } {
  const root: GroupNode = { name: '', index: 0, segments: [], children: [] };
  const byName = new Map<string, GroupNode[]>();
  const depth = new Map<string, number>();
  const depthOf = (d: GroupDef): number => {
    const known = depth.get(d.name);
    if (known !== undefined) return known;
    const parent = d.parent ? defs.find((p) => p.name === d.parent) : undefined;
    const v = parent ? depthOf(parent) + 1 : 1;
    depth.set(d.name, v);
    return v;
  };
  let stack: GroupNode[] = [root];
  for (const seg of msg.segments) {
    const def = defs.find((d) => d.starts.includes(seg.name));
    if (!def) {
      stack[stack.length - 1].segments.push(seg);
      continue;
    }
    const level = depthOf(def);
    const open = stack[level];
    if (stack.length > level && open?.name === def.name && !open.segments.some((s) => s.name === seg.name)) {
      stack = stack.slice(0, level + 1);
      open.segments.push(seg);
      continue;
    }
    // Close deeper groups; a child whose parent is not open hangs from the innermost open ancestor.
    stack = stack.slice(0, Math.min(level, stack.length));
    const parent = stack[stack.length - 1];
    const list = byName.get(def.name) ?? [];
    const node: GroupNode = { name: def.name, index: list.length, segments: [seg], parent, children: [] };
    list.push(node);
    byName.set(def.name, list);
    parent.children.push(node);
    stack.push(node);
  }
  return { root, byName };
}

// ---------------------------------------------------------------- values

/** A value found in the message: one repetition (or a component of one, its subcomponents as components). */
export interface Node {
  readonly data: Hl7Repetition;
  readonly loc: Hl7Location;
}

/** Where evaluation stands: the group (and, for per-segment rules, the segment) and the value at hand. */
export interface Scope {
  readonly group: GroupNode;
  readonly segment?: Hl7Segment;
  readonly node?: Node;
}

function isBlank(s: string): boolean {
  return s === '' || s === '""';
}

export function isEmptyNode(n: Node): boolean {
  return n.data.every((c) => c.every(isBlank));
}

export function scalar(n: Node | undefined): string {
  const v = n?.data[0]?.[0] ?? '';
  return v === '""' ? '' : v;
}

function narrow(data: Hl7Repetition, loc: Hl7Location, component?: number, subcomponent?: number): Node {
  if (component === undefined) return { data, loc };
  const comps = data[component - 1] ?? [];
  if (subcomponent === undefined) return { data: comps.map((s) => [s]), loc: { ...loc, component } };
  return { data: [[comps[subcomponent - 1] ?? '']], loc: { ...loc, component, subcomponent } };
}

/** Every segment of a group and of its subgroups, in message order. */
function segmentsUnder(g: GroupNode): Hl7Segment[] {
  const out = [...g.segments];
  for (const c of g.children) out.push(...segmentsUnder(c));
  return out.sort((a, b) => a.position - b.position);
}

/**
 * The segments a path names from a scope. A per-segment rule's `NTE*` is the run of NTEs right
 * after its own segment (an OBX's notes, not its neighbours'); a group's `NTE*` is that group's.
 * A single segment is looked up in the group, then its ancestors. A rule at the message level
 * (no group) sees the whole message, so a document's TXA is found though it follows an order group.
 */
function segmentsFor(path: Path, scope: Scope): Hl7Segment[] {
  const name = path.segment as string;
  if (scope.segment?.name === name) return [scope.segment];
  const atRoot = scope.group.parent === undefined;
  if (path.allSegments) {
    if (scope.segment) {
      const segs = scope.group.segments;
      const run: Hl7Segment[] = [];
      for (let i = segs.indexOf(scope.segment) + 1; i < segs.length && segs[i].name === name; i++) run.push(segs[i]);
      return run;
    }
    return (atRoot ? segmentsUnder(scope.group) : scope.group.segments).filter((s) => s.name === name);
  }
  for (let g: GroupNode | undefined = scope.group; g; g = g.parent) {
    const found = g.segments.find((s) => s.name === name);
    if (found) return [found];
  }
  if (atRoot) {
    const found = segmentsUnder(scope.group).find((s) => s.name === name);
    if (found) return [found];
  }
  return [];
}

/** Every non-empty value a path names in the scope. */
export function resolve(path: Path, scope: Scope): Node[] {
  if (path.relative) {
    if (!scope.node) return [];
    const base = scope.node;
    const n = narrow(base.data, base.loc, path.component, path.subcomponent);
    let loc = base.loc;
    if (path.component !== undefined) {
      loc = base.loc.component === undefined ? { ...base.loc, component: path.component, subcomponent: path.subcomponent } : { ...base.loc, subcomponent: path.component };
    }
    return isEmptyNode(n) ? [] : [{ data: n.data, loc }];
  }
  const out: Node[] = [];
  for (const seg of segmentsFor(path, scope)) {
    if (path.field === undefined) {
      out.push({ data: [[seg.name]], loc: { segment: seg.name, position: seg.position } });
      continue;
    }
    const field = seg.fields[path.field] ?? [];
    const reps = path.repetition === '*' ? field.map((r, i) => [r, i + 1] as const) : [[field[path.repetition - 1] ?? [], path.repetition] as const];
    for (const [rep, r] of reps) {
      const loc: Hl7Location = { segment: seg.name, position: seg.position, field: path.field, repetition: r };
      const n = narrow(rep, loc, path.component, path.subcomponent);
      if (!isEmptyNode(n)) out.push(n);
    }
  }
  return out;
}

/** The location a path names, for errors about a missing value. */
export function locationOf(path: Path, scope: Scope): Hl7Location {
  if (path.relative) return scope.node?.loc ?? { segment: scope.segment?.name ?? '?' };
  const seg = segmentsFor(path, scope)[0];
  return { segment: path.segment as string, position: seg?.position, field: path.field, component: path.component };
}

// ---------------------------------------------------------------- conditions

export function compileCondition(c: Condition, at: string, problems: { pointer: string; reason: string }[]): CCondition {
  const pathOf = (text: string, p: string): Path => {
    const r = compilePath(text);
    if (typeof r === 'string') {
      problems.push({ pointer: p, reason: r });
      return { text, relative: true, allSegments: false, repetition: 1 };
    }
    return r;
  };
  if ('all' in c) return { kind: 'all', items: c.all.map((x, i) => compileCondition(x, `${at}/all/${i}`, problems)) };
  if ('any' in c) return { kind: 'any', items: c.any.map((x, i) => compileCondition(x, `${at}/any/${i}`, problems)) };
  if ('not' in c) return { kind: 'not', item: compileCondition(c.not, `${at}/not`, problems) };
  if ('equals' in c) {
    const [p, v] = c.equals;
    return { kind: 'equals', path: pathOf(p, `${at}/equals/0`), values: typeof v === 'string' ? [v] : [...v] };
  }
  return { kind: 'present', path: pathOf(c.present, `${at}/present`) };
}

export function test(c: CCondition, scope: Scope): boolean {
  switch (c.kind) {
    case 'all':
      return c.items.every((x) => test(x, scope));
    case 'any':
      return c.items.some((x) => test(x, scope));
    case 'not':
      return !test(c.item, scope);
    case 'present':
      return resolve(c.path, scope).length > 0;
    case 'equals': {
      const vals = resolve(c.path, scope).map(scalar);
      if (vals.length === 0) return c.values.includes('');
      return vals.some((v) => c.values.includes(v));
    }
  }
}
