/**
 * The mapping language: the JSON shapes of the files under mappings/hl7v2/ (checked against
 * mappings/hl7v2/mapping.schema.json) and the compiled forms the engine runs.
 *
 * A path names where a value sits: `PID-5`, `PID-3[*]`, `OBX-5[2].1.2`, `NTE*-3` (every NTE of the
 * current group), or, inside a data-type template, a component of the value at hand: `.1`, `.4.2`, `.`.
 */

/** A source of a value: a path string, a constant, a declared variable, or a sender/message fact. */
export type ValueExpr = string | { readonly const: unknown } | { readonly var: string } | { readonly ctx: CtxFact };

export type CtxFact = 'institution' | 'mrnSystem' | 'assigningAuthority' | 'controlId' | 'trigger';

export type Condition =
  | { readonly all: readonly Condition[] }
  | { readonly any: readonly Condition[] }
  | { readonly not: Condition }
  | { readonly equals: readonly [string, string | readonly string[]] }
  | { readonly present: string };

/** What to do when a value cannot be produced (missing required value, failed conversion, table miss). */
export type OnProblem = 'error' | 'warn' | 'ignore';

export interface FieldRule {
  /** FHIR element in the resource: `birthDate`, `name[]` (append), `code.coding[]`, `.` (merge an object). */
  readonly target: string;
  readonly from?: string;
  /** Data-type template to convert each value with (`XPN`, `CX`, `CWE` …). */
  readonly type?: string;
  /** Value function from the fixed registry. */
  readonly fn?: string;
  readonly args?: Readonly<Record<string, ValueExpr>>;
  /** Lookup table applied to the scalar value. */
  readonly lookup?: string;
  readonly const?: unknown;
  readonly var?: string;
  /** Reference to the resource another rule produced (nearest in scope); `refAll` lists all in the group. */
  readonly ref?: string;
  readonly refAll?: boolean;
  /** Variables handed to the data-type template. */
  readonly vars?: Readonly<Record<string, ValueExpr>>;
  readonly when?: Condition;
  /** Missing value: HL7 error 101 when `error`. */
  readonly required?: boolean;
  /** Failed conversion or table miss (HL7 102 / 103); default `warn`. */
  readonly onError?: OnProblem;
  /** Offer each coding of the resulting CodeableConcept to the terminology hook. */
  readonly translate?: boolean;
}

export interface Identity {
  /** Element holding the key identifier(s). */
  readonly element: 'identifier';
  /** Systems in order of preference; `*` is any system. Entries may be variables. */
  readonly prefer: readonly ValueExpr[];
  /** `update`: conditional PUT (default); `create`: POST with If-None-Exist. */
  readonly method?: 'update' | 'create';
  /** No key: error 101 (with this location) instead of an unconditional create. */
  readonly required?: string;
}

export interface ResourceTemplateFile {
  readonly kind: 'resource';
  readonly name: string;
  readonly resourceType: string;
  readonly params?: readonly string[];
  readonly identity?: Identity;
  readonly fields: readonly FieldRule[];
}

export interface DatatypeTemplateFile {
  readonly kind: 'datatype';
  readonly name: string;
  readonly params?: readonly string[];
  readonly fields: readonly FieldRule[];
}

export interface TablesFile {
  readonly kind: 'tables';
  readonly tables: Readonly<Record<string, { readonly description?: string; readonly map: Readonly<Record<string, unknown>> }>>;
}

export interface GroupDef {
  readonly name: string;
  /** Segments that open (or join, when the open group lacks one) a group instance. */
  readonly starts: readonly string[];
  readonly parent?: string;
}

export interface ResourceRule {
  /** Names the rule for references and deterministic UUIDs. */
  readonly id: string;
  /** A resource template (`segments/PID`) to build from, else resourceType + fields inline. */
  readonly template?: string;
  readonly resourceType?: string;
  /** Once per group instance, once per segment, or once per message when absent. */
  readonly for?: { readonly group: string } | { readonly segment: string };
  readonly when?: Condition;
  readonly vars?: Readonly<Record<string, ValueExpr>>;
  readonly identity?: Identity;
  /** Fields added after the template's. */
  readonly fields?: readonly FieldRule[];
}

