/**
 * The client's state (Preact signals) and everything that changes it: the session, the
 * socket (the reference client: reconnect and resume), conversations, messages, presence,
 * typing, friends. Components only read signals and call the actions exported here.
 */
import { batch, computed, effect, signal } from "@preact/signals";
import { announcement } from "./announce";
import { ParleyClient } from "../src/client/index";
import { gist } from "./text";
import { allPages, api, ApiError, explain, handleUnauthorized, notReached, setToken, withoutExpiredThumbnail, type Attachment, type ContactPolicy, type Conversation, type Friendship, type Member, type Message, type Page, type Session, type User } from "./api";
import { dropUnsent, forgetUnsent, keepUnsent, outboxKey, removedBetween, unsentOf, type Unsent } from "./outbox";

const SESSION_KEY = "parley.session";
/**
 * Drafts are kept per user: a session lost keeps them, and someone else signing in next in
 * the same browser saw them in the conversations the two shared. (Before, one key for all.)
 */
const draftKey = (userId: string | undefined) => `parley.drafts.${userId ?? ""}`;
/** The reply and files uploaded for each conversation's next message (compose.ts), per user as the drafts. */
export const composeKey = (userId: string) => `parley.compose.${userId}`;
const NOTICE_KEY = "parley.no-longer";

/**
 * A message as shown: a sent one, or one of ours still on its way (`pending`) or refused
 * (`failed`: "offline", "unreachable" — both sent again once the socket is back — or why the server refused it).
 */
export type Shown = Message & { pending?: boolean; failed?: string };

export interface Thread {
  items: Shown[];
  /** Cursor of the next older page; null when the start of the history is loaded. */
  older: string | null;
  /** Cursor of the next newer page when the thread was opened around an older message (a search
   * result); null (or absent) when the newest messages are loaded and live ones are appended. */
  newer?: string | null;
  loading: boolean;
  /** The first message that was unread when the conversation was opened (for the divider). */
  firstUnread: string | null;
}

export const session = signal<Session | null>(loadSession());
/** Who was signed in in this tab last (signed out since, or not). */
let lastUser: string | null = session.peek()?.user.id ?? null;
export const signInNotice = signal<string | null>(null);
export const conversations = signal<Map<string, Conversation>>(new Map());
/** The list has been read once (an empty one is then really empty: the first-use help shows). */
export const listed = signal(false);
export const threads = signal<Map<string, Thread>>(new Map());
export const members = signal<Map<string, Map<string, Member>>>(new Map());
/** Conversations that went away in this session (deleted, or we were removed), until ours again. */
const gone = new Set<string>();
/**
 * Reads made while neither the socket nor the server could be reached: sent when the socket
 * is back (a conversation read offline and left before then would stay unread on the server).
 * Kept in localStorage too, per user: a reload before the network came back lost them.
 */
const unsentReads = new Map<string, string>();
const readsKey = (userId: string) => `parley.unsentReads.${userId}`;
function keepUnsentReads() {
  const id = me.value?.id;
  if (!id) return;
  if (unsentReads.size) localStorage.setItem(readsKey(id), JSON.stringify([...unsentReads]));
  else localStorage.removeItem(readsKey(id));
}
export const presence = signal<Record<string, boolean>>({});
/** conversation id → user id → expiry (ms). */
export const typing = signal<Record<string, Record<string, number>>>({});
export const connection = signal<"connecting" | "open" | "reconnecting">("connecting");
/**
 * Whether a user is online, as far as this page knows: undefined until the socket has said
 * (what a page heard before its socket went away may be stale: it is forgotten then, and the
 * client follows the users again on reconnect).
 */
export const onlineOf = (userId: string): boolean | undefined => (connection.value === "open" ? presence.value[userId] : undefined);
export const activeId = signal<string | null>(idFromPath());
export const friendships = signal<Friendship[]>([]);
/** The server's CONTACT_POLICY (§7.2): under "open" anyone found may be messaged, not only friends. */
export const contactPolicy = signal<ContactPolicy["contact_policy"]>("friends");
// Drafts of a version that kept everyone's under one key: those of the user whose session is
// stored (expired or not: a lost session kept both), else nobody's (given to whoever signed
// in next, they would be someone else's).
{
  const unowned = localStorage.getItem("parley.drafts");
  const owner = loadJSON<Session | null>(SESSION_KEY, null)?.user?.id;
  if (unowned !== null && owner && localStorage.getItem(draftKey(owner)) === null) localStorage.setItem(draftKey(owner), unowned);
  localStorage.removeItem("parley.drafts");
}
export const drafts = signal<Record<string, string>>(loadDrafts(session.peek()?.user.id));
export const toast = signal<string | null>(null);
// A path that is no page of the app (a mistyped or cut link; the server answers a browser 404
// with this page there): the list, and a word of why (signed out, the sign-in form says enough).
if (location.pathname !== "/" && !idFromPath()) {
  const path = location.pathname;
  history.replaceState(null, "", "/");
  if (session.peek()) toast.value = `There is no page at ${path}: here are your conversations.`;
}
/**
 * Whether the reader of the open conversation is at its newest messages (the end of the list
 * in view): a message that arrives while they read further up is not read yet (no "Seen").
 */
export const atLatest = signal(true);
/** Messages deleted while the page was open: search results shown before still held their text. */
export const deletedLive = signal<Set<string>>(new Set());
/**
 * A message to bring into view and highlight once its conversation shows it (a search result).
 * `at`: when it was asked for (performance.now()), to tell whether the user went elsewhere since.
 */
export const focusMessage = signal<{ conversationId: string; messageId: string; at: number } | null>(null);

export const me = computed(() => session.value?.user ?? null);
export const sortedConversations = computed(() =>
  // ISO timestamps order as strings; a plain comparison (localeCompare is ICU collation, slow).
  [...conversations.value.values()].sort((a, b) => (activity(a) < activity(b) ? 1 : activity(a) > activity(b) ? -1 : 0)),
);
export const totalUnread = computed(() => [...conversations.value.values()].reduce((n, c) => n + (c.unread_count ?? 0), 0));

const activity = (c: Conversation) => c.last_message_at ?? c.created_at;

function loadJSON<T>(key: string, fallback: T, storage: Storage = localStorage): T {
  try {
    return JSON.parse(storage.getItem(key) ?? "") ?? fallback;
  } catch {
    return fallback;
  }
}

function loadDrafts(userId: string | undefined): Record<string, string> {
  return userId ? loadJSON(draftKey(userId), {}) : {};
}

/** Who the session kept in storage is for (another tab may have signed out or in since this page read it). */
export const storedSessionUser = (): string | undefined => loadJSON<Session | null>(SESSION_KEY, null)?.user?.id;

function loadSession(): Session | null {
  const s = loadJSON<Session | null>(SESSION_KEY, null);
  if (!s || Date.parse(s.expires_at) <= Date.now()) return null;
  setToken(s.token);
  return s;
}

function idFromPath(): string | null {
  const m = location.pathname.match(/^\/c\/([^/]+)$/);
  return m ? decodeURIComponent(m[1]!) : null;
}

// ---- session ----------------------------------------------------------------------------

let client: ParleyClient | null = null;
/** The window's online/offline listeners of the current client (start), removed on sign-out. */
let offNetworkEvents: AbortController | null = null;

export async function signIn(kind: "login" | "register", username: string, password: string) {
  keepSession(await api<Session>("POST", `/api/auth/${kind}`, { username, password }));
  signInNotice.value = null;
  await start();
}

function keepSession(s: Session) {
  const kept = { ...s, issued_at: Date.now() };
  localStorage.setItem(SESSION_KEY, JSON.stringify(kept));
  setToken(s.token);
  if (session.peek()?.user.id !== s.user.id) drafts.value = loadDrafts(s.user.id);
  lastUser = s.user.id;
  session.value = kept;
  scheduleRefresh();
}

let refreshTimer: ReturnType<typeof setTimeout> | undefined;
/** A new token at half of the current one's life, so a tab in use never meets the expiry. */
function scheduleRefresh() {
  clearTimeout(refreshTimer);
  const s = session.value;
  if (!s) return;
  const expires = Date.parse(s.expires_at);
  const issued = s.issued_at ?? Date.now();
  refreshTimer = setTimeout(async () => {
    if (session.value?.token !== s.token) return;
    // Another tab of this browser refreshed already (the tabs share one session): that token is this one's too.
    const stored = loadJSON<Session | null>(SESSION_KEY, null);
    if (stored && stored.user.id === s.user.id && stored.token !== s.token && Date.parse(stored.expires_at) > Date.parse(s.expires_at)) return adopt(stored);
    try {
      const next = await api<Session>("POST", "/api/auth/refresh");
      // Signed out (here or in another tab) while the refresh was on its way: it signed the user in again.
      if (session.value?.token !== s.token) return;
      keepSession(next);
    } catch (e) {
      // Offline: try again in a minute (a 401 has already ended the session).
      if (!(e instanceof ApiError) || e.status !== 401) refreshTimer = setTimeout(scheduleRefresh, 60_000);
    }
  }, Math.max(1000, issued + (expires - issued) / 2 - Date.now()));
}
scheduleRefresh();

