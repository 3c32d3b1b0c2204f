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

/**
 * Runs a generator whose steps yield Awaitables (through `wait`): synchronously while each
 * step answers with a value, awaiting only the promises. One body serves both engines: on
 * SQLite every step answers at once and the whole run completes inside its caller (a
 * socket's `open`, whose writes Bun sends in one write with the upgrade's response); in
 * cluster mode it awaits as an async function would. An error thrown by a step or a
 * rejected promise is thrown into the generator at its `yield`, as `await` would.
 */
export function drive<R>(steps: Generator<unknown, R, unknown>): Awaitable<R> {
  const go = (r: IteratorResult<unknown, R>): Awaitable<R> => {
    while (!r.done) {
      const v = r.value;
      if (v instanceof Promise) return v.then((x) => go(steps.next(x)), (e) => go(steps.throw(e)));
      r = steps.next(v);
    }
    return r.value;
  };
  return go(steps.next());
}

/** Inside a `drive`n generator: `const x = yield* wait(awaitable)`, typed as `await` would be. */
export function* wait<T>(value: Awaitable<T>): Generator<Awaitable<T>, T, unknown> {
  return (yield value) as T;
}
