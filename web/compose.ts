/**
 * What each conversation's next message holds besides its text (the draft, store.ts): the
 * message it replies to, the files picked for it (uploading, uploaded or refused), and a send
 * asked for while they upload. Kept per conversation while the page is open, so that opening
 * another conversation and coming back loses none of it: the files, the reply and a send
 * waiting for its files were lost with the composer. The reply and the files uploaded are also
 * kept in localStorage per user, as the drafts are, so that a reload (or a phone's browser
 * dropping the page) loses none of them either. An upload in flight cannot outlive its page:
 * the next page says so on its chip, once.
 */
import { effect, signal } from "@preact/signals";
import { ApiError, explain, notReached, size, upload, uploadStillThere, withoutExpiredThumbnail, type Attachment } from "./api";
import { MAX_ATTACHMENTS } from "../src/files/paths";
import { activeId, composeKey, conversations, drafts, send, session, setDraft, storedSessionUser, stopTyping, threads, titleOf, toast, whenBack, whenConversationGone, type Shown } from "./store";

/** A message's most characters (code points, after trimming), as the server counts them (§3). */
export const MAX_CONTENT = 4000;
/** By how many characters a draft is over MAX_CONTENT (0 when it fits); counted as the server counts. */
export const overBy = (text: string) => (text.length > MAX_CONTENT ? [...text.trim()].length - MAX_CONTENT : 0);

/** A file picked for the next message: uploading (with its progress), uploaded, or refused. */
export interface Pick {
  key: string; name: string; size: number; progress: number; abort?: () => void; attachment?: Attachment; error?: string;
  /** Uploads it again: offered when the server was not reached (offline, a proxy's 502–504), not when it refused. */
  retry?: () => void;
  /** Past the files a message carries: uploads it once there is room (a file removed, the message sent). */
  later?: () => void;
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
  /** One's own message being edited, and its text as typed so far (kept as drafts are: it was lost at a switch or a reload). */
  edit?: Edit | null;
}

export interface Edit { message: Shown; text: string }

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
  if (!c.replyTo && !c.picks.length && !c.waiting && !c.edit) delete next[conversationId];
  else next[conversationId] = c;
  compositions.value = next;
  // Upload progress changes nothing kept: stored only when the reply or the uploaded files change.
  const kept = keptOf(c);
  if (JSON.stringify(kept) !== JSON.stringify(keptOf(was))) store(conversationId, kept);
}

// ---- kept across a reload ------------------------------------------------------------------

type KeptFile = { key: string; name: string; size: number; attachment: Attachment };
type CutFile = { key: string; name: string; size: number };
/**
 * What of a conversation's next message outlives the page: the reply, the files already
 * uploaded, an edit under way, and (`cut`) the files still to upload when the page went.
 */
interface Kept { replyTo?: Shown; files?: KeptFile[]; edit?: Edit; cut?: CutFile[] }

/**
 * The page is hidden or going (a reload, a closed tab, a phone's browser putting it away): it
 * may end without another word, so the files it has yet to upload are kept as cut, for the
 * next page to say they did not make it (they went without a word). Not while it is shown: a
 * reload in another tab would take this tab's uploads under way for cut ones.
 */
let mayEnd = document.visibilityState === "hidden";
const yetToUpload = (p: Pick) => !p.attachment && (isUploading(p) || !!p.retry || !!p.later);

function keptOf(c: Composition): Kept | null {
  const files = c.picks.flatMap((p) => (p.attachment ? [{ key: p.key, name: p.name, size: p.size, attachment: p.attachment }] : []));
  const cut = mayEnd ? c.picks.filter(yetToUpload).map(({ key, name, size }) => ({ key, name, size })) : [];
  if (!c.replyTo && !files.length && !c.edit && !cut.length) return null;
  return { ...(c.replyTo && { replyTo: c.replyTo }), ...(files.length && { files }), ...(c.edit && { edit: c.edit }), ...(cut.length && { cut }) };
}

