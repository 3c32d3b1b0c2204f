/**
 * Focus for controls that go away once their action is done (a deleted message's tools, a
 * removed member's row): left alone, the focus falls to <body>, and a keyboard or screen
 * reader user starts again from the top of the page.
 */

/**
 * Once `control` has left the page (when the change reaches the view: a REST answer or the
 * socket's event, whichever comes first), focuses what `next()` gives, unless the focus has
 * gone somewhere else meanwhile. Watched every 20 ms for up to `tries` times (timers, not
 * animation frames: those did not come in a test's tab after a confirm()).
 */
export function refocusWhenGone(control: Element, next: () => HTMLElement | null | undefined, tries = 100) {
  if (control.isConnected) {
    if (tries > 0) setTimeout(() => refocusWhenGone(control, next, tries - 1), 20);
    return;
  }
  const now = document.activeElement;
  if (now && now !== document.body && now.tagName !== "DIALOG") return; // the keyboard went on meanwhile
  next()?.focus();
}

/**
 * For an action whose control is disabled while it runs: the browser moves the focus to
 * <body> then. The returned function, called when the action is over, gives it back to that
 * control once it is enabled again, unless the keyboard went somewhere meanwhile.
 */
export function focusBackAfter(): () => void {
  const from = document.activeElement;
  if (!(from instanceof HTMLElement) || from === document.body) return () => {};
  return () =>
    setTimeout(() => {
      const now = document.activeElement;
      if ((!now || now === document.body) && from.isConnected && !from.matches(":disabled")) from.focus();
    }, 0);
}

/**
 * When the user last pressed a key or a pointer (ms, performance.now()): a focus asked for
 * earlier (a search result's message, loading) is not taken from where they went since.
 * Programmatic moves (a dialog giving the focus back, a message box taking it on opening)
 * do not count.
 */
let lastInput = 0;
for (const type of ["keydown", "pointerdown"]) document.addEventListener(type, () => (lastInput = performance.now()), { capture: true });
export const inputSince = (at: number) => lastInput > at;

/**
 * Arrow keys within a list of controls (`all`, the focused one among them): Up/Down (or
 * Left/Right in a row, wrapping around, as in a toolbar) and Home/End focus the next one.
 * Whether the key was one of them (then its default is prevented).
 */
export function moveFocus(e: KeyboardEvent, all: HTMLElement[], focused: Element | null, row = false): boolean {
  const i = all.indexOf(focused as HTMLElement);
  if (i < 0 || e.altKey || e.ctrlKey || e.metaKey) return false;
  const to: Record<string, HTMLElement | undefined> = row
    ? { ArrowRight: all[(i + 1) % all.length], ArrowLeft: all[(i - 1 + all.length) % all.length], Home: all[0], End: all.at(-1) }
    : { ArrowUp: all[i - 1], ArrowDown: all[i + 1], Home: all[0], End: all.at(-1) };
  if (!(e.key in to)) return false;
  e.preventDefault();
  to[e.key]?.focus();
  return true;
}

/** A touch screen (no hover): a text box that takes the focus brings up its on-screen keyboard. */
export const touchScreen = () => matchMedia("(hover: none)").matches;

/** The open conversation's message box. */
export const messageBox = () => document.querySelector<HTMLElement>('textarea[aria-label="Message"]');

/** The open conversation's message box, or on a touch screen its messages (no keyboard popping up unasked). */
export const conversationFocus = () => (touchScreen() ? document.querySelector<HTMLElement>("[role=log]") : messageBox());

/** Where the keyboard goes when what it was on went and nothing nearer is left: the conversation, else the list's first action. */
export const fallbackFocus = () => conversationFocus() ?? document.querySelector<HTMLElement>(".sidebar .actions button");
