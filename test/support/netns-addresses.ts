/** The harness's extra address blocks: /32s carved from 198.18.x.0/20 for addAddresses, and the routes to them. */

/** An address block owned by one node, which every other node routes via that node. */
export interface AddressBlock {
  /** e.g. 198.18.16.0/20 */
  cidr: string;
  /** IPv4 of the node that owns the addresses (route gateway). */
  via: string;
  ownerNs: string;
}

/**
 * `count` addresses from fresh /20 blocks 198.18.16.0/20, 198.18.32.0/20, ... (15 available),
 * taken from `state.nextBlock` on; .0 and .255 are skipped so no address looks like a
 * network/broadcast one. Returns the addresses and their blocks.
 */
export function allocateAddresses(count: number, state: { nextBlock: number }): { addrs: string[]; cidrs: string[] } {
  if (!Number.isInteger(count) || count < 1 || count > 5000) throw new Error('addAddresses: count must be 1..5000');
  const addrs: string[] = [];
  const cidrs: string[] = [];
  while (addrs.length < count) {
    const blk = state.nextBlock++;
    if (blk >= 15) throw new Error('addAddresses: out of 198.18.x.0/20 blocks');
    const third = 16 * (blk + 1);
    cidrs.push(`198.18.${third}.0/20`);
    for (let c = third; c < third + 16 && addrs.length < count; c++) {
      for (let d = 1; d <= 254 && addrs.length < count; d++) addrs.push(`198.18.${c}.${d}`);
    }
  }
  return { addrs, cidrs };
}
