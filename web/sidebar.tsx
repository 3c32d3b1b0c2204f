import type { Conversation } from "./api";
import { activeId, contactPolicy, friendships, listed, me, nameOf, navigate, onlineOf, peerOf, sortedConversations, threads, titleOf, typingNames } from "./store";
import { Avatar, fullTime, gist, listTime, namesList, plural } from "./text";
import { openDialog } from "./dialogs";
import { cycleTheme, theme } from "./theme";

export function Sidebar() {
  const user = me.value!;
  const incoming = friendships.value.filter((f) => f.status === "pending" && f.friend_id === user.id).length;
  return (
    <aside class="sidebar">
      <header class="bar">
        {/* Named as it reads, then what it opens: a voice user says the name they see ("Profile" alone was not it). */}
        <button type="button" class="me" title="Profile" onClick={() => openDialog("profile")}>
          <Avatar name={user.display_name} url={user.profile_image_url} />
          <span class="name">{user.display_name}</span>
          <span class="visually-hidden"> (profile)</span>
        </button>
        <button type="button" class="icon" aria-label={`Theme: ${theme.value}`} title={`Theme: ${theme.value}`} onClick={cycleTheme}>
          {theme.value === "dark" ? "☾" : theme.value === "light" ? "☀" : "◐"}
        </button>
      </header>
      <div class="actions">
        <button type="button" onClick={() => openDialog("new")}>
          New conversation
        </button>
        {/* The name stays exactly "Friends" (PROTOCOL §10); the count is a description. */}
        <button type="button" onClick={() => openDialog("friends")} aria-description={incoming ? plural(incoming, "friend request") : undefined}>
          Friends
          {incoming ? <span class="badge" aria-hidden="true">{incoming}</span> : null}
        </button>
        <button type="button" onClick={() => openDialog("search")}>
          Search
        </button>
      </div>
      <nav aria-label="Conversations" class="list">
        <ul>
          {sortedConversations.value.map((c) => (
            <li key={c.id}>
              <Item c={c} />
            </li>
          ))}
        </ul>
        {listed.value && !sortedConversations.value.length && <p class="hint pad">{contactPolicy.value === "open" ? "No conversations yet. Anyone here can be found by name and messaged." : "No conversations yet. Add a friend, then start one."}</p>}
      </nav>
    </aside>
  );
}

function preview(c: Conversation): string {
  // One's own message on its way or not sent, the newest of the thread: said so (a group whose
  // only message waited offline read "No messages yet", and one with history showed the last sent).
  const waiting = threads.value.get(c.id)?.items.at(-1);
  if (waiting && (waiting.pending || waiting.failed)) return `${waiting.failed ? "Not sent" : "Sending"}: ${gist(waiting).replace(/\s+/g, " ").slice(0, 80)}`;
  const m = c.last_message;
  if (!m) return "No messages yet";
  if (m.deleted_at) return "Message deleted";
  const who = m.sender_id === me.value?.id ? "You: " : c.type === "group" ? `${m.sender_name}: ` : "";
  return who + gist(m).replace(/\s+/g, " ").slice(0, 80);
}

function Item({ c }: { c: Conversation }) {
  const peer = peerOf(c);
  const title = titleOf(c);
  const typers = typingNames(c.id);
  const hint = typers.length ? `${namesList(typers)} typing…` : preview(c);
  const unread = c.unread_count ?? 0;
  // The name is the title and the unread count (§10); the preview describes it. In the name, a
  // sender's name in a group's preview made a search for that person's link find two.
  const label = nameOf(c);
  const described = `preview-${c.id}`;
  return (
    <a
      href={`/c/${c.id}`}
      aria-label={label}
      aria-describedby={described}
      aria-current={activeId.value === c.id ? "page" : undefined}
      class={unread ? "item unread" : "item"}
      onClick={(e) => {
        if (e.ctrlKey || e.metaKey || e.shiftKey) return;
        e.preventDefault();
        navigate(c.id);
      }}
    >
      <Avatar name={title} url={peer?.profile_image_url} online={peer ? onlineOf(peer.id) : undefined} />
      <span class="text">
        <span class="title" dir="auto" title={title}>
          {title}
        </span>
        <span id={described} class={typers.length ? "preview typing" : "preview"} dir="auto">
          {hint}
        </span>
      </span>
      <span class="meta">
        {c.last_message_at && (
          <time dateTime={c.last_message_at} title={fullTime(c.last_message_at)}>
            {listTime(c.last_message_at)}
          </time>
        )}
        {unread > 0 && <span class="badge">{unread}</span>}
      </span>
    </a>
  );
}
