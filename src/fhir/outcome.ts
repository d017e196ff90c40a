/**
 * The one place where any error becomes an OperationOutcome with an HTTP status.
 */
import type { OperationOutcome } from '@medplum/fhirtypes';
import { GatewayError, isGatewayError } from '../errors.js';
import { isTransactionConflict } from '../store/index.js';

interface FastifyLikeError {
  code?: string;
  statusCode?: number;
  message: string;
  validation?: { instancePath?: string; message?: string }[];
}

/** Normalises anything thrown into a GatewayError. */
export function toGatewayError(err: unknown): GatewayError {
  if (isGatewayError(err)) return err;
  const e = err as FastifyLikeError;
  switch (e?.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new GatewayError('GW_ERR_BODY_TOO_LARGE', `Request body is larger than the configured limit: ${e.message}`);
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new GatewayError(
        'GW_ERR_UNSUPPORTED_MEDIA_TYPE',
        'Unsupported Content-Type; send application/fhir+json (or application/json, application/json-patch+json for PATCH)',
      );
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new GatewayError('GW_ERR_INVALID_JSON', 'Request body is empty; a JSON resource was expected');
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new GatewayError('GW_ERR_BAD_REQUEST', 'Content-Length does not match the body');
    case 'FST_ERR_NOT_FOUND':
      return new GatewayError('GW_ERR_NOT_FOUND', e.message);
    default:
      break;
  }
  if (e instanceof SyntaxError || e?.code === 'FST_ERR_CTP_INVALID_JSON_BODY') {
    return new GatewayError('GW_ERR_INVALID_JSON', `Body is not valid JSON: ${e.message}`);
  }
  if (e?.validation) {
    return new GatewayError('GW_ERR_BAD_REQUEST', e.message, {
      expression: e.validation.map((v) => v.instancePath ?? '').filter((x) => x),
    });
  }
  if (typeof e?.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
    if (e.statusCode === 413) return new GatewayError('GW_ERR_BODY_TOO_LARGE', e.message);
    if (e.statusCode === 415) return new GatewayError('GW_ERR_UNSUPPORTED_MEDIA_TYPE', e.message);
    if (e.statusCode === 404) return new GatewayError('GW_ERR_NOT_FOUND', e.message);
    if (e.statusCode === 405) return new GatewayError('GW_ERR_METHOD_NOT_ALLOWED', e.message);
    return new GatewayError('GW_ERR_BAD_REQUEST', e.message);
  }
  // PostgreSQL: invalid text representation etc. caused by client input in a parameter.
  const pgCode = (err as { code?: string })?.code;
  if (pgCode === '22P02' || pgCode === '22007' || pgCode === '22008' || pgCode === '22003') {
    return new GatewayError('GW_ERR_BAD_REQUEST', `A value in the request is not valid for its type: ${e.message}`);
  }
  if (isTransactionConflict(err)) {
    return new GatewayError('GW_ERR_CONFLICT', 'Concurrent update of the same data; retry the request', { cause: err });
  }
  return new GatewayError('GW_ERR_INTERNAL', 'Internal server error', { cause: err });
}

export function outcomeOf(err: unknown): { status: number; outcome: OperationOutcome } {
  const g = toGatewayError(err);
  return { status: g.statusCode, outcome: g.outcome };
}
