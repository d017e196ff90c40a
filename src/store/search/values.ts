/**
 * Parsing of search values: prefixes, dates, numbers, quantities, tokens and references, with the
 * escaping rules of the FHIR search syntax (`\,` `\|` `\$` `\\`). Every bad value is a 400 naming
 * the parameter.
 */
import { GatewayError } from '../../errors.js';
import { dateRange, numberRange } from '../index-rows.js';
import type { Prefix, RangeValue, ReferenceValue, TokenValue } from './types.js';

const PREFIXES = new Set<Prefix>(['eq', 'ne', 'gt', 'lt', 'ge', 'le', 'sa', 'eb', 'ap']);

export function invalid(name: string, message: string): GatewayError {
  return new GatewayError('GW_ERR_INVALID_SEARCH', `Invalid search parameter '${name}': ${message}`, { expression: name });
}

export function unsupported(name: string, message: string): GatewayError {
  return new GatewayError('GW_ERR_UNSUPPORTED_SEARCH', `Unsupported search parameter '${name}': ${message}`, { expression: name });
}

/** Splits on an unescaped separator; escapes are kept for the next level to remove. */
export function splitEscaped(s: string, sep: string): string[] {
  const out: string[] = [];
  let cur = '';
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === '\\' && i + 1 < s.length) {
      cur += c + s[i + 1];
      i++;
    } else if (c === sep) {
      out.push(cur);
      cur = '';
    } else cur += c;
  }
  out.push(cur);
  return out;
}

export function unescape(s: string): string {
  return s.replace(/\\([\\,|$])/g, '$1');
}

/** The comma-separated alternatives of one parameter value. */
export function alternatives(raw: string): string[] {
  return splitEscaped(raw, ',');
}

function splitPrefix(name: string, raw: string): [Prefix, string] {
  const m = /^([a-z]{2})(?=[-+.\d])/.exec(raw);
  if (m) {
    if (!PREFIXES.has(m[1] as Prefix)) throw invalid(name, `unknown prefix '${m[1]}'`);
    return [m[1] as Prefix, raw.slice(2)];
  }
  if (/^[a-z]{2}/i.test(raw) && !/^\d/.test(raw)) {
    const p = raw.slice(0, 2);
    if (!PREFIXES.has(p as Prefix)) throw invalid(name, `unknown prefix or bad value '${raw}'`);
  }
  return ['eq', raw];
}

const DAYS_IN_MONTH = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/** Checks the calendar fields that `dateRange` does not: month, day, hour, minute, second. */
function validDateText(s: string): boolean {
  const m = /^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?(?:Z|[+-](\d{2}):(\d{2}))?)?)?)?$/.exec(s);
  if (!m) return false;
  const [, y, mo, d, h, mi, sec, tzh, tzm] = m;
  if (mo !== undefined && (Number(mo) < 1 || Number(mo) > 12)) return false;
  if (d !== undefined) {
    const leap = (Number(y) % 4 === 0 && Number(y) % 100 !== 0) || Number(y) % 400 === 0;
    const max = Number(mo) === 2 && !leap ? 28 : DAYS_IN_MONTH[Number(mo) - 1];
    if (Number(d) < 1 || Number(d) > max) return false;
  }
  if (h !== undefined && Number(h) > 23) return false;
  if (mi !== undefined && Number(mi) > 59) return false;
  if (sec !== undefined && Number(sec) > 59) return false;
  if (tzh !== undefined && (Number(tzh) > 14 || Number(tzm) > 59)) return false;
  return true;
}

/** Widens [lo, hi] by `fraction` of `base` on each side (the `ap` prefix). */
function widen(lo: number, hi: number, base: number, fraction: number): [number, number] {
  const d = Math.abs(base) * fraction;
  return [lo - d, hi + d];
}