export function signOut(notice: string | null = null) {
  lastUser = session.peek()?.user.id ?? lastUser;
  client?.close();
  client = null;
  offNetworkEvents?.abort();
  clearTimeout(refreshTimer);
  // Signing out on purpose leaves nothing behind; a lost session keeps the drafts (and the
  // removed-from notice, whose text is a draft too: shown to its own user only). The drafts go
  // before the session: other tabs tell the two apart by them when they hear of the session.
  const was = session.peek()?.user.id;
  if (!notice) localStorage.removeItem(draftKey(was));
  if (!notice && was) localStorage.removeItem(composeKey(was));
  if (!notice && was) localStorage.removeItem(readsKey(was));
  if (!notice && was) forgetUnsent(was);
  localStorage.removeItem(SESSION_KEY);
  setToken(null);
  // Another person may sign in next in this tab: nothing of this one's on screen, nor sent for them.
  toast.value = null;
  announcement.value = null;
  unsentReads.clear();
  outgoing.clear();
  sendGeneration++;
  pumping = false;
  sending = null;
  gone.clear();
  if (!notice) {
    noLonger.value = null;
    drafts.value = {};
    // Nor the conversation in the address: the next person to sign in starts at the list.
    if (location.pathname !== "/") history.pushState(null, "", "/");
    activeId.value = null;
  }
  batch(() => {
    session.value = null;
    signInNotice.value = notice;
    conversations.value = new Map();
    listed.value = false;
    threads.value = new Map();
    forgetQuotes();
    members.value = new Map();
    friendships.value = [];
    deletedLive.value = new Set();
    presence.value = {};
    typing.value = {};
  });
  // The next user follows their own peers' presence.
  followed.clear();
}

// The draft is kept in localStorage, so a lost session loses nothing typed.
const SESSION_ENDED = "Your session has ended. Sign in again; your drafts are kept.";
handleUnauthorized(() => signOut(SESSION_ENDED));

export function setDraft(conversationId: string, text: string) {
  const edit = (d: Record<string, string>) => {
    if (text) d[conversationId] = text;
    else delete d[conversationId];
    return d;
  };
  drafts.value = edit({ ...drafts.value });
  if (!me.value) return;
  // One key of what is stored now: the drafts another tab wrote since stay (this tab's whole copy overwrote them).
  const key = draftKey(me.value.id);
  localStorage.setItem(key, JSON.stringify(edit(loadJSON<Record<string, string>>(key, {}))));
}

const SIGNED_OUT_ELSEWHERE = "You were signed out in another tab.";
// The tabs of a browser share the session and the drafts (localStorage); each follows what
// another changed. A tab signed out elsewhere went on (and its token refresh wrote the
// session back: signed in again at the next load); one signed in elsewhere stayed at the form.
addEventListener("storage", (e) => {
  if (e.storageArea !== localStorage) return;
  if (e.key === draftKey(session.peek()?.user.id) || e.key === null) drafts.value = loadDrafts(session.peek()?.user.id);
  if (e.key === outboxKey(session.peek()?.user.id ?? "")) outboxChangedElsewhere(removedBetween(e.oldValue, e.newValue));
  if (e.key !== SESSION_KEY && e.key !== null) return;
  const theirs = loadJSON<Session | null>(SESSION_KEY, null);
  const mine = session.peek();
  // Signed out elsewhere: on purpose (its drafts went too), or the session was lost there.
  if (!theirs) return void (mine && signOut(localStorage.getItem(draftKey(mine.user.id)) === null ? SIGNED_OUT_ELSEWHERE : SESSION_ENDED));
  if (Date.parse(theirs.expires_at) <= Date.now()) return;
  // Someone else signed in in another tab: this page is theirs now, from the start.
  if (mine && theirs.user.id !== mine.user.id) return location.reload();
  if (mine && JSON.stringify(theirs) === JSON.stringify(mine)) return;
  adopt(theirs);
});

/** A session another tab signed in, refreshed or changed: this tab's too (started, if it was signed out). */
function adopt(theirs: Session) {
  const mine = session.peek();
  setToken(theirs.token);
  if (!mine) drafts.value = loadDrafts(theirs.user.id);
  // Someone other than who was last signed in here: they start at the list, as after a sign-out.
  if (!mine && lastUser !== theirs.user.id && activeId.value) navigate(null);
  session.value = theirs;
  scheduleRefresh();
  if (!mine) {
    signInNotice.value = null;
    void start();
  }
}

export function updateProfile(patch: { display_name?: string; profile_image_url?: string | null; avatar_attachment_id?: string }) {
  return api<User>("PATCH", "/api/users/me", patch).then(keepUser);
}

/** The signed-in user's account, as the session shows and keeps it. */
function keepUser(user: User) {
  if (!session.value || session.value.user.id !== user.id) return;
  if (JSON.stringify(session.value.user) === JSON.stringify(user)) return; // unchanged: nothing to render again
  const s = { ...session.value, user };
  localStorage.setItem(SESSION_KEY, JSON.stringify(s));
  session.value = s;
}

// ---- connection -------------------------------------------------------------------------

/** "Reconnect now": the next attempt at once instead of after the backoff (none while one is under way). */
export function reconnectNow() {
  client?.reconnectNow();
}

