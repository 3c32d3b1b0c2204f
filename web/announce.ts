/**
 * What a screen reader is told, politely (not a notice: nothing went wrong): the messages
 * that come into the open conversation (conversation.tsx useArrivals), and an act that left
 * nothing to point at (a conversation left or deleted: it, and the dialog that did it, are
 * gone). `n` changes each time, so the same words twice are said twice. Cleared at sign-out.
 */
import { signal } from "@preact/signals";

export const announcement = signal<{ n: number; text: string } | null>(null);

export const announce = (text: string) => void (announcement.value = { n: (announcement.peek()?.n ?? 0) + 1, text });
