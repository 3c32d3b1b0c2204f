/**
 * What a screen reader is told of an act that left nothing to point at (a group left or
 * deleted: its conversation, and the dialog that did it, are gone). Polite, and not a
 * notice: nothing went wrong. `n` changes each time, so the same words twice are said twice.
 */
import { signal } from "@preact/signals";

export const announcement = signal<{ n: number; text: string } | null>(null);

export const announce = (text: string) => void (announcement.value = { n: (announcement.peek()?.n ?? 0) + 1, text });
