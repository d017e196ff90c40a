/**
 * Who is asking, from where and why: passed with every repository call so that access
 * control and the audit trail see the same facts whatever door the request came in by.
 */
export interface RequestContext {
  /** OAuth2 client id of the calling system. */
  readonly clientId?: string;
  /** Member institution the client acts for (Organization id). */
  readonly institution?: string;
  /** End user named by the calling system, if any. */
  readonly userId?: string;
  readonly sourceIp?: string;
  /** Purpose of use (v3 ActReason code); default TREAT. */
  readonly purposeOfUse?: string;
  readonly requestId?: string;
  /** How the data arrived: `rest`, `hl7v2`, `dicom`, `extract`, `system`. */
  readonly channel: string;
  /**
   * Granted SMART scopes. Undefined only for the gateway's own work (demo loading, internal
   * jobs); every client request carries the scopes of its token.
   */
  readonly scopes?: readonly string[];
  /** The client may also write for the institutions under its own (Organization.partOf). */
  readonly subordinates?: boolean;
  readonly role?: string;
  /**
   * Break the glass: the reason a clinician gives for reading, in an emergency, what the patient's
   * consent withholds (`X-Break-Glass` header). Allowed, flagged and audited.
   */
  readonly breakGlass?: string;
  /** A resident's own identity (patient-facing app): the Patient the token was issued for. */
  readonly patient?: string;
}

export const SYSTEM_CONTEXT: RequestContext = Object.freeze({ channel: 'system', clientId: 'gateway' });
