/** Modal dialogs (native <dialog>: focus trap and Escape for free): friends, new conversation, settings, profile, switcher, search. */
import { effect, signal } from "@preact/signals";
import type { ComponentChildren } from "preact";
import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import { api, ApiError, explain, upload, type Conversation, type Member, type Message, type Page, type Role, type User } from "./api";
import {
  contactPolicy, activeId, conversations, createGroup, deletedLive, friendsByName, mergeConversations, openAt, friendships, leaveConversation, loadFriends, loadMembers, me, members, navigate, openDirect, otherSide, peerOf,
  nameOf, refreshConversation, session, signOut, sortedConversations, titleOf, unsentCount, updateProfile,
} from "./store";
import { conversationFocus, fallbackFocus, focusBackAfter, moveFocus, refocusWhenGone } from "./focus";
import { announce } from "./announce";
import { tooLarge } from "./compose";
import { AVATAR_PATH_PREFIX } from "../src/files/paths";
import { Avatar, plural, Snippet, when } from "./text";

type Kind = "friends" | "new" | "settings" | "profile" | "switcher" | "search";
const current = signal<Kind | null>(null);
export const openDialog = (k: Kind) => (current.value = k);
const close = () => (current.value = null);
// A dialog is its session's: signed out, or the session lost, it goes (it was open again,
// over the next person's page, once they signed in).
effect(() => void (session.value || close()));
/** What the Search dialog starts with (the quick switcher's "Search messages for …"). */
const searchText = signal("");

export function Dialogs() {
  switch (current.value) {
    case "friends": return <Friends />;
    case "new": return <NewConversation />;
    case "settings": return activeId.value ? <Settings id={activeId.value} /> : null;
    case "profile": return <Profile />;
    case "switcher": return <Switcher />;
    case "search": return <Search />;
    default: return null;
  }
}

function Modal({ title, children }: { title: string; children: ComponentChildren }) {
  const ref = useRef<HTMLDialogElement>(null);
  // A close event of a dialog already taken off is not the current dialog's.
  const gone = useRef(false);
  useLayoutEffect(() => {
    const opener = document.activeElement;
    const openedOn = activeId.peek();
    const d = ref.current!;
    d.showModal();
    // showModal focuses the first focusable element, the header's Close button; typing
    // belongs in the dialog's first field.
    // Not a hidden one (Profile's file box, which its button opens).
    d.querySelector<HTMLElement>(".dialog-body input:not([hidden]), .dialog-body select, .dialog-body textarea")?.focus();
    // Taken off the page (Close, a custom Escape, an action) rather than closed natively, the
    // dialog gives no focus back: the keyboard returns to what opened it, unless the action
    // put it somewhere already (a conversation's message box).
    return () => {
      gone.current = true;
      const now = document.activeElement;
      const lost = !now || now === document.body || d.contains(now);
      // Still modal here (the page behind it inert, refusing the focus) until closed.
      if (d.open) d.close();
      if (!lost) return;
      // An action that opened a conversation (Message, Create group): its message box, which
      // could not take the focus while the dialog was modal.
      const box = activeId.peek() !== openedOn ? conversationFocus() : null;
      if (box) box.focus();
      else if (opener instanceof HTMLElement && opener.isConnected) opener.focus();
      // What opened it went with the action (the settings of a group left or deleted): not <body>
      // (from an acceptance pass).
      else fallbackFocus()?.focus();
    };
  }, []);
  return (
    <dialog ref={ref} aria-label={title} tabIndex={-1} onClose={() => !gone.current && close()} onClick={(e) => e.target === ref.current && close()}>
      <header class="bar">
        <h2>{title}</h2>
        <button type="button" class="icon" aria-label="Close" onClick={close}>
          ×
        </button>
      </header>
      <div class="dialog-body">{children}</div>
    </dialog>
  );
}

/**
 * For a button whose row goes once its action is done (a member removed, a friend added):
 * `keep()` then puts the focus on the same control of the row that took its place, or of
 * the one before, or on the dialog (it fell to <body>, behind the dialog, for the keyboard).
 */
function keepFocusIn(button: HTMLElement): () => void {
  const row = button.closest("li");
  const list = row?.parentElement;
  const index = row && list ? [...list.children].indexOf(row) : -1;
  const label = button.getAttribute("aria-label")?.split(" ")[0] ?? "";
  const dialog = list?.closest<HTMLElement>("dialog");
  return () =>
    refocusWhenGone(button, () => {
      if (!dialog?.isConnected) return null;
      // A request accepted: the new friend's Message, the next step (the whole dialog took the
      // focus). By the user's id: two friends may share a display name.
      const friend = label === "Accept" ? button.dataset.user : undefined;
      const then = friend && [...dialog.querySelectorAll<HTMLElement>('button[aria-label^="Message "]')].find((b) => b.dataset.user === friend);
      if (then) return then;
      // The list gone whole with its last row (Preact leaves the rows inside the detached list).
      if (!list?.isConnected) return dialog;
      const rows = [...list.children];
      const near = rows[index] ?? rows[index - 1];
      return near?.querySelector<HTMLElement>(`button[aria-label^="${label} "]`) ?? near?.querySelector<HTMLElement>("button, select") ?? boxBefore(list) ?? dialog;
    });
}

/**
 * The search box that narrows `list` (the last one before it): the keyboard's place once the
 * list is empty, or its row has no button left (a person asked: "Add friend" becomes "Requested").
 */
function boxBefore(list: Element): HTMLElement | undefined {
  const boxes = [...(list.closest("dialog")?.querySelectorAll<HTMLElement>('input[type="search"], [role="search"] input') ?? [])];
  return boxes.filter((b) => b.compareDocumentPosition(list) & Node.DOCUMENT_POSITION_FOLLOWING).at(-1);
}

/**
 * An input's value cut to `max` characters as the server counts them (code points): the
 * `maxLength` attribute counts UTF-16 units, and stopped a name of emoji at half its length.
 * Cut, the box is given the shorter value at once (the caret goes to its end).
 */
