/**
 * The open conversation: a windowed message list (at most WINDOW message nodes however long
 * the history), the typing line and the composer.
 */
import { Fragment } from "preact";
import { useEffect, useLayoutEffect, useMemo, useRef, useState } from "preact/hooks";
import type { Attachment, Conversation, Member } from "./api";
import { explain } from "./api";
import {
  atLatest, conversations, deleteMessage, linkExpired, relink, discard, moveDivider, drafts, editMessage, focusMessage, loadPage, markSeen, openAt, openThread, me, members, navigate, onlineOf, peerOf, retry, titleOf,
  quoteOf, setDraft, stopTyping, threads, toast, toggleReaction, typed, typingNames, type Shown, type Thread,
} from "./store";
import { Avatar, dayLabel, dayOf, fullTime, gist, namesList, plural, RichText, shortTime, time, type Mentions } from "./text";
import { conversationFocus, inputSince, messageBox, moveFocus, refocusWhenGone, touchScreen } from "./focus";
import { attach, compositionOf, compositions, isUploading, MAX_CONTENT, overBy, replyTargetOf, sendComposed, setEdit, setReplyTo, size, stopWaiting, unpick } from "./compose";
import { openDialog } from "./dialogs";
import { announce } from "./announce";

/** Message nodes kept in the DOM, and how far the window moves at a time. */
export const WINDOW = 200;
const STEP = 80;
const EDGE_PX = 300;
const REACTIONS = ["👍", "❤️", "😂", "🎉", "😮", "😢"];
/** How long a message opened from a search result stays highlighted. */
const FLASH_MS = 4000;
/** A direct conversation's peer under its name: nothing while this page's own socket is away (onlineOf). */
const presenceText = (online: boolean | undefined) => (online === undefined ? "" : online ? "Online" : "Offline");

export function ConversationView({ id }: { id: string }) {
  const conv = conversations.value.get(id);
  // The edit under way is the conversation's (compose.ts): it stays while another is open, and across a reload.
  const setEditing = (m: Shown | null) => setEdit(id, m && { message: m, text: m.content });
  if (!conv) return <div class="empty">Loading…</div>;
  const peer = peerOf(conv);
  const title = titleOf(conv);
  const typers = typingNames(id);
  const count = conv.member_count;
  return (
    <section class="conversation" aria-label={title}>
      <header class="bar">
        {/* The keyboard goes back to the conversation's link in the list (it fell to <body>). */}
        <button type="button" class="icon back" aria-label="Back" onClick={(e) => {
          const button = e.currentTarget;
          navigate(null);
          refocusWhenGone(button, () => document.querySelector<HTMLElement>(`nav[aria-label=Conversations] a[href="/c/${CSS.escape(id)}"]`));
        }}>
          ←
        </button>
        <Avatar name={title} url={peer?.profile_image_url} online={peer ? onlineOf(peer.id) : undefined} />
        <div class="heading">
          {/* The username on hover: a display name can be anyone's (a copy of a friend's reads the same). */}
          <h2 dir="auto" title={peer ? `${title} (@${peer.username})` : title}>
            {title}
          </h2>
          <span class="sub">{peer ? presenceText(onlineOf(peer.id)) : count ? plural(count, "member") : ""}</span>
        </div>
        <button type="button" onClick={() => openDialog("settings")} aria-label="Conversation settings" title="Conversation settings" class="icon">
          ⋯
        </button>
      </header>
      <MessageList id={id} conv={conv} onReply={(m) => setReplyTo(id, m)} onEdit={setEditing} />
      <div class="typing" aria-live="polite">
        {typers.length ? `${namesList(typers)} ${typers.length > 1 ? "are" : "is"} typing…` : ""}
      </div>
      <Composer id={id} setEditing={setEditing} />
    </section>
  );
}