/** Starts the socket and loads the first state; called after sign-in and on page load. */
export async function start() {
  if (!session.value || client) return;
  // Tickets keep the token out of URLs (and so out of proxies' logs).
  // Backoff capped at 10 s, not the reference client's 30: a person looks at this page, and
  // after a server restart it came back up to 25 s after the server did (an acceptance pass).
  const c = new ParleyClient({ url: location.origin, token: () => session.value?.token ?? "", useTickets: true, backoff: { maxMs: 10_000 } });
  client = c;
  // Reads a page made offline and did not live to send (a reload, a closed tab): sent on open.
  for (const [conversationId, messageId] of loadJSON<[string, string][]>(readsKey(session.value.user.id), [])) {
    if (typeof conversationId === "string" && typeof messageId === "string" && (unsentReads.get(conversationId) ?? "") < messageId) unsentReads.set(conversationId, messageId);
  }
  // Messages written before a reload (or a lost session) and not acknowledged: shown and sent now, over REST.
  restoreOutgoing(session.value.user);
  connection.value = "connecting";
  // A phone or laptop that loses its network keeps a socket that never reports its close:
  // the browser's offline event ends it now (the status says "Reconnecting…"), its online
  // event reconnects without waiting out the backoff. The client's heartbeat finds the
  // silences the browser does not see.
  offNetworkEvents = new AbortController();
  const { signal } = offNetworkEvents;
  window.addEventListener("offline", () => client === c && (connection.value = "reconnecting", c.drop("the browser is offline")), { signal });
  window.addEventListener("online", () => client === c && c.reconnectNow(), { signal });
  // Someone comes back to the page while it waits to reconnect: it tries now.
  window.addEventListener("focus", () => client === c && connection.value === "reconnecting" && c.reconnectNow(), { signal });
  // The account as it is now (its display name may have changed elsewhere since it was kept).
  void api<User>("GET", "/api/users/me").then((me) => client === c && keepUser(me)).catch(() => {});
  // The first socket of a session starts live delivery where the server stands when it opens
  // (`connect`'s last_seq); later ones resume from there. What REST read before that (the
  // sidebar, a deep link's thread, friends: not kept waiting for a ticket and an upgrade)
  // misses a change committed between that read and the socket's start: read once more.
  let started = false;
  c.on("connect", () => {
    if (client !== c || started) return;
    started = true;
    void loadFriends();
    for (const [id, t] of threads.value) if (!t.newer && !t.loading) void catchUp(id);
  });
  c.on("open", () => {
    connection.value = "open";
    resend();
    if (me.value) restoreOutgoing(me.value);
    for (const f of backListeners) f();
    const reads = [...unsentReads];
    unsentReads.clear();
    keepUnsentReads();
    for (const [conversationId, messageId] of reads) sendRead(conversationId, messageId);
    const id = activeId.value;
    if (id) c.send("conversation.active", { conversation_id: id });
    // Opened while the network was away, its first page failed: read it now (it stayed blank).
    if (id && !threads.value.has(id)) void openThread(id);
  });
  c.on("close", (info) => {
    if (client !== c) return;
    batch(() => {
      connection.value = "reconnecting";
      presence.value = {};
    });
    // A 4001 the client retries is the socket's first token expiring after a refresh: not the end.
    if (!info.retry && (info.status === 401 || info.code === 4001)) return signOut(SESSION_ENDED);
    // A browser cannot read why an upgrade was refused; a REST call can (401 → sign in).
    if (!info.retry || info.code === 1006) api("GET", "/api/users/me").catch(() => {});
  });
  // Each connect sends the first page again; later pages stay current through the replayed events.
  c.on("conversation.list", (page) => {
    mergeConversations(page.items);
    listed.value = true;
    // The server's count for the open conversation: a read made while the network was away
    // never reached it (found by an acceptance pass: "Team, 1 unread" while reading it).
    const id = activeId.value;
    const t = id ? threads.value.get(id) : undefined;
    // Only a thread on screen: one still loading may open at its first unread message.
    if (id && t && !t.loading && !t.newer && atLatest.value && page.items.some((c) => c.id === id && c.unread_count)) markSeen(id);
  });
  c.on("sync.reset", () => void reloadAll());
  c.on("conversation.create", (conv) => upsertConversation(conv as Conversation));
  c.on("conversation.update", (conv) => upsertConversation(conv as Conversation));
  c.on("conversation.delete", ({ conversation_id }) => removeConversation(conversation_id));
  c.on("message.receive", (m) => receive(m));
  c.on("message.edit", (m) => patchMessage(m.conversation_id, m.id, () => m));
  c.on("message.delete", (d) => {
    patchMessage(d.conversation_id, d.message_id, (m) => ({ ...m, content: "", reactions: [], deleted_at: d.deleted_at }));
    deletedLive.value = new Set(deletedLive.value).add(d.message_id);
    // A deleted message is no longer unread: when it may have been one (after the read
    // position; the event does not say whose it was), the server's count is read again (the
    // link said "1 unread" until a reload: from an acceptance pass).
    const conv = conversations.value.get(d.conversation_id);
    if (conv?.unread_count && !(conv.my_last_read_message_id && d.message_id <= conv.my_last_read_message_id)) recountUnread(d.conversation_id);
  });
  c.on("message.reaction", (r) => patchMessage(r.conversation_id, r.message_id, (m) => applyReaction(m, r.user_id, r.emoji, r.action)));
  c.on("message.read", (r) => markRead(r.conversation_id, r.user_id, r.message_id));
  // The server tells one's other sockets of one's typing too (another device may show it); a
  // tab of one's own does not: "Ann is typing…" under what Ann types in another tab.
  c.on("message.typing", (t) => t.user_id !== me.value?.id && setTyping(t.conversation_id, t.user_id, t.is_typing));
  c.on("user.online", (p) => (presence.value = { ...presence.value, [p.user_id]: true }));
  c.on("user.offline", (p) => (presence.value = { ...presence.value, [p.user_id]: false }));
  c.on("user.status", (s) => {
    const next = { ...presence.value };
    for (const st of s.statuses) next[st.user_id] = st.online;
    presence.value = next;
  });
  c.on("user.update", (u) => updateUser(u));
  for (const type of ["friend.request", "friend.accept", "friend.remove"] as const) c.on(type, () => void loadFriends());
  c.on("notification", (n) => {
    if (n.kind !== "mention") return;
    // Who, where and what: the message came just before (message.receive), as the list's last or in its thread.
    const id = String(n.conversation_id);
    const conv = conversations.value.get(id);
    const m = conv?.last_message?.id === n.message_id ? conv.last_message : threads.value.get(id)?.items.find((x) => x.id === n.message_id);
    const where = conv ? titleOf(conv) : "";
    notify(m ? `${m.sender_name} mentioned you${where ? ` in ${where}` : ""}` : `You were mentioned${where ? ` in ${where}` : ""}`, m ? gist(m) : "", id);
  });
  // Contract v2 membership deltas (§7.1); the reference client's types may not name them yet.
  const on = c.on.bind(c) as unknown as (type: string, h: (d: any) => void) => void;
  on("conversation.member_add", (d: { conversation_id: string; members: Member[]; member_count: number }) => {
    editMembers(d.conversation_id, (m) => d.members.forEach((x) => m.set(x.user.id, x)));
    patchConversation(d.conversation_id, { member_count: d.member_count });
  });
  on("conversation.member_remove", (d: { conversation_id: string; user_ids: string[]; member_count: number }) => {
    editMembers(d.conversation_id, (m) => d.user_ids.forEach((id) => m.delete(id)));
    patchConversation(d.conversation_id, { member_count: d.member_count });
  });
  on("conversation.member_update", (d: { conversation_id: string; member: Member }) => {
    editMembers(d.conversation_id, (m) => m.set(d.member.user.id, d.member));
    if (d.member.user.id === me.value?.id) patchConversation(d.conversation_id, { my_role: d.member.role });
  });
  // The sidebar does not wait for the socket (a ticket, an upgrade, then its list): REST, now.
  void loadConversations();
  void loadFriends();
  void api<ContactPolicy>("GET", "/api/contact-policy").then((p) => (contactPolicy.value = p.contact_policy), () => {});
  // A deep link (/c/<id>) opens its conversation straight away, over REST.
  if (activeId.value) void openThread(activeId.value);
  await c.connect().catch(() => {});
}

/** After a `sync.reset`: everything from REST again. */
async function reloadAll() {
  batch(() => {
    conversations.value = new Map();
    threads.value = new Map();
    forgetQuotes();
    members.value = new Map();
  });
  await loadConversations();
  if (activeId.value) void openThread(activeId.value);
}

/** Every page of the conversation list (up to 2,000), each merged as it arrives. */
async function loadConversations() {
  let cursor: string | null = "";
  for (let pages = 0; cursor !== null && pages < 20; pages++) {
    const page: Page<Conversation> | null = await api<Page<Conversation>>("GET", `/api/conversations?limit=100${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ""}`).catch(() => null);
    if (!page) return;
    mergeConversations(page.items);
    listed.value = true;
    cursor = page.next_cursor;
  }
}

/**
 * Reads the newest page of a thread again and merges it in (with what came live while it was
 * in flight): the messages committed between an earlier read and the socket's start. More
 * than a page of them: the thread is loaded afresh.
 */
async function catchUp(id: string) {
  const flight = inFlight(id);
  try {
    const page = await api<Page<Message>>("GET", `/api/conversations/${id}/messages?limit=${PAGE}`);
    const fresh = flight.landed(page.items.reverse(), true);
    const t = threads.value.get(id);
    // Loaded meanwhile at its first unread (or around a search result): its newer pages come as the reader scrolls.
    if (!t || t.newer) return;
    const newestKept = t.items.findLast((m) => m.pending === undefined)?.id;
    if (!t.loading && page.next_cursor && newestKept !== undefined && fresh[0] && fresh[0].id > newestKept) {
      flight.done();
      return void openThread(id, true);
    }
    changeThread(id, (items, newest) => (newest ? mergeNewest(items, fresh) : items));
  } catch {
    // Offline again: the next connect resumes from the socket's position, nothing to catch up.
  } finally {
    flight.done();
  }
}

/** A thread's messages with a newer read of its newest page: the page's version of each message it holds, ours still on their way last. */
function mergeNewest(items: Shown[], page: Shown[]): Shown[] {
  const inPage = new Set(page.map((m) => m.id));
  const acked = new Set(page.map((m) => m.client_msg_id));
  const sent = [...items.filter((m) => m.pending === undefined && !inPage.has(m.id)), ...page].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return [...sent, ...items.filter((m) => m.pending !== undefined && !acked.has(m.client_msg_id))];
}

/** Conversations found outside the loaded list (the quick switcher's search) join it. */
export function mergeConversations(items: Conversation[]) {
  for (const c of items) gone.delete(c.id);
  const next = new Map(conversations.value);
  for (const c of items) next.set(c.id, { ...next.get(c.id), ...c });
  conversations.value = next;
  followPresence(items);
}

function upsertConversation(c: Conversation) {
  gone.delete(c.id);
  const prev = conversations.value.get(c.id);
  // conversation.update leaves out the caller-specific fields: keep ours.
  const merged = { ...prev, ...c, unread_count: c.unread_count ?? prev?.unread_count ?? 0 } as Conversation;
  conversations.value = new Map(conversations.value).set(c.id, merged);
  followPresence([merged]);
}

function patchConversation(id: string, patch: Partial<Conversation>) {
  const c = conversations.value.get(id);
  if (c) conversations.value = new Map(conversations.value).set(id, { ...c, ...patch });
}

/**
 * The open conversation, gone from under its reader (deleted, or they were removed from it
 * elsewhere): said, with what they had typed there and not sent (it went with it, unsaid).
 */
export const noLonger = signal<{ id: string; title: string; draft: string; user_id: string; direct?: boolean } | null>(loadJSON(NOTICE_KEY, null, sessionStorage));
/** The notice, for the user signed in now only (another may sign in in this tab, or in another one sharing its storage). */
export const noLongerShown = computed(() => (noLonger.value && noLonger.value.user_id === me.value?.id ? noLonger.value : null));
// Kept for this tab until dismissed: a reload lost the notice and the only copy of its text.
effect(() => {
  const gone = noLonger.value;
  try {
    if (gone) sessionStorage.setItem(NOTICE_KEY, JSON.stringify(gone));
    else sessionStorage.removeItem(NOTICE_KEY);
  } catch {} // storage full or refused: the notice stays for this page's life
});
// The conversation the notice is about is ours again (added back): the notice goes at once,
// its text back in that conversation's box. (Once it was opened: on a phone the notice
// covered the list, and Dismiss, the only way past it, threw the text away.) Back to its
// address while still out, or a notification, is not that.
effect(() => {
  const gone = noLongerShown.value;
  if (!gone || !conversations.value.has(gone.id)) return;
  if (gone.draft && !drafts.peek()[gone.id]) setDraft(gone.id, gone.draft);
  noLonger.value = null;
});
/** Conversations this tab is leaving: its own leave is no news to it. */
const leaving = new Set<string>();

