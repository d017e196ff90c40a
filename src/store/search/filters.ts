/**
 * Parsing of one filter parameter (`name[:modifier]=value,value`), including chains
 * (`subject:Patient.name=...`) and reverse chains (`_has:Observation:patient:code=...`).
 */
import { normalizeString } from '../index-rows.js';
import { assertType, paramDef, type ParamDef } from './params.js';
import type { Filter, ValueFilter } from './types.js';
import {
  alternatives,
  invalid,
  parseBoolean,
  parseDateValue,
  parseNumberValue,
  parseQuantityValue,
  parseReferenceValue,
  parseTokenValue,
  unescape,
  unsupported,
} from './values.js';

const MAX_HAS_DEPTH = 2;

export interface FilterContext {
  readonly baseUrl: string;
  readonly hasDepth: number;
  readonly inChain: boolean;
}

/** Parses one occurrence of a filter parameter; undefined when the value is empty (ignored). */
export function parseFilter(type: string | undefined, name: string, raw: string, ctx: FilterContext): Filter | undefined {
  if (name.startsWith('_has:')) return parseHas(type, name, raw, ctx);
  const dot = name.indexOf('.');
  if (dot > 0) return parseChain(type, name, name.slice(0, dot), name.slice(dot + 1), raw, ctx);
  const colon = name.indexOf(':');
  const code = colon < 0 ? name : name.slice(0, colon);
  const modifier = colon < 0 ? undefined : name.slice(colon + 1);
  const def = paramDef(type, code, name);
  if (raw === '') return undefined;
  if (modifier === 'missing') {
    return { kind: 'missing', name, code, type: def.type, missing: parseBoolean(name, raw) };
  }
  return parseValues(def, name, modifier, alternatives(raw), ctx);
}

function parseValues(def: ParamDef, name: string, modifier: string | undefined, alts: string[], ctx: FilterContext): ValueFilter {
  const base = { name, code: def.code, column: def.column };
  const badModifier = (): never => {
    throw unsupported(name, `modifier ':${modifier}' is not supported on a ${def.type} parameter`);
  };
  const nonEmpty = alts.filter((a) => a !== '');
  if (nonEmpty.length === 0) throw invalid(name, 'empty value');
  switch (def.type) {
    case 'string': {
      if (modifier !== undefined && modifier !== 'exact' && modifier !== 'contains') badModifier();
      const values = nonEmpty.map((a) => (modifier === 'exact' ? unescape(a) : normalizeString(unescape(a))));
      return { ...base, kind: 'string', modifier: modifier as 'exact' | 'contains' | undefined, values };
    }
    case 'token': {
      if (modifier === 'text') {
        if (def.column !== 'index') badModifier();
        return { ...base, kind: 'token', modifier: 'text', values: nonEmpty.map((a) => unescape(a).toLowerCase()) };
      }
      if (modifier !== undefined && modifier !== 'not') badModifier();
      if (def.column === 'id') {
        return { ...base, kind: 'token', modifier: modifier as 'not' | undefined, values: nonEmpty.map((a) => ({ code: unescape(a) })) };
      }
      return { ...base, kind: 'token', modifier: modifier as 'not' | undefined, values: nonEmpty.map((a) => parseTokenValue(name, a)) };
    }
    case 'date':
    case 'number':
    case 'quantity': {
      if (modifier !== undefined) badModifier();
      const parse = def.type === 'date' ? parseDateValue : def.type === 'number' ? parseNumberValue : parseQuantityValue;
      return { ...base, kind: def.type, values: nonEmpty.map((a) => parse(name, a)) };
    }
    case 'reference': {
      if (modifier === 'identifier') {
        return { ...base, kind: 'reference', modifier: 'identifier', values: nonEmpty.map((a) => parseTokenValue(name, a)) };
      }
      if (modifier !== undefined) {
        if (!/^[A-Z][A-Za-z]+$/.test(modifier)) badModifier();
        assertType(name, modifier);
        if (def.targets.length > 0 && !def.targets.includes(modifier) && !def.targets.includes('Resource')) {
          throw invalid(name, `${modifier} is not a target type of '${def.code}'`);
        }
      }
      return { ...base, kind: 'reference', values: nonEmpty.map((a) => parseReferenceValue(name, a, ctx.baseUrl, modifier)) };
    }
    case 'uri': {
      if (modifier !== undefined && modifier !== 'above' && modifier !== 'below') badModifier();
      return { ...base, kind: 'uri', modifier: modifier as 'above' | 'below' | undefined, values: nonEmpty.map(unescape) };
    }
  }
}

/** `ref[:Type].inner`: resources whose reference points at a resource matching inner. */
function parseChain(type: string | undefined, name: string, head: string, inner: string, raw: string, ctx: FilterContext): Filter | undefined {
  if (ctx.inChain) throw unsupported(name, 'only one level of chaining is supported');
  const [code, typeModifier, ...rest] = head.split(':');
  if (rest.length > 0) throw invalid(name, 'bad chain');
  const def = paramDef(type, code, name);
  if (def.type !== 'reference') throw invalid(name, `'${code}' is not a reference parameter and cannot be chained`);
  let targetType = typeModifier;
  if (targetType) {
    assertType(name, targetType);
    if (def.targets.length > 0 && !def.targets.includes(targetType)) throw invalid(name, `${targetType} is not a target type of '${code}'`);
  } else {
    const innerCode = inner.split(/[:.]/)[0];
    const candidates = def.targets.filter((t) => {
      try {
        paramDef(t, innerCode, name);
        return true;
      } catch {
        return false;
      }
    });
    if (candidates.length !== 1) {
      throw invalid(name, `the chain target is ambiguous or unknown; name it, e.g. ${code}:${candidates[0] ?? def.targets[0] ?? 'Patient'}.${inner}`);
    }
    targetType = candidates[0];
  }
  const innerFilter = parseFilter(targetType, inner, raw, { ...ctx, inChain: true });
  if (!innerFilter) return undefined;
  return { kind: 'chain', name, code, targetType, inner: innerFilter };
}

/** `_has:Source:refParam:inner`: resources pointed at by a Source resource matching inner. */
function parseHas(type: string | undefined, full: string, raw: string, ctx: FilterContext): Filter | undefined {
  if (ctx.hasDepth >= MAX_HAS_DEPTH) throw unsupported(full, `_has may be nested at most ${MAX_HAS_DEPTH} levels`);
  const parts = full.split(':');
  if (parts.length < 4 || !parts[1] || !parts[2] || !parts[3]) throw invalid(full, 'expected _has:Type:reference-parameter:parameter');
  const [, sourceType, refCode] = parts;
  assertType(full, sourceType);
  const def = paramDef(sourceType, refCode, full);
  if (def.type !== 'reference') throw invalid(full, `'${refCode}' is not a reference parameter of ${sourceType}`);
  if (type && def.targets.length > 0 && !def.targets.includes(type) && !def.targets.includes('Resource')) {
    throw invalid(full, `${sourceType}.${refCode} cannot point at ${type}`);
  }
  const innerName = parts.slice(3).join(':');
  const inner = parseFilter(sourceType, innerName, raw, { ...ctx, hasDepth: ctx.hasDepth + 1 });
  if (!inner) return undefined;
  return { kind: 'has', name: full, sourceType, refCode, inner };
}