function MessageList({ id, conv, onReply, onEdit }: { id: string; conv: Conversation; onReply: (m: Shown) => void; onEdit: (m: Shown) => void }) {
  const t = threads.value.get(id);
  const items = t?.items ?? [];
  const memberList = members.value.get(id);
  const shared = useMemo(() => sharedNames(items, memberList), [items, memberList]);
  // Mentions are marked for members only, once all of them are loaded (a big group's list may not be).
  const myName = me.value?.username.toLowerCase();
  const mentions = useMemo<Mentions>(() => {
    const all = memberList && memberList.size >= (conv.member_count ?? 0);
    return { members: all ? new Set([...memberList.values()].map((x) => x.user.username.toLowerCase())) : null, me: myName };
  }, [memberList, conv.member_count, myName]);
  const scroller = useRef<HTMLDivElement>(null);
  // First message of the window, by id (stable when older pages are prepended); null = follow the end.
  // Mirrored in a ref: a move that spans renders (an older page loading) reads the current one.
  const [startId, setStartState] = useState<string | null>(null);
  const startRef = useRef<string | null>(null);
  const setStartId = (v: string | null) => setStartState((startRef.current = v));
  const anchor = useRef<{ id: string; offset: number } | null>(null);
  /** Where the anchor last put (or found) the view: a scroll elsewhere during a move is the reader's. */
  const anchoredTop = useRef(0);
  const atBottom = useRef(true);
  /**
   * scrollTop when the view was last put (or seen) at the end; null: put it there whatever the
   * reader did. A reader's scroll reports itself at the next frame: a render before it (a
   * socket's frame, a focus) found atBottom still true and put the view back at the end.
   */
  const endTop = useRef<number | null>(null);
  const toEnd = (el: HTMLElement) => void (el.scrollTop = el.scrollHeight, endTop.current = el.scrollTop);
  /** Follow the end from now on, wherever the view is (a send of one's own, Jump to latest). */
  const follow = () => void (atBottom.current = true, endTop.current = null);
  /** Whether the view is at the end, measured (and, when it is, where that is). */
  const measure = (el: HTMLElement) => {
    atBottom.current = el.scrollHeight - el.scrollTop - el.clientHeight < 40;
    if (atBottom.current) endTop.current = el.scrollTop;
  };
  /** Scrolled up since the view was last at the end, the scroll event not yet handled. */
  const leftEnd = (el: HTMLElement) => endTop.current !== null && el.scrollTop < endTop.current - 1 && el.scrollHeight - el.scrollTop - el.clientHeight >= 40;
  // A conversation opens following its end, until its first scroll says otherwise.
  useEffect(() => {
    atLatest.value = true;
  }, []);
  /** atBottom as state: a scroll alone (no other change) shows or hides "Jump to latest". */
  const [away, setAway] = useState(false);
  const moving = useRef(false);
  const skipped = useRef(false);
  const opened = useRef(false);
  const jumping = useRef(false);
  /** Our newest send seen at the end of the list (its pending id). */
  const sent = useRef<string | null>(null);
  const [flashId, setFlashId] = useState<string | null>(null);
  // The message the keyboard is on: the one message in the tab order (the newest until another is
  // focused), so Tab reaches its tools without a stop per message; arrows move between messages.
  const [keyId, setKeyId] = useState<string | null>(null);
  const focus = focusMessage.value?.conversationId === id ? focusMessage.value.messageId : null;
  const focusAskedAt = focusMessage.value?.at ?? 0;

  const startIdx = windowStart(items, startId);
  const endIdx = Math.min(items.length, startIdx + WINDOW);
  const shown = items.slice(startIdx, endIdx);
  const following = startId === null;

  useLayoutEffect(() => {
    const el = scroller.current;
    if (!el) return;
    if (focus && t && !t.loading) {
      // A search result: put its message in the window, then in the middle of the view.
      const node = el.querySelector<HTMLElement>(`[data-id="${CSS.escape(focus)}"]`);
      if (node) {
        opened.current = true;
        focusMessage.value = null;
        el.scrollTop = node.offsetTop - (el.clientHeight - node.offsetHeight) / 2;
        measure(el);
        // The keyboard goes there too (after a quote's click it fell to <body>; from a search
        // result, the dialog gave it back to Search, or the message box took it), unless the
        // user went on meanwhile (a key or a click since it was asked for).
        if (!inputSince(focusAskedAt)) node.focus({ preventScroll: true });
        setFlashId(focus);
        setTimeout(() => setFlashId((f) => (f === focus ? null : f)), FLASH_MS);
        requestAnimationFrame(() => void onScroll());
        return;
      }
      const idx = items.findIndex((m) => m.id === focus);
      if (idx >= 0) {
        setStartId(items[Math.max(0, idx - STEP)]!.id);
        return;
      }
    }
    if (!opened.current && t && !t.loading) {
      opened.current = true;
      // Reloaded by "Jump to latest": the end, though the newest page may still hold the divider.
      const divider = !jumping.current && t.firstUnread && el.querySelector<HTMLElement>(".divider");
      jumping.current = false;
      if (divider) {
        el.scrollTop = divider.offsetTop - 40;
        measure(el);
      } else toEnd(el);
      // Opened near the top (a short page, or an early divider): fetch what is above now.
      requestAnimationFrame(() => void onScroll());
      return;
    }
    // Our own send (a new pending message at the end) brings the view to the newest, as chat apps do.
    const newest = items.at(-1);
    if (newest?.pending && newest.sender_id === me.value?.id && newest.id !== sent.current) {
      sent.current = newest.id;
      follow();
      if (startRef.current !== null) return setStartId(null);
    }
    // The thread was reloaded from its newest messages (a send while reading far back): follow the end.
    if (startId && t && !t.loading && !items.some((m) => m.id === startId)) {
      follow();
      setStartId(null);
      return;
    }
    // Kept across the renders of one move (loading line, prepended page, moved window).
    if (anchor.current) {
      const a = el.querySelector<HTMLElement>(`[data-id="${CSS.escape(anchor.current.id)}"]`);
      if (a) anchoredTop.current = el.scrollTop = a.offsetTop - anchor.current.offset;
    } else if (following && atBottom.current) {
      if (leftEnd(el)) atBottom.current = false;
      else toEnd(el);
    }
  });

  // Content that grows after its render (an image loading, the composer growing over the list)
  // leaves scrollTop where it was: a reader following the end is kept at the end.
  const content = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const el = scroller.current!;
    const ro = new ResizeObserver(() => {
      if (startRef.current === null && atBottom.current && !anchor.current && !leftEnd(el)) toEnd(el);
    });
    ro.observe(el);
    ro.observe(content.current!);
    return () => ro.disconnect();
  }, []);

  /** Remembers the first visible message and where it is, so the next render keeps it in place. */
  function keepPosition() {
    const el = scroller.current;
    if (!el) return;
    for (const node of el.querySelectorAll<HTMLElement>("[data-id]")) {
      if (node.offsetTop + node.offsetHeight > el.scrollTop) {
        anchor.current = { id: node.dataset.id!, offset: node.offsetTop - el.scrollTop };
        anchoredTop.current = el.scrollTop;
        return;
      }
    }
  }

  async function onScroll() {
    // Called from animation frames too: the list may have gone since (another conversation opened).
    const el = scroller.current;
    if (!el) return;
    const wasAway = !atLatest.value;
    measure(el);
    setAway(!atBottom.current);
    atLatest.value = atBottom.current && startRef.current === null;
    if (moving.current) {
      // The reader scrolled while a page loads: keep what they have scrolled to, not where the
      // move began (the page used to land there, undoing their scroll).
      if (anchor.current && Math.abs(el.scrollTop - anchoredTop.current) >= 1) keepPosition();
      skipped.current = true;
      return;
    }
    moving.current = true;
    skipped.current = false;
    let moved = false;
    try {
      moved = await move(el);
    } finally {
      // After the last render of this move has put the anchor back; then, if the view is
      // still near an edge (scroll events that came meanwhile were skipped), move on.
      requestAnimationFrame(() => {
        anchor.current = null;
        moving.current = false;
        if (moved || skipped.current) void onScrollRef.current();
      });
    }
    // Measured before the move: after one that added messages the end is further down, and the
    // next onScroll (above, once they are laid out) measures again.
    if (!moved && atBottom.current && startRef.current === null) {
      if (wasAway) moveDivider(id);
      markSeen(id);
    }
  }
  const onScrollRef = useRef(onScroll);
  onScrollRef.current = onScroll;

  /** Moves the window (or loads an older page) when the view is near an edge; says whether it did. */
  async function move(el: HTMLDivElement): Promise<boolean> {
    const cur = threads.value.get(id);
    if (!cur) return false;
    let list = cur.items;
    let idx = windowStart(list, startRef.current);
    if (el.scrollTop < EDGE_PX) {
      if (idx === 0 && cur.older && !cur.loading) {
        const first = list[0]?.id;
        keepPosition();
        await loadPage(id, "older");
        list = threads.value.get(id)!.items;
        idx = list.findIndex((m) => m.id === first);
      }
      if (idx > 0) {
        keepPosition();
        setStartId(list[Math.max(0, idx - STEP)]!.id);
        return true;
      }
    } else if (el.scrollHeight - el.scrollTop - el.clientHeight < EDGE_PX) {
      if (startRef.current !== null) {
        keepPosition();
        const next = idx + STEP;
        setStartId(next + WINDOW >= list.length ? null : list[next]!.id);
        return true;
      }
      // Opened around an older message: the window is at the end of what is loaded, load on.
      if (cur.newer && !cur.loading) {
        keepPosition();
        return (await loadPage(id, "newer")) > 0;
      }
    }
    return false;
  }

  function jumpToLatest(e: MouseEvent) {
    // The button goes once at the end (up to 10 s: the newest page may load first): the keyboard
    // goes on to the message box (it fell to <body>).
    refocusWhenGone(e.currentTarget as Element, conversationFocus, 500);
    follow();
    atLatest.value = true;
    setStartId(null);
    if (t?.newer) {
      // The newest messages are not loaded: load them as on opening.
      opened.current = false;
      jumping.current = true;
      // Failed (offline): the thread is gone, and the next opening is not a jump.
      void openThread(id, true).finally(() => !threads.value.get(id) && (jumping.current = false));
      return;
    }
    const el = scroller.current!;
    requestAnimationFrame(() => toEnd(el));
    moveDivider(id);
    markSeen(id);
  }

  const myId = me.value?.id;
  useArrivals(t, myId);
  const lastMine = [...shown].reverse().find((m) => m.sender_id === myId && !m.pending);
  // Who joined a group after it began, where it happened (a group's members changed without a
  // trace in the timeline). Only joins: the contract keeps no record of who left.
  const joins = useMemo(() => joinedLater(conv, memberList), [memberList, conv.created_at, conv.type]);
  const joinsIn = (after: string | undefined, upTo: string | undefined) =>
    joins.filter((m) => (after === undefined || m.joined_at > after) && (upTo === undefined || m.joined_at <= upTo));
  const atEnd = !!t && !t.loading && !t.newer && endIdx === items.length;
  const seen = lastMine ? seenBy(id, conv, lastMine) : null;
  // Everyone, on hover, when the line names a few and counts the rest.
  const seenAll = lastMine && seen?.includes(" and ") ? readersOf(id, lastMine).join(", ") : null;
  const canModerate = conv.my_role === "owner" || conv.my_role === "admin";
  const tabId = keyId && shown.some((m) => m.id === keyId) ? keyId : shown.at(-1)?.id;

  /** Up/Down (Home/End) on a focused message focus the one before/after it (or the first/last shown). */
  function onKeyDown(e: KeyboardEvent) {
    moveFocus(e, [...content.current!.querySelectorAll<HTMLElement>(".msg")], e.target as Element);
  }
  return (
    <div class="log-wrap">
      {/* The log itself is not live (aria-live off): what it adds is mostly not news — a page
          of history on opening or scrolling, the window's nodes made again as it moves, "Seen
          by" moving to one's newest message — and a screen reader read all of it out (from an
          acceptance pass). Messages that come from others are said by the page's announcer (useArrivals). */}
      <div ref={scroller} class="log" role="log" aria-label="Messages" aria-live="off" tabIndex={0} onScroll={onScroll} onKeyDown={onKeyDown}>
        <div ref={content}>
          {t?.loading && <div class="loading">Loading…</div>}
          {t && !t.older && startIdx === 0 && !t.loading && <div class="start">This is the start of the conversation.</div>}
          {shown.map((m, i) => {
            // The loaded message before this one (the window's first has one too, unless it is the
            // first loaded). Above the first loaded one, the day shows only at the conversation's
            // start: with older messages still to load it may be the same day, and a separator
            // that went away above the reader's place would move what they are reading.
            const prev = items[startIdx + i - 1];
            const newDay = prev ? dayOf(prev.created_at) !== dayOf(m.created_at) : !t?.older;
            // Above the first loaded message, only at the conversation's start (older pages may hold earlier ones).
            const joined = prev || !t?.older ? joinsIn(prev?.created_at, m.created_at) : [];
            const compact = !!prev && i > 0 && !newDay && !joined.length && prev.sender_id === m.sender_id && Date.parse(m.created_at) - Date.parse(prev.created_at) < 5 * 60_000 && t?.firstUnread !== m.id;
            // Keyed by the message: unkeyed, the fragments matched by position, so a window that
            // moved (an older page prepended) made every message's node anew, and the one the
            // keyboard was on lost the focus to <body> (Home, or a long run of ↑). By its sender
            // and client_msg_id when it has one (unique in a conversation, by the contract): our
            // pending message and the server's copy that replaces it are one node, not a second
            // one a screen reader announced again.
            return (
              <Fragment key={m.client_msg_id ? `${m.sender_id}/${m.client_msg_id}` : m.id}>
                {newDay && (
                  <div class="day" role="separator" aria-label={dayLabel(m.created_at)}>
                    <span>{dayLabel(m.created_at)}</span>
                  </div>
                )}
                {joined.map((x) => <Joined key={x.user.id} m={x} />)}
                {t?.firstUnread === m.id && (
                  <div class="divider" role="separator" aria-label="New messages">
                    New messages
                  </div>
                )}
                <MessageItem m={m} flash={m.id === flashId} compact={compact} sameName={shared.has(m.sender_name)} mentions={mentions} mine={m.sender_id === myId} canDelete={m.sender_id === myId || (conv.type === "group" && canModerate)} items={items} onReply={onReply} onEdit={onEdit} tabbable={m.id === tabId} onFocus={() => setKeyId(m.id)} />
                {m === lastMine && seen && <div class="seen" title={seenAll ?? undefined}>{seen}</div>}
              </Fragment>
            );
          })}
          {atEnd && joinsIn(items.at(-1)?.created_at, undefined).map((x) => <Joined key={x.user.id} m={x} />)}
        </div>
      </div>
      {(!following || away || !!t?.newer) && items.length > 0 && (
        <button type="button" class="jump" onClick={jumpToLatest}>
          Jump to latest
        </button>
      )}
    </div>
  );
}

