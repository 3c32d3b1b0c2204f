import { effect, signal } from "@preact/signals";
import { useEffect, useLayoutEffect, useRef, useState } from "preact/hooks";
import { ApiError, explain, faultOf } from "./api";
import { announcement } from "./announce";
import { activeId, connection, contactPolicy, friendships, listed, me, navigate, noLonger, noLongerShown, reconnectNow, signIn, signInNotice, sortedConversations, toast, totalUnread } from "./store";
import { Sidebar } from "./sidebar";
import { ConversationView } from "./conversation";
import { Dialogs, openDialog } from "./dialogs";
import { plural } from "./text";
import { fallbackFocus, focusBackAfter } from "./focus";

effect(() => {
  const n = totalUnread.value;
  document.title = n ? `(${n}) Parley` : "Parley";
});

// Ctrl/Cmd+K: the quick switcher; Ctrl/Cmd+Shift+F: search messages; Alt+Up/Down: the
// conversation above or below in the list (Alt+Shift: the next one with unread messages).
addEventListener("keydown", (e) => {
  // Not when something took the key (the mention list), an input method is composing, or the
  // caret may move in text (Option+Up/Down on a Mac moves it in a message box with text).
  const field = e.target as HTMLInputElement | null;
  const inText = !!field && (field.tagName === "TEXTAREA" || field.tagName === "INPUT") && field.value !== "";
  if (e.altKey && !e.ctrlKey && !e.metaKey && !e.defaultPrevented && !e.isComposing && !inText && (e.key === "ArrowUp" || e.key === "ArrowDown") && me.value && !document.querySelector("dialog[open]")) {
    const list = sortedConversations.value;
    const at = list.findIndex((c) => c.id === activeId.value);
    const step = e.key === "ArrowUp" ? -1 : 1;
    for (let i = at + step; i >= 0 && i < list.length; i += step) {
      if (e.shiftKey && !list[i]!.unread_count) continue;
      e.preventDefault();
      navigate(list[i]!.id);
      return;
    }
    return;
  }
  if (!(e.ctrlKey || e.metaKey) || !me.value) return;
  const key = e.key.toLowerCase();
  if (key === "k" && !e.shiftKey) {
    e.preventDefault();
    openDialog("switcher");
  } else if (key === "f" && e.shiftKey) {
    e.preventDefault();
    openDialog("search");
  }
});

export function App() {
  return me.value ? <Shell /> : <SignIn />;
}

function Shell() {
  const open = activeId.value;
  // Just signed in (the form and its button gone, the focus on <body>): the keyboard starts at
  // "New conversation", unless something took it (an open conversation's message box). Not on
  // a page load: there the first Tab reaches "Skip to the conversation".
  useLayoutEffect(() => {
    const now = document.activeElement;
    if (signedInHere && (!now || now === document.body)) document.querySelector<HTMLElement>(".sidebar .actions button")?.focus();
    signedInHere = false;
  }, []);
  return (
    <div class={open ? "shell has-active" : listed.value && !sortedConversations.value.length ? "shell welcoming" : "shell"}>
      {/* A way past the list for the keyboard. */}
      <button type="button" class="skip" onClick={skipToConversation}>
        Skip to the conversation
      </button>
      <Sidebar />
      <main class="main">
        {/* The page's one top heading (each pane's own are h2). */}
        <h1 class="visually-hidden">Parley</h1>
        {open ? <ConversationView key={open} id={open} /> : <Empty />}
      </main>
      <ConnectionStrip />
      <Toast />
      <Announcer />
      <NoLonger />
      <Dialogs />
    </div>
  );
}

/**
 * "Reconnecting…" while the socket is away (§10: the status region says exactly that), and a
 * way not to wait out the backoff (up to 30 s) once the user knows the server is back. The
 * region stays on the page, empty, so that the words are announced when they come.
 */