/** Leaves a group (`DELETE …/members/<me>`) or deletes a conversation (`DELETE …/<id>`), as this tab's own act. */
export async function leaveConversation(id: string, how: "leave" | "delete") {
  leaving.add(id);
  try {
    await api("DELETE", how === "leave" ? `/api/conversations/${id}/members/${me.value!.id}` : `/api/conversations/${id}`);
    removeConversation(id);
    setDraft(id, "");
  } finally {
    leaving.delete(id);
  }
}

/** Told of every conversation that goes from the list (left, deleted, removed from). */
const goneListeners: ((id: string) => void)[] = [];
export const whenConversationGone = (f: (id: string) => void) => void goneListeners.push(f);
/** Told when the socket is back (the server reached again): what failed for want of it goes again. */
const backListeners: (() => void)[] = [];
export const whenBack = (f: () => void) => void backListeners.push(f);

function removeConversation(id: string) {
  gone.add(id);
  if (unsentReads.delete(id)) keepUnsentReads();
  const unsent = dropOutgoingOf(id);
  for (const f of goneListeners) f(id);
  const c = conversations.value.get(id);
  const next = new Map(conversations.value);
  next.delete(id);
  // Its messages and members go too: opened again (Back to its link), it is asked for, and
  // answered "does not exist, or you are not a member" (a kept thread showed "Loading…").
  const threadsLeft = new Map(threads.value);
  const membersLeft = new Map(members.value);
  threadsLeft.delete(id);
  membersLeft.delete(id);
  batch(() => {
    conversations.value = next;
    threads.value = threadsLeft;
    members.value = membersLeft;
  });
  const open = activeId.value === id;
  // Said of the conversation on screen, or of one that had messages waiting to go (their only
  // copy): the text to copy is what was written and could not be sent, and the draft.
  if (c && !leaving.has(id) && (open || unsent.length)) {
    const draft = [...unsent, open ? (drafts.value[id] ?? "") : ""].filter(Boolean).join("\n\n");
    noLonger.value = { id, title: titleOf(c), draft, user_id: me.value!.id, direct: c.type === "direct" };
    if (open) setDraft(id, "");
  }
  if (open) navigate(null);
}

type MemberEdit = (m: Map<string, Member>) => void;
/**
 * Per conversation whose members are being read, every membership change the socket brought
 * meanwhile, in order: made again on the list when it lands (it may have been read before
 * them; before, a member added while the list loaded was missing from it, or lost altogether
 * on a first load). Each sets or removes one member, so making it twice changes nothing.
 */
const memberEditsInFlight = new Map<string, { loads: number; edits: MemberEdit[] }>();

function editMembers(conversationId: string, edit: MemberEdit) {
  memberEditsInFlight.get(conversationId)?.edits.push(edit);
  const current = members.value.get(conversationId);
  if (!current) return;
  const copy = new Map(current);
  edit(copy);
  members.value = new Map(members.value).set(conversationId, copy);
}

function updateUser(u: User) {
  keepUser(u);
  // Their messages in the loaded threads carry the name and picture they had when loaded.
  const renamed = (m: Shown): Shown =>
    m.sender_id !== u.id ? m : { ...m, sender_name: u.display_name, sender_avatar: u.profile_image_url, sender_info: { ...m.sender_info, display_name: u.display_name, profile_image_url: u.profile_image_url } };
  // Every thread, loading ones too: the change is made again on a page in flight when it lands.
  for (const cid of threads.value.keys()) changeThread(cid, (items) => (items.some((m) => m.sender_id === u.id) ? items.map(renamed) : items));
  const next = new Map(conversations.value);
  for (const [id, c] of next) {
    if (peerOf(c)?.id === u.id) next.set(id, { ...c, peer: u, title: c.type === "direct" ? u.display_name : c.title });
    const last = next.get(id)!.last_message;
    if (last?.sender_id === u.id) next.set(id, { ...next.get(id)!, last_message: renamed(last) });
  }
  conversations.value = next;
  // Made again on a list in flight when it lands, which may not hold them: only where they are.
  for (const [cid, m] of members.value) if (m.has(u.id)) editMembers(cid, (x) => void (x.has(u.id) && x.set(u.id, { ...x.get(u.id)!, user: u })));
  // The Friends dialog and a group's "Add friends" read these; made again on a read in flight.
  friendsFlight?.users.push(u);
  if (friendships.value.some((f) => f.user.id === u.id || f.friend.id === u.id)) friendships.value = withUser(friendships.value, u);
}

const withUser = (list: Friendship[], u: User) => list.map((f) => (f.user.id === u.id ? { ...f, user: u } : f.friend.id === u.id ? { ...f, friend: u } : f));

/** The other member of a direct conversation. */
export const peerOf = (c: Conversation): User | null => (c.type === "direct" ? c.peer : null);
/** What a conversation is called: a group's title, a direct one's peer's name. */
export const titleOf = (c: Conversation): string => c.title || peerOf(c)?.display_name || "Conversation";
/** Its accessible name as a link or an option (§10): the title, then ", N unread" when there are unread ones. */
export const nameOf = (c: Conversation): string => (c.unread_count ? `${titleOf(c)}, ${c.unread_count} unread` : titleOf(c));

const followed = new Set<string>();
function followPresence(items: Conversation[]) {
  const ids = items.map(peerOf).filter((u): u is User => !!u && !followed.has(u.id)).map((u) => u.id);
  if (!ids.length || !client) return;
  ids.forEach((id) => followed.add(id));
  void client.subscribeStatus(ids).catch(() => {});
}

// ---- navigation -------------------------------------------------------------------------

export function navigate(id: string | null) {
  const path = id ? `/c/${encodeURIComponent(id)}` : "/";
  if (location.pathname !== path) history.pushState(null, "", path);
  activeId.value = id;
  client?.send("conversation.active", { conversation_id: id });
  if (id) void openThread(id);
}
addEventListener("popstate", () => navigate(idFromPath()));

// ---- messages ---------------------------------------------------------------------------

const PAGE = 50;

function setThread(id: string, t: Thread) {
  // A page that lands after its conversation went away does not bring its thread back.
  if (gone.has(id)) return;
  threads.value = new Map(threads.value).set(id, withOutgoing(id, t));
}

/**
 * Opens a conversation at its newest messages (`fresh`: reload them even if a thread is
 * loaded), or, with more unread than a page, at the first of them (openAtFirstUnread).
 */
export async function openThread(id: string, fresh = false) {
  void loadMembers(id);
  const cached = threads.value.get(id);
  if (cached && !fresh) {
    // Back to a thread loaded earlier in this session: the divider goes where the unread
    // begin now (it stayed over the first unread of the first opening, long read since).
    const conv = conversations.value.get(id);
    if (conv && !cached.loading) {
      const divider = dividerOf(conv, cached.items, cached.older);
      if (divider !== cached.firstUnread) setThread(id, { ...cached, firstUnread: divider });
      // Opened at the divider: read once the view reaches the end (its scroll says so), as
      // on a first opening; it read everything below the divider unseen.
      if (divider) return;
    }
    return markSeen(id);
  }
  setThread(id, { items: [], older: null, loading: true, firstUnread: null });
  const flight = inFlight(id);
  try {
    // A link or a reload opens it before the list has arrived: its unread count decides where.
    const conv = conversations.value.get(id) ?? (await api<Conversation>("GET", `/api/conversations/${id}`));
    if (!conversations.value.has(id)) upsertConversation(conv);
    const page = await api<Page<Message>>("GET", `/api/conversations/${id}/messages?limit=${PAGE}`);
    const items = flight.landed(page.items.reverse(), true);
    const first = firstUnreadOf(conv, items);
    // All of the newest page unread, and more before it: shown alone, it would put the divider
    // at its top, as if what came before were read, and reading it would mark them all read.
    // The thread opens at the first unread instead. (Not when the page holds a message of
    // ours, or the read position: the first unread is in it.)
    if (!fresh && page.next_cursor && first !== null && first === items[0]?.id) {
      flight.done();
      return await openAtFirstUnread(id, conv);
    }
    // (The newest page read afresh, Jump to latest or a long absence, may begin among the unread: no divider then.)
    const divider = dividerOf(conv, items, page.next_cursor);
    setThread(id, { items, older: page.next_cursor, loading: false, firstUnread: divider });
    // Opened at the divider, the view's scroll reads them when it shows the end (at once when they fit).
    if (!divider || fresh) markSeen(id);
  } catch (e) {
    unopened(id, e);
  } finally {
    flight.done();
  }
}

/** A change to a thread's messages, as the socket (or one of our sends) made it; `newest`: the thread holds the newest messages. */
type Change = (items: Shown[], newest: boolean) => Shown[];
/**
 * Per conversation with a page of messages in flight, every change made to its thread
 * meanwhile, in order. A page may have been read before some of them were committed and
 * arrive after them (on a cluster, the page's read and the socket's delivery of a later
 * send race: each takes its own connection to PostgreSQL), so the page alone would lose
 * them: they are made again on the page when it lands. Each is idempotent (a message is
 * placed once, an edit carries the whole message, a reaction adds or removes one user).
 */
const changesInFlight = new Map<string, { loads: number; changes: Change[] }>();

