/**
 * Every error the gateway can report, each with a stable `GW_ERR_*` code, an HTTP status and the
 * FHIR `OperationOutcome.issue.code` it maps to. Code throws `GatewayError`s built here; the single
 * HTTP error handler (fhir/outcome.ts) turns any of them into an OperationOutcome response.
 */
import type { OperationOutcome, OperationOutcomeIssue } from '@medplum/fhirtypes';

type IssueCode = OperationOutcomeIssue['code'];

interface ErrorSpec {
  readonly status: number;
  readonly issue: IssueCode;
}

export const ERROR_CODES = {
  GW_ERR_BAD_REQUEST: { status: 400, issue: 'invalid' },
  GW_ERR_INVALID_JSON: { status: 400, issue: 'structure' },
  GW_ERR_INVALID_RESOURCE: { status: 400, issue: 'structure' },
  GW_ERR_INVALID_SEARCH: { status: 400, issue: 'invalid' },
  GW_ERR_UNSUPPORTED_SEARCH: { status: 400, issue: 'not-supported' },
  GW_ERR_INVALID_PATCH: { status: 400, issue: 'invalid' },
  GW_ERR_INVALID_BUNDLE: { status: 400, issue: 'invalid' },
  GW_ERR_UNKNOWN_TYPE: { status: 404, issue: 'not-supported' },
  GW_ERR_NOT_FOUND: { status: 404, issue: 'not-found' },
  GW_ERR_METHOD_NOT_ALLOWED: { status: 405, issue: 'not-supported' },
  GW_ERR_NOT_ACCEPTABLE: { status: 406, issue: 'not-supported' },
  GW_ERR_CONFLICT: { status: 409, issue: 'conflict' },
  GW_ERR_GONE: { status: 410, issue: 'deleted' },
  GW_ERR_VERSION_CONFLICT: { status: 412, issue: 'conflict' },
  GW_ERR_MULTIPLE_MATCHES: { status: 412, issue: 'multiple-matches' },
  GW_ERR_BODY_TOO_LARGE: { status: 413, issue: 'too-long' },
  GW_ERR_UNSUPPORTED_MEDIA_TYPE: { status: 415, issue: 'not-supported' },
  GW_ERR_PROFILE_VIOLATION: { status: 422, issue: 'processing' },
  GW_ERR_BUSINESS_RULE: { status: 422, issue: 'business-rule' },
  GW_ERR_INTERNAL: { status: 500, issue: 'exception' },
  GW_ERR_UNAVAILABLE: { status: 503, issue: 'transient' },
  GW_ERR_UNAUTHORIZED: { status: 401, issue: 'login' },
  GW_ERR_INVALID_TOKEN: { status: 401, issue: 'security' },
  GW_ERR_FORBIDDEN: { status: 403, issue: 'forbidden' },
  /** Withheld by the patient's consent; a clinician may break the glass in an emergency. */
  GW_ERR_CONSENT_RESTRICTED: { status: 403, issue: 'suppressed' },
  GW_ERR_TOO_MANY_REQUESTS: { status: 429, issue: 'throttled' },
} as const satisfies Record<string, ErrorSpec>;

export type GwErrorCode = keyof typeof ERROR_CODES;

/** Most issues one OperationOutcome lists. */
export const MAX_ISSUES = 100;

export class GatewayError extends Error {
  readonly statusCode: number;
  readonly outcome: OperationOutcome;

  constructor(
    readonly code: GwErrorCode,
    message: string,
    options: { expression?: string | string[]; issues?: OperationOutcomeIssue[]; cause?: unknown } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = 'GatewayError';
    const spec: ErrorSpec = ERROR_CODES[code];
    this.statusCode = spec.status;
    const expression = options.expression === undefined ? undefined : ([] as string[]).concat(options.expression);
    let issues: OperationOutcomeIssue[] = options.issues?.length
      ? options.issues
      : [{ severity: 'error', code: spec.issue, diagnostics: message, ...(expression ? { expression } : {}) }];
    if (issues.length > MAX_ISSUES) {
      // A hostile body (a million bad array items) must not produce a million-issue answer.
      issues = [...issues.slice(0, MAX_ISSUES), { severity: 'information', code: 'too-costly', diagnostics: `${issues.length - MAX_ISSUES} more issues not listed` }];
    }
    this.outcome = {
      resourceType: 'OperationOutcome',
      issue: issues.map((i) => ({ ...i, details: { ...(i.details ?? {}), coding: [{ system: GW_ERROR_SYSTEM, code }] } })),
    };
  }
}

export const GW_ERROR_SYSTEM = 'urn:county-hie:error-code';

export function isGatewayError(e: unknown): e is GatewayError {
  return e instanceof GatewayError;
}

/** OperationOutcome for a successful interaction (`Prefer: return=OperationOutcome`, `$validate`). */
export function okOutcome(diagnostics: string): OperationOutcome {
  return { resourceType: 'OperationOutcome', issue: [{ severity: 'information', code: 'informational', diagnostics }] };
}
