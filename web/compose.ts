/**
 * What each conversation's next message holds besides its text (the draft, store.ts): the
 * message it replies to, the files picked for it (uploading, uploaded or refused), and a send
 * asked for while they upload. Kept per conversation while the page is open, so that opening
 * another conversation and coming back loses none of it: the files, the reply and a send
 * waiting for its files were lost with the composer. The reply and the files uploaded are also
 * kept in localStorage per user, as the drafts are, so that a reload (or a phone's browser
 * dropping the page) loses none of them either; an upload in flight cannot outlive its page.
 */
import { effect, signal } from "@preact/signals";
import { ApiError, explain, notReached, upload, withoutExpiredThumbnail, type Attachment } from "./api";
import { MAX_ATTACHMENTS } from "../src/files/paths";
import { activeId, composeKey, conversations, drafts, send, session, setDraft, stopTyping, threads, titleOf, toast, whenBack, whenConversationGone, type Shown } from "./store";

/** A message's most characters (code points, after trimming), as the server counts them (§3). */
export const MAX_CONTENT = 4000;
/** By how many characters a draft is over MAX_CONTENT (0 when it fits); counted as the server counts. */
export const overBy = (text: string) => (text.length > MAX_CONTENT ? [...text.trim()].length - MAX_CONTENT : 0);

/** A file picked for the next message: uploading (with its progress), uploaded, or refused. */
export interface Pick {
  key: string; name: string; size: number; progress: number; abort?: () => void; attachment?: Attachment; error?: string;
  /** Uploads it again: offered when the server was not reached (offline, a proxy's 502–504), not when it refused. */
  retry?: () => void;
}

export interface Composition {
  /** As it was when Reply was chosen: shown as it is now (replyTargetOf). */
  replyTo: Shown | null;
  picks: Pick[];
  /**
   * A send asked for while files uploaded (Enter): made once they are. Holds the keys of the
   * files refused before it was asked for: the message goes without those, as a send made at
   * once does (only a file refused while it waits stops it).
   */
  waiting: false | { refused: string[] };
}

const EMPTY: Composition = { replyTo: null, picks: [], waiting: false };
export const compositions = signal<Record<string, Composition>>({});
export const compositionOf = (conversationId: string): Composition => compositions.value[conversationId] ?? EMPTY;
export const isUploading = (p: Pick) => !p.attachment && !p.error;
/** Uploading, or failed for want of a connection (it goes again by itself once back): a send waits for it. */
const notUploadedYet = (p: Pick) => isUploading(p) || !!p.retry;

function change(conversationId: string, f: (c: Composition) => Composition) {
  const next = { ...compositions.value };
  const was = compositionOf(conversationId);
  const c = f(was);
  if (!c.replyTo && !c.picks.length && !c.waiting) delete next[conversationId];
  else next[conversationId] = c;
  compositions.value = next;
  // Upload progress changes nothing kept: stored only when the reply or the uploaded files change.
  const kept = keptOf(c);
  if (JSON.stringify(kept) !== JSON.stringify(keptOf(was))) store(conversationId, kept);
}

// ---- kept across a reload ------------------------------------------------------------------

/** What of a conversation's next message outlives the page: the reply, and the files already uploaded. */
interface Kept { replyTo?: Shown; files?: { key: string; name: string; size: number; attachment: Attachment }[] }

function keptOf(c: Composition): Kept | null {
  const files = c.picks.flatMap((p) => (p.attachment ? [{ key: p.key, name: p.name, size: p.size, attachment: p.attachment }] : []));
  if (!c.replyTo && !files.length) return null;
  return { ...(c.replyTo && { replyTo: c.replyTo }), ...(files.length && { files }) };
}

function loadKept(userId: string): Record<string, Kept> {
  try {
    const v = JSON.parse(localStorage.getItem(composeKey(userId)) ?? "{}");
    return v && typeof v === "object" ? v : {};
  } catch {
    return {};
  }
}

