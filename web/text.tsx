/**
 * Message text as Preact children: plain strings (Preact escapes them — never innerHTML)
 * and links for http(s) URLs, opened safely. @mentions are emphasised.
 */
import { signal } from "@preact/signals";
import type { ComponentChildren } from "preact";
import { useState } from "preact/hooks";

/**
 * A message in a line: its text, or, for one of files only, what it carries ("File: a.png",
 * "Files: a.png, b.pdf"). A word, not the 📎 emoji: a machine without an emoji font showed an
 * empty box (an acceptance pass).
 */
export const gist = (m: { content: string; attachments: { filename: string }[] }): string =>
  m.content || (m.attachments.length ? `${m.attachments.length > 1 ? "Files" : "File"}: ${m.attachments.map((a) => a.filename).join(", ")}` : "");

/** "Ann", "Ann and Bob", "Ann, Bob, and Carol". */
const conjunction = new Intl.ListFormat("en", { style: "long", type: "conjunction" });
export const namesList = (names: string[]) => conjunction.format(names);

/** "1 member", "3 members". */
export const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

/**
 * A link (its last character not a sentence's punctuation): http(s)://…, or www.… as people
 * write one (opened over https; it was left as text); or an @mention as the server reads one
 * (messages/service.ts MENTION): not inside a word or an e-mail address, 3–32 name
 * characters, dots that end a sentence after it not its own.
 */
