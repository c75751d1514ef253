import { isIP } from 'node:net';
import type { Family } from '../types.js';

/** The one spelling of an IP address: IPv6 compressed and lower-case, so comparisons are exact. */
export function canonicalAddress(address: string): string {
  const bare = address.split('%')[0]!;
  // Only an IPv6 address goes through URL (which throws on anything else): a malformed address from the
  // API server comes back as given. The colon test first keeps IPv4, every reply's source, off isIP.
  return bare.includes(':') && isIP(bare) === 6 ? new URL(`http://[${bare}]/`).hostname.slice(1, -1) : bare;
}

/** The address family of an IP address; undefined for anything else. */
export function familyOf(address: string): Family | undefined {
  const v = isIP(address);
  return v === 4 ? 4 : v === 6 ? 6 : undefined;
}

/**
 * Whether an address names one remote host: not unspecified, loopback, link-local, multicast or
 * broadcast. A node list read from the API server is untrusted; these are never a node's address.
 */
export function isRemoteUnicast(address: string): boolean {
  const family = familyOf(address);
  if (family === 4) {
    const [a = 0, b = 0] = address.split('.').map(Number);
    return !(a === 0 || a === 127 || (a === 169 && b === 254) || a >= 224);
  }
  if (family !== 6) return false;
  const canonical = canonicalAddress(address);
  if (canonical === '::' || canonical === '::1') return false;
  const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(canonical);
  if (mapped) {
    const hi = parseInt(mapped[1]!, 16);
    const lo = parseInt(mapped[2]!, 16);
    return isRemoteUnicast(`${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`);
  }
  const first = parseInt(canonical.split(':')[0] || '0', 16);
  return !((first & 0xffc0) === 0xfe80 || (first & 0xff00) === 0xff00);
}