/** One conversation's entry, read, changed and written back: what another tab kept for the others stays. */
function store(conversationId: string, kept: Kept | null) {
  const userId = session.peek()?.user.id;
  if (!userId) return;
  const all = loadKept(userId);
  if (kept) all[conversationId] = kept;
  else delete all[conversationId];
  if (Object.keys(all).length) localStorage.setItem(composeKey(userId), JSON.stringify(all));
  else localStorage.removeItem(composeKey(userId));
}

/**
 * A conversation's composition with what is kept for it: the kept reply, and the kept files
 * (those this page uploaded keep their chips) beside this page's uploads in flight or
 * refused. Used at the start and when another tab of this browser changed what is kept
 * (a file sent or removed there goes here too, as drafts do).
 */
function withKept(c: Composition, kept: Kept | undefined): Composition {
  const mine = new Map(c.picks.flatMap((p) => (p.attachment ? [[p.attachment.id, p] as const] : [])));
  const files = (kept?.files ?? []).map((f) => mine.get(f.attachment.id) ?? { ...f, progress: 1, attachment: withoutExpiredThumbnail(f.attachment) });
  return { ...c, replyTo: kept?.replyTo ?? null, picks: [...files, ...c.picks.filter((p) => !p.attachment)] };
}

function adoptKept(userId: string) {
  const kept = loadKept(userId);
  const next: Record<string, Composition> = {};
  for (const id of new Set([...Object.keys(kept), ...Object.keys(compositions.peek())])) {
    const c = withKept(compositionOf(id), kept[id]);
    if (c.replyTo || c.picks.length || c.waiting) next[id] = c;
  }
  compositions.value = next;
}

addEventListener("storage", (e) => {
  const userId = session.peek()?.user.id;
  if (e.storageArea === localStorage && userId && (e.key === composeKey(userId) || e.key === null)) adoptKept(userId);
});

export const setReplyTo = (conversationId: string, replyTo: Shown | null) => change(conversationId, (c) => ({ ...c, replyTo }));
/** The message replied to as it is now (edited meanwhile: its new text); null once deleted. */
export function replyTargetOf(conversationId: string): Shown | null {
  const chosen = compositionOf(conversationId).replyTo;
  if (!chosen) return null;
  const now = threads.value.get(conversationId)?.items.find((m) => m.id === chosen.id) ?? chosen;
  return now.deleted_at ? null : now;
}
export const stopWaiting = (conversationId: string) => change(conversationId, (c) => ({ ...c, waiting: false }));

/** The server's 413 ("… at most 2097152 bytes (MAX_UPLOAD_BYTES)") in the chip's units. */
export function tooLarge(message: string) {
  const max = message.match(/at most (\d+) bytes/)?.[1];
  return max ? `Too large: a file may have at most ${size(Number(max))}` : `Too large: ${message}`;
}

// "2 MB", not "2.0 MB": the upload limit reads as it is configured.
export const size = (n: number) => (n < 1024 ? `${n} B` : n < 1048576 ? `${(n / 1024).toFixed(0)} KB` : `${+(n / 1048576).toFixed(1)} MB`);

/** Uploads files for the next message of a conversation, each shown as a chip with its progress. */
export function attach(conversationId: string, files: Iterable<File> | null) {
  const patch = (key: string, p: Partial<Pick>) =>
    change(conversationId, (c) => ({ ...c, picks: c.picks.map((x) => (x.key === key ? { ...x, ...p } : x)) }));
  for (const file of files ?? []) {
    const key = crypto.randomUUID();
    // Said here, in words: the server's answer explains its API ("send its bytes as the body…").
    if (file.size === 0) {
      change(conversationId, (c) => ({ ...c, picks: [...c.picks, { key, name: file.name, size: 0, progress: 0, error: "The file is empty." }] }));
      continue;
    }
    // Past the files a message may carry: not uploaded (the send was refused whole, its text with it).
    if (compositionOf(conversationId).picks.filter((p) => !p.error).length >= MAX_ATTACHMENTS) {
      const error = `A message carries at most ${MAX_ATTACHMENTS} files: send this one in the next.`;
      change(conversationId, (c) => ({ ...c, picks: [...c.picks, { key, name: file.name, size: file.size, progress: 0, error }] }));
      continue;
    }
    change(conversationId, (c) => ({ ...c, picks: [...c.picks, { key, name: file.name, size: file.size, progress: 0 }] }));
    const start = () => {
      const up = upload(file, (progress) => patch(key, { progress }));
      patch(key, { progress: 0, abort: up.abort, error: undefined, retry: undefined });
      up.done.then(
        (attachment) => patch(key, { attachment, progress: 1, abort: undefined }),
        (e) => {
          if (e instanceof ApiError && e.code === "aborted") return; // cancelled: the chip is gone already
          const error = e instanceof ApiError && e.status === 413 ? tooLarge(e.message) : explain(e, "The upload failed.");
          patch(key, { error, abort: undefined, retry: notReached(e) ? start : undefined });
        },
      ).then(() => settled(conversationId));
    };
    start();
  }
}