/**
 * What a screen reader is told of the open conversation: the messages from others that come
 * after its newest sent one, as they come ("Ann: see you at 5"); not the pages a reader
 * loads, nor one's own sends. By the newest *sent* message: one's own on its way or not
 * sent stays at the end of the list (an arrival goes before it), and hid every arrival.
 */
function useArrivals(t: Thread | undefined, myId: string | undefined) {
  const last = useRef<{ id: string | undefined; newer: boolean } | null>(null);
  const items = t?.items;
  useEffect(() => {
    if (!t || t.loading) return;
    const before = last.current;
    const newest = t.items.findLast((m) => m.pending === undefined)?.id;
    last.current = { id: newest, newer: !!t.newer };
    // The first page, or a page of newer history (the end was not loaded then or now).
    if (!before?.id || before.newer || t.newer || newest === before.id) return;
    // Ids are in time order (UUIDv7): those after the one last seen, wherever they landed.
    const came = t.items.filter((m) => m.pending === undefined && m.id > before.id! && m.sender_id !== myId);
    if (!came.length) return;
    const lastOne = came.at(-1)!;
    const said = `${lastOne.sender_name}: ${gist(lastOne)}`;
    announce(came.length === 1 ? said : `${came.length} new messages. ${said}`);
  }, [items, t?.loading, t?.newer]);
}