function clip(e: Event, max: number): string {
  const input = e.target as HTMLInputElement;
  // Not while an input method composes (its text is not final), nor under the limit.
  if ((e as InputEvent).isComposing || input.value.length <= max || [...input.value].length <= max) return input.value;
  // Whole characters as seen (a flag is two code points): cut before the one that would pass the limit.
  let kept = "";
  let count = 0;
  for (const { segment } of new Intl.Segmenter(undefined, { granularity: "grapheme" }).segment(input.value)) {
    const n = [...segment].length;
    if (count + n > max) break;
    kept += segment;
    count += n;
  }
  input.value = kept;
  return kept;
}

/**
 * `clip` for one field, saying under it when it cut: a paste longer than the limit was cut
 * without a word (`note` goes after the field's label, not in its name).
 */
function useClip(max: number) {
  const [cut, setCut] = useState(false);
  return {
    clip: (e: Event) => {
      const before = (e.target as HTMLInputElement).value;
      const kept = clip(e, max);
      setCut(kept !== before);
      return kept;
    },
    note: cut ? (
      <p class="hint" role="status">
        Cut to {max} characters, the most it may have.
      </p>
    ) : null,
  };
}

/**
 * Runs an action, showing its error inside the dialog. The same action (`key`) asked for
 * again while it runs — a double click, Enter pressed twice — is not run twice (it made two
 * groups, and a second friend request answered 409); `busy(key)` says whether it runs.
 */
function useAction() {
  const [error, setError] = useState<string | null>(null);
  const running = useRef(new Set<string>());
  const [, setRunning] = useState(0);
  const run = async (f: () => Promise<unknown>, key = "") => {
    if (running.current.has(key)) return;
    running.current.add(key);
    setRunning((n) => n + 1);
    setError(null);
    // The control that ran it keeps the keyboard: disabled while it ran, it lost the focus to
    // <body>; gone with its row (a request accepted, a member removed), its neighbour takes it.
    const control = document.activeElement instanceof HTMLElement ? document.activeElement : null;
    const back = focusBackAfter();
    const keep = control ? keepFocusIn(control) : null;
    try {
      await f();
    } catch (e) {
      setError(e instanceof ApiError && e.code === "not_friends" ? "You can only add friends." : explain(e));
    } finally {
      running.current.delete(key);
      setRunning((n) => n + 1);
      back();
      keep?.();
    }
  };
  const busy = (key = "") => running.current.has(key);
  const shown = error ? <p class="error" role="alert">{error}</p> : null;
  return [run, shown, busy] as const;
}

function UserRow({ u, children }: { u: User; children?: ComponentChildren }) {
  return (
    <li class="user-row">
      <Avatar name={u.display_name} url={u.profile_image_url} />
      <span class="text">
        <span class="title" title={u.display_name}>{u.display_name}</span>
        <span class="preview">@{u.username}</span>
      </span>
      <span class="row">{children}</span>
    </li>
  );
}

/** Past this many people, a list gets a box that narrows it (a group of hundreds was one long scroll). */
const NARROW_FROM = 8;

/** Whether a person's display name or username holds what was typed (any case; "@bob" as the app writes usernames). */
function matchesPerson(u: User, typed: string): boolean {
  const needle = typed.trim().replace(/^@/, "").toLowerCase();
  return !needle || u.display_name.toLowerCase().includes(needle) || u.username.toLowerCase().includes(needle);
}

/** The box that narrows a list of people, shown once the list is long; says so when nobody matches. */
function Narrow({ label, count, value, onInput, none, nobody }: { label: string; count: number; value: string; onInput: (v: string) => void; none: boolean; nobody: string }) {
  if (count <= NARROW_FROM) return null;
  return (
    <>
      <input type="search" class="narrow" aria-label={label} placeholder={`${label} by name`} value={value} onInput={(e) => onInput((e.target as HTMLInputElement).value)} />
      {none && <p class="hint" role="status">{nobody} matches “{value.trim()}”.</p>}
    </>
  );
}

/** What a search for people sends for what was typed: "@bob", as the app writes usernames, finds bob (the @ found nobody). */
const peopleQuery = (typed: string) => typed.trim().replace(/^@+/, "");

/**
 * Whom the server finds for what was typed (`GET /api/users`, the caller left out): Friends'
 * search, and under CONTACT_POLICY=open the group pickers' (their lists hold friends only,
 * though anyone may be put in a group there, §7.2). `answered` is the query the results answer.
 */
function useFindPeople(run: ReturnType<typeof useAction>[0]) {
  const [found, setFound] = useState<User[]>([]);
  const [answered, setAnswered] = useState<string | null>(null);
  // The last search asked answers: an earlier one that comes back after it is not shown.
  const latest = useRef(0);
  const find = async (typed: string) => {
    const query = peopleQuery(typed);
    if (!query) return;
    const ticket = ++latest.current;
    // Keyed by the query: a new one asked while the last runs is run too (it was dropped, the old results left).
    await run(async () => {
      const page = await api<Page<User>>("GET", `/api/users?q=${encodeURIComponent(query)}&limit=20`);
      if (ticket !== latest.current) return;
      setFound(page.items.filter((u) => u.id !== me.value!.id));
      setAnswered(query);
    }, `find ${query}`);
  };
  /** The results while the box still holds what they answer (typed on, they no longer do). */
  const foundFor = (typed: string) => (answered !== null && answered === peopleQuery(typed) ? found : null);
  return { found, answered, find, foundFor };
}

/**
 * Under CONTACT_POLICY=open, a group picker's box: typing narrows the friends listed, Enter or
 * Find asks the server for anyone (a button, not a form: it sits inside the group's form).
 */
function FindAnyone({ label, value, onInput, onFind, said }: { label: string; value: string; onInput: (v: string) => void; onFind: () => void; said: string }) {
  return (
    <>
      <div class="row find-anyone">
        <input type="search" aria-label={label} placeholder={`${label} by name`} value={value} onInput={(e) => onInput((e.target as HTMLInputElement).value)}
          onKeyDown={(e) => { if (e.key === "Enter") { e.preventDefault(); onFind(); } }} />
        <button type="button" onClick={onFind}>Find</button>
      </div>
      {/* Always on the page, so that what it comes to say is announced. */}
      <p class="hint" role="status">{said}</p>
    </>
  );
}

