/**
 * The client's address, for the per-address limits (registrations, login failures). Behind
 * a reverse proxy or a cluster's load balancer every request comes from the proxy, so
 * every client would share one budget. With TRUSTED_PROXIES set, a request from one of
 * them is attributed to the address X-Forwarded-For names, read from the right (the
 * nearest hop) past every trusted proxy: a client that sends the header itself only adds
 * entries further left, so it cannot pick its own address.
 */
import { BlockList, isIP } from "node:net";
import { addressKey } from "../lib/rate-limit";

/** An IP address or a CIDR range (`10.0.0.0/8`, `fd00::/8`): the prefix within the family's bits; else null. */
export function parseProxyEntry(entry: string): { address: string; prefix: number | null; family: "ipv4" | "ipv6" } | null {
  const [address = "", bits, extra] = entry.split("/");
  const version = isIP(address);
  if (!version || extra !== undefined) return null;
  const family = version === 4 ? "ipv4" : "ipv6";
  if (bits === undefined) return { address, prefix: null, family };
  const max = version === 4 ? 32 : 128;
  if (!/^\d{1,3}$/.test(bits) || Number(bits) > max) return null;
  return { address, prefix: Number(bits), family };
}

/** The trusted proxies as a lookup (entries already validated by the config); null for none. */
export function trustedProxies(entries: readonly string[]): BlockList | null {
  if (entries.length === 0) return null;
  const list = new BlockList();
  for (const e of entries) {
    const p = parseProxyEntry(e)!;
    if (p.prefix === null) list.addAddress(p.address, p.family);
    else list.addSubnet(p.address, p.prefix, p.family);
  }
  return list;
}

const isTrusted = (list: BlockList, address: string) => {
  const version = isIP(address);
  return version !== 0 && list.check(address, version === 4 ? "ipv4" : "ipv6");
};

/** The client's address as a rate-limit key (an IPv6 client by its /64). */
export function clientAddressKey(peer: string | undefined, forwardedFor: string | null, trusted: BlockList | null): string {
  let client = peer ?? "unknown";
  if (trusted && forwardedFor !== null && isTrusted(trusted, client)) {
    const hops = forwardedFor.split(",").map((h) => h.trim());
    for (let i = hops.length - 1; i >= 0; i--) {
      const hop = hops[i]!;
      // A hop that is no address ends the chain: the last proxy that named it is the client we know.
      if (!isIP(hop)) break;
      client = hop;
      if (!isTrusted(trusted, hop)) break;
    }
  }
  return addressKey(client);
}