/**
 * Display names that two people here share (names are not unique, usernames are): their
 * messages show the username beside the name, so that one cannot pass for the other.
 */
function sharedNames(items: Shown[], list: Map<string, Member> | undefined): Set<string> {
  const who = new Map<string, string>();
  const shared = new Set<string>();
  const see = (name: string, userId: string) => {
    const first = who.get(name);
    if (first === undefined) who.set(name, userId);
    else if (first !== userId) shared.add(name);
  };
  for (const m of items) see(m.sender_name, m.sender_id);
  for (const x of list?.values() ?? []) see(x.user.display_name, x.user.id);
  return shared;
}

/** A group's members who joined after it began (not with its creation), in the order they joined. */
function joinedLater(conv: Conversation, list: Map<string, Member> | undefined): Member[] {
  if (conv.type !== "group" || !list) return [];
  // Those the creator named join in the same moment as the group: a second covers it.
  const begun = Date.parse(conv.created_at) + 1000;
  return [...list.values()].filter((m) => Date.parse(m.joined_at) > begun).sort((a, b) => (a.joined_at < b.joined_at ? -1 : a.joined_at > b.joined_at ? 1 : 0));
}

function Joined({ m }: { m: Member }) {
  const who = m.user.id === me.value?.id ? "You" : m.user.display_name;
  return (
    <div class="event" dir="auto">
      {who} joined · <time dateTime={m.joined_at} title={fullTime(m.joined_at)}>{time(m.joined_at)}</time>
    </div>
  );
}

/** Members whose username or display name holds `q` ("cruz" finds Carol Cruz), those that start with it first. */
function mentionCandidates(list: Member[], q: string): Member[] {
  const starts = (m: Member) => m.user.username.startsWith(q) || m.user.display_name.toLowerCase().startsWith(q);
  const holds = (m: Member) => m.user.username.includes(q) || m.user.display_name.toLowerCase().includes(q);
  return [...list.filter(starts), ...list.filter((m) => !starts(m) && holds(m))].slice(0, 6);
}

/** Index of the window's first message: `start`'s, or the last WINDOW when following the end. */
function windowStart(items: Shown[], start: string | null) {
  return start ? Math.max(0, items.findIndex((m) => m.id === start)) : Math.max(0, items.length - WINDOW);
}

/** The members (not its sender) whose read position is at or past `m`, by name. */
const readersOf = (id: string, m: Shown): string[] =>
  [...(members.value.get(id)?.values() ?? [])].filter((x) => x.user.id !== m.sender_id && (x.last_read_message_id ?? "") >= m.id).map((x) => x.user.display_name);

/** "Seen by Ann, Bo" for my last message: members (not me) whose read position is at or past it. */
function seenBy(id: string, conv: Conversation, m: Shown): string | null {
  const list = members.value.get(id);
  if (list) {
    const names = readersOf(id, m);
    if (!names.length) return null;
    const shownNames = names.slice(0, 3).join(", ");
    return `Seen by ${shownNames}${names.length > 3 ? ` and ${plural(names.length - 3, "other")}` : ""}`;
  }
  return m.read_count > 0 ? (conv.type === "direct" ? `Seen by ${peerOf(conv)?.display_name ?? "them"}` : `Seen by ${m.read_count}`) : null;
}