function Friends() {
  const [q, setQ] = useState("");
  const [run, error] = useAction();
  const { found, answered, find: findPeople } = useFindPeople(run);
  const mine = me.value!.id;
  const fs = friendships.value;
  // By name, as New conversation lists them (they were newest first here).
  const accepted = friendsByName.value;
  const incoming = fs.filter((f) => f.status === "pending" && f.friend_id === mine);
  const outgoing = fs.filter((f) => f.status === "pending" && f.user_id === mine);
  // Where each person already stands with the caller, as the search's results say it.
  const standing = new Map<string, string>([
    ...outgoing.map((f) => [otherSide(f).id, "Requested"] as const),
    ...incoming.map((f) => [otherSide(f).id, "Asked you (see Requests)"] as const),
    ...accepted.map((f) => [otherSide(f).id, "Friend"] as const),
  ]);
  const act = (key: string, f: () => Promise<unknown>) => run(async () => { await f(); await loadFriends(); }, key);
  // Read afresh on opening: a request the other side rejected sends no event (§3.2), so it would stay listed.
  useEffect(() => void loadFriends(), []);
  function find(e: Event) {
    e.preventDefault();
    void findPeople(q);
  }
  return (
    <Modal title="Friends">
      <form class="row" onSubmit={find} role="search">
        <input aria-label="Find people" placeholder="Find people by name" value={q} onInput={(e) => setQ((e.target as HTMLInputElement).value)} />
        <button type="submit">Find</button>
      </form>
      {error}
      {/* Said, and announced: a search that found nobody changed nothing on the page. */}
      <p class="hint" role="status">{answered !== null && !found.length ? `Nobody found for “${answered}”.` : ""}</p>
      {found.length > 0 && (
        <ul class="users" aria-label="People found">
          {found.map((u) => (
            <UserRow key={u.id} u={u}>
              {/* On a server where anyone may talk to anyone (CONTACT_POLICY=open), no friendship is needed first. */}
              {contactPolicy.value === "open" && standing.get(u.id) !== "Friend" && (
                <button type="button" aria-label={`Message ${u.display_name}`} onClick={() => run(async () => { await openDirect(u.id); close(); }, `dm ${u.id}`)}>Message</button>
              )}
              {standing.has(u.id) ? <span class="hint">{standing.get(u.id)}</span> : (
                <button type="button" aria-label={`Add friend ${u.display_name}`} onClick={() => act(u.id, () => api("POST", "/api/friendships", { friend_id: u.id }))}>Add friend</button>
              )}
            </UserRow>
          ))}
        </ul>
      )}
      {incoming.length > 0 && <h3>Requests</h3>}
      <ul class="users" aria-label="Friend requests">
        {incoming.map((f) => (
          <UserRow key={f.id} u={otherSide(f)}>
            <button type="button" class="primary" data-user={otherSide(f).id} aria-label={`Accept ${otherSide(f).display_name}`} onClick={() => act(f.id, () => api("PATCH", `/api/friendships/${f.id}/accept`))}>Accept</button>
            <button type="button" aria-label={`Reject ${otherSide(f).display_name}`} onClick={() => act(f.id, () => api("PATCH", `/api/friendships/${f.id}/reject`))}>Reject</button>
          </UserRow>
        ))}
      </ul>
      {outgoing.length > 0 && <h3>Sent</h3>}
      <ul class="users" aria-label="Sent requests">
        {outgoing.map((f) => (
          <UserRow key={f.id} u={otherSide(f)}>
            <button type="button" aria-label={`Cancel request to ${otherSide(f).display_name}`} onClick={() => act(f.id, () => api("DELETE", `/api/friendships/${f.id}`))}>Cancel</button>
          </UserRow>
        ))}
      </ul>
      <h3>Friends</h3>
      {!accepted.length && <p class="hint">No friends yet: find people above.</p>}
      <ul class="users" aria-label="Friends list">
        {accepted.map((f) => (
          <UserRow key={f.id} u={otherSide(f)}>
            <button type="button" data-user={otherSide(f).id} aria-label={`Message ${otherSide(f).display_name}`} onClick={() => run(async () => { await openDirect(otherSide(f).id); close(); }, `dm ${f.id}`)}>Message</button>
            <button type="button" aria-label={`Unfriend ${otherSide(f).display_name}`} onClick={() => confirm(`Unfriend ${otherSide(f).display_name}?`) && act(f.id, () => api("DELETE", `/api/friendships/${f.id}`))}>Unfriend</button>
          </UserRow>
        ))}
      </ul>
    </Modal>
  );
}

/**
 * A list of buttons as one stop of the tab order: the one last focused (else the first) is
 * in it, and Up/Down (Home/End) move between them, as the message list does.
 */
function useRoving(keys: string[]) {
  const [current, setCurrent] = useState<string | null>(null);
  const tabbable = current !== null && keys.includes(current) ? current : keys[0];
  return {
    stop: (key: string) => ({ tabIndex: key === tabbable ? 0 : -1, "data-roving": "", onFocus: () => setCurrent(key) }),
    onKeyDown: (e: KeyboardEvent) => void moveFocus(e, [...(e.currentTarget as HTMLElement).querySelectorAll<HTMLElement>("[data-roving]")], e.target as Element),
  };
}

/** People once each, in the order given (a friend the server found too is listed once). */
const once = (people: User[]) => [...new Map(people.map((u) => [u.id, u])).values()];