function pageMayEnd(now: boolean) {
  if (now === mayEnd) return;
  mayEnd = now;
  for (const [id, c] of Object.entries(compositions.peek())) if (c.picks.some(yetToUpload)) store(id, keptOf(c));
}
addEventListener("pagehide", () => pageMayEnd(true));
addEventListener("pageshow", () => pageMayEnd(document.visibilityState === "hidden"));
document.addEventListener("visibilitychange", () => pageMayEnd(document.visibilityState === "hidden"));

const isObject = (v: unknown): v is Record<string, any> => typeof v === "object" && v !== null && !Array.isArray(v);
const isFile = (f: unknown): f is KeptFile =>
  isObject(f) && typeof f.key === "string" && typeof f.name === "string" && typeof f.size === "number" && isObject(f.attachment) && typeof f.attachment.id === "string" && typeof f.attachment.url === "string";
const isCut = (f: unknown): f is CutFile => isObject(f) && typeof f.key === "string" && typeof f.name === "string" && typeof f.size === "number";
const isReply = (r: unknown): r is Shown => isObject(r) && typeof r.id === "string" && typeof r.content === "string" && typeof r.sender_name === "string" && Array.isArray(r.attachments);

/**
 * What is kept for a user, in the shape the page can show: an entry of another shape (an older
 * version's, or storage edited by hand) is left out, not thrown on (it would stop the page's start).
 */
function parseKept(text: string | null): Record<string, Kept> {
  let v: unknown;
  try {
    v = JSON.parse(text ?? "{}");
  } catch {
    return {};
  }
  if (!isObject(v)) return {};
  const all: Record<string, Kept> = {};
  for (const [id, entry] of Object.entries(v)) {
    if (!isObject(entry)) continue;
    const files = Array.isArray(entry.files) ? entry.files.filter(isFile) : [];
    const cut = Array.isArray(entry.cut) ? entry.cut.filter(isCut) : [];
    const replyTo = isReply(entry.replyTo) ? entry.replyTo : undefined;
    const edit = isObject(entry.edit) && isReply(entry.edit.message) && typeof entry.edit.text === "string" ? (entry.edit as Edit) : undefined;
    if (replyTo || files.length || edit || cut.length) all[id] = { ...(replyTo && { replyTo }), ...(files.length && { files }), ...(edit && { edit }), ...(cut.length && { cut }) };
  }
  return all;
}
const loadKept = (userId: string) => parseKept(localStorage.getItem(composeKey(userId)));

/** One conversation's entry, read, changed and written back: what another tab kept for the others stays. */
function store(conversationId: string, kept: Kept | null) {
  const userId = session.peek()?.user.id;
  // Signed out in another tab meanwhile (its keys removed, this tab not yet told): nothing written back.
  if (!userId || storedSessionUser() !== userId) return;
  const all = loadKept(userId);
  if (kept) all[conversationId] = kept;
  else delete all[conversationId];
  if (Object.keys(all).length) localStorage.setItem(composeKey(userId), JSON.stringify(all));
  else localStorage.removeItem(composeKey(userId));
}

const restored = (f: KeptFile): Pick => ({ ...f, progress: 1, attachment: withoutExpiredThumbnail(f.attachment) });
const CUT = "Still uploading when the page closed: pick it again.";

/**
 * At the start (or a sign-in): what was kept. A kept file the server no longer has (swept after
 * UPLOAD_ORPHAN_TTL) says so; so does one the page went before uploading, once (not kept after).
 */
function restoreKept(userId: string) {
  const kept = loadKept(userId);
  const next: Record<string, Composition> = {};
  for (const [id, k] of Object.entries(kept)) {
    const cut = (k.cut ?? []).map(({ key, name, size }): Pick => ({ key, name, size, progress: 0, error: CUT }));
    next[id] = { replyTo: k.replyTo ?? null, picks: [...(k.files ?? []).map(restored), ...cut], waiting: false, edit: k.edit ?? null };
  }
  compositions.value = next;
  for (const [id, k] of Object.entries(kept)) if (k.cut) store(id, keptOf(next[id]!));
  for (const [id, k] of Object.entries(kept))
    for (const f of k.files ?? [])
      void uploadStillThere(f.attachment).then((there) => {
        if (there || shownFor !== userId) return;
        change(id, (c) => ({ ...c, picks: c.picks.map((p) => (p.key === f.key && p.attachment?.id === f.attachment.id ? { key: p.key, name: p.name, size: p.size, progress: 0, error: "No longer on the server (kept too long): pick it again." } : p)) }));
      });
}

