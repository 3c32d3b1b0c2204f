/**
 * Real Parley nodes of one cluster (child processes, as deployed), and what the cluster
 * tests do with them: REST calls, users, sockets.
 */
import { expect } from "bun:test";
import { spawnServer, type Running } from "./process";
import { tempDir } from "./helpers";
import { TestSocket } from "./ws-client";

export const CLUSTER_SECRET = "cluster-test-secret-of-at-least-32-characters";

/** A cluster name of this run's own: NATS subjects and Redis keys never meet another run's. */
export const clusterName = () => `t${process.pid}${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;

export interface Reply { status: number; body: any; headers: Headers }

let counter = 0;

export class Cluster {
  readonly nodes: (Running | null)[] = [];

  private constructor(readonly env: Record<string, string>) {}

  /**
   * Starts `n` nodes on the services named in `env` (DATABASE_URL, NATS_URL, REDIS_URL):
   * one first, so that the migrations are applied once, then the others.
   */
  static async start(n: number, services: Record<string, string>): Promise<Cluster> {
    const cluster = new Cluster({ JWT_SECRET: CLUSTER_SECRET, CLUSTER_NAME: clusterName(), HEARTBEAT_INTERVAL_MS: "1000", PRESENCE_GRACE_MS: "0", ...services });
    cluster.nodes.push(await cluster.node());
    cluster.nodes.push(...(await Promise.all(Array.from({ length: n - 1 }, () => cluster.node()))));
    return cluster;
  }

  /** A node of the cluster: its own port and DATA_DIR, the shared services. */
  node(extra: Record<string, string> = {}) {
    return spawnServer(["bun", "src/index.ts", "serve"], { ...this.env, DATA_DIR: tempDir("parley-node-"), ...extra });
  }

  base(i: number) {
    return this.nodes[i]!.base;
  }

  async api(i: number, method: string, path: string, token?: string, body?: unknown, signal?: AbortSignal): Promise<Reply> {
    const res = await fetch(this.base(i) + path, { method, signal, headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body ? { "content-type": "application/json" } : {}) }, body: body ? JSON.stringify(body) : undefined });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : null, headers: res.headers };
  }

  /** A new user, registered on node `i`. */
  async user(i: number) {
    const username = `n${process.pid}${(counter++).toString(36)}${Date.now().toString(36)}`;
    const res = await this.api(i, "POST", "/api/auth/register", undefined, { username, password: "password123" });
    expect(res.status).toBe(201);
    return { token: res.body.token as string, id: res.body.user.id as string };
  }

  /** A socket on node `i` (open once `conversation.list` came, within `ms`); `early`: frames sent at once on open. */
  ws(i: number, token: string, options?: { ms?: number; early?: object[] }) {
    return TestSocket.connect(this.wsUrl(i, token), options);
  }

  wsUrl(i: number, token: string) {
    return `${this.base(i).replace("http", "ws")}/ws/user?token=${token}`;
  }

  async stop() {
    for (const n of this.nodes) await n?.stop("SIGKILL").catch(() => {});
  }
}
