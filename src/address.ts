/** The one spelling of an IP address: IPv6 compressed and lower-case, so comparisons are exact. */
export function canonicalAddress(address: string): string {
  const bare = address.split('%')[0]!;
  return bare.includes(':') ? new URL(`http://[${bare}]/`).hostname.slice(1, -1) : bare;
}