function NewConversation() {
  // Anyone may be messaged or put in a group (§7.2): the box also asks the server for anyone.
  const open = contactPolicy.value === "open";
  const friends = friendsByName.value.map(otherSide);
  const [title, setTitle] = useState("");
  const titleClip = useClip(100);
  const [picked, setPicked] = useState<Map<string, User>>(new Map());
  const [find, setFind] = useState("");
  const [run, error, busy] = useAction();
  const anyone = useFindPeople(run);
  const found = open ? anyone.foundFor(find) : null;
  // The friends matching what is typed, then whom the server found for it.
  const shown = once([...friends.filter((u) => matchesPerson(u, find)), ...(found ?? [])]);
  // One stop for the whole list, arrows within it: with 57 friends the keyboard took 59 Tabs to reach the group's name.
  const dm = useRoving(shown.map((u) => u.id));
  // Picked people who are not friends stay listed whatever is typed next: no narrowing of the
  // friends would bring them back to be unpicked.
  const friendIds = new Set(friends.map((u) => u.id));
  const choices = once([...shown, ...[...picked.values()].filter((u) => !friendIds.has(u.id))]);
  const toggle = (u: User) => {
    const next = new Map(picked);
    if (!next.delete(u.id)) next.set(u.id, u);
    setPicked(next);
  };
  const said = found ? (found.length ? `${plural(found.length, "person", "people")} found.` : `Nobody found for “${peopleQuery(find)}”.`) : peopleQuery(find) && !shown.length ? `No friend matches “${find.trim()}”: Enter finds anyone.` : "";
  return (
    <Modal title="New conversation">
      {error}
      {!friends.length && <p class="hint">{open ? "Anyone here can be messaged: find them by name. Friends are listed here." : 'Conversations start with friends: add some with "Friends".'}</p>}
      {/* Narrows both lists below: whom to message, and whom to put in a group (the picked stay picked). */}
      {open ? (
        <FindAnyone label="Find people" value={find} onInput={setFind} onFind={() => void anyone.find(find)} said={said} />
      ) : (
        <Narrow label="Find a friend" count={friends.length} value={find} onInput={setFind} none={!shown.length} nobody="No friend" />
      )}
      {shown.length > 0 && (
        <>
          <h3>Direct message</h3>
          <ul class="users" aria-label="Direct message" onKeyDown={dm.onKeyDown}>
            {shown.map((u) => (
              <UserRow key={u.id} u={u}>
                <button type="button" {...dm.stop(u.id)} onClick={() => run(async () => { await openDirect(u.id); close(); }, `dm ${u.id}`)} aria-label={`Message ${u.display_name}`}>Message</button>
              </UserRow>
            ))}
          </ul>
        </>
      )}
      <h3>Group</h3>
      <form onSubmit={(e) => { e.preventDefault(); void run(async () => { await createGroup(title.trim(), [...picked.keys()]); close(); }, "create"); }}>
        <label>
          Group name
          <input value={title} required onInput={(e) => setTitle(titleClip.clip(e))} />
        </label>
        {titleClip.note}
        <fieldset>
          <legend>Members{picked.size ? ` (${picked.size} picked)` : ""}</legend>
          {!choices.length && !open && <p class="hint">No friends to add yet: the group starts with you alone.</p>}
          {!choices.length && open && <p class="hint">Find people above to add them; or the group starts with you alone.</p>}
          {choices.map((u) => (
            <label key={u.id} class="check">
              <input type="checkbox" checked={picked.has(u.id)} onChange={() => toggle(u)} /> {u.display_name}
            </label>
          ))}
        </fieldset>
        <button type="submit" class="primary" disabled={busy("create")}>Create group</button>
      </form>
    </Modal>
  );
}

