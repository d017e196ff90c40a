/**
 * Errors of the mapping engine. `MappingError` is what a message that cannot be mapped produces:
 * an HL7 error code from table 0357 and the location, so the pipeline can answer with an AE ACK
 * (ERR-2 location, ERR-3 code). `MappingLoadError` stops start-up on a bad mapping file.
 */
import { GatewayError } from '../../../errors.js';
import { formatLocation, type Hl7Location } from '../model.js';

/** HL7 table 0357 message error condition codes the engine reports. */
export const HL7_ERROR = {
  REQUIRED_FIELD_MISSING: 101,
  DATA_TYPE_ERROR: 102,
  TABLE_VALUE_NOT_FOUND: 103,
  UNSUPPORTED_MESSAGE_TYPE: 200,
  UNSUPPORTED_EVENT_CODE: 201,
  UNKNOWN_KEY_IDENTIFIER: 204,
  APPLICATION_INTERNAL_ERROR: 207,
} as const;

export type Hl7ErrorCode = (typeof HL7_ERROR)[keyof typeof HL7_ERROR];

export class MappingError extends GatewayError {
  constructor(
    readonly hl7Code: Hl7ErrorCode,
    readonly location: Hl7Location | undefined,
    message: string,
  ) {
    super('GW_ERR_BAD_REQUEST', location ? `${formatLocation(location)}: ${message}` : message, {
      expression: location ? formatLocation(location) : undefined,
    });
    this.name = 'MappingError';
  }
}

export function isMappingError(e: unknown): e is MappingError {
  return e instanceof MappingError;
}

export class MappingLoadError extends Error {
  constructor(
    readonly file: string,
    /** JSON pointer into the file (RFC 6901), '' for the whole file. */
    readonly pointer: string,
    readonly reason: string,
  ) {
    super(`${file}${pointer ? ` at ${pointer}` : ''}: ${reason}`);
    this.name = 'MappingLoadError';
  }
}

/** Something worth telling the sender or the operator that did not stop the message. */
export interface MappingWarning {
  readonly message: string;
  readonly location?: Hl7Location;
  readonly hl7Code?: Hl7ErrorCode;
}