function inFlight(id: string) {
  const entry = changesInFlight.get(id) ?? { loads: 0, changes: [] };
  changesInFlight.set(id, entry);
  entry.loads++;
  const from = entry.changes.length;
  let done = false;
  return {
    /** The landed page with every change made since the request was sent. */
    landed: (items: Shown[], newest: boolean) => entry.changes.slice(from).reduce((acc, change) => change(acc, newest), items),
    done() {
      if (done) return;
      done = true;
      if (--entry.loads === 0) changesInFlight.delete(id);
    },
  };
}

/** Applies `change` to the thread now, and again to any page of it still in flight. */
function changeThread(id: string, change: Change) {
  changesInFlight.get(id)?.changes.push(change);
  const t = threads.value.get(id);
  if (!t) return;
  const items = change(t.items, !t.newer);
  if (items !== t.items) setThread(id, { ...t, items });
}

/**
 * Opens a conversation scrolled to one message (a search result): unless the loaded thread
 * holds it, the history around it is loaded instead (a page before it, and it with a page
 * after), and scrolling loads older and newer pages from there.
 */
export async function openAt(conversationId: string, messageId: string) {
  const t = threads.value.get(conversationId);
  const loaded = !!t && !t.loading && t.items.some((m) => m.id === messageId);
  focusMessage.value = { conversationId, messageId, at: performance.now() };
  const around = loaded ? null : loadAround(conversationId, messageId);
  navigate(conversationId);
  await around;
}

/** A thread that could not be opened: forgotten; a conversation that is not (or no longer) ours says so. */
function unopened(id: string, e: unknown) {
  threads.value = new Map([...threads.value].filter(([k]) => k !== id));
  if (e instanceof ApiError && e.status === 404) {
    toast.value = "That conversation does not exist, or you are not a member.";
    navigate(null);
  }
}

/** Messages above the first unread one when a thread opens there: the end of what was read, for context. */
const READ_CONTEXT = 10;

/**
 * Opens a thread at its first unread message: the last few read ones above it, a page after
 * it, and newer pages as the reader scrolls down (the thread is not at its newest until
 * then, so nothing is marked read before the reader gets there).
 */
async function openAtFirstUnread(id: string, conv: Conversation) {
  setThread(id, { items: [], older: null, newer: null, loading: true, firstUnread: null });
  const flight = inFlight(id);
  try {
    const read = conv.my_last_read_message_id ?? "";
    const after = await api<Page<Message>>("GET", `/api/conversations/${id}/messages?after=${encodeURIComponent(read)}&limit=${PAGE}`);
    const first = after.items[0];
    // Nothing ever read: the history starts there, nothing above it.
    const before = read && first ? await api<Page<Message>>("GET", `/api/conversations/${id}/messages?before=${encodeURIComponent(first.id)}&limit=${READ_CONTEXT}`) : { items: [], next_cursor: null };
    const items = flight.landed([...before.items.reverse(), ...after.items], !after.next_cursor);
    setThread(id, { items, older: before.next_cursor, newer: after.next_cursor, loading: false, firstUnread: firstUnreadOf(conv, items) });
    if (!after.next_cursor) markSeen(id);
  } catch (e) {
    unopened(id, e);
  } finally {
    flight.done();
  }
}

async function loadAround(id: string, messageId: string) {
  const prev = threads.value.get(id);
  // Set first, so that navigate's openThread finds a thread and leaves it alone.
  setThread(id, { items: [], older: null, newer: null, loading: true, firstUnread: null });
  const flight = inFlight(id);
  try {
    const before = await api<Page<Message>>("GET", `/api/conversations/${id}/messages?before=${encodeURIComponent(messageId)}&limit=${PAGE}`);
    const older = before.items.reverse();
    // `after` the message just before it (or from the start): the page begins with the message itself.
    const after = await api<Page<Message>>("GET", `/api/conversations/${id}/messages?after=${encodeURIComponent(older.at(-1)?.id ?? "")}&limit=${PAGE}`);
    if (!conversations.value.has(id)) upsertConversation(await api<Conversation>("GET", `/api/conversations/${id}`));
    const items = flight.landed([...older, ...after.items], !after.next_cursor);
    // The divider goes over the first unread of the page, as on any opening (there was none).
    const conv = conversations.value.get(id);
    setThread(id, { items, older: before.next_cursor, newer: after.next_cursor, loading: false, firstUnread: conv ? firstUnreadOf(conv, items) : null });
  } catch (e) {
    if (prev) setThread(id, prev);
    else threads.value = new Map([...threads.value].filter(([k]) => k !== id));
    focusMessage.value = null;
    toast.value = e instanceof ApiError && e.status === 404 ? "That message is no longer there." : "The conversation could not be loaded.";
  } finally {
    flight.done();
  }
}

/**
 * Where the "New messages" divider goes in loaded `items`: over the first unread, unless that
 * is the first loaded with older messages not loaded (`older`), which may be unread too: a
 * divider at the top would say that all before it was read.
 */
function dividerOf(conv: Conversation, items: Message[], older: string | null | undefined): string | null {
  const first = firstUnreadOf(conv, items);
  return older && first === items[0]?.id ? null : first;
}

/** The first message from someone else past my read position (ids are time-ordered UUIDv7). */
function firstUnreadOf(conv: Conversation, items: Message[]): string | null {
  const mine = me.value?.id;
  // Whoever wrote a message was here: what came before their own last one is read, whatever
  // their read position says (one never moved opened the thread in the middle of their own).
  const lastMine = items.findLast((m) => m.sender_id === mine)?.id ?? "";
  const position = conv.my_last_read_message_id ?? "";
  const read = lastMine > position ? lastMine : position;
  return items.find((m) => m.sender_id !== mine && m.id > read)?.id ?? null;
}

/**
 * Loads the next older page (or, for a thread opened around an older message, the next newer
 * one); resolves to how many messages were added.
 */
export async function loadPage(id: string, side: "older" | "newer"): Promise<number> {
  const t = threads.value.get(id);
  const cursor = t?.[side];
  if (!t || t.loading || !cursor) return 0;
  setThread(id, { ...t, loading: true });
  const flight = inFlight(id);
  try {
    const page = await api<Page<Message>>("GET", `/api/conversations/${id}/messages?limit=100&cursor=${encodeURIComponent(cursor)}`);
    const cur = threads.value.get(id)!;
    const known = new Set(cur.items.map((m) => m.id));
    // Older pages come newest first, newer ones oldest first. The changes made meanwhile
    // are in the thread already, and are made again on the page's messages (read before some of them).
    const added = flight.landed((side === "older" ? page.items.reverse() : page.items).filter((m) => !known.has(m.id)), false);
    // Our own messages still on their way stay last.
    const sent = cur.items.filter((m) => m.pending === undefined);
    const pending = cur.items.filter((m) => m.pending !== undefined);
    let items = side === "older" ? [...added, ...cur.items] : [...sent, ...added, ...pending];
    // The newest page: the messages that came live while it was in flight join it (the thread held none of them: it was not at the newest).
    if (side === "newer" && !page.next_cursor) items = flight.landed(items, true);
    setThread(id, { ...cur, items, [side]: page.next_cursor, loading: false });
    // Not marked read here: the reader may be far above the newest (the list's scroll marks it once they get there).
    return added.length;
  } catch {
    setThread(id, { ...threads.value.get(id)!, loading: false });
    return 0;
  } finally {
    flight.done();
  }
}

function receive(m: Message) {
  const conv = conversations.value.get(m.conversation_id);
  const mine = m.sender_id === me.value?.id;
  // A thread short of its newest messages gets this one with the page that holds it, unless
  // it is the acknowledgement of one of our pending sends.
  changeThread(m.conversation_id, (items, newest) => {
    if (items.some((x) => x.id === m.id)) return items;
    const i = m.client_msg_id ? items.findIndex((x) => x.pending !== undefined && x.client_msg_id === m.client_msg_id) : -1;
    return i >= 0 ? items.map((x, j) => (j === i ? m : x)) : newest ? insertSorted(items, m) : items;
  });
  if (!mine) clearTyping(m.conversation_id, m.sender_id);
  if (conv) {
    const viewing = activeId.value === m.conversation_id && document.visibilityState === "visible" && atLatest.value;
    const newer = !conv.last_message || m.id >= conv.last_message.id;
    patchConversation(m.conversation_id, {
      last_message: newer ? m : conv.last_message,
      last_message_at: newer ? m.created_at : conv.last_message_at,
      unread_count: mine || viewing ? (conv.unread_count ?? 0) : (conv.unread_count ?? 0) + 1,
    });
    if (!mine && viewing) markSeen(m.conversation_id);
    if (!mine && document.visibilityState === "hidden" && conv.type === "direct") notify(m.sender_name, gist(m), m.conversation_id);
  }
}

function insertSorted(items: Shown[], m: Message): Shown[] {
  // Pending messages stay at the end until acknowledged.
  let i = items.length;
  while (i > 0 && (items[i - 1]!.pending !== undefined || items[i - 1]!.id > m.id)) i--;
  return [...items.slice(0, i), m, ...items.slice(i)];
}

/**
 * Messages replied to that the loaded thread does not hold (an older one), read once each for
 * their quote (null: not there any more); edits and deletes reach them as they do the thread.
 * Without them a reply to an older message said only "Reply to an earlier message", even to
 * its sender, who had just seen the quote in the composer.
 */
