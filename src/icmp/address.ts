import { isIP } from 'node:net';
import type { Family } from '../types.js';

/** The one spelling of an IP address: IPv6 compressed and lower-case, so comparisons are exact. */
export function canonicalAddress(address: string): string {
  const bare = address.split('%')[0]!;
  return bare.includes(':') ? new URL(`http://[${bare}]/`).hostname.slice(1, -1) : bare;
}

/** The address family of an IP address; undefined for anything else. */
export function familyOf(address: string): Family | undefined {
  const v = isIP(address);
  return v === 4 ? 4 : v === 6 ? 6 : undefined;
}
