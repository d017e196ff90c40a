/**
 * Strict JSON request bodies: bytes must be valid UTF-8 (no silent replacement characters in
 * clinical text), nesting is bounded (no stack exhaustion in later tree walks), and
 * prototype-poisoning keys (`__proto__`, `constructor.prototype`) are refused.
 */
import sjson from 'secure-json-parse';
import { GatewayError } from '../errors.js';

/** Deeper than any real FHIR resource (contained resources and extensions included). */
export const MAX_JSON_DEPTH = 100;

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Nesting depth of a JSON text, counting brackets outside strings; stops early past the limit. */
export function jsonDepth(text: string, limit = MAX_JSON_DEPTH): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92) i++; // backslash: skip the escaped character
      else if (c === 34) inString = false;
    } else if (c === 34) inString = true;
    else if (c === 123 || c === 91) {
      depth++;
      if (depth > max) {
        max = depth;
        if (max > limit) return max;
      }
    } else if (c === 125 || c === 93) depth--;
  }
  return max;
}

export function parseJsonBody(body: Buffer): unknown {
  let text: string;
  try {
    text = utf8.decode(body);
  } catch {
    throw new GatewayError('GW_ERR_INVALID_JSON', 'The body is not valid UTF-8; send JSON encoded as UTF-8');
  }
  if (text.trim() === '') throw new GatewayError('GW_ERR_INVALID_JSON', 'The body is empty; a JSON resource was expected');
  if (jsonDepth(text) > MAX_JSON_DEPTH) {
    throw new GatewayError('GW_ERR_INVALID_JSON', `JSON nested deeper than ${MAX_JSON_DEPTH} levels is refused`);
  }
  try {
    return sjson.parse(text, undefined, { protoAction: 'error', constructorAction: 'error' });
  } catch (e) {
    const msg = (e as Error).message;
    if (/prototype|__proto__|constructor/i.test(msg)) {
      throw new GatewayError('GW_ERR_INVALID_JSON', 'The body holds a forbidden key (__proto__ or constructor.prototype)');
    }
    throw new GatewayError('GW_ERR_INVALID_JSON', `Body is not valid JSON: ${msg}`);
  }
}