export interface MessageFile {
  readonly kind: 'message';
  readonly name: string;
  /** `ADT^A01`, `ORU^R01` … */
  readonly triggers: readonly string[];
  readonly groups?: readonly GroupDef[];
  /** Segments that must be there (HL7 101 otherwise). */
  readonly requires?: readonly string[];
  readonly resources: readonly ResourceRule[];
}

export type MappingFile = ResourceTemplateFile | DatatypeTemplateFile | TablesFile | MessageFile;

// ---------------------------------------------------------------- compiled forms

export interface Path {
  readonly text: string;
  /** Relative to the value at hand (inside a data-type template). */
  readonly relative: boolean;
  readonly segment?: string;
  /** Every instance of the segment in the current group. */
  readonly allSegments: boolean;
  readonly field?: number;
  /** 1-based repetition, or '*' for all. */
  readonly repetition: number | '*';
  readonly component?: number;
  readonly subcomponent?: number;
}

export type CValue =
  | { readonly kind: 'path'; readonly path: Path }
  | { readonly kind: 'const'; readonly value: unknown }
  | { readonly kind: 'var'; readonly name: string }
  | { readonly kind: 'ctx'; readonly fact: CtxFact };

export type CCondition =
  | { readonly kind: 'all' | 'any'; readonly items: readonly CCondition[] }
  | { readonly kind: 'not'; readonly item: CCondition }
  | { readonly kind: 'equals'; readonly path: Path; readonly values: readonly string[] }
  | { readonly kind: 'present'; readonly path: Path };

export interface CField {
  /** Element names and array indexes; -1 appends. Empty for `.` (merge into / replace the value at hand). */
  readonly target: readonly (string | number)[];
  readonly targetText: string;
  readonly from?: Path;
  readonly datatype?: CDatatype;
  readonly fn?: string;
  readonly args: readonly (readonly [string, CValue])[];
  readonly lookup?: string;
  readonly constValue?: unknown;
  readonly hasConst: boolean;
  readonly variable?: string;
  readonly ref?: string;
  readonly refAll: boolean;
  readonly vars: readonly (readonly [string, CValue])[];
  readonly when?: CCondition;
  readonly required: boolean;
  readonly onError: OnProblem;
  readonly translate: boolean;
}

export interface CDatatype {
  readonly name: string;
  /** Filled after all templates are compiled (templates may include each other). */
  fields: readonly CField[];
}

export interface CIdentity {
  readonly prefer: readonly CValue[];
  readonly method: 'update' | 'create';
  readonly required?: Path;
}

export interface CRule {
  readonly id: string;
  readonly resourceType: string;
  readonly forGroup?: string;
  readonly forSegment?: string;
  readonly when?: CCondition;
  readonly vars: readonly (readonly [string, CValue])[];
  readonly identity?: CIdentity;
  readonly fields: readonly CField[];
}

export interface CMessage {
  readonly name: string;
  readonly file: string;
  readonly triggers: readonly string[];
  readonly groups: readonly GroupDef[];
  readonly requires: readonly string[];
  readonly rules: readonly CRule[];
}

/** Everything one sender's messages are mapped with: compiled once, shared by all messages. */
export interface CompiledMappings {
  readonly site?: string;
  /** Message mapping by trigger `TYPE^EVENT`. */
  readonly byTrigger: ReadonlyMap<string, CMessage>;
  /** Message types (`ADT`, `ORU` …) with at least one trigger, for HL7 error 200 vs 201. */
  readonly messageTypes: ReadonlySet<string>;
  readonly tables: ReadonlyMap<string, ReadonlyMap<string, unknown>>;
  /** File names (relative, without .json) the set was built from, with the folder each came from. */
  readonly sources: ReadonlyMap<string, string>;
}