function Settings({ id }: { id: string }) {
  const conv = conversations.value.get(id);
  const [run, error, busy] = useAction();
  // What the manager typed; until then the box follows the title, renamed elsewhere too (a
  // stale copy, sent with Rename, undid the other rename).
  const [typed, setTitle] = useState<string | null>(null);
  const title = typed ?? conv?.title ?? "";
  const titleClip = useClip(100);
  // A role chosen with the keyboard, applied on Enter or Save: the arrows change a closed
  // select's value (one press made a member an admin, the next the owner's question).
  const [chosen, setChosen] = useState<Record<string, Role>>({});
  const keyed = useRef(false);
  const [findMember, setFindMember] = useState("");
  const [findFriend, setFindFriend] = useState("");
  const open = contactPolicy.value === "open";
  const anyone = useFindPeople(run);
  useEffect(() => void loadMembers(id), [id]);
  if (!conv) return null;
  const list = [...(members.value.get(id)?.values() ?? [])];
  const mine = me.value!.id;
  const role: Role = conv.my_role;
  const manage = role === "owner" || role === "admin";
  const inGroup = new Set(list.map((m) => m.user.id));
  const candidates = friendsByName.value.map(otherSide).filter((u) => !inGroup.has(u.id));
  // Under open anyone may be added (§7.2): the box also asks the server for anyone outside the group.
  const found = open ? anyone.foundFor(findFriend) : null;
  const outside = (found ?? []).filter((u) => !inGroup.has(u.id));
  const addable = once([...candidates.filter((u) => matchesPerson(u, findFriend)), ...outside]);
  // Counted as listed: those found who are in the group already are not (one of two found said "2 people found").
  const said = !found ? (peopleQuery(findFriend) && !addable.length ? `No friend outside the group matches “${findFriend.trim()}”: Enter finds anyone.` : "")
    : !found.length ? `Nobody found for “${peopleQuery(findFriend)}”.` : !outside.length ? `Everyone found for “${peopleQuery(findFriend)}” is in the group.`
    : `${plural(outside.length, "person", "people")} found outside the group.`;
  const shownMembers = list.filter((m) => matchesPerson(m.user, findMember));
  const refresh = () => refreshConversation(id);
  const setRole = (m: Member, role: Role, select: HTMLSelectElement) => {
    setChosen(({ [m.user.id]: _, ...rest }) => rest);
    if (role === m.role) return;
    // Handing over the group (you become an admin) is asked first.
    if (role === "owner" && !confirm(`Make ${m.user.display_name} the owner? You become an admin.`)) return void (select.value = m.role);
    run(async () => { await api("PATCH", `/api/conversations/${id}/members/${m.user.id}`, { role }); await refresh(); }, m.user.id);
  };
  if (conv.type === "direct") {
    const peer = peerOf(conv);
    return (
      <Modal title="Conversation settings">
        {error}
        {peer && <ul class="users"><UserRow u={peer} /></ul>}
        <button type="button" class="danger" onClick={() => confirm("Delete this conversation for both of you?") && run(async () => { await leaveConversation(id, "delete"); close(); announce(`Your conversation with ${titleOf(conv)} was deleted.`); }, "go")}>
          Delete conversation
        </button>
      </Modal>
    );
  }
  return (
    <Modal title="Conversation settings">
      {error}
      {manage && (
        <>
          {/* Said on the page too, as the other parts are (only a screen reader heard what the box was). */}
          <h3>Group name</h3>
          <form class="row" onSubmit={(e) => { e.preventDefault(); void run(async () => { await api("PATCH", `/api/conversations/${id}`, { title: title.trim() }); await refresh(); setTitle(null); }, "rename"); }}>
            <input aria-label="Group name" value={title} required onInput={(e) => setTitle(titleClip.clip(e))} />
            <button type="submit">Rename</button>
          </form>
        </>
      )}
      {/* Read whole here by everyone: the header cuts a long name, and a phone has no hover for its tooltip. */}
      {!manage && (
        <>
          <h3>Group name</h3>
          <p class="whole-name" dir="auto">{titleOf(conv)}</p>
        </>
      )}
      {manage && titleClip.note}
      {/* Above the members: under a group of hundreds it was a long scroll away. */}
      {manage && (candidates.length > 0 || open) && (
        <>
          <h3>{open ? "Add people" : "Add friends"}</h3>
          {open ? (
            <FindAnyone label="Find people to add" value={findFriend} onInput={setFindFriend} onFind={() => void anyone.find(findFriend)} said={said} />
          ) : (
            <Narrow label="Find a friend to add" count={candidates.length} value={findFriend} onInput={setFindFriend} none={!addable.length} nobody="No friend outside the group" />
          )}
          <ul class="users">
            {addable.map((u) => (
              <UserRow key={u.id} u={u}>
                <button type="button" aria-label={`Add ${u.display_name}`} onClick={() => run(async () => { await api("POST", `/api/conversations/${id}/members`, { user_ids: [u.id] }); await refresh(); }, u.id)}>Add</button>
              </UserRow>
            ))}
          </ul>
        </>
      )}
      <h3>Members ({conv.member_count ?? list.length})</h3>
      <Narrow label="Find a member" count={list.length} value={findMember} onInput={setFindMember} none={!shownMembers.length} nobody="No member" />
      <ul class="users" aria-label="Members">
        {shownMembers.map((m: Member) => (
          <UserRow key={m.user.id} u={m.user}>
            {role === "owner" && m.user.id !== mine ? (
              <>
                <select
                  aria-label={`Role of ${m.user.display_name}`}
                  value={chosen[m.user.id] ?? m.role}
                  disabled={busy(m.user.id)}
                  onKeyDown={(e) => {
                    if (e.key === "Enter" && chosen[m.user.id]) {
                      e.preventDefault();
                      setRole(m, chosen[m.user.id]!, e.currentTarget);
                    } else keyed.current = e.key.length === 1 || /^(Arrow|Page|Home|End)/.test(e.key);
                  }}
                  onChange={(e) => {
                    const select = e.target as HTMLSelectElement;
                    if (keyed.current) setChosen((c) => ({ ...c, [m.user.id]: select.value as Role }));
                    else setRole(m, select.value as Role, select);
                    keyed.current = false;
                  }}
                >
                  <option value="owner">owner</option>
                  <option value="admin">admin</option>
                  <option value="member">member</option>
                </select>
                {chosen[m.user.id] && chosen[m.user.id] !== m.role && (
                  <button type="button" aria-label={`Save role of ${m.user.display_name}`} onClick={(e) => setRole(m, chosen[m.user.id]!, e.currentTarget.previousElementSibling as HTMLSelectElement)}>
                    Save
                  </button>
                )}
              </>
            ) : (
              <span class="hint">{m.role}</span>
            )}
            {manage && m.user.id !== mine && m.role !== "owner" && (
              <button type="button" aria-label={`Remove ${m.user.display_name}`} disabled={busy(m.user.id)}
                // Asked first, as leaving and deleting are: one slip took someone out of the group.
                onClick={() => confirm(`Remove ${m.user.display_name} from “${titleOf(conv)}”?`) && run(async () => { await api("DELETE", `/api/conversations/${id}/members/${m.user.id}`); await refresh(); }, m.user.id)}>Remove</button>
            )}
          </UserRow>
        ))}
      </ul>
      <button type="button" class="danger" disabled={busy("go")} onClick={() => confirm(leaving(list, role, mine, conv.member_count)) && run(async () => { await leaveConversation(id, "leave"); close(); announce(`You left “${titleOf(conv)}”.`); }, "go")}>
        Leave group
      </button>
      {role === "owner" && (
        <button type="button" class="danger" disabled={busy("go")} onClick={() => confirm(`Delete “${titleOf(conv)}” for all its members? Its messages go with it.`) && run(async () => { await leaveConversation(id, "delete"); close(); announce(`“${titleOf(conv)}” was deleted.`); }, "go")}>
          Delete group
        </button>
      )}
    </Modal>
  );
}

/**
 * What leaving a group does, asked first: an owner's leave hands the group to the
 * longest-standing admin, else member (PROTOCOL §3.3), which it did without a word; the last
 * member's leave deletes it.
 */
function leaving(list: Member[], role: Role, mine: string, count: number | undefined): string {
  if ((count ?? list.length) <= 1) return "Leave this group? You are its last member: it is deleted.";
  if (role !== "owner") return "Leave this group?";
  // The list is in join order, as the server reads it (joined_at, then its tie-breakers).
  const others = list.filter((m) => m.user.id !== mine);
  const heir = others.find((m) => m.role === "admin") ?? others[0];
  return heir ? `Leave this group? You are its owner: ${heir.user.display_name} becomes the owner.` : "Leave this group? You are its owner: another member becomes the owner.";
}

/** A picture uploaded here (not a URL typed in): the server's own address for it. */
const uploadedPicture = (url: string | null) => url !== null && url.startsWith(AVATAR_PATH_PREFIX);

