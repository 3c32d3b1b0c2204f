/**
 * Signed attachment links (PROTOCOL §9): `<img>` cannot send a bearer header, so `url`
 * and `thumbnail_url` carry `?v=<viewer>&e=<expiry>&s=<HMAC>`, good for one viewer and
 * one file (or its thumbnail) for ATTACHMENT_URL_TTL. The viewer's access is still
 * checked at download time: a link outlives no membership.
 *
 * Stored and broadcast messages hold the bare paths (`/api/attachments/<id>`); they are
 * signed at the edge, for whoever the response or frame goes to (`personalize`).
 * Expiries are rounded to a step (a quarter of the TTL, at most 15 minutes), so the same
 * viewer gets the same URL for a while and browsers can cache it.
 */
import { createHmac, timingSafeEqual } from "node:crypto";

/**
 * What every unsigned link in a JSON text starts with (an attachment's `url` comes before its
 * `thumbnail_url`). User text cannot hold it: JSON escapes the quotes of a string's content.
 */
export const UNSIGNED_LINK = '"url":"/api/attachments/';

const LINK = /"(url|thumbnail_url)":"(\/api\/attachments\/[0-9a-f-]{36}(?:\/thumbnail)?)"/g;

export type LinkCheck = { ok: true; viewerId: string } | { ok: false; reason: "expired" | "invalid" };

export class AttachmentLinks {
  private key: Buffer;
  private stepS: number;
  constructor(secret: string, private ttlS: number) {
    // A key of its own, derived from the server's secret: a link is no token and no token is a link.
    this.key = createHmac("sha256", secret).update("parley attachment links v1").digest();
    this.stepS = Math.max(1, Math.min(Math.floor(ttlS / 4), 900));
  }

  private mac(path: string, viewerId: string, exp: number): string {
    return new Bun.CryptoHasher("sha256", this.key).update(`${path}\n${viewerId}\n${exp}`).digest("base64url").slice(0, 32);
  }

  /** `path` signed for `viewerId`, valid between TTL − step and TTL from now. */
  sign(path: string, viewerId: string, nowMs = Date.now()): string {
    const exp = Math.ceil((nowMs / 1000 + this.ttlS - this.stepS) / this.stepS) * this.stepS;
    return `${path}?v=${viewerId}&e=${exp}&s=${this.mac(path, viewerId, exp)}`;
  }

  verify(path: string, v: string, e: string, s: string, nowMs = Date.now()): LinkCheck {
    const exp = Number(e);
    if (!/^\d{1,12}$/.test(e) || v.length > 64) return { ok: false, reason: "invalid" };
    const want = Buffer.from(this.mac(path, v, exp));
    const got = Buffer.from(s);
    if (got.length !== want.length || !timingSafeEqual(got, want)) return { ok: false, reason: "invalid" };
    if (exp * 1000 <= nowMs) return { ok: false, reason: "expired" };
    return { ok: true, viewerId: v };
  }

  /** Signs, for one viewer, every attachment link in a JSON text (a response, an event). */
  personalize(json: string, viewerId: string): string {
    return this.personalizer(json)(viewerId);
  }

  /**
   * The same for many viewers of one text (a frame to every member of a conversation): the
   * text is searched for its links once, and each viewer's copy is put together around them.
   */
  personalizer(json: string): (viewerId: string) => string {
    if (!json.includes(UNSIGNED_LINK)) return () => json;
    const before: string[] = [];
    const paths: string[] = [];
    let at = 0;
    for (const m of json.matchAll(LINK)) {
      before.push(`${json.slice(at, m.index)}"${m[1]}":"`);
      paths.push(m[2]!);
      at = m.index + m[0].length - 1; // from the link's closing quote on
    }
    const rest = json.slice(at);
    return (viewerId) => {
      const now = Date.now();
      let out = "";
      for (let i = 0; i < paths.length; i++) out += before[i]! + this.sign(paths[i]!, viewerId, now);
      return out + rest;
    };
  }
}
