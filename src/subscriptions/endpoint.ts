/**
 * Which rest-hook endpoints the gateway will call. Patient data leaves the gateway only over
 * https and only to public addresses, unless the host is allow-listed in configuration
 * (SUBSCRIPTION_ALLOWED_HOSTS): a subscription must not turn the gateway into a way to reach
 * the county's private network. Literal addresses are checked when the subscription is written;
 * names are checked again on every connection, after DNS resolution.
 */
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { BlockList, isIP } from 'node:net';
import { GatewayError } from '../errors.js';

const PRIVATE = new BlockList();
for (const [net, bits] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const) {
  PRIVATE.addSubnet(net, bits, 'ipv4');
}
for (const [net, bits] of [
  ['::', 128],
  ['::1', 128],
  ['fc00::', 7],
  ['fe80::', 10],
  ['ff00::', 8],
] as const) {
  PRIVATE.addSubnet(net, bits, 'ipv6');
}

/** True for loopback, private, link-local, multicast and reserved addresses (IPv4-mapped IPv6 included). */
export function isPrivateAddress(address: string): boolean {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return isPrivateAddress(mapped[1]);
  const family = isIP(address);
  if (family === 0) return false;
  return PRIVATE.check(address, family === 4 ? 'ipv4' : 'ipv6');
}

/** The allow-list entry forms: `host` or `host:port`, compared case-insensitively. */
export function isAllowListed(url: URL, allowed: readonly string[]): boolean {
  const host = url.hostname.replace(/^\[|\]$/g, '').toLowerCase();
  const port = url.port || (url.protocol === 'https:' ? '443' : '80');
  return allowed.some((a) => {
    const entry = a.toLowerCase();
    return entry === host || entry === `${host}:${port}` || entry === `[${host}]:${port}`;
  });
}

/** Refuses (422) an endpoint the gateway may not call. Returns the parsed URL. */
export function checkEndpoint(endpoint: string | undefined, allowed: readonly string[], expression: string): URL {
  let url: URL;
  try {
    url = new URL(endpoint ?? '');
  } catch {
    throw new GatewayError('GW_ERR_BAD_REQUEST', `Subscription endpoint "${endpoint ?? ''}" is not an absolute URL`, { expression });
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new GatewayError('GW_ERR_BUSINESS_RULE', `Subscription endpoint must be an http(s) URL, not ${url.protocol}`, { expression });
  }
  if (url.username || url.password) {
    throw new GatewayError('GW_ERR_BUSINESS_RULE', 'Subscription endpoint may not carry credentials in the URL; use channel.header', { expression });
  }
  if (isAllowListed(url, allowed)) return url;
  if (url.protocol !== 'https:') {
    throw new GatewayError('GW_ERR_BUSINESS_RULE', `Subscription endpoint must use https (${url.host} is not in SUBSCRIPTION_ALLOWED_HOSTS)`, { expression });
  }
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (isPrivateAddress(host) || /^localhost\.?$/i.test(host) || /\.localhost\.?$/i.test(host)) {
    throw new GatewayError('GW_ERR_BUSINESS_RULE', `Subscription endpoint ${url.host} is a private network address (not in SUBSCRIPTION_ALLOWED_HOSTS)`, { expression });
  }
  return url;
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/**
 * A DNS lookup for outgoing hook connections that refuses private addresses, unless the host
 * is allow-listed: a public name that resolves into the private network is not followed.
 */
export function guardedLookup(allowed: readonly string[]) {
  return (hostname: string, options: object, callback: LookupCallback): void => {
    dnsLookup(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) return callback(err, []);
      const list = addresses as LookupAddress[];
      const bare = hostname.replace(/^\[|\]$/g, '').toLowerCase();
      const listed = allowed.some((a) => a.toLowerCase() === bare || a.toLowerCase().startsWith(`${bare}:`));
      const usable = listed ? list : list.filter((a) => !isPrivateAddress(a.address));
      if (usable.length === 0) {
        const e: NodeJS.ErrnoException = new Error(`${hostname} resolves only to private network addresses`);
        e.code = 'EPRIVATEADDRESS';
        return callback(e, []);
      }
      if ((options as { all?: boolean }).all) return callback(null, usable);
      return callback(null, usable[0].address, usable[0].family);
    });
  };
}
