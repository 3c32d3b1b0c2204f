/**
 * WAL checkpoints off the event loop. With synchronous=NORMAL, checkpoints are the only
 * fsyncs; run by SQLite's auto-checkpoint they stall the thread that commits for tens of
 * milliseconds (measured: e2e p99 35 ms → 5–6 ms at 2,000 messages/s).
 *
 * A worker thread checkpoints PASSIVE-ly every `intervalMs`. Under continuous writes the
 * WAL can only restart from its beginning when a checkpoint has caught up with the last
 * commit, so once the WAL passes `restartFrames` the main thread runs one short PASSIVE
 * checkpoint of the few frames written since the worker's pass; the next commit then
 * rewinds the WAL. The WAL stays bounded without the event loop paying for the bulk.
 */
// @ts-expect-error: imported as text (Bun's `type: "text"`), which TypeScript does not model.
import workerText from "./checkpoint-worker.js" with { type: "text" };
import type { DB } from "./client";
import type { Logger } from "../log";
import { isStorageFull } from "./storage";

const workerSource = workerText as string;

interface CheckpointResult { busy?: number; log?: number; checkpointed?: number; error?: string; code?: string; stopped?: boolean }

/** Failed passes in a row after which SQLite's own auto-checkpoint takes over again. */
const GIVE_UP_AFTER = 50;

export class Checkpointer {
  private worker: Worker;
  private catchingUp = false;
  private failures = 0;
  private diskFull = false;
  private fallback = false;
  private url: string;
  private markStarted!: () => void;
  /** Settles with the worker's first report: until then nothing checkpoints the WAL. */
  readonly started = new Promise<void>((resolve) => (this.markStarted = resolve));

  constructor(private db: DB, file: string, private log: Logger, intervalMs = 100, private restartFrames = 8192) {
    db.$client.run("PRAGMA wal_autocheckpoint = 0");
    this.url = URL.createObjectURL(new Blob([workerSource], { type: "application/javascript" }));
    this.worker = new Worker(this.url);
    this.worker.onmessage = (event: MessageEvent<CheckpointResult>) => this.onResult(event.data);
    this.worker.onerror = (event) => this.fallBack(`checkpoint worker failed: ${event.message}`);
    this.worker.postMessage({ file, intervalMs });
    this.worker.unref();
  }

  /** The worker cannot do its job: checkpoints go back to SQLite, on the event loop. */
  private fallBack(reason: string) {
    if (this.fallback) return;
    this.fallback = true;
    this.markStarted();
    // One mechanism at a time: a worker that recovered would checkpoint beside SQLite.
    this.worker.terminate();
    this.log.error({ reason }, "background checkpoints stopped; SQLite's auto-checkpoint takes over");
    try {
      this.db.$client.run("PRAGMA wal_autocheckpoint = 10000");
    } catch {}
  }

  private onResult(r: CheckpointResult) {
    this.markStarted();
    if (r.error) {
      // A full disk is waited out: the worker retries every pass, and checkpoints resume on
      // their own once space returns (SQLite's fallback would fail just the same).
      if (isStorageFull(r)) {
        if (!this.diskFull) this.log.warn({ err: r.error }, "background checkpoint waits for disk space");
        this.diskFull = true;
        return;
      }
      // Logged once, not ten times a second; persistent failure hands over to SQLite.
      if (this.failures++ === 0) this.log.warn({ err: r.error }, "background checkpoint failed");
      if (this.failures >= GIVE_UP_AFTER) this.fallBack(r.error);
      return;
    }
    if (this.diskFull) this.log.info("background checkpoints resumed");
    this.diskFull = false;
    this.failures = 0;
    if (this.catchingUp || (r.log ?? 0) < this.restartFrames) return;
    this.catchingUp = true;
    setImmediate(() => {
      this.catchingUp = false;
      try {
        const [result] = this.db.$client.query("PRAGMA wal_checkpoint(PASSIVE)").all() as CheckpointResult[];
        if (result?.busy) this.log.debug("checkpoint catch-up was busy; the next pass retries");
      } catch (err) {
        this.log.warn({ err }, "checkpoint catch-up failed");
      }
    });
  }

  /** Stops the worker and waits for it to close its connection. */
  async stop() {
    URL.revokeObjectURL(this.url);
    if (this.fallback) return; // the worker is gone already
    const stopped = new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 2000);
      this.worker.onmessage = (event: MessageEvent<CheckpointResult>) => {
        if (event.data.stopped) {
          clearTimeout(timer);
          resolve();
        }
      };
    });
    this.worker.postMessage({ stop: true });
    await stopped;
    this.worker.terminate();
  }
}