/**
 * Another tab of this browser changed what is kept (`before` → `after`): its changes come here
 * too, as drafts do — a file it kept is shown, one it sent or removed goes, its reply is this
 * one's. Only what it changed: a file of this page's that storage lacks (a write lost between
 * tabs) stays.
 */
function followKept(before: Record<string, Kept>, after: Record<string, Kept>) {
  const next = { ...compositions.peek() };
  for (const id of new Set([...Object.keys(before), ...Object.keys(after)])) {
    const [was, now] = [before[id], after[id]];
    if (JSON.stringify(was) === JSON.stringify(now)) continue;
    const c = next[id] ?? EMPTY;
    const gone = new Set((was?.files ?? []).map((f) => f.attachment.id));
    for (const f of now?.files ?? []) gone.delete(f.attachment.id);
    const have = new Set(c.picks.flatMap((p) => (p.attachment ? [p.attachment.id] : [])));
    // A file said cut here that the other tab did upload (it was only hidden): its chip is the file's.
    const uploaded = new Set((now?.files ?? []).map((f) => f.key));
    const picks = [...c.picks.filter((p) => !(p.attachment && gone.has(p.attachment.id)) && !(p.error && uploaded.has(p.key))), ...(now?.files ?? []).filter((f) => !have.has(f.attachment.id)).map(restored)];
    const replyTo = was?.replyTo?.id !== now?.replyTo?.id ? (now?.replyTo ?? null) : c.replyTo;
    const edit = JSON.stringify(was?.edit) !== JSON.stringify(now?.edit) ? (now?.edit ?? null) : c.edit;
    if (replyTo || picks.length || c.waiting || edit) next[id] = { ...c, replyTo, picks, edit };
    else delete next[id];
  }
  compositions.value = next;
}

addEventListener("storage", (e) => {
  const userId = session.peek()?.user.id;
  if (e.storageArea !== localStorage || !userId || e.key !== composeKey(userId)) return;
  followKept(parseKept(e.oldValue), parseKept(e.newValue));
});

export const setReplyTo = (conversationId: string, replyTo: Shown | null) => change(conversationId, (c) => ({ ...c, replyTo }));
/** Starts (the message's text), changes (`text`) or ends (null) the edit under way in a conversation. */
export const setEdit = (conversationId: string, edit: Edit | null) => change(conversationId, (c) => ({ ...c, edit }));
/** The message replied to as it is now (edited meanwhile: its new text); null once deleted. */
export function replyTargetOf(conversationId: string): Shown | null {
  const chosen = compositionOf(conversationId).replyTo;
  if (!chosen) return null;
  const now = threads.value.get(conversationId)?.items.find((m) => m.id === chosen.id) ?? chosen;
  return now.deleted_at ? null : now;
}
export const stopWaiting = (conversationId: string) => change(conversationId, (c) => ({ ...c, waiting: false }));

/** The limit a 413 says ("… at most 2097152 bytes (MAX_UPLOAD_BYTES)"). */
const limitOf = (message: string) => Number(message.match(/at most (\d+) bytes/)?.[1]) || null;
/** The server's 413 in the chip's units. */
export function tooLarge(message: string) {
  const max = limitOf(message);
  return max ? tooLargeFor(max) : `Too large: ${message}`;
}
const tooLargeFor = (max: number) => `Too large: a file may have at most ${size(max)}`;

/**
 * The upload limit the server last said (its 413), for this page: a later file over it is
 * refused at once. A browser sends much of a body before it reads an early 413, so over a
 * slow uplink a file far over the limit took as long as its upload to be refused (from an
 * acceptance pass). Not kept past the page: a limit raised since is the next page's.
 */