function Profile() {
  const u = me.value!;
  const [name, setName] = useState(u.display_name);
  const nameClip = useClip(64);
  // An uploaded picture's address is the server's, not one to edit: the box shows URLs typed in.
  // What the box held as this dialog last saved it (not the live profile: a picture changed in
  // another tab meanwhile is not this box's to undo).
  const typedUrl = useRef(uploadedPicture(u.profile_image_url) ? "" : u.profile_image_url ?? "");
  const [avatar, setAvatar] = useState(typedUrl.current);
  const [saved, setSaved] = useState<string | null>(null);
  const [run, error, busy] = useAction();
  const file = useRef<HTMLInputElement>(null);
  const uploadButton = useRef<HTMLButtonElement>(null);
  const notifications = typeof Notification !== "undefined" ? Notification.permission : "denied";
  const save = () =>
    run(async () => {
      // The picture only when its box was changed: saving a new name kept an uploaded picture
      // (the box, empty for it, would have removed it).
      await updateProfile({ display_name: name.trim(), ...(avatar.trim() !== typedUrl.current ? { profile_image_url: avatar.trim() || null } : {}) });
      typedUrl.current = avatar.trim();
      setSaved("Saved.");
    }, "save");
  const uploadPicture = (picked: File) =>
    run(async () => {
      // Said here, in words, as the message box does: the server's answers explain its API.
      if (picked.size === 0) throw new ApiError(422, "empty", `“${picked.name}” is empty.`);
      const sent = await upload(picked, () => {}).done.catch((e) => Promise.reject(e instanceof ApiError && e.status === 413 ? new ApiError(413, e.code, tooLarge(e.message)) : e));
      // Not decoded as an image by the server (a PDF, a HEIC it cannot read): said here, in words.
      if (sent.width === null) throw new ApiError(422, "not_an_image", `“${picked.name}” is not a picture this server can read: try a PNG, JPEG, WebP or GIF.`);
      await updateProfile({ avatar_attachment_id: sent.id });
      typedUrl.current = "";
      setAvatar("");
      setSaved("Picture saved.");
    }, "upload");
  return (
    <Modal title="Profile">
      <form onSubmit={(e) => { e.preventDefault(); setSaved(null); void save(); }}>
        <p class="hint">Signed in as @{u.username}</p>
        <div class="row profile-picture">
          <Avatar name={u.display_name} url={u.profile_image_url} />
          {/* The file box itself stays out of sight: its button says what it does. */}
          <input ref={file} type="file" accept="image/*" hidden aria-hidden="true" tabIndex={-1}
            onChange={(e) => { const f = (e.target as HTMLInputElement).files?.[0]; (e.target as HTMLInputElement).value = ""; if (f) { setSaved(null); void uploadPicture(f); } }} />
          {/* Not disabled while a removal runs: it takes the keyboard when "Remove picture" goes. */}
          <button type="button" ref={uploadButton} disabled={busy("upload")} onClick={() => file.current?.click()}>{busy("upload") ? "Uploading…" : "Upload picture"}</button>
          {u.profile_image_url && (
            <button type="button" disabled={busy("upload") || busy("remove")} onClick={(e) => {
              setSaved(null);
              // Gone once removed: the keyboard goes on from "Upload picture" (it fell to <body>).
              refocusWhenGone(e.currentTarget, () => uploadButton.current);
              void run(async () => { await updateProfile({ profile_image_url: null }); typedUrl.current = ""; setAvatar(""); setSaved("Picture removed."); }, "remove");
            }}>Remove picture</button>
          )}
        </div>
        <label>
          Display name
          <input value={name} required onInput={(e) => (setName(nameClip.clip(e)), setSaved(null))} />
        </label>
        {nameClip.note}
        <label>
          Avatar URL
          <input type="url" value={avatar} placeholder={uploadedPicture(u.profile_image_url) ? "An uploaded picture (or a https:// address)" : "https://…"} onInput={(e) => (setAvatar((e.target as HTMLInputElement).value), setSaved(null))} />
        </label>
        {/^http:/i.test(avatar.trim()) && <p class="hint">Pictures at http:// addresses are not shown (this page loads https ones only): the initials show instead.</p>}
        {error}
        {saved && <p role="status">{saved}</p>}
        <div class="row">
          <button type="submit" class="primary" disabled={busy("save")}>Save</button>
          {notifications === "default" && <button type="button" onClick={() => Notification.requestPermission()}>Enable notifications</button>}
          <button type="button" class="danger" onClick={() => {
            const unsent = unsentCount();
            if (unsent && !confirm(`${plural(unsent, "message")} not sent yet will be lost. Sign out anyway?`)) return;
            close();
            signOut();
          }}>Sign out</button>
        </div>
      </form>
    </Modal>
  );
}

/** The loaded conversations matching at once, then (debounced) the server's for those not loaded yet. */
function Switcher() {
  const [q, setQ] = useState("");
  const [index, setIndex] = useState(0);
  const [found, setFound] = useState<Conversation[]>([]);
  /** The query the server has answered (until then, an empty list is not "nothing matches"). */
  const [answered, setAnswered] = useState("");
  const latest = useRef(0);
  useEffect(() => {
    const query = q.trim();
    const ticket = ++latest.current;
    setFound([]);
    if (!query) return;
    const timer = setTimeout(() => {
      const done = (items: Conversation[]) => ticket === latest.current && (setFound(items), setAnswered(query));
      api<Page<Conversation>>("GET", `/api/search/conversations?q=${encodeURIComponent(query)}&limit=20`).then(
        (page) => done(page.items),
        () => done([]), // the loaded list still answers
      );
    }, 250);
    return () => clearTimeout(timer);
  }, [q]);
  const needle = q.trim().toLowerCase();
  const shownName = (c: Conversation) => titleOf(c).toLowerCase();
  const local = sortedConversations.value.filter((c) => shownName(c).includes(needle));
  const seen = new Set(local.map((c) => c.id));
  // Most recent first, but a name typed in full first of all, then names it starts: "Room 1"
  // and Enter opened the more recent "Room 19".
  const rank = (c: Conversation) => (shownName(c) === needle ? 0 : shownName(c).startsWith(needle) ? 1 : 2);
  // (sort is stable: within a rank, the order by activity stays.)
  const all = [...local, ...found.filter((c) => !seen.has(c.id))].sort((x, y) => rank(x) - rank(y));
  const matches = all.slice(0, SWITCHER_SHOWS);
  // Past the options shown, said (the rest were left out without a word).
  const more = all.length - matches.length;
  const go = (c: Conversation) => {
    close();
    if (!conversations.value.has(c.id)) mergeConversations([c]);
    navigate(c.id);
  };
  return (
    <Modal title="Switch conversation">
      <input
        aria-label="Conversation name"
        placeholder="Type a name"
        value={q}
        role="combobox"
        aria-autocomplete="list"
        aria-expanded={matches.length > 0}
        aria-controls="switcher-list"
        // The highlighted option, for a screen reader (arrows moved a highlight it never heard of).
        aria-activedescendant={matches[index] ? `switch-${matches[index]!.id}` : undefined}
        onInput={(e) => { setQ((e.target as HTMLInputElement).value); setIndex(0); }}
        onKeyDown={(e) => {
          if (e.key === "ArrowDown" || e.key === "ArrowUp") {
            e.preventDefault();
            setIndex((index + (e.key === "ArrowDown" ? 1 : -1) + matches.length) % Math.max(1, matches.length));
          } else if (e.key === "Enter" && matches[index]) {
            e.preventDefault();
            go(matches[index]!);
          }
        }}
      />
      <ul id="switcher-list" role="listbox" class="switch">
        {matches.map((c, i) => (
          <li key={c.id} id={`switch-${c.id}`} role="option" aria-selected={i === index} onClick={() => go(c)} aria-label={nameOf(c)}>
            {titleOf(c)}
            {c.unread_count ? <span class="badge">{c.unread_count}</span> : null}
          </li>
        ))}
      </ul>
      {more > 0 && (
        <p class="hint">
          {plural(more, "more conversation")} {more === 1 ? "matches" : "match"}: type more of the name.
        </p>
      )}
      {q.trim() && matches.length === 0 && answered === q.trim() && <p class="empty">No conversation matches “{q.trim()}”.</p>}
      {q.trim() && (
        <button type="button" class="link" onClick={() => { searchText.value = q.trim(); openDialog("search"); }}>
          Search messages for “{q.trim()}”
        </button>
      )}
    </Modal>
  );
}

/** How many conversations the switcher offers at once. */
const SWITCHER_SHOWS = 20;

interface Hit { message: Message; snippet: string }

/** The Search dialog's filters (PROTOCOL §8): "" is any; dates are the local days "YYYY-MM-DD" of the date inputs. */
interface Filters { conversationId: string; senderId: string; from: string; to: string }
const NO_FILTERS: Filters = { conversationId: "", senderId: "", from: "", to: "" };

/** The local midnight that starts a "YYYY-MM-DD" day, `days` days after it, as ISO. */
function dayStart(day: string, days = 0): string {
  const [y, m, d] = day.split("-").map(Number) as [number, number, number];
  const at = new Date(2000, 0, 1); // setFullYear: new Date(y, …) reads years 0–99 as 19xx
  at.setFullYear(y, m - 1, d + days);
  return at.toISOString();
}

/** The filters as the API's parameters: From and To take their whole days (after the day before From ends, before the day after To begins). */
function filterParams(f: Filters): Record<string, string> {
  const p: Record<string, string> = {};
  if (f.conversationId) p.conversation_id = f.conversationId;
  if (f.senderId) p.sender_id = f.senderId;
  if (f.from) p.after = new Date(Date.parse(dayStart(f.from)) - 1).toISOString();
  if (f.to) p.before = dayStart(f.to, 1);
  return p;
}

/**
 * In (a conversation), From (a sender: me, a member of the chosen conversation, or a friend), and a
 * range of days. Each control is named by its aria-label: a label around a select would add
 * the selected option's text to the name.
 */
function SearchFilters({ value, onChange }: { value: Filters; onChange: (f: Filters) => void }) {
  const set = (patch: Partial<Filters>) => onChange({ ...value, ...patch });
  useEffect(() => void (value.conversationId && loadMembers(value.conversationId)), [value.conversationId]);
  const myId = me.value?.id;
  // The chosen conversation's members; in all conversations, friends.
  const people = (
    value.conversationId
      ? [...(members.value.get(value.conversationId)?.values() ?? [])].map((m) => m.user)
      : friendships.value.filter((f) => f.status === "accepted").map(otherSide)
  ).filter((u) => u.id !== myId);
  // The chosen sender stays when "In" changes (it was reset to Anyone each time), unless the
  // conversation chosen, once its members are known, does not have them. Until then, and in
  // all conversations (a co-member need not be a friend), they keep an option of their own.
  const names = useRef(new Map<string, string>());
  for (const u of people) names.current.set(u.id, u.display_name);
  const sender = value.senderId;
  const listed = !sender || sender === myId || people.some((u) => u.id === sender);
  const chosenMembers = value.conversationId ? members.value.get(value.conversationId) : undefined;
  useEffect(() => {
    if (sender && sender !== myId && chosenMembers && !chosenMembers.has(sender)) set({ senderId: "" });
  }, [value.conversationId, chosenMembers, sender]);
  return (
    <div class="filters" role="group" aria-label="Filters">
      <label>
        In
        <select aria-label="In" value={value.conversationId} onChange={(e) => set({ conversationId: (e.target as HTMLSelectElement).value })}>
          <option value="">All conversations</option>
          {sortedConversations.value.map((c) => (
            <option key={c.id} value={c.id}>
              {titleOf(c)}
            </option>
          ))}
        </select>
      </label>
      <label>
        From
        <select aria-label="From" value={value.senderId} onChange={(e) => set({ senderId: (e.target as HTMLSelectElement).value })}>
          <option value="">Anyone</option>
          {myId && <option value={myId}>Me</option>}
          {!listed && <option value={sender}>{names.current.get(sender) ?? "Someone"}</option>}
          {people.map((u) => (
            <option key={u.id} value={u.id}>
              {u.display_name}
            </option>
          ))}
        </select>
      </label>
      <label>
        Since
        <input type="date" aria-label="Since" value={value.from} max={value.to || undefined} onChange={(e) => set({ from: (e.target as HTMLInputElement).value })} />
      </label>
      <label>
        Until
        <input type="date" aria-label="Until" value={value.to} min={value.from || undefined} onChange={(e) => set({ to: (e.target as HTMLInputElement).value })} />
      </label>
    </div>
  );
}

/**
 * ↑/↓ in the search dialog: from the box (index -1) to the first result, between results,
 * and ↑ from the first back to the box.
 */
function stepThroughResults(e: KeyboardEvent) {
  if ((e.key !== "ArrowDown" && e.key !== "ArrowUp") || e.altKey) return;
  const at = e.target as HTMLElement;
  const dialog = at.closest("dialog");
  const box = dialog?.querySelector<HTMLElement>('input[type="search"]');
  if (!dialog || !(at === box || at.matches("button.result"))) return;
  const all = [...dialog.querySelectorAll<HTMLElement>("button.result")];
  const i = all.indexOf(at);
  const to = e.key === "ArrowDown" ? all[i + 1] : i > 0 ? all[i - 1] : i === 0 ? box : undefined;
  if (!to) return;
  e.preventDefault();
  to.focus();
}

/** Why a search failed, in words (422: the query itself; 429: the search budget). */
function searchError(e: unknown): string {
  if (!(e instanceof ApiError)) return "Search did not work.";
  if (e.status === 404) return "Search is not available on this server.";
  if (e.status === 422) return `Cannot search for that: ${e.message.replace(/^q: /, "")}.`;
  if (e.status === 429) return "Too many searches at once: wait a few seconds and try again.";
  // Not reached (status 0): the request's own words, offline or the server away.
  return e.message;
}

const titleById = (conversationId: string) => {
  const c = conversations.value.get(conversationId);
  return c ? titleOf(c) : "Conversation";
};

/** The same search again within this long is the same question (Enter after the typing's own search), not a new one. */
const SAME_SEARCH_MS = 3000;

/** Search as you type (debounced), Enter at once; results grouped by conversation, newest first, paged. */
function Search() {
  const [q, setQ] = useState(searchText.peek());
  const [filters, setFilters] = useState<Filters>(NO_FILTERS);
  const [hits, setHits] = useState<Hit[] | null>(null);
  const [next, setNext] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const latest = useRef(0);
  const timer = useRef<ReturnType<typeof setTimeout>>();
  const focusHit = useRef<string | null>(null);
  /** The last first page asked for (its parameters) and when. */
  const asked = useRef<{ key: string; at: number } | null>(null);
  useLayoutEffect(() => {
    const hit = focusHit.current;
    focusHit.current = null;
    if (hit) document.querySelector<HTMLElement>(`dialog .result[data-hit="${CSS.escape(hit)}"]`)?.focus();
  });
  useEffect(() => {
    searchText.value = "";
    if (q) void search(q, null);
    return () => clearTimeout(timer.current);
  }, []);

  async function search(query: string, cursor: string | null, f = filters, focusFirst = false) {
    clearTimeout(timer.current);
    const params = new URLSearchParams({ q: query.trim(), limit: "30", ...filterParams(f) });
    // Enter just after the typing's own search (the debounce fired first) asked the same
    // question twice, spending two of the user's searches a minute (the second could then be
    // refused, and its refusal cleared the first one's results).
    if (!cursor && query.trim() && asked.current?.key === params.toString() && performance.now() - asked.current.at < SAME_SEARCH_MS) return;
    const ticket = ++latest.current;
    if (!query.trim()) {
      asked.current = null;
      setHits(null);
      setError(null);
      return;
    }
    if (f.from && f.to && f.from > f.to) {
      asked.current = null;
      setHits(null);
      setError("“Since” is a later day than “Until”.");
      return;
    }
    if (!cursor) asked.current = { key: params.toString(), at: performance.now() };
    setBusy(true);
    try {
      if (cursor) params.set("cursor", cursor);
      const page = await api<Page<Hit>>("GET", `/api/search/messages?${params}`);
      if (ticket !== latest.current) return; // a newer search was started meanwhile
      setHits((h) => (cursor ? [...(h ?? []), ...page.items] : page.items));
      // "More results" (gone once there are no more) hands the focus to the first of them.
      if (focusFirst) focusHit.current = page.items[0]?.message.id ?? null;
      // A hit in a conversation past the loaded list: fetch it, for its title.
      const unknown = new Set(page.items.map((h) => h.message.conversation_id).filter((id) => !conversations.value.has(id)));
      for (const id of unknown) void api<Conversation>("GET", `/api/conversations/${id}`).then((c) => mergeConversations([c]), () => {});
      setNext(page.next_cursor);
      setError(null);
    } catch (e) {
      if (ticket !== latest.current) return;
      asked.current = null; // refused or not reached: asking again is asking again
      setError(searchError(e));
      // A refused query has no results: the previous query's stayed listed under its error.
      if (!cursor) {
        setHits(null);
        setNext(null);
      }
    } finally {
      if (ticket === latest.current) setBusy(false);
    }
  }

  // Grouped by conversation, in the order of each one's newest hit.
  const groups = new Map<string, Hit[]>();
  for (const h of hits ?? []) groups.set(h.message.conversation_id, [...(groups.get(h.message.conversation_id) ?? []), h]);
  return (
    <Modal title="Search">
      <form class="row" role="search" onSubmit={(e) => { e.preventDefault(); void search(q, null); }}>
        <input
          type="search"
          aria-label="Search messages"
          placeholder="Search messages"
          value={q}
          // A search box takes Escape to clear itself; here it closes the dialog, as everywhere else.
          // ↓ goes to the results (past the filters' many stops, found by an acceptance pass).
          onKeyDown={(e) => {
            stepThroughResults(e);
            if (e.key !== "Escape") return;
            e.preventDefault();
            close();
          }}
          onInput={(e) => {
            const v = (e.target as HTMLInputElement).value;
            setQ(v);
            clearTimeout(timer.current);
            timer.current = setTimeout(() => void search(v, null), 350);
          }}
        />
        {/* Not "Search": that is the sidebar's button (§10), which stays on the page behind the dialog. */}
        <button type="submit">Find</button>
      </form>
      <SearchFilters
        value={filters}
        onChange={(f) => {
          setFilters(f);
          void search(q, null, f);
        }}
      />
      {error && <p class="error" role="alert">{error}</p>}
      <p class="hint search-status" role="status">{busy ? "Searching…" : hits && !error ? (hits.length ? `${plural(hits.length, "result")}${next ? ", more below" : ""}` : "Nothing found.") : ""}</p>
      {/* ↑ and ↓ move between the results; ↑ from the first goes back to the box. */}
      <div onKeyDown={stepThroughResults}>
      {[...groups].map(([cid, list]) => (
        <section key={cid} class="result-group" aria-label={titleById(cid)}>
          <h3>{titleById(cid)}</h3>
          <ul class="results">
            {list.map((h) => (
              <li key={h.message.id}>
                <button type="button" class="result" data-hit={h.message.id} onClick={() => { close(); void openAt(cid, h.message.id); }}>
                  <span class="hit-meta">{h.message.sender_name} · <time dateTime={h.message.created_at}>{when(h.message.created_at)}</time></span>
                  <span class="snippet">{deletedLive.value.has(h.message.id) ? <em>Message deleted</em> : <Snippet html={h.snippet} />}</span>
                </button>
              </li>
            ))}
          </ul>
        </section>
      ))}
      </div>
      {next && !error && (
        <button type="button" disabled={busy} onClick={() => void search(q, next, filters, true)}>
          More results
        </button>
      )}
    </Modal>
  );
}
