/**
 * The level rules of referrals: the graded-diagnosis catalogue (分级诊疗目录) of which conditions
 * each level treats, loaded from mappings/referral/levels.json and checked against its JSON
 * Schema (a bad file fails start-up), and the direction rules: up to a higher level, down to a
 * lower one within the sender's community, unless marked as an exception with a reason.
 */
import { readFileSync } from 'node:fs';
import { Ajv, type ErrorObject } from 'ajv';

export type ReferralLevel = 'village' | 'township' | 'county' | 'outside';

export interface TreatedRange {
  readonly range: string;
  readonly name: string;
}

export interface LevelRulesFile {
  readonly version: string;
  readonly levels: readonly ReferralLevel[];
  readonly treats: Partial<Record<ReferralLevel, readonly TreatedRange[]>>;
  readonly untreatedDownReferral: 'refuse' | 'flag';
  readonly deadlineHours: number;
}

export class LevelRulesError extends Error {
  override readonly name = 'LevelRulesError';
}

export const LEVEL_RULES_URL = new URL('../../mappings/referral/levels.json', import.meta.url);
const SCHEMA = JSON.parse(readFileSync(new URL('../../mappings/referral/levels.schema.json', import.meta.url), 'utf8')) as object;
const validateFile = new Ajv({ allErrors: true, strict: false }).compile<LevelRulesFile>(SCHEMA);

function describe(errors: readonly ErrorObject[] | null | undefined): string {
  return (errors ?? []).map((e) => `${e.instancePath || '/'} ${e.message ?? ''}`).join('; ');
}

/** The ICD-10 category (letter and two digits) of a code such as `I10.x00` or `J18.900`. */
function category(code: string): string {
  return code.trim().toUpperCase().slice(0, 3);
}

/** True when an ICD-10 code falls in a catalogue range (`I10-I15`) or under a prefix (`E11`, `E11.9`). */
export function inRange(code: string, range: string): boolean {
  const c = code.trim().toUpperCase();
  const dash = range.indexOf('-');
  if (dash < 0) return c.startsWith(range.toUpperCase());
  const cat = category(c);
  return cat >= range.slice(0, dash).toUpperCase() && cat <= range.slice(dash + 1).toUpperCase();
}

export type Direction = 'up' | 'down';

/** What the rules say about one referral. */
export interface LevelVerdict {
  readonly ok: boolean;
  /** Set when the referral is refused. */
  readonly refusal?: string;
  /** Set when the referral is allowed but marked for attention. */
  readonly flag?: string;
}

export class LevelRules {
  readonly file: LevelRulesFile;

  private constructor(file: LevelRulesFile) {
    this.file = file;
  }

  static parse(data: unknown, source = 'level rules'): LevelRules {
    if (!validateFile(data)) throw new LevelRulesError(`${source} is invalid: ${describe(validateFile.errors)}`);
    for (const level of Object.keys(data.treats) as ReferralLevel[]) {
      if (!data.levels.includes(level)) throw new LevelRulesError(`${source} is invalid: /treats/${level} names a level missing from /levels`);
    }
    for (const [level, ranges] of Object.entries(data.treats)) {
      for (const [i, r] of (ranges ?? []).entries()) {
        const dash = r.range.indexOf('-');
        if (dash > 0 && r.range.slice(0, dash) > r.range.slice(dash + 1)) throw new LevelRulesError(`${source} is invalid: /treats/${level}/${i}/range "${r.range}" runs backwards`);
      }
    }
    return new LevelRules(data);
  }

  static load(url: URL | string = LEVEL_RULES_URL): LevelRules {
    let data: unknown;
    try {
      data = JSON.parse(readFileSync(url, 'utf8'));
    } catch (e) {
      throw new LevelRulesError(`Cannot read the referral level rules ${String(url)}: ${(e as Error).message}`);
    }
    return LevelRules.parse(data, String(url));
  }

  rank(level: ReferralLevel): number {
    return this.file.levels.indexOf(level);
  }

  /** The catalogue entry under which `level` (or a level below it) treats `code`, if any. */
  treatedAt(level: ReferralLevel, code: string): TreatedRange | undefined {
    const rank = this.rank(level);
    for (const l of this.file.levels.slice(0, rank + 1)) {
      const hit = (this.file.treats[l] ?? []).find((r) => inRange(code, r.range));
      if (hit) return hit;
    }
    return undefined;
  }

  /**
   * Judges a referral from one level to another for a condition. `withinCommunity`: the target is
   * the sender's own institution or one under it (Organization.partOf), as a down-referral needs.
   */
  judge(r: { direction: Direction; from: ReferralLevel; to: ReferralLevel; conditions: readonly string[]; exception?: string; withinCommunity: boolean }): LevelVerdict {
    const from = this.rank(r.from);
    const to = this.rank(r.to);
    if (r.direction === 'up' && to <= from && !r.exception) {
      return { ok: false, refusal: `An up-referral must go to a higher level: ${r.from} → ${r.to} is not (mark it as an exception with a reason to send it anyway)` };
    }
    if (r.direction === 'down') {
      if (to >= from && !r.exception) return { ok: false, refusal: `A down-referral must go to a lower level: ${r.from} → ${r.to} is not` };
      if (!r.withinCommunity && !r.exception) return { ok: false, refusal: 'A down-referral must go to an institution within the sender\'s community' };
      const untreated = r.conditions.filter((c) => !this.treatedAt(r.to, c));
      if (untreated.length > 0) {
        const message = `The ${r.to} level does not treat ${untreated.join(', ')} according to the graded-diagnosis catalogue (version ${this.file.version})`;
        if (this.file.untreatedDownReferral === 'refuse' && !r.exception) return { ok: false, refusal: message };
        return { ok: true, flag: message };
      }
    }
    return { ok: true };
  }
}