function MessageItem(props: {
  m: Shown; flash: boolean; compact: boolean; sameName: boolean; mentions: Mentions; mine: boolean; canDelete: boolean; items: Shown[]; onReply: (m: Shown) => void; onEdit: (m: Shown) => void;
  tabbable: boolean; onFocus: () => void;
}) {
  const { m, compact, mine } = props;
  const [picking, setPicking] = useState(false);
  const reactButton = useRef<HTMLButtonElement>(null);
  const article = useRef<HTMLDivElement>(null);
  const pickerRef = useRef<HTMLDivElement>(null);
  // Opened, the picker takes the focus (for a message of one's own, Edit and Delete come
  // between React and the picker in the page's order).
  useLayoutEffect(() => {
    if (picking) pickerRef.current?.querySelector("button")?.focus();
  }, [picking]);
  // Not loaded (an older message): read for the quote, once (quoteOf).
  const quoted = m.reply_to_id && !m.deleted_at ? (props.items.find((x) => x.id === m.reply_to_id) ?? quoteOf(m.conversation_id, m.reply_to_id) ?? undefined) : undefined;
  // Links, files and reactions are in the Tab order of the message the keyboard is on only:
  // every message's were, and the list took a Tab for each on the way to the composer.
  const inner = props.tabbable ? 0 : -1;
  const deleted = !!m.deleted_at;
  // Deleted meanwhile (by its sender elsewhere, or a moderator): the picker goes with its tools.
  useEffect(() => void (deleted && setPicking(false)), [deleted]);
  const cls = ["msg", mine ? "mine" : "", compact ? "compact" : "", props.flash ? "flash" : "", m.pending ? "pending" : "", m.failed ? "failed" : ""].join(" ");
  // Said with what did not happen ("You are offline." alone left it unsaid).
  const fail = (what: string) => (e: unknown) => (toast.value = `${what} ${explain(e)}`);
  return (
    // Focusable (its tools show while focus is within it, style.css): the keyboard's way to them.
    // Named by who and when (a screen reader landing on a message heard neither first; the
    // follow-on ones show no name at all).
    <div ref={article} class={cls} data-id={m.id} role="article" aria-label={`${m.sender_name}, ${fullTime(m.created_at)}`} tabIndex={props.tabbable ? 0 : -1} onFocus={(e) => e.target === e.currentTarget && props.onFocus()}>
      {!compact && (
        <div class="who">
          <Avatar name={m.sender_name} url={m.sender_avatar} />
          <span class="sender" title={`${m.sender_name} (@${m.sender_info.username})`}>{m.sender_name}</span>
          {props.sameName && <span class="handle">@{m.sender_info.username}</span>}
          <time dateTime={m.created_at} title={fullTime(m.created_at)}>
            {time(m.created_at)}
          </time>
        </div>
      )}
      {compact && (
        // A follow-on message's time, in the gutter where the avatar stands above: shown while
        // hovered or focused (it had none: a reply minutes later looked sent with the first).
        <time class="aside" dateTime={m.created_at} title={fullTime(m.created_at)}>
          {shortTime(m.created_at)}
        </time>
      )}
      {m.reply_to_id && !deleted && (
        // Goes to the message replied to: scrolled to if loaded, else the history around it is loaded (as a search result).
        <button type="button" class="quote" title="Go to the message replied to" tabIndex={inner} onClick={() => void openAt(m.conversation_id, m.reply_to_id!)}>
          {quoted ? `${quoted.sender_name}: ${quoted.deleted_at ? "Message deleted" : gist(quoted).slice(0, 120)}` : "Reply to an earlier message"}
        </button>
      )}
      {(deleted || m.content || !m.attachments.length) && (
        <div class={deleted ? "body deleted" : "body"} dir="auto">
          {deleted ? "Message deleted" : <RichText text={m.content} tabIndex={inner} mentions={props.mentions} />}
          {m.edited_at && !deleted && <span class="edited"> (edited)</span>}
        </div>
      )}
      {!deleted && m.attachments.length > 0 && <Files m={m} tabIndex={inner} />}
      {m.reactions.length > 0 && (
        <div class="reactions">
          {m.reactions.map((r) => (
            <button type="button" key={r.emoji} tabIndex={inner} class={r.user_ids.includes(me.value!.id) ? "reaction on" : "reaction"} aria-pressed={r.user_ids.includes(me.value!.id)} aria-label={`${r.emoji} ${r.count}, ${reactors(m.conversation_id, r)}`} title={reactors(m.conversation_id, r)} onClick={() => toggleReaction(m, r.emoji).catch(fail("The reaction did not change."))}>
              {r.emoji} {r.count}
            </button>
          ))}
        </div>
      )}
      {m.pending && !m.failed && <div class="state">Sending…</div>}
      {m.failed && (
        // Red only when the server refused it: offline or unanswered, it goes by itself (it
        // looked as alarming as a refusal).
        <div class={m.failed === "offline" || m.failed === "unreachable" ? "state waiting" : "state error"}>
          {/* Sent again by itself when the browser is back online (store.ts resend), kept across reloads (outbox.ts). */}
          {m.failed === "offline" ? "Not sent: offline. It goes when you are back online." : m.failed === "unreachable" ? "Not sent: the server cannot be reached. It goes when it answers again." : `Not sent: ${m.failed}`}{" "}
          <button type="button" class="link" onClick={() => retry(m)}>
            Retry
          </button>{" "}
          <button type="button" class="link" aria-label="Discard the message not sent" onClick={(e) => {
            const button = e.currentTarget;
            // A send that went unanswered may have landed all the same (it then shows as sent).
            if (!confirm(m.failed === "unreachable" ? "Discard this message? It may have reached the server already; if so, it shows as sent." : "Discard this message? It has not been sent.")) return;
            discard(m);
            // The message goes with its buttons: the keyboard goes on to the message box.
            refocusWhenGone(button, messageBox);
          }}>
            Discard
          </button>
        </div>
      )}
      {!m.pending && !deleted && (
        <div class="tools">
          <button type="button" onClick={() => props.onReply(m)} aria-label="Reply" title="Reply">↩</button>
          <button type="button" ref={reactButton} onClick={() => setPicking(!picking)} aria-label="React" title="React" aria-expanded={picking}>☺</button>
          {mine && <button type="button" onClick={() => props.onEdit(m)} aria-label="Edit" title="Edit">✎</button>}
          {props.canDelete && (
            <button type="button" aria-label="Delete" title="Delete" onClick={(e) => {
              const button = e.currentTarget;
              if (!confirm("Delete this message?")) return;
              // Its tools go with it: the keyboard stays on the message ("Message deleted"), not on <body>.
              deleteMessage(m.id).then(() => refocusWhenGone(button, () => article.current), fail("Not deleted."));
            }}>
              <TrashIcon />
            </button>
          )}
        </div>
      )}
      {picking && (
        <div class="picker" role="group" aria-label="Reactions" ref={pickerRef}
          onKeyDown={(e) => {
            if (e.key === "Escape") return void (e.stopPropagation(), setPicking(false), reactButton.current?.focus());
            // Left/Right (Home/End) move between the reactions, as in a toolbar.
            if (moveFocus(e, [...pickerRef.current!.querySelectorAll<HTMLElement>("button")], document.activeElement, true)) e.stopPropagation();
          }}>
          {REACTIONS.map((e) => (
            <button type="button" key={e} aria-label={`React ${e}`} onClick={() => { setPicking(false); reactButton.current?.focus(); toggleReaction(m, e).catch(fail("The reaction did not change.")); }}>
              {e}
            </button>
          ))}
        </div>
      )}
    </div>
  );
}

