/**
 * Message text as Preact children: plain strings (Preact escapes them — never innerHTML)
 * and links for http(s) URLs, opened safely. @mentions are emphasised.
 */
import type { ComponentChildren } from "preact";

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
