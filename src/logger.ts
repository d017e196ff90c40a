/**
 * Structured logging with pino. Personal data never reaches the log: request bodies are not
 * logged, query strings are dropped from logged URLs (search parameters carry names and ID
 * numbers), and any field that could hold personal data is redacted wherever it appears.
 */
import { pino, type Logger, type LoggerOptions } from 'pino';

/** Paths censored in every log line, at the top level and one level down. */
export const REDACT_PATHS = [
  'name',
  'family',
  'given',
  'telecom',
  'phone',
  'address',
  'identifier',
  'birthDate',
  'idCard',
  'authorization',
  'password',
  'secret',
  'client_secret',
  'body',
  'req.headers.authorization',
  'req.headers.cookie',
  '*.name',
  '*.family',
  '*.given',
  '*.telecom',
  '*.phone',
  '*.address',
  '*.identifier',
  '*.birthDate',
  '*.idCard',
  '*.body',
];

/** Removes the query string: it may carry personal data such as `identifier=` or `name=`. */
export function redactUrl(url: string): string {
  const q = url.indexOf('?');
  return q === -1 ? url : `${url.slice(0, q)}?[query redacted]`;
}

export function createLogger(level: LoggerOptions['level'], destination?: NodeJS.WritableStream): Logger {
  const options: LoggerOptions = {
    level,
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    serializers: {
      req(req: { method: string; url: string; ip?: string; id?: string }) {
        return { method: req.method, url: redactUrl(req.url), ip: req.ip, id: req.id };
      },
      res(res: { statusCode: number }) {
        return { statusCode: res.statusCode };
      },
    },
  };
  return destination ? pino(options, destination as pino.DestinationStream) : pino(options);
}

export type { Logger };
