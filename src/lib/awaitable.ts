/**
 * A value, or a promise of it: what a seam with an in-memory and a networked implementation
 * answers, so that the in-memory one keeps its callers synchronous (no microtask, no
 * reordering) while the networked one is awaited.
 */
export type Awaitable<T> = T | Promise<T>;

/** Applies `f` to the value now, or when the promise resolves. */
export function andThen<T, U>(value: Awaitable<T>, f: (v: T) => U): Awaitable<U> {
  return value instanceof Promise ? value.then(f) : f(value);
}