function ConnectionStrip() {
  const away = connection.value === "reconnecting";
  // The button goes with the strip: the keyboard that pressed it goes on to the message box
  // (or the list's first action), not to <body> (unless it went somewhere meanwhile).
  const pressed = useRef(false);
  useLayoutEffect(() => {
    if (away || !pressed.current) return;
    pressed.current = false;
    const now = document.activeElement;
    if (now && now !== document.body) return;
    fallbackFocus()?.focus();
  }, [away]);
  return (
    <div class={away ? "connection away" : "connection"}>
      <div role="status" aria-live="polite" class="status">
        {away ? "Reconnecting…" : ""}
      </div>
      {away && (
        <button type="button" onClick={() => ((pressed.current = true), reconnectNow())}>
          Reconnect now
        </button>
      )}
    </div>
  );
}

/** The open conversation's messages (then Tab reaches the message box), else the first conversation of the list. */
function skipToConversation() {
  const target = document.querySelector<HTMLElement>("[role=log]") ?? document.querySelector<HTMLElement>("nav[aria-label=Conversations] a");
  target?.focus();
}

function Empty() {
  if (listed.value && !sortedConversations.value.length) return <Welcome />;
  return (
    <div class="empty">
      <p>Pick a conversation, or start one.</p>
      <p class="hint">
        <kbd>Ctrl</kbd>+<kbd>K</kbd> switches conversations; <kbd>Ctrl</kbd>+<kbd>Shift</kbd>+<kbd>F</kbd> searches messages.
      </p>
    </div>
  );
}

/**
 * First use (no conversation yet): what to do, in order. Written without the names of the
 * buttons it points to and without the username, which tests and users find by their text:
 * a second element with the same words would make "the Friends button" ambiguous.
 */
function Welcome() {
  const user = me.value!;
  // Registration names a person by their username until they choose otherwise.
  const unnamed = user.display_name === user.username;
  const hasFriends = friendships.value.some((f) => f.status === "accepted");
  return (
    <div class="empty welcome">
      <h2>Welcome to Parley</h2>
      <ol>
        {unnamed && (
          <li>
            Others see your username until you choose a name to show.{" "}
            <button type="button" class="link" onClick={() => openDialog("profile")}>
              Choose a display name
            </button>
          </li>
        )}
        {/* Someone with friends already (removed from their only group, say) is not told to make some. */}
        {hasFriends ? (
          <li>Start a conversation with a friend, or a group with several (the buttons above the list).</li>
        ) : (
          <>
            {contactPolicy.value === "open" ? (
              <li>Find the people you talk to by name (everyone here may write to everyone), and message them.</li>
            ) : (
              <li>Send the people you talk to a friend request: once they accept, you can write to them.</li>
            )}
            <li>Start a conversation with one of them, or a group with several (the buttons above the list).</li>
          </>
        )}
      </ol>
    </div>
  );
}

/** announce.ts: what a screen reader is told, politely (a new node each time, so the same words are said again). */
function Announcer() {
  const said = announcement.value;
  return <div class="visually-hidden" aria-live="polite">{said && <p key={said.n}>{said.text}</p>}</div>;
}

/** How long a notice stays unless the pointer or the keyboard is on it (it stayed for good, over the message box). */
const TOAST_MS = 8000;

function Toast() {
  const shown = toast.value;
  const held = useRef(false);
  useEffect(() => {
    if (!shown) return;
    const timer = setInterval(() => !held.current && toast.value === shown && (toast.value = null), TOAST_MS);
    return () => clearInterval(timer);
  }, [shown]);
  if (!shown) return null;
  const hold = (on: boolean) => () => void (held.current = on);
  return (
    <div class="toast" role="alert" onPointerEnter={hold(true)} onPointerLeave={hold(false)} onFocusCapture={hold(true)} onBlurCapture={hold(false)}>
      {shown}
      <button type="button" aria-label="Dismiss" onClick={() => (toast.value = null)}>
        ×
      </button>
    </div>
  );
}