// Back online: uploads that failed for want of a connection go again, as sends do (Retry was the only way).
whenBack(() => {
  for (const c of Object.values(compositions.peek())) for (const p of c.picks) p.retry?.();
});

/** Removes a picked file (cancelling its upload). */
export function unpick(conversationId: string, p: Pick) {
  p.abort?.();
  change(conversationId, (c) => ({ ...c, picks: c.picks.filter((x) => x.key !== p.key) }));
  settled(conversationId);
}

/** The last upload of a conversation that waits to send has ended: the send goes (or says why not). */
function settled(conversationId: string) {
  const c = compositionOf(conversationId);
  if (c.waiting && !c.picks.some(isUploading)) void sendComposed(conversationId);
}

/**
 * Sends the conversation's next message: its draft, reply and uploaded files. While files
 * upload it waits for them (asked from the composer's Enter, said there, with Cancel); a file
 * refused meanwhile stops that send (it went without it). A send asked for directly goes with
 * the files that did upload.
 */
export async function sendComposed(conversationId: string) {
  const c = compositionOf(conversationId);
  // Offline, a file that could not upload yet is waited for too (Enter dropped it from the message).
  if (c.picks.some(notUploadedYet)) return change(conversationId, (x) => ({ ...x, waiting: x.waiting || { refused: x.picks.filter((p) => p.error && !p.retry).map((p) => p.key) } }));
  if (c.waiting) stopWaiting(conversationId);
  const content = (drafts.value[conversationId] ?? "").trim();
  const ready = c.picks.flatMap((p) => (p.attachment ? [p.attachment] : []));
  if (c.waiting) {
    // Said of a conversation no longer on screen by its name.
    const conv = conversations.value.get(conversationId);
    const where = activeId.value === conversationId || !conv ? "" : ` to “${titleOf(conv)}”`;
    const refused = c.waiting.refused;
    if (c.picks.some((p) => p.error && !refused.includes(p.key))) return void (toast.value = `Not sent${where}: a file could not be uploaded. Remove it, or send without it.`);
    if (overBy(content) > 0) return void (toast.value = `Not sent${where}: a message may have at most ${MAX_CONTENT.toLocaleString("en-US")} characters.`);
  }
  if (overBy(content) > 0 || (!content && !ready.length)) return;
  const replyTo = replyTargetOf(conversationId)?.id ?? null;
  setDraft(conversationId, "");
  change(conversationId, () => EMPTY);
  stopTyping(conversationId);
  await send(conversationId, content, replyTo, ready);
}

/** Nothing of a conversation's next message outlives the conversation (left, deleted, removed from): its uploads stop. */
function forget(conversationId: string) {
  for (const p of compositionOf(conversationId).picks) p.abort?.();
  if (compositions.peek()[conversationId]) change(conversationId, () => EMPTY);
}
whenConversationGone(forget);

// Signed out (or the session lost): another person may sign in next in this tab. Uploads in
// flight are cancelled and nothing of the composers stays on the page (what is kept stays
// in storage for a lost session; a sign-out on purpose removes it, store.ts). Signed in: what
// was kept for that person comes back.
let shownFor: string | null = null;
effect(() => {
  const userId = session.value?.user.id ?? null;
  if (userId === shownFor) return;
  shownFor = userId;
  for (const c of Object.values(compositions.peek())) for (const p of c.picks) p.abort?.();
  compositions.value = {};
  if (userId) adoptKept(userId);
});