export const quotes = signal<Map<string, Shown | null>>(new Map());
/** When each quote may be read again (Infinity: read, or on its way). */
const quotesAsked = new Map<string, number>();
function forgetQuotes() {
  quotes.value = new Map();
  quotesAsked.clear();
}

/** One message by id (null: no longer there): the one just before it, then the first after that (or from the start). */
async function readMessage(conversationId: string, id: string): Promise<Message | null> {
  const before = await api<Page<Message>>("GET", `/api/conversations/${conversationId}/messages?before=${encodeURIComponent(id)}&limit=1`);
  const after = await api<Page<Message>>("GET", `/api/conversations/${conversationId}/messages?after=${encodeURIComponent(before.items[0]?.id ?? "")}&limit=1`);
  const m = after.items[0];
  return m?.id === id ? m : null;
}

/** Whether a signed link (PROTOCOL §9: `e`, its expiry in seconds) has expired, or will within `marginMs`. */
export function linkExpired(url: string, marginMs = 10_000): boolean {
  const e = Number(new URL(url, location.href).searchParams.get("e"));
  return e > 0 && e * 1000 < Date.now() + marginMs;
}

const relinking = new Map<string, Promise<Message | null>>();
/**
 * A message read again for fresh signed links (they expire: ATTACHMENT_URL_TTL, an hour by
 * default), which its thread then shows: a tab open all day had links that answered
 * "this link has expired" (from an acceptance pass). One read at a time per message.
 */
export function relink(m: Message): Promise<Message | null> {
  let asked = relinking.get(m.id);
  if (!asked) {
    asked = readMessage(m.conversation_id, m.id)
      .then((fresh) => (fresh && patchMessage(m.conversation_id, m.id, (x) => (x.deleted_at ? x : { ...x, attachments: fresh.attachments })), fresh))
      .finally(() => relinking.delete(m.id));
    relinking.set(m.id, asked);
  }
  return asked;
}

/** The message `id` of a conversation for a quote: known, or undefined until read (then the signal changes). */
export function quoteOf(conversationId: string, id: string): Shown | null | undefined {
  const known = quotes.value.get(id);
  if (known !== undefined || (quotesAsked.get(id) ?? 0) > Date.now()) return known;
  quotesAsked.set(id, Infinity);
  readMessage(conversationId, id).then((m) => void (quotes.value = new Map(quotes.value).set(id, m)), (e) => {
    // Not reached, or asked too often: again at a render 10 s on. Answered (a conversation
    // left, say): no quote, and not asked again at every render.
    if (notReached(e) || (e instanceof ApiError && e.status === 429)) quotesAsked.set(id, Date.now() + 10_000);
    else quotes.value = new Map(quotes.value).set(id, null);
  });
  return undefined;
}

function patchMessage(conversationId: string, id: string, f: (m: Shown) => Shown) {
  const quote = quotes.peek().get(id);
  if (quote) quotes.value = new Map(quotes.peek()).set(id, f(quote));
  changeThread(conversationId, (items) => (items.some((m) => m.id === id) ? items.map((m) => (m.id === id ? f(m) : m)) : items));
  const conv = conversations.value.get(conversationId);
  if (conv?.last_message?.id === id) patchConversation(conversationId, { last_message: f(conv.last_message) });
}

function applyReaction(m: Shown, userId: string, emoji: string, action: "add" | "remove"): Shown {
  const reactions = m.reactions.map((r) => ({ ...r, user_ids: [...r.user_ids] }));
  let r = reactions.find((x) => x.emoji === emoji);
  if (action === "add") {
    if (!r) reactions.push((r = { emoji, count: 0, user_ids: [] }));
    if (!r.user_ids.includes(userId)) r.user_ids.push(userId);
  } else if (r) r.user_ids = r.user_ids.filter((u) => u !== userId);
  return { ...m, reactions: reactions.map((x) => ({ ...x, count: x.user_ids.length })).filter((x) => x.count > 0) };
}

/** Marks everything up to the newest message read (only while the tab is visible). */
export function markSeen(id: string) {
  const t = threads.value.get(id);
  // Reading an older part of the history (a search result) does not read the newest messages;
  // nor does a thread whose first page is still on its way (opened at a search result, it
  // cleared the unread count while it had no message to mark read, and none was sent).
  if (document.visibilityState !== "visible" || activeId.value !== id || !t || (t.loading && !t.items.length) || t.newer) return;
  const last = t.items.findLast((m) => !m.pending && m.sender_id !== me.value?.id);
  const conv = conversations.value.get(id);
  if (conv && conv.unread_count) patchConversation(id, { unread_count: 0 });
  if (!last || (conv?.my_last_read_message_id ?? "") >= last.id) return;
  patchConversation(id, { my_last_read_message_id: last.id });
  sendRead(id, last.id);
}


function sendRead(conversationId: string, messageId: string) {
  if (client?.send("message.read", { conversation_id: conversationId, message_id: messageId })) return;
  const reader = me.value?.id;
  void api("POST", `/api/conversations/${conversationId}/read`, { message_id: messageId }).catch((e) => {
    // Kept when the server was not reached, as a send is; not for another person signed in
    // meanwhile, nor a conversation gone.
    if (!notReached(e) || me.value?.id !== reader || gone.has(conversationId) || (unsentReads.get(conversationId) ?? "") >= messageId) return;
    // The socket may have come back while this request failed: then it goes now.
    if (connection.value === "open" && client?.send("message.read", { conversation_id: conversationId, message_id: messageId })) return;
    unsentReads.set(conversationId, messageId);
    keepUnsentReads();
  });
}
/**
 * The reader is back where the newest messages are after being away from them (a hidden
 * tab, a scroll up, Jump to latest): the divider goes over the first of those that came
 * meanwhile (it stayed where the conversation was opened), before they are read.
 */
export function moveDivider(id: string) {
  const t = threads.value.get(id);
  const conv = conversations.value.get(id);
  if (!t || !conv || t.loading) return;
  const divider = dividerOf(conv, t.items, t.older);
  if (divider && divider !== t.firstUnread) setThread(id, { ...t, firstUnread: divider });
}
document.addEventListener("visibilitychange", () => {
  const id = activeId.value;
  if (!id || document.visibilityState !== "visible") return;
  moveDivider(id);
  if (atLatest.value) markSeen(id);
});
// A request answered in another tab reaches this one by no event (friend.accept goes to the
// requester only): read the friends again when the tab is looked at.
let friendsLookedAt = 0;
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState !== "visible" || !me.value || connection.value !== "open" || Date.now() - friendsLookedAt < 30_000) return;
  friendsLookedAt = Date.now();
  void loadFriends();
});

function markRead(conversationId: string, userId: string, messageId: string) {
  editMembers(conversationId, (m) => {
    const x = m.get(userId);
    if (x && (x.last_read_message_id ?? "") < messageId) m.set(userId, { ...x, last_read_message_id: messageId });
  });
  if (userId === me.value?.id) {
    const conv = conversations.value.get(conversationId);
    if (!conv || (conv.my_last_read_message_id ?? "") >= messageId) return;
    // Read to the end (here or on another device): nothing unread. Read part of the way (a
    // client that reads as it scrolls): the server counts what is left (it said 0).
    if (!conv.last_message || messageId >= conv.last_message.id) patchConversation(conversationId, { my_last_read_message_id: messageId, unread_count: 0 });
    else {
      patchConversation(conversationId, { my_last_read_message_id: messageId });
      // Taken only if nothing came since the count was made (a message meanwhile counts itself).
      void api<Conversation>("GET", `/api/conversations/${conversationId}`).then(
        (c) => c.last_message?.id === conversations.value.get(conversationId)?.last_message?.id && patchConversation(conversationId, { unread_count: c.unread_count }),
        () => {},
      );
    }
  }
}

/** A conversation's members, unless loaded (`fresh`: again, replacing them when they arrive). */
export async function loadMembers(id: string, fresh = false) {
  if (!fresh && members.value.has(id)) return;
  const flight = memberEditsInFlight.get(id) ?? { loads: 0, edits: [] };
  memberEditsInFlight.set(id, flight);
  flight.loads++;
  const from = flight.edits.length;
  let list: Member[] | null;
  try {
    list = await allPages<Member>(`/api/conversations/${id}/members`, 10).catch(() => null);
  } finally {
    if (--flight.loads === 0) memberEditsInFlight.delete(id);
  }
  if (!list) return;
  if (gone.has(id)) return; // landed after the conversation went away
  const landed = new Map(list.map((m) => [m.user.id, m]));
  for (const change of flight.edits.slice(from)) change(landed);
  members.value = new Map(members.value).set(id, landed);
  const others = list.map((m) => m.user.id).filter((u) => u !== me.value?.id && !followed.has(u)).slice(0, 500);
  if (others.length && client) {
    others.forEach((u) => followed.add(u));
    void client.subscribeStatus(others).catch(() => {});
  }
}

// ---- sending ----------------------------------------------------------------------------

/**
 * One of ours not acknowledged yet: `waiting` to go (or going), `held` (it did not reach the
 * server, or the server asked to wait: it goes again by itself, and everything written after
 * it waits behind it), or `refused` (said why; skipped; Retry or Discard).
 */