/** The open conversation went away (store.ts noLonger): said, with the reader's unsent text to copy. */
function NoLonger() {
  const gone = noLongerShown.value;
  if (!gone) return null;
  return (
    <div class="toast gone" role="alert">
      <div>
        <p>
          {/* Nobody is removed from a direct conversation: it can only have been deleted. */}
          {gone.direct ? `Your conversation with ${gone.title} was deleted.` : `You are no longer in “${gone.title}”: it was deleted, or you were removed from it.`}
        </p>
        {gone.draft && (
          <label>
            What you had typed there (not sent)
            <textarea readOnly dir="auto" rows={3} value={gone.draft} />
          </label>
        )}
      </div>
      <button type="button" aria-label="Dismiss" onClick={() => (noLonger.value = null)} title="Dismiss (the text goes)">
        ×
      </button>
    </div>
  );
}

const busy = signal(false);
/** The sign-in form has just let someone in (Shell then gives the keyboard a place). */
let signedInHere = false;

function SignIn() {
  const [error, setError] = useState<{ text: string; field?: Field } | null>(null);
  const username = useRef<HTMLInputElement>(null);
  // The field at fault says so, and names the error as its description (a screen reader on it hears why).
  const fault = (field: Field) => (error?.field === field ? { "aria-invalid": true, "aria-describedby": "signin-error" } : {});
  // `autofocus` works on the page's first load only; after a sign-out the form is new. At once
  // (a layout effect): after the paint it could come after the keyboard had moved on.
  useLayoutEffect(() => username.current?.focus(), []);
  async function submit(e: Event, kind: "login" | "register") {
    e.preventDefault();
    const form = (e.target as HTMLElement).closest("form")!;
    // "Create account" is not the form's submit button: check the required fields as "Sign in" does.
    if (!form.reportValidity()) return;
    const data = new FormData(form);
    busy.value = true;
    setError(null);
    // A refusal gives the keyboard back to the button (disabled while it ran, it lost it).
    const back = focusBackAfter();
    try {
      signedInHere = true;
      await signIn(kind, String(data.get("username") ?? "").trim(), String(data.get("password") ?? ""));
    } catch (err) {
      signedInHere = false;
      setError(describe(err, kind));
    } finally {
      busy.value = false;
      back();
    }
  }
  return (
    <main class="signin">
      <form onSubmit={(e) => submit(e, "login")} aria-labelledby="signin-title">
        <h1 id="signin-title">Parley</h1>
        {signInNotice.value && <p class="notice">{signInNotice.value}</p>}
        <label>
          Username
          <input ref={username} name="username" autocomplete="username" required autofocus autocapitalize="none" spellcheck={false} {...fault("username")} />
        </label>
        <label>
          Password
          <input name="password" type="password" autocomplete="current-password" required {...fault("password")} />
        </label>
        {error && (
          <p class="error" role="alert" id="signin-error">
            {error.text}
          </p>
        )}
        <div class="row">
          <button type="submit" class="primary" disabled={busy.value}>
            Sign in
          </button>
          <button type="button" disabled={busy.value} onClick={(e) => submit(e, "register")}>
            Create account
          </button>
        </div>
      </form>
    </main>
  );
}

type Field = "username" | "password";

function describe(err: unknown, kind: "login" | "register"): { text: string; field?: Field } {
  if (!(err instanceof ApiError)) return { text: "Something went wrong." };
  if (err.code === "validation_failed" && kind === "register") {
    // The field at fault, when the server names it (it said both rules whichever was broken).
    const field = String(faultOf(err)?.field ?? "");
    if (/password/.test(field)) return { text: "The password must have 8–128 characters.", field: "password" };
    if (/username/.test(field)) return { text: "Usernames are 3–32 letters, digits, _ or . (no spaces).", field: "username" };
    return { text: "Usernames are 3–32 letters, digits, _ or .; passwords 8–128 characters." };
  }
  if (err.code === "conflict") return { text: "That username is taken.", field: "username" };
  if (err.status === 429 && err.retryAfter) return { text: `Too many attempts: try again in ${wait(err.retryAfter)}.` };
  return { text: explain(err) };
}

/** Seconds as "40 seconds", "15 minutes", "2 hours" (rounded up). */
function wait(seconds: number): string {
  if (seconds < 60) return plural(seconds, "second");
  if (seconds < 3600) return plural(Math.ceil(seconds / 60), "minute");
  return plural(Math.ceil(seconds / 3600), "hour");
}
