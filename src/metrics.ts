/**
 * A small Prometheus text-format registry: counters, gauges and histograms with labels.
 * Hand-written because the hot paths (every HTTP request, every frame, every publish)
 * need a cheap increment, and prom-client brings Node-cluster machinery that a single Bun
 * process does not use. A hot path takes its series once (`series`, `seriesBy`) and then
 * only adds to a number: building the label text (escaped) and looking it up in a Map for
 * every request cost ~1 µs of a REST send's pipeline (issue #17).
 */
type Labels = Record<string, string>;

const key = (labels: Labels) => {
  let k = "";
  for (const name in labels) k += `${k ? "," : ""}${name}="${String(labels[name]).replace(/["\\\n]/g, "_")}"`;
  return k;
};

abstract class Metric {
  constructor(readonly name: string, readonly help: string, readonly kind: string) {}
  abstract lines(): string[];
  render(): string {
    return [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} ${this.kind}`, ...this.lines()].join("\n");
  }
}

/** One labelled series of a counter, for hot paths: incremented without building its label text again. */
export interface CounterSeries { inc(by?: number): void }

export class Counter extends Metric {
  private values = new Map<string, { value: number }>();
  constructor(name: string, help: string) { super(name, help, "counter"); }
  inc(labels?: Labels, by = 1) {
    this.cell(labels ? key(labels) : "").value += by;
  }
  /** The series of these labels (its label text built once). */
  series(labels: Labels = {}): CounterSeries {
    const cell = this.cell(key(labels));
    return { inc: (by = 1) => void (cell.value += by) };
  }
  /** For a counter with one label: its series by that label's value, each built once. */
  seriesBy(label: string): (value: string) => CounterSeries {
    const known = new Map<string, CounterSeries>();
    return (value) => {
      let s = known.get(value);
      if (!s) known.set(value, (s = this.series({ [label]: value })));
      return s;
    };
  }
  private cell(k: string) {
    let c = this.values.get(k);
    if (!c) this.values.set(k, (c = { value: 0 }));
    return c;
  }
  lines() {
    if (this.values.size === 0) return [`${this.name} 0`];
    return [...this.values].map(([k, c]) => `${this.name}${k ? `{${k}}` : ""} ${c.value}`);
  }
}

/** A gauge whose value is read when scraped. */
export class Gauge extends Metric {
  constructor(name: string, help: string, private read: () => number) { super(name, help, "gauge"); }
  lines() { return [`${this.name} ${this.read()}`]; }
}

/** One labelled series of a histogram, for hot paths. */
export interface HistogramSeries { observe(value: number): void }

export class Histogram extends Metric {
  /** Per series: how many observations fell in each bucket (not cumulative: summed when rendered). */
  private cells = new Map<string, { counts: number[]; sum: number; count: number }>();
  constructor(name: string, help: string, private buckets: number[]) { super(name, help, "histogram"); }
  observe(value: number, labels?: Labels) {
    this.record(this.cell(labels ? key(labels) : ""), value);
  }
  /** The series of these labels (its label text built once). */
  series(labels: Labels = {}): HistogramSeries {
    const cell = this.cell(key(labels));
    return { observe: (value) => this.record(cell, value) };
  }
  private cell(k: string) {
    let s = this.cells.get(k);
    if (!s) this.cells.set(k, (s = { counts: new Array(this.buckets.length).fill(0), sum: 0, count: 0 }));
    return s;
  }
  private record(s: { counts: number[]; sum: number; count: number }, value: number) {
    // The first bucket that holds it (most observations fall in the first few); none: only +Inf.
    const b = this.buckets;
    for (let i = 0; i < b.length; i++) {
      if (value <= b[i]!) {
        s.counts[i]!++;
        break;
      }
    }
    s.sum += value;
    s.count++;
  }
  lines() {
    const out: string[] = [];
    for (const [k, s] of this.cells) {
      const pre = k ? `${k},` : "";
      let cumulative = 0;
      this.buckets.forEach((b, i) => out.push(`${this.name}_bucket{${pre}le="${b}"} ${(cumulative += s.counts[i]!)}`));
      out.push(`${this.name}_bucket{${pre}le="+Inf"} ${s.count}`);
      out.push(`${this.name}_sum${k ? `{${k}}` : ""} ${s.sum}`);
      out.push(`${this.name}_count${k ? `{${k}}` : ""} ${s.count}`);
    }
    return out;
  }
}

const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

export class Metrics {
  private all: Metric[] = [];
  readonly httpRequests = this.add(new Counter("parley_http_requests_total", "HTTP requests by method, route and status."));
  readonly httpDuration = this.add(new Histogram("parley_http_request_duration_seconds", "HTTP request latency by route.", LATENCY_BUCKETS));
  readonly eventsAppended = this.add(new Counter("parley_events_appended_total", "Events appended to the event log, by type (cluster mode: the whole cluster's, as this node follows the log since its start; one node's rate is the cluster's)."));
  readonly eventsPublished = this.add(new Counter("parley_events_published_total", "Events published to live sockets after commit, by type."));
  readonly publishLatency = this.add(new Histogram("parley_publish_after_commit_seconds", "Time from commit to publish of a transaction's events.", LATENCY_BUCKETS));
  readonly sendLatency = this.add(new Histogram("parley_message_send_seconds", "Message send latency (validation, transaction, publish).", LATENCY_BUCKETS));
  readonly framesIn = this.add(new Counter("parley_ws_frames_in_total", "WebSocket frames received, by type."));
  readonly slowConsumers = this.add(new Counter("parley_ws_slow_consumers_total", "Sockets closed for not keeping up with their output."));
  readonly framesOut = this.add(new Counter("parley_ws_frames_out_total", "WebSocket frames sent directly (not via topics), by type."));
  readonly presenceRereads = this.add(new Counter("parley_presence_rereads_total", "Cluster mode: reads of the presence store for every user this node's sockets follow (after a NATS reconnect, another node's, or the periodic safety net)."));
  readonly presenceCorrections = this.add(new Counter("parley_presence_corrections_total", "Presence frames this node sent its sockets because the presence store said otherwise than they had been told (a presence frame lost between nodes), by type."));

  // Per-type series of the counters incremented for every event and frame.
  readonly eventsAppendedOf = this.eventsAppended.seriesBy("type");
  readonly eventsPublishedOf = this.eventsPublished.seriesBy("type");
  readonly framesInOf = this.framesIn.seriesBy("type");
  readonly framesOutOf = this.framesOut.seriesBy("type");

  add<M extends Metric>(m: M): M {
    this.all.push(m);
    return m;
  }
  gauge(name: string, help: string, read: () => number) {
    this.add(new Gauge(name, help, read));
  }
  render(): string {
    return this.all.map((m) => m.render()).join("\n") + "\n";
  }
}
