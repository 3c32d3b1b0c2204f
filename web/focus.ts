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