let knownMax = Infinity;

export { size } from "./api";

/** Uploads files for the next message of a conversation, each shown as a chip with its progress. */
export function attach(conversationId: string, files: Iterable<File> | null) {
  for (const file of files ?? []) {
    const key = crypto.randomUUID();
    // Said here, in words: the server's answer explains its API ("send its bytes as the body…").
    if (file.size === 0) {
      change(conversationId, (c) => ({ ...c, picks: [...c.picks, { key, name: file.name, size: 0, progress: 0, error: "The file is empty." }] }));
      continue;
    }
    // Past the files a message may carry: not uploaded yet (the send was refused whole, its
    // text with it), but kept for the next message, uploaded once there is room.
    if (carried(compositionOf(conversationId)) >= MAX_ATTACHMENTS) {
      const error = `A message carries at most ${MAX_ATTACHMENTS} files: this one goes in the next.`;
      change(conversationId, (c) => ({ ...c, picks: [...c.picks, { key, name: file.name, size: file.size, progress: 0, error, later: () => begin(conversationId, key, file) }] }));
      continue;
    }
    change(conversationId, (c) => ({ ...c, picks: [...c.picks, { key, name: file.name, size: file.size, progress: 0 }] }));
    begin(conversationId, key, file);
  }
}

/** The files a message would carry now: those uploading or uploaded. */
const carried = (c: Composition) => c.picks.filter((p) => !p.error).length;

/** Uploads a picked file (its chip `key`), with its progress, a Retry when the server was not reached. */
function begin(conversationId: string, key: string, file: File) {
  const patch = (p: Partial<Pick>) => change(conversationId, (c) => ({ ...c, picks: c.picks.map((x) => (x.key === key ? { ...x, ...p } : x)) }));
  let attempt = 0;
  const start = () => {
    // Over the limit the server said (a file kept for the next message too): no request.
    if (file.size > knownMax) {
      patch({ progress: 0, error: tooLargeFor(knownMax), abort: undefined, retry: undefined, later: undefined });
      return settled(conversationId);
    }
    const mine = ++attempt;
    const up = upload(file, (progress) => patch({ progress }));
    patch({ progress: 0, abort: up.abort, error: undefined, retry: undefined, later: undefined });
    up.done.then(
      (attachment) => patch({ attachment, progress: 1, abort: undefined }),
      (e) => {
        if (e instanceof ApiError && e.code === "aborted") return; // cancelled: the chip is gone already
        const error = e instanceof ApiError && e.status === 413 ? tooLarge(e.message) : explain(e, "The upload failed.");
        if (e instanceof ApiError && e.status === 413) knownMax = limitOf(e.message) ?? knownMax;
        // Too many uploads for now (429): Retry, and it goes by itself after the Retry-After (it
        // had neither: the file had to be removed and picked again; from an acceptance pass).
        const waited = e instanceof ApiError && e.status === 429;
        patch({ error, abort: undefined, retry: notReached(e) || waited ? start : undefined });
        // This attempt's wait only (a Retry meanwhile has its own), while the chip still waits.
        if (waited) setTimeout(() => attempt === mine && compositionOf(conversationId).picks.some((p) => p.key === key && p.retry === start) && start(), ((e as ApiError).retryAfter ?? 5) * 1000);
      },
    ).then(() => settled(conversationId));
  };
  start();
}

/** Files kept for the next message go up while the message has room for them. */
function makeRoom(conversationId: string) {
  for (;;) {
    const c = compositionOf(conversationId);
    const next = c.picks.find((p) => p.later);
    if (!next || carried(c) >= MAX_ATTACHMENTS) return;
    next.later!(); // no longer `later` once begun
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
  makeRoom(conversationId);
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
  // Files past the ones this message carries stay, for the next (uploaded now).
  change(conversationId, (c) => ({ ...EMPTY, picks: c.picks.filter((p) => p.later) }));
  makeRoom(conversationId);
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
  if (userId) restoreKept(userId);
});
