/**
 * Resident ID card numbers (居民身份证号) as defined by GB 11643-1999.
 *
 * An 18-character number is: 6-digit administrative division code, 8-digit birth date
 * (YYYYMMDD), 3-digit sequence (the last of them odd for men, even for women) and a check
 * character computed with ISO 7064 MOD 11-2 over the first 17 digits. Numbers issued before
 * 1999 have 15 digits (2-digit year, no check character) and are upgraded by inserting "19"
 * before the year and appending the computed check character.
 *
 * The same rules are expressed as FHIRPath invariants in profiles/cn-patient.json; the profile
 * test checks that both agree, so keep them in step.
 */

/** Weights of the first 17 digits. */
const WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2] as const;
/** Check character for each value of the weighted sum mod 11. */
const CHECK_CHARS = '10X98765432';
/** Birth years before this are refused as implausible. */
export const MIN_BIRTH_YEAR = 1800;

export type IdCardFailureReason = 'length' | 'non-digit' | 'birth-date' | 'check-char';

export interface IdCardInfo {
  readonly ok: true;
  /** The 18-character number, with a lower-case `x` normalised to `X`. */
  readonly value: string;
  /** 6-digit administrative division code (行政区划代码) of the place of first registration. */
  readonly divisionCode: string;
  /** Birth date as a FHIR date, YYYY-MM-DD. */
  readonly birthDate: string;
  /** FHIR administrative gender from the parity of the 17th digit. */
  readonly sex: 'male' | 'female';
  /** True when the value was upgraded from a 15-digit number. */
  readonly upgraded: boolean;
}

export interface IdCardFailure {
  readonly ok: false;
  readonly reason: IdCardFailureReason;
  /** Human-readable explanation that never repeats the full number (it is personal data). */
  readonly message: string;
  /** 1-based position of the offending character, for `non-digit`. */
  readonly position?: number;
  /** The check character the first 17 digits call for, for `check-char`. */
  readonly expected?: string;
}

export type IdCardResult = IdCardInfo | IdCardFailure;

export interface IdCardOptions {
  /** Reference "today" for the not-in-the-future rule; default now. */
  readonly today?: Date;
}

/** Check character for 17 digits. Throws on input that is not exactly 17 digits (a programming error). */
export function idCardCheckChar(first17: string): string {
  if (!/^[0-9]{17}$/.test(first17)) throw new RangeError('idCardCheckChar needs exactly 17 digits');
  let sum = 0;
  for (let i = 0; i < 17; i++) sum += Number(first17[i]) * WEIGHTS[i];
  return CHECK_CHARS[sum % 11];
}

function fail(reason: IdCardFailureReason, message: string, extra: { position?: number; expected?: string } = {}): IdCardFailure {
  return { ok: false, reason, message, ...extra };
}

function firstNonDigit(s: string, upTo: number): number {
  for (let i = 0; i < upTo; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return i;
  }
  return -1;
}

/** Today's date in China (UTC+8) as YYYYMMDD, the reference for birth dates on the card. */
function chinaToday(today: Date): string {
  const d = new Date(today.getTime() + 8 * 3600_000);
  const p = (n: number, w: number): string => String(n).padStart(w, '0');
  return `${p(d.getUTCFullYear(), 4)}${p(d.getUTCMonth() + 1, 2)}${p(d.getUTCDate(), 2)}`;
}

function daysInMonth(year: number, month: number): number {
  if (month === 2) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
  return [4, 6, 9, 11].includes(month) ? 30 : 31;
}

/** Checks an 8-digit YYYYMMDD string; returns an error message or undefined. */
function birthDateProblem(yyyymmdd: string, today: Date): string | undefined {
  const year = Number(yyyymmdd.slice(0, 4));
  const month = Number(yyyymmdd.slice(4, 6));
  const day = Number(yyyymmdd.slice(6, 8));
  const shown = `${yyyymmdd.slice(0, 4)}-${yyyymmdd.slice(4, 6)}-${yyyymmdd.slice(6, 8)}`;
  if (year < MIN_BIRTH_YEAR) return `birth year ${year} is before ${MIN_BIRTH_YEAR}`;
  if (month < 1 || month > 12) return `birth date ${shown} has no month ${month}`;
  if (day < 1 || day > daysInMonth(year, month)) return `birth date ${shown} is not a calendar date`;
  if (yyyymmdd > chinaToday(today)) return `birth date ${shown} is in the future`;
  return undefined;
}

function info(value: string, upgraded: boolean): IdCardInfo {
  const b = value.slice(6, 14);
  return {
    ok: true,
    value,
    divisionCode: value.slice(0, 6),
    birthDate: `${b.slice(0, 4)}-${b.slice(4, 6)}-${b.slice(6, 8)}`,
    sex: Number(value[16]) % 2 === 1 ? 'male' : 'female',
    upgraded,
  };
}

/**
 * Checks an 18-character resident ID card number. Surrounding whitespace is ignored and a
 * lower-case `x` check character is accepted and normalised to `X`.
 */
export function checkIdCard(input: string, options: IdCardOptions = {}): IdCardResult {
  const s = input.trim();
  if (s.length !== 18) {
    const hint = s.length === 15 ? ' (a 15-digit number from before 1999 must be upgraded first)' : '';
    return fail('length', `an ID card number has 18 characters, got ${s.length}${hint}`);
  }
  const bad = firstNonDigit(s, 17);
  if (bad >= 0) return fail('non-digit', `character ${bad + 1} must be a digit`, { position: bad + 1 });
  const last = s[17] === 'x' ? 'X' : s[17];
  if (!/[0-9X]/.test(last)) return fail('non-digit', 'character 18 must be a digit or X', { position: 18 });
  const dateProblem = birthDateProblem(s.slice(6, 14), options.today ?? new Date());
  if (dateProblem) return fail('birth-date', dateProblem);
  const expected = idCardCheckChar(s.slice(0, 17));
  if (last !== expected) {
    return fail('check-char', `check character is ${last} but the first 17 digits call for ${expected}`, { expected });
  }
  return info(s.slice(0, 17) + last, false);
}

/** Upgrades a 15-digit number (issued before 1999) to 18 characters, checking its birth date. */
export function upgradeIdCard(input: string, options: IdCardOptions = {}): IdCardResult {
  const s = input.trim();
  if (s.length !== 15) return fail('length', `an old ID card number has 15 digits, got ${s.length}`);
  const bad = firstNonDigit(s, 15);
  if (bad >= 0) return fail('non-digit', `character ${bad + 1} must be a digit`, { position: bad + 1 });
  const first17 = `${s.slice(0, 6)}19${s.slice(6)}`;
  const dateProblem = birthDateProblem(first17.slice(6, 14), options.today ?? new Date());
  if (dateProblem) return fail('birth-date', dateProblem);
  return info(first17 + idCardCheckChar(first17), true);
}

/** Accepts either form: 18 characters are checked, 15 digits are upgraded. */
export function parseIdCard(input: string, options: IdCardOptions = {}): IdCardResult {
  return input.trim().length === 15 ? upgradeIdCard(input, options) : checkIdCard(input, options);
}