interface Outgoing {
  shown: Shown;
  state: "waiting" | "held" | "refused";
  /** Discarded in another tab while this one was sending it. */
  discardedElsewhere?: boolean;
}
/**
 * Ours not yet acknowledged, by client_msg_id, in the order written; mirrored in localStorage
 * (outbox.ts) until acknowledged, discarded or refused for good. They go one at a time in that
 * order: the server orders messages by their arrival, and three written offline, sent again
 * at once, came back in any order.
 */
const outgoing = new Map<string, Outgoing>();
let pumping = false;
/** The client_msg_id of the send in flight, if any. */
let sending: string | null = null;
/** Bumped at sign-out: a send still in flight then changes nothing of the next person's page. */
let sendGeneration = 0;

const asShown = (u: Unsent, user: User): Shown => ({
  id: `~${u.client_msg_id}`, conversation_id: u.conversation_id, sender_id: user.id, sender_name: user.display_name, sender_avatar: user.profile_image_url,
  sender_info: { id: user.id, username: user.username, display_name: user.display_name, profile_image_url: user.profile_image_url },
  message_type: u.attachments.length ? "file" : "text", content: u.content, client_msg_id: u.client_msg_id, reply_to_id: u.reply_to_id,
  created_at: u.created_at, edited_at: null, deleted_at: null, reactions: [], attachments: u.attachments.map(withoutExpiredThumbnail), is_read: false, read_count: 0, pending: true,
});

/** A thread that holds the newest messages shows ours still on their way after them (a reload, or opened after the send). */
function withOutgoing(id: string, t: Thread): Thread {
  if (t.loading || t.newer || !outgoing.size) return t;
  let items = t.items;
  for (const { shown } of outgoing.values()) {
    if (shown.conversation_id !== id || items.some((m) => m.client_msg_id === shown.client_msg_id)) continue;
    items = items === t.items ? [...items, shown] : (items.push(shown), items);
  }
  return items === t.items ? t : { ...t, items };
}

/**
 * The messages another page of this browser wrote and did not see acknowledged (one before a
 * reload, a tab closed while offline): shown, and sent. At the start and at every connect.
 */
function restoreOutgoing(user: User) {
  let added = false;
  for (const u of unsentOf(user.id)) {
    if (outgoing.has(u.client_msg_id)) continue;
    const shown = { ...asShown(u, user), failed: u.refused };
    // For a conversation that went away from this page: said so, with its text (it cannot go).
    if (gone.has(u.conversation_id)) {
      cannotGo(shown);
      continue;
    }
    added = true;
    outgoing.set(u.client_msg_id, { shown, state: u.refused ? "refused" : "waiting" });
  }
  if (added) for (const [id, t] of threads.value) setThread(id, t);
  void pump();
}

/**
 * A message that can never go (its conversation is not ours any more): not kept, and its text
 * is put in the "You are no longer in …" notice to copy, with whatever it already holds for
 * that conversation. (Sent from a page that never had the conversation, a 403/404 let it go unsaid.)
 */
function cannotGo(p: Shown) {
  const kept = me.value ? unsentOf(me.value.id).find((u) => u.client_msg_id === p.client_msg_id) : undefined;
  forget(p);
  const now = noLonger.peek();
  const id = p.conversation_id;
  const same = now?.id === id && now.user_id === me.value?.id;
  const c = conversations.peek().get(id);
  noLonger.value = {
    id, user_id: me.value!.id,
    title: same ? now.title : c ? titleOf(c) : (kept?.title ?? "a conversation"),
    draft: [same ? now.draft : "", p.content].filter(Boolean).join("\n\n"),
    direct: same ? now.direct : c?.type === "direct",
  };
}

export async function send(conversationId: string, content: string, replyTo: string | null, attachments: Attachment[] = []) {
  const u = me.value!;
  const conv = conversations.value.get(conversationId);
  const unsent: Unsent = { conversation_id: conversationId, client_msg_id: crypto.randomUUID(), content, reply_to_id: replyTo, attachments, created_at: new Date().toISOString(), title: conv && titleOf(conv) };
  // Kept before anything else: the page may go before the server answers.
  keepUnsent(u.id, unsent);
  // Behind one held, it waits with it, and says so.
  const held = [...outgoing.values()].find((o) => o.state === "held");
  const pending: Shown = { ...asShown(unsent, u), failed: held?.shown.failed };
  outgoing.set(unsent.client_msg_id, { shown: pending, state: held ? "held" : "waiting" });
  // Reading far back (a search result): the message goes after the newest ones, so load them first.
  if (threads.value.get(conversationId)?.newer) await openThread(conversationId, true);
  changeThread(conversationId, (items, newest) => (!newest || items.some((m) => m.client_msg_id === unsent.client_msg_id) ? items : [...items, pending]));
  await pump();
}

/** How long a send may go unanswered before it counts as not reached (and is sent again later, harmlessly). */
const SEND_TIMEOUT_MS = 20_000;
const UNREACHABLE_RETRY_MS = 5000;

/**
 * Sends what waits, oldest first, one at a time, until the line is empty or held. A send that
 * does not reach the server, or that the server asks to wait (429, 5xx), holds the line: it and
 * everything after it go again together (resend), so nothing overtakes it. A refusal (a 422,
 * a conversation no longer ours) is said and skipped.
 */
async function pump() {
  if (pumping) return;
  pumping = true;
  const generation = sendGeneration;
  try {
    for (let o = nextToSend(); o; o = nextToSend()) {
      const p = o.shown;
      let m: Message;
      sending = p.client_msg_id;
      try {
        const body: Record<string, unknown> = { content: p.content, client_msg_id: p.client_msg_id };
        if (p.reply_to_id) body.reply_to_id = p.reply_to_id;
        if (p.attachments.length) body.attachment_ids = p.attachments.map((a) => a.id);
        m = await api<Message>("POST", `/api/conversations/${p.conversation_id}/messages`, body, SEND_TIMEOUT_MS);
      } catch (e) {
        if (generation !== sendGeneration) return;
        sending = null;
        // Discarded in another tab while this one was sending it: it does not go again.
        if (o.discardedElsewhere) {
          discard(p);
          continue;
        }
        const wait = holdFor(e);
        if (wait === null) {
          // Not ours to send to any more (left, removed, deleted): it cannot go; its text is said to copy.
          if (e instanceof ApiError && (e.status === 403 || e.status === 404)) cannotGo(p);
          else refuse(p, explain(e));
          continue;
        }
        // "offline" and "unreachable" have sentences of their own; the server's reason is said as it is.
        const why = notReached(e) || !(e instanceof ApiError) ? (navigator.onLine ? "unreachable" : "offline") : `${explain(e)} It goes by itself shortly.`;
        for (const q of outgoing.values()) if (q.state === "waiting") ((q.state = "held"), patchPending(q.shown, { failed: why }));
        // Offline: the socket's return sends them. Otherwise after the server's word, or a while.
        if (why !== "offline") setTimeout(() => generation === sendGeneration && resend(), wait);
        return;
      }
      if (generation !== sendGeneration) return;
      sending = null;
      receive(m);
      forget(p);
    }
  } finally {
    if (generation === sendGeneration) (pumping = false), (sending = null);
  }
}

/** How long to hold a send that failed with `e` (ms), or null when it was refused. */
function holdFor(e: unknown): number | null {
  if (!(e instanceof ApiError) || notReached(e)) return UNREACHABLE_RETRY_MS;
  if (e.status === 429 || e.status >= 500) return e.retryAfter ? e.retryAfter * 1000 : e.status === 507 ? 30_000 : UNREACHABLE_RETRY_MS;
  return null;
}

/** The first waiting one in the order written, unless one before it is held; refused ones and those of conversations gone are passed over. */
function nextToSend(): Outgoing | undefined {
  for (const o of outgoing.values()) {
    if (o.state === "held") return undefined;
    if (o.state === "waiting" && !gone.has(o.shown.conversation_id)) return o;
  }
  return undefined;
}

/** Said why on screen, and kept as refused: the next page shows it so, and does not send it unasked. */
function refuse(p: Shown, why: string) {
  const o = outgoing.get(p.client_msg_id!);
  if (o) o.state = "refused";
  patchPending(p, { failed: why });
  if (me.value) keepUnsent(me.value.id, { ...unsentOfShown(p), refused: why });
}

const unsentOfShown = (m: Shown): Unsent => ({ conversation_id: m.conversation_id, client_msg_id: m.client_msg_id!, content: m.content, reply_to_id: m.reply_to_id, attachments: m.attachments, created_at: m.created_at });

/** Acknowledged (shown as the server's message by now: receive), refused for good, or discarded: no longer kept. */
function forget(p: Shown) {
  const cmid = p.client_msg_id!;
  outgoing.delete(cmid);
  if (me.value) dropUnsent(me.value.id, cmid);
}

/** A message of ours on its way changes state, wherever it shows. */
function patchPending(p: Shown, patch: Partial<Shown>) {
  const cmid = p.client_msg_id!;
  const kept = outgoing.get(cmid);
  if (kept) kept.shown = { ...kept.shown, ...patch };
  changeThread(p.conversation_id, (items) =>
    items.some((m) => m.pending !== undefined && m.client_msg_id === cmid) ? items.map((m) => (m.pending !== undefined && m.client_msg_id === cmid ? { ...m, ...patch } : m)) : items,
  );
}