const TOKEN = /(https?:\/\/[^\s<>"']+[^\s<>"'.,;:!?)\]]|(?<![A-Za-z0-9_.@\/-])www\.[A-Za-z0-9-]+\.[^\s<>"']*[^\s<>"'.,;:!?)\]]|(?<![A-Za-z0-9_.@])@[A-Za-z0-9_.]{3,32}(?![A-Za-z0-9_.]))/g;

/** How the mentions of a message show: those of `members` (when known) marked, the reader's own more so. */
export interface Mentions { members: Set<string> | null; me: string | undefined }

export function RichText({ text, tabIndex, mentions }: { text: string; tabIndex?: number; mentions?: Mentions }) {
  const out: ComponentChildren[] = [];
  let last = 0;
  for (const m of text.matchAll(TOKEN)) {
    const i = m.index!;
    if (i < last) continue; // inside a link extended below
    if (i > last) out.push(text.slice(last, i));
    let t = m[0];
    if (t.startsWith("@")) {
      const name = t.replace(/\.+$/, "");
      const user = name.slice(1).toLowerCase();
      // Only someone of the conversation is mentioned (the server notifies members only).
      if (!mentions?.members || mentions.members.has(user)) {
        out.push(<span class={user === mentions?.me ? "mention me" : "mention"}>{name}</span>);
        t = name;
      } else out.push(t);
    } else {
      // A link's own closing parentheses (…/wiki/Foo_(bar)) are part of it.
      while (text[i + t.length] === ")" && t.split("(").length > t.split(")").length) t += ")";
      out.push(
        // dir="ltr": an address reads left to right, set apart from the text around it (in a
        // Hebrew message "https://example.org/שלום" showed as "שלום/https://example.org").
        <a href={t.startsWith("www.") ? `https://${t}` : t} dir="ltr" target="_blank" rel="noopener noreferrer" tabIndex={tabIndex}>
          {t}
        </a>,
      );
    }
    last = i + t.length;
  }
  if (last < text.length) out.push(text.slice(last));
  return <>{out}</>;
}

// One formatter each: toLocaleTimeString builds a new one on every call.
// "3:05 PM", "15:05": the hour as the locale writes it ("03:05 PM" read oddly in 12-hour locales).
const clock = new Intl.DateTimeFormat([], { hour: "numeric", minute: "2-digit" });
export const time = (iso: string) => clock.format(new Date(iso));
/** The time without "AM"/"PM", for a narrow place (the tooltip has it in full). */
export const shortTime = (iso: string) =>
  clock.formatToParts(new Date(iso)).filter((p) => p.type === "hour" || p.type === "minute" || (p.type === "literal" && p.value.trim())).map((p) => p.value).join("");
const full = new Intl.DateTimeFormat([], { dateStyle: "full", timeStyle: "short" });
/** The date and time in full, for a time's tooltip. */
export const fullTime = (iso: string) => full.format(new Date(iso));

/** The local calendar day of a time, as a key that orders and compares ("2026-11-30"). */
export function dayOf(iso: string) {
  const d = new Date(iso);
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
}
const weekday = new Intl.DateTimeFormat([], { weekday: "long", month: "long", day: "numeric" });
const withYear = new Intl.DateTimeFormat([], { weekday: "long", month: "long", day: "numeric", year: "numeric" });
/**
 * Today's key, changed at local midnight: a component that shows a day label reads it (through
 * dayLabel), so a tab left open overnight says "Yesterday" for what it said "Today" (it kept
 * saying "Today" until something else redrew it). Timers sleep in a hidden tab: looked at again
 * whenever the tab is shown.
 */
export const today = signal(dayOf(new Date().toISOString()));
function watchMidnight() {
  const next = new Date();
  next.setHours(24, 0, 1, 0);
  setTimeout(() => {
    today.value = dayOf(new Date().toISOString());
    watchMidnight();
  }, next.getTime() - Date.now());
}
watchMidnight();
document.addEventListener("visibilitychange", () => (today.value = dayOf(new Date().toISOString())));

/** A day separator's text: "Today", "Yesterday", else the day ("Monday, November 28"; with the year when not this year's). */
export function dayLabel(iso: string, now = new Date()) {
  void today.value; // subscribes the component rendering this label (above)
  const day = dayOf(iso);
  if (day === dayOf(now.toISOString())) return "Today";
  const yesterday = new Date(now);
  yesterday.setDate(now.getDate() - 1);
  if (day === dayOf(yesterday.toISOString())) return "Yesterday";
  const d = new Date(iso);
  return (d.getFullYear() === now.getFullYear() ? weekday : withYear).format(d);
}

const shortWeekday = new Intl.DateTimeFormat([], { weekday: "short" });
const shortDay = new Intl.DateTimeFormat([], { month: "short", day: "numeric" });
const shortDate = new Intl.DateTimeFormat([], { dateStyle: "short" });
/** A list's time of a last message: the time today, "Yesterday", the weekday within a week, else the date (with the year when not this year's). */
export function listTime(iso: string, now = new Date()) {
  const label = dayLabel(iso, now);
  if (label === "Today") return time(iso);
  if (label === "Yesterday") return label;
  const d = new Date(iso);
  const weekAgo = new Date(now);
  weekAgo.setDate(now.getDate() - 6);
  weekAgo.setHours(0, 0, 0, 0);
  if (d >= weekAgo && d <= now) return shortWeekday.format(d);
  return (d.getFullYear() === now.getFullYear() ? shortDay : shortDate).format(d);
}

export function initials(name: string) {
  return [...name.trim()].slice(0, 1).join("").toUpperCase() || "?";
}

export function Avatar({ name, url, online }: { name: string; url?: string | null; online?: boolean }) {
  // A picture that does not load (gone, refused) shows the initials, not a broken image.
  const [failed, setFailed] = useState<string | null>(null);
  return (
    <span class="avatar" aria-hidden="true">
      {url && failed !== url ? <img src={url} alt="" referrerpolicy="no-referrer" onError={() => setFailed(url)} /> : initials(name)}
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

// Day and time, for search results (which may be years old): "Today, 3:08 PM" and
// "Yesterday, …" as the message list's days say them (a result of today read its full date).
const stamp = new Intl.DateTimeFormat([], { year: "numeric", month: "short", day: "numeric", hour: "numeric", minute: "2-digit" });
export function when(iso: string) {
  const day = dayLabel(iso);
  return day === "Today" || day === "Yesterday" ? `${day}, ${time(iso)}` : stamp.format(new Date(iso));
}