// Drawn, not emoji (🗑 📄): a machine without an emoji font showed empty boxes (§10: no web font).
const icon = { width: 16, height: 16, viewBox: "0 0 24 24", fill: "none", stroke: "currentColor", "stroke-width": 2, "stroke-linecap": "round", "stroke-linejoin": "round", "aria-hidden": true } as const;
const TrashIcon = () => (
  <svg {...icon}>
    <path d="M3 6h18M8 6V4a2 2 0 0 1 2-2h4a2 2 0 0 1 2 2v2m3 0v14a2 2 0 0 1-2 2H7a2 2 0 0 1-2-2V6" />
  </svg>
);
const FileIcon = () => (
  <svg {...icon}>
    <path d="M14 2H6a2 2 0 0 0-2 2v16a2 2 0 0 0 2 2h12a2 2 0 0 0 2-2V8zM14 2v6h6" />
  </svg>
);

/** Who reacted, by name ("you" first; members not loaded yet, and those past the ids a reaction carries, counted): "you, Ann and 2 more". */
function reactors(conversationId: string, r: { count: number; user_ids: string[] }): string {
  const list = members.value.get(conversationId);
  const myId = me.value?.id;
  const names = [...(r.user_ids.includes(myId ?? "") ? ["you"] : []), ...r.user_ids.flatMap((id) => (id !== myId && list?.get(id) ? [list.get(id)!.user.display_name] : []))];
  const more = r.count - names.length;
  if (!names.length) return plural(r.count, "person", "people");
  return more > 0 ? `${names.join(", ")} and ${more} more` : names.length > 1 ? `${names.slice(0, -1).join(", ")} and ${names.at(-1)}` : names[0]!;
}

/** A thumbnail's size on screen (fits THUMB_PX, never enlarged), known before it loads: the list does not move when it does. */
const THUMB_PX = 240;
function shownSize(a: Attachment) {
  if (!a.width || !a.height) return undefined;
  const k = Math.min(1, THUMB_PX / a.width, THUMB_PX / a.height);
  return { width: Math.max(1, Math.round(a.width * k)), height: Math.max(1, Math.round(a.height * k)) };
}

/**
 * A click on a file whose signed link has expired (a tab open for hours): the message is read
 * again and the fresh link opened (an image, in the window opened at the click: a browser
 * blocks one opened after the wait) or downloaded. It answered "this link has expired".
 */
function openFresh(m: Shown, a: Attachment, download: boolean) {
  return (e: MouseEvent) => {
    if (!linkExpired(a.url)) return;
    e.preventDefault();
    const w = download ? null : window.open("", "_blank");
    if (w) w.opener = null;
    relink(m).then(
      (fresh) => {
        const url = fresh?.attachments.find((x) => x.id === a.id)?.url;
        if (!url) return void (w?.close(), (toast.value = "That file is no longer there."));
        if (w) return void (w.location.href = url);
        const link = document.createElement("a");
        link.href = url;
        link.download = a.filename;
        link.click();
      },
      (err) => void (w?.close(), (toast.value = explain(err, "The file could not be opened."))),
    );
  };
}

/** Images as thumbnails (links to the full file), other files as download links; links read again once expired. */
function Files({ m, tabIndex }: { m: Shown; tabIndex?: number }) {
  // A thumbnail that failed to load with an expired link (lazy, scrolled to hours later): read again, shown anew.
  const onError = (a: Attachment) => () => a.thumbnail_url && linkExpired(a.thumbnail_url, 0) && void relink(m).catch(() => {});
  return (
    <div class="files">
      {m.attachments.map((a) =>
        a.thumbnail_url ? (
          <a key={a.id} href={a.url} target="_blank" rel="noopener noreferrer" class="image" tabIndex={tabIndex} onClick={openFresh(m, a, false)}>
            <img src={a.thumbnail_url} alt={a.filename} width={a.width ?? undefined} height={a.height ?? undefined} style={shownSize(a)} loading="lazy" referrerpolicy="no-referrer" onError={onError(a)} />
          </a>
        ) : (
          <a key={a.id} href={a.url} download={a.filename} rel="noopener noreferrer" class="file" tabIndex={tabIndex} onClick={openFresh(m, a, true)}>
            <FileIcon /> {a.filename} <span class="hint">{size(a.size)}</span>
          </a>
        ),
      )}
    </div>
  );
}