export function parseDateValue(name: string, raw: string, now = Date.now()): RangeValue {
  const [prefix, text] = splitPrefix(name, raw);
  const range = validDateText(text) ? dateRange(text) : undefined;
  if (!range) throw invalid(name, `'${raw}' is not a valid date (YYYY, YYYY-MM, YYYY-MM-DD or a dateTime)`);
  let [lo, hi] = range;
  if (prefix === 'ap') {
    // Approximately: 10% of the distance between the value and now, at least a day.
    const l = Date.parse(lo);
    const h = Date.parse(hi);
    const gap = Math.max(Math.abs(now - l) * 0.1, 86_400_000);
    [lo, hi] = [new Date(l - gap).toISOString(), new Date(h + gap).toISOString()];
  }
  return { prefix, value: text, lo, hi };
}

export function parseNumberValue(name: string, raw: string): RangeValue {
  const [prefix, text] = splitPrefix(name, raw);
  const range = numberRange(text);
  if (!range) throw invalid(name, `'${raw}' is not a number`);
  const [value, lo, hi] = range;
  if (prefix === 'ap') {
    const [l, h] = widen(Number(lo), Number(hi), Number(value), 0.1);
    return { prefix, value, lo: String(l), hi: String(h) };
  }
  return { prefix, value, lo, hi };
}

/** `[prefix]value|system|code` or `[prefix]value||unit` or `[prefix]value`. */
export function parseQuantityValue(name: string, raw: string): RangeValue {
  const parts = splitEscaped(raw, '|');
  if (parts.length !== 1 && parts.length !== 3) throw invalid(name, `'${raw}' is not a quantity (value|system|code)`);
  const n = parseNumberValue(name, unescape(parts[0]));
  if (parts.length === 1) return n;
  const system = unescape(parts[1]);
  const unit = unescape(parts[2]);
  return { ...n, ...(system ? { system } : {}), ...(unit ? { unit } : {}) };
}

/** `code`, `system|code`, `|code`, `system|`. */
export function parseTokenValue(name: string, raw: string): TokenValue {
  const parts = splitEscaped(raw, '|');
  if (parts.length > 2) throw invalid(name, `'${raw}' has more than one unescaped '|'`);
  if (parts.length === 1) {
    const code = unescape(parts[0]);
    if (code === '') throw invalid(name, 'empty value');
    return { code };
  }
  const system = unescape(parts[0]);
  const code = unescape(parts[1]);
  if (system === '' && code === '') throw invalid(name, `'${raw}' has neither system nor code`);
  return { system: system === '' ? null : system, ...(code === '' ? {} : { code }) };
}

const ID = /^[A-Za-z0-9\-.]{1,64}$/;
const TYPE = /^[A-Z][A-Za-z]+$/;

/**
 * `id`, `Type/id`, `[baseUrl]/Type/id`, or any other URL (matched as written). `typeModifier`
 * is the `:Type` modifier.
 */
export function parseReferenceValue(name: string, raw: string, baseUrl: string, typeModifier?: string): ReferenceValue {
  let v = unescape(raw).trim();
  if (v === '') throw invalid(name, 'empty reference');
  const base = baseUrl.replace(/\/+$/, '');
  if (base && v.startsWith(`${base}/`)) v = v.slice(base.length + 1);
  v = v.replace(/\/_history\/[^/]+$/, '');
  const slash = v.split('/');
  if (slash.length === 2 && TYPE.test(slash[0]) && ID.test(slash[1])) {
    if (typeModifier && typeModifier !== slash[0]) throw invalid(name, `type modifier ${typeModifier} does not match ${slash[0]}`);
    return { type: slash[0], id: slash[1] };
  }
  if (slash.length === 1 && ID.test(v)) return typeModifier ? { type: typeModifier, id: v } : { id: v };
  return { url: v };
}

export function parseBoolean(name: string, raw: string): boolean {
  if (raw === 'true') return true;
  if (raw === 'false') return false;
  throw invalid(name, `'${raw}' is not true or false`);
}
