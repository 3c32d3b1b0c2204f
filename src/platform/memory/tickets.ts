/** Single-node tickets: a map in this process (a restart voids them; the client asks again). */
import type { TicketGrant, TicketStore } from "../tickets";

export class MemoryTickets implements TicketStore {
  private live = new Map<string, TicketGrant & { expiresAt: number }>();

  put(ticket: string, grant: TicketGrant, ttlMs: number): number {
    const now = Date.now();
    // Insertion order is expiry order (one TTL): the expired ones are at the front.
    for (const [k, v] of this.live) {
      if (v.expiresAt > now) break;
      this.live.delete(k);
    }
    const expiresAt = now + ttlMs;
    this.live.set(ticket, { ...grant, expiresAt });
    return expiresAt;
  }

  take(ticket: string): TicketGrant | undefined {
    const entry = this.live.get(ticket);
    if (!entry) return undefined;
    this.live.delete(ticket);
    return entry.expiresAt > Date.now() ? entry : undefined;
  }
}
