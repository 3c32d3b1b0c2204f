/**
 * Message text as Preact children: plain strings (Preact escapes them — never innerHTML)
 * and links for http(s) URLs, opened safely. @mentions are emphasised.
 */
import type { ComponentChildren } from "preact";

/** "1 member", "3 members". */
export const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

const TOKEN = /(https?:\/\/[^\s<>"']+[^\s<>"'.,;:!?)\]]|@[a-z0-9_.]{3,32})/gi;

export function RichText({ text }: { text: string }) {
  const out: ComponentChildren[] = [];
  let last = 0;
  for (const m of text.matchAll(TOKEN)) {
    const i = m.index!;
    if (i > last) out.push(text.slice(last, i));
    const t = m[0];
    out.push(
      t.startsWith("@") ? (
        <span class="mention">{t}</span>
      ) : (
        <a href={t} target="_blank" rel="noopener noreferrer">
          {t}
        </a>
      ),
    );
    last = i + t.length;
  }
  if (last < text.length) out.push(text.slice(last));
  return <>{out}</>;
}

// One formatter: toLocaleTimeString builds a new one on every call.
const clock = new Intl.DateTimeFormat([], { hour: "2-digit", minute: "2-digit" });
export const time = (iso: string) => clock.format(new Date(iso));

export function initials(name: string) {
  return [...name.trim()].slice(0, 1).join("").toUpperCase() || "?";
}

export function Avatar({ name, url, online }: { name: string; url?: string | null; online?: boolean }) {
  return (
    <span class="avatar" aria-hidden="true">
      {url ? <img src={url} alt="" referrerpolicy="no-referrer" /> : initials(name)}
      {online !== undefined && <span class={online ? "dot on" : "dot"} />}
    </span>
  );
}

/** `&amp;`, `&lt;`, `&#60;`, `&#x3c;` … back to their characters (the server writes `&lt;` `&gt;` `&amp;` `&quot;` `&#x27;`; any reference is read). */
const ENTITY = /&(#\d+|#x[0-9a-f]+|amp|lt|gt|quot|apos|#39);/gi;
const NAMED: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };
export const unescapeHtml = (t: string) =>
  t.replace(ENTITY, (whole, e: string) => {
    const n = e[0] === "#" ? (e[1] === "x" || e[1] === "X" ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10)) : NaN;
    if (e[0] !== "#") return NAMED[e.toLowerCase()] ?? whole;
    return Number.isInteger(n) && n > 0 && n <= 0x10ffff ? String.fromCodePoint(n) : whole;
  });

const MARK = /<mark>([\s\S]*?)<\/mark>/g;

/**
 * A search snippet (HTML-escaped by the server, matches in `<mark>…</mark>`) as text nodes and
 * <mark> elements. Never innerHTML: the only markup is the marks we make; everything else,
 * `<img onerror=…>` included, is text.
 */
export function Snippet({ html }: { html: string }) {
  const out: ComponentChildren[] = [];
  let last = 0;
  for (const m of html.matchAll(MARK)) {
    if (m.index! > last) out.push(unescapeHtml(html.slice(last, m.index)));
    out.push(<mark>{unescapeHtml(m[1]!)}</mark>);
    last = m.index! + m[0].length;
  }
  if (last < html.length) out.push(unescapeHtml(html.slice(last)));
  return <>{out}</>;
}

// Day and time, for search results (which may be years old).
const stamp = new Intl.DateTimeFormat([], { year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
export const when = (iso: string) => stamp.format(new Date(iso));