/** Retry: a held one goes now with the rest of the line; a refused one is asked again (and kept again, if it had been let go). */
export function retry(m: Shown) {
  const cmid = m.client_msg_id!;
  const o = outgoing.get(cmid);
  if (o?.state === "held") return resend();
  if (!o) outgoing.set(cmid, { shown: m, state: "waiting" });
  else o.state = "waiting";
  // Asked again: kept as waiting (no longer refused; kept again, if it had been let go).
  if (me.value) keepUnsent(me.value.id, { ...unsentOfShown(m), refused: undefined });
  patchPending(m, { pending: true, failed: undefined });
  void pump();
}

/** A message not sent, taken back by its writer: from the thread and from what is kept. */
export function discard(m: Shown) {
  forget(m);
  changeThread(m.conversation_id, (items) => items.filter((x) => !(x.pending !== undefined && x.client_msg_id === m.client_msg_id)));
}

/** How many of ours are not acknowledged yet, in this tab or kept by another (signing out on purpose loses them). */
export function unsentCount(): number {
  const mine = me.value ? unsentOf(me.value.id).map((u) => u.client_msg_id) : [];
  return new Set([...mine, ...outgoing.keys()]).size;
}

/** The line held (back online, the server answering again, its wait over): everything held goes again, in order. */
function resend() {
  for (const o of outgoing.values()) if (o.state === "held") ((o.state = "waiting"), patchPending(o.shown, { failed: undefined }));
  void pump();
}

/** A conversation that went away (left, deleted, removed from): what waited for it cannot go; its text is returned. */
function dropOutgoingOf(conversationId: string): string[] {
  const texts: string[] = [];
  for (const o of [...outgoing.values()]) {
    if (o.shown.conversation_id !== conversationId) continue;
    if (o.shown.content) texts.push(o.shown.content);
    forget(o.shown);
  }
  return texts;
}

/** Another tab acknowledged or discarded (`removed`) some we show as not sent: they go from here too. */
function outboxChangedElsewhere(removed: Set<string>) {
  for (const o of [...outgoing.values()]) {
    if (!removed.has(o.shown.client_msg_id!)) continue;
    // The one this tab is sending: if it lands it shows as sent; if not, it is not sent again.
    if (o.shown.client_msg_id === sending) o.discardedElsewhere = true;
    else discard(o.shown);
  }
}

export const editMessage = (id: string, content: string) => api("PATCH", `/api/messages/${id}`, { content });
export const deleteMessage = (id: string) => api("DELETE", `/api/messages/${id}`);
export function toggleReaction(m: Shown, emoji: string) {
  const mine = m.reactions.find((r) => r.emoji === emoji)?.user_ids.includes(me.value!.id);
  return mine ? api("DELETE", `/api/messages/${m.id}/reactions/${encodeURIComponent(emoji)}`) : api("POST", `/api/messages/${m.id}/reactions`, { emoji });
}

// ---- typing -----------------------------------------------------------------------------

const TYPING_SHOWN_MS = 7000;

function setTyping(conversationId: string, userId: string, on: boolean) {
  const cur = { ...(typing.value[conversationId] ?? {}) };
  if (on) cur[userId] = Date.now() + TYPING_SHOWN_MS;
  else delete cur[userId];
  typing.value = { ...typing.value, [conversationId]: cur };
}
const clearTyping = (c: string, u: string) => typing.value[c]?.[u] && setTyping(c, u, false);
// The server expires typing too; this only guards against a lost `false`.
setInterval(() => {
  const now = Date.now();
  for (const [c, users] of Object.entries(typing.value)) for (const [u, until] of Object.entries(users)) if (until < now) setTyping(c, u, false);
}, 1000);

let typingSentAt = 0;
let typingIn: string | null = null;
/** Called on every keystroke in the composer; refreshes at most every 3 s. */
export function typed(conversationId: string, text: string) {
  if (!text) return stopTyping();
  if (typingIn === conversationId && Date.now() - typingSentAt < 3000) return;
  typingIn = conversationId;
  typingSentAt = Date.now();
  client?.send("message.typing", { conversation_id: conversationId, is_typing: true });
}
/** Says the typing has stopped (only if it was in `conversationId`, when given). */
export function stopTyping(conversationId?: string) {
  if (conversationId !== undefined && typingIn !== conversationId) return;
  if (typingIn) client?.send("message.typing", { conversation_id: typingIn, is_typing: false });
  typingIn = null;
  typingSentAt = 0;
}

/** Names of those typing in a conversation (not me). */
export function typingNames(conversationId: string): string[] {
  const users = typing.value[conversationId] ?? {};
  const m = members.value.get(conversationId);
  const conv = conversations.value.get(conversationId);
  return Object.keys(users).map((u) => m?.get(u)?.user.display_name ?? knownName(conv, u) ?? "Someone");
}

/**
 * A name for a user from what the client already holds, when a group's members were not
 * read (the list carries none): the direct peer, the last message's sender, a friend.
 */
function knownName(conv: Conversation | undefined, userId: string): string | undefined {
  if (conv && peerOf(conv)?.id === userId) return peerOf(conv)!.display_name;
  if (conv?.last_message?.sender_id === userId) return conv.last_message.sender_name;
  for (const f of friendships.value) {
    if (f.user.id === userId) return f.user.display_name;
    if (f.friend.id === userId) return f.friend.display_name;
  }
  return undefined;
}

// ---- friends and conversations ------------------------------------------------------------

let friendsLoads = 0;
// The users renamed while a friends read is in flight: a read that began before a rename and
// lands after its user.update would put the old name back.
let friendsFlight: { loads: number; users: User[] } | null = null;
export async function loadFriends() {
  const load = ++friendsLoads;
  const flight = (friendsFlight ??= { loads: 0, users: [] });
  flight.loads++;
  const from = flight.users.length;
  let both: [Friendship[], Friendship[]] | null;
  try {
    both = await Promise.all([
      allPages<Friendship>("/api/friendships?status=accepted", 5),
      allPages<Friendship>("/api/friendships?status=pending", 5),
    ]).catch(() => null);
  } finally {
    if (--flight.loads === 0) friendsFlight = null;
  }
  // Reads that overlap may answer out of order: only the last one asked for counts. A failed
  // one (offline) keeps what was known: it emptied the Friends dialog.
  if (!both || load !== friendsLoads) return;
  friendships.value = flight.users.slice(from).reduce(withUser, [...both[0], ...both[1]]);
}

export const otherSide = (f: Friendship) => (f.user_id === me.value?.id ? f.friend : f.user);
/** Accepted friendships by the friend's name, as every list of friends shows them (newest first was hard to search by eye). */
export const friendsByName = computed(() =>
  friendships.value.filter((f) => f.status === "accepted").sort((a, b) => otherSide(a).display_name.localeCompare(otherSide(b).display_name)),
);

export async function openDirect(userId: string) {
  const c = await api<Conversation>("POST", "/api/conversations", { type: "direct", user_id: userId });
  upsertConversation(c);
  navigate(c.id);
}

export async function createGroup(title: string, memberIds: string[]) {
  const c = await api<Conversation>("POST", "/api/conversations", { type: "group", title, member_ids: memberIds });
  upsertConversation(c);
  navigate(c.id);
}

/** Conversations whose unread count is being read again (true: asked again meanwhile). */
const recounting = new Map<string, boolean>();
/**
 * The server's unread count of a conversation, read again (a message deleted). Taken only if
 * nothing moved meanwhile (a message, a read: the count they made is newer), by the same
 * user; else asked again. One read at a time per conversation (a purge of many, a replay).
 */
function recountUnread(id: string) {
  if (recounting.has(id)) return void recounting.set(id, true);
  recounting.set(id, false);
  const before = conversations.value.get(id);
  const who = me.value?.id;
  void api<Conversation>("GET", `/api/conversations/${id}`)
    .then((c) => {
      const now = conversations.value.get(id);
      if (!now || me.value?.id !== who) return;
      if (now.last_message?.id === before?.last_message?.id && now.my_last_read_message_id === before?.my_last_read_message_id) patchConversation(id, { unread_count: c.unread_count });
      else recounting.set(id, true);
    }, () => {})
    .finally(() => {
      const again = recounting.get(id);
      recounting.delete(id);
      if (again) recountUnread(id);
    });
}

/** After a change over REST whose event may not have arrived yet: take the server's view. */
export async function refreshConversation(id: string) {
  const c = await api<Conversation>("GET", `/api/conversations/${id}`).catch(() => null);
  if (c) upsertConversation(c);
  // Replaced when the new list has arrived, not dropped first: meanwhile the settings showed
  // no members and every friend to add, and a keyboard's next Enter could land on the wrong row.
  await loadMembers(id, true);
}

// ---- notifications ----------------------------------------------------------------------

function notify(title: string, body: string, conversationId: string) {
  if (typeof Notification === "undefined" || Notification.permission !== "granted" || document.visibilityState !== "hidden") return;
  const n = new Notification(title, { body: body.slice(0, 200), tag: conversationId });
  n.onclick = () => {
    focus();
    navigate(conversationId);
  };
}