function Composer(props: { id: string; setEditing: (m: Shown | null) => void }) {
  const { id } = props;
  // The reply, the files and a send waiting for them are the conversation's (compose.ts), not
  // the composer's: they stay while another conversation is open.
  const { picks, waiting, edit } = compositionOf(id);
  const editing = edit?.message ?? null;
  const editText = edit?.text ?? "";
  const setEditText = (text: string) => editing && setEdit(id, { message: editing, text });
  const replyTo = replyTargetOf(id);
  const box = useRef<HTMLTextAreaElement>(null);
  const form = useRef<HTMLFormElement>(null);
  const [mention, setMention] = useState<{ query: string; at: number; index: number } | null>(null);
  const picker = useRef<HTMLInputElement>(null);
  const uploading = picks.some(isUploading);
  const ready = picks.some((p) => p.attachment);

  // The composer's height, for a phone's notices to stand above it whatever it holds (a reply,
  // files, several lines: at a fixed height over the box they covered those).
  useLayoutEffect(() => {
    const el = form.current;
    if (!el) return;
    const root = document.documentElement.style;
    const seen = new ResizeObserver(() => root.setProperty("--composer-height", `${el.offsetHeight}px`));
    seen.observe(el);
    return () => (seen.disconnect(), root.removeProperty("--composer-height"));
  }, []);

  // Files dropped anywhere on the open conversation (not only on the composer) are attached.
  const dropRef = useRef((files: File[]) => attach(id, files));
  dropRef.current = (files: File[]) => attach(id, files);
  useEffect(() => {
    const area = form.current?.closest(".conversation") as HTMLElement | null;
    if (!area || editing) return;
    const hasFiles = (e: DragEvent) => !!e.dataTransfer && [...e.dataTransfer.types].includes("Files");
    const over = (e: DragEvent) => {
      if (!hasFiles(e)) return;
      e.preventDefault();
      area.classList.add("dropping");
    };
    const leave = (e: DragEvent) => {
      if (!e.relatedTarget || !area.contains(e.relatedTarget as Node)) area.classList.remove("dropping");
    };
    const dropped = (e: DragEvent) => {
      area.classList.remove("dropping");
      if (!hasFiles(e)) return;
      e.preventDefault();
      dropRef.current([...e.dataTransfer!.files]);
    };
    area.addEventListener("dragover", over);
    area.addEventListener("dragleave", leave);
    area.addEventListener("drop", dropped);
    return () => {
      area.removeEventListener("dragover", over);
      area.removeEventListener("dragleave", leave);
      area.removeEventListener("drop", dropped);
    };
  }, [id, editing]);

  /** An image (or any file) pasted into the message box is attached; pasted text stays text. */
  function onPaste(e: ClipboardEvent) {
    const files = [...(e.clipboardData?.files ?? [])];
    if (!files.length || editing) return;
    e.preventDefault();
    attach(id, files);
  }
  const text = editing ? editText : (drafts.value[id] ?? "");
  // Counted as the server counts (code points after trimming): a textarea's maxLength counts
  // UTF-16 units and stopped a message of emoji at half the length the server takes.
  const over = overBy(text);

  // The text being edited starts as the message's, set with it (setEditing, Up): an effect
  // setting it ran late in a hidden tab and replaced text typed at once after Edit.
  const startEditing = (m: Shown) => props.setEditing(m);
  useLayoutEffect(() => {
    // An edit started while a send waited for its files: the wait ends (it saved the half-made edit instead).
    if (editing && compositionOf(id).waiting) stopWaiting(id);
    if (editing) box.current?.focus();
  }, [editing?.id]);
  // The message being edited deleted meanwhile (elsewhere, or by a moderator): the edit ends,
  // and what was typed into it is kept in the box as a new message's text (Enter lost it, with
  // "The message was deleted.").
  const editedGone = !!editing && !!threads.value.get(id)?.items.find((m) => m.id === editing.id)?.deleted_at;
  useEffect(() => {
    if (!editedGone || !editing) return;
    const typedText = editText.trim();
    props.setEditing(null);
    if (typedText && typedText !== editing.content.trim()) {
      const draft = drafts.value[id] ?? "";
      setDraft(id, draft ? `${draft}\n${typedText}` : typedText);
      toast.value = "The message you were editing was deleted. What you typed is kept in the box.";
    } else toast.value = "The message you were editing was deleted.";
  }, [editedGone]);
  // The message box takes the focus when a conversation opens and when Reply is chosen; at
  // once (a layout effect): run after the paint, it came late on a busy machine and took the
  // focus from wherever the keyboard had gone since (a Tab into the messages after Escape).
  // Not when it opens on a message to show (a search result, a quote): that takes the focus.
  // On a touch screen its messages take it instead: the box would bring up the on-screen
  // keyboard at every opening, over half of what was to be read.
  useLayoutEffect(() => void (focusMessage.peek()?.conversationId !== id && conversationFocus()?.focus({ preventScroll: true })), [id]);
  useLayoutEffect(() => {
    if (replyTo) box.current?.focus();
    // By id: the message replied to is read live (a reaction to it makes a new object), and the focus moved with each.
  }, [replyTo?.id]);
  useLayoutEffect(() => {
    const el = box.current!;
    el.style.height = "auto";
    el.style.height = `${Math.min(el.scrollHeight, 200)}px`;
  });

  const memberList = [...(members.value.get(id)?.values() ?? [])].filter((m) => m.user.id !== me.value?.id);
  const candidates = mention
    ? mentionCandidates(memberList, mention.query.toLowerCase())
    : [];

  function setText(v: string) {
    if (editing) setEditText(v);
    else {
      setDraft(id, v);
      typed(id, v);
    }
  }

  function onInput(e: Event) {
    const el = e.target as HTMLTextAreaElement;
    setText(el.value);
    const before = el.value.slice(0, el.selectionStart);
    // After any character a name cannot hold ("(@da"), as the server reads a mention.
    const m = before.match(/(^|[^A-Za-z0-9_.@])@([a-z0-9_.]*)$/i);
    setMention(m ? { query: m[2]!, at: before.length - m[2]!.length - 1, index: 0 } : null);
  }

  function pick(m: Member) {
    const el = box.current!;
    const at = mention!.at;
    const next = `${text.slice(0, at)}@${m.user.username} ${text.slice(el.selectionStart)}`;
    // Into the DOM at once, caret included, so that keys typed right after land after the name.
    el.value = next;
    el.focus();
    el.setSelectionRange(at + m.user.username.length + 2, at + m.user.username.length + 2);
    setText(next);
    setMention(null);
  }

  async function submit() {
    // Enter while files upload: sent once they are (it did nothing, and said nothing).
    if (!editing) return sendComposed(id);
    const content = text.trim();
    if (over > 0 || !content) return;
    const target = editing;
    props.setEditing(null);
    if (content === target.content) return;
    try {
      await editMessage(target.id, content);
    } catch (e) {
      // Not lost (offline, a refusal): the edit comes back to its conversation's box, to save
      // again, unless another edit has begun there meanwhile. (It went, with a toast alone.)
      if (!compositions.peek()[id]?.edit) {
        setEdit(id, { message: target, text: content });
        toast.value = `${explain(e, "Not edited.")} Your edit is back in the box: Enter saves it, Escape drops it.`;
      } else toast.value = explain(e, "Not edited.");
    }
  }

  function onKeyDown(e: KeyboardEvent) {
    if (e.isComposing) return; // Thai/CJK input methods use Enter to commit a word.
    if (mention && candidates.length) {
      if (e.key === "ArrowDown" || e.key === "ArrowUp") {
        e.preventDefault();
        const d = e.key === "ArrowDown" ? 1 : -1;
        setMention({ ...mention, index: (mention.index + d + candidates.length) % candidates.length });
        return;
      }
      if (e.key === "Enter" || e.key === "Tab") {
        e.preventDefault();
        pick(candidates[mention.index] ?? candidates[0]!);
        return;
      }
      if (e.key === "Escape") {
        setMention(null);
        return;
      }
    }
    if (e.key === "Enter" && !e.shiftKey) {
      e.preventDefault();
      void submit();
    } else if (e.key === "Escape") {
      props.setEditing(null);
      setReplyTo(id, null);
    } else if (e.key === "ArrowUp" && !text && !e.altKey) {
      const mine = [...(threads.value.get(id)?.items ?? [])].reverse().find((m) => m.sender_id === me.value?.id && !m.pending && !m.deleted_at);
      if (mine) {
        e.preventDefault();
        startEditing(mine);
      }
    }
  }

  return (
    <form ref={form} class="composer" onSubmit={(e) => { e.preventDefault(); void submit(); }}>
      {(replyTo || editing) && (
        <div class="context">
          <span>{editing ? "Editing your message" : `Replying to ${replyTo!.sender_name}: ${gist(replyTo!).slice(0, 300)}`}</span>
          <button type="button" class="link" onClick={() => { props.setEditing(null); setReplyTo(id, null); }}>
            Cancel
          </button>
        </div>
      )}
      {mention && candidates.length > 0 && (
        <ul class="mentions" id={`mentions-${id}`} role="listbox" aria-label="Mention someone">
          {candidates.map((m, i) => (
            <li key={m.user.id} id={`mention-${m.user.id}`} role="option" aria-selected={i === mention.index} onMouseDown={(e) => { e.preventDefault(); pick(m); }}>
              <strong>{m.user.display_name}</strong> @{m.user.username}
            </li>
          ))}
        </ul>
      )}
      {picks.length > 0 && (
        <ul class="picks" aria-label="Files to send">
          {picks.map((p) => (
            <li key={p.key} class={p.error ? "error" : p.attachment ? "" : "loading"}>
              {p.attachment?.thumbnail_url ? (
                <a href={p.attachment.url} target="_blank" rel="noopener noreferrer" class="thumb">
                  <img src={p.attachment.thumbnail_url} alt={p.name} referrerpolicy="no-referrer" />
                </a>
              ) : (
                <span class="kind" aria-hidden="true">{p.error ? "⚠" : <FileIcon />}</span>
              )}
              <span class="about">
                <span class="name" title={p.name}>{p.name}</span>
                <span class="hint">{size(p.size)}</span>
                {p.error && <span class="why" role="alert">{p.error}</span>}
                {!p.attachment && !p.error && (
                  <progress max={1} value={p.progress} aria-label={`Uploading ${p.name}`} />
                )}
              </span>
              {p.retry && (
                <button type="button" aria-label={`Retry upload of ${p.name}`} onClick={p.retry}>
                  Retry
                </button>
              )}
              <button type="button" class="icon" aria-label={p.abort ? `Cancel upload of ${p.name}` : `Remove ${p.name}`} title={p.abort ? "Cancel upload" : "Remove"} onClick={() => unpick(id, p)}>
                ×
              </button>
            </li>
          ))}
        </ul>
      )}
      {waiting && (
        <div class="hint" role="status">
          Sends once the files are uploaded.{" "}
          <button type="button" class="link" onClick={() => stopWaiting(id)}>
            Cancel
          </button>
        </div>
      )}
      {over > 0 && (
        <div class="over" id={`over-${id}`} role="alert">
          Too long: a message may have at most {MAX_CONTENT.toLocaleString("en-US")} characters ({plural(over, "character")} over).
        </div>
      )}
      <div class="row">
        {!editing && (
          <>
            <button type="button" class="icon" aria-label="Attach files" title="Attach files" onClick={() => picker.current?.click()}>
              {/* Drawn, not the 📎 emoji: a machine without an emoji font showed an empty box. */}
              <svg width="18" height="18" viewBox="0 0 24 24" fill="none" stroke="currentColor" stroke-width="2" stroke-linecap="round" stroke-linejoin="round" aria-hidden="true">
                <path d="M21.44 11.05l-9.19 9.19a6 6 0 0 1-8.49-8.49l9.19-9.19a4 4 0 0 1 5.66 5.66l-9.2 9.19a2 2 0 0 1-2.83-2.83l8.49-8.48" />
              </svg>
            </button>
            {/* Files picked, the keyboard goes on to the message box: a caption typed at once went
                nowhere (it stayed on 📎). Not on a touch screen, where it would bring up the keyboard. */}
            <input ref={picker} type="file" multiple hidden onChange={(e) => { attach(id, (e.target as HTMLInputElement).files); (e.target as HTMLInputElement).value = ""; if (!touchScreen()) box.current?.focus(); }} />
          </>
        )}
        <textarea
          dir="auto"
          ref={box}
          aria-label="Message"
          placeholder="Write a message"
          rows={1}
          value={text}
          aria-invalid={over > 0}
          // While the mention list is open, its highlighted option (a screen reader heard nothing of it).
          aria-autocomplete="list"
          aria-controls={mention && candidates.length ? `mentions-${id}` : undefined}
          aria-activedescendant={mention && candidates.length ? `mention-${(candidates[mention.index] ?? candidates[0]!).user.id}` : undefined}
          aria-describedby={over > 0 ? `over-${id}` : undefined}
          onInput={onInput}
          onKeyDown={onKeyDown}
          onPaste={onPaste}
          onBlur={() => stopTyping()}
        />
        <button type="submit" class="primary" disabled={!!waiting || over > 0 || (!text.trim() && (!!editing || !ready) && !uploading)}>
          {editing ? "Save" : "Send"}
        </button>
      </div>
    </form>
  );
}
