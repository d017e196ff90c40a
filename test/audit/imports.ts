/** What the audit tests use from the gateway, in one place. */
import { loadConfig } from '../../src/config.js';

export * from '../../src/audit/index.js';

/** The audit settings of a configuration built from env (defaults otherwise). */
export function loadAuditConfig(env: Record<string, string> = {}) {
  return loadConfig({ LOG_LEVEL: 'silent', ...env });
}
