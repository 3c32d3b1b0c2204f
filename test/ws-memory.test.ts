import { describe, expect, test } from "bun:test";
import { heapStats } from "bun:jsc";
import { startServer } from "./helpers";
import { TestSocket } from "./ws-client";

describe("memory of open sockets", () => {
  // Elysia's per-socket handlers close over the upgrade's whole context (its Request among
  // it) for the socket's lifetime; an open socket carries shared handlers instead (ws.ts).
  test("an open socket keeps nothing of its upgrade request", async () => {
    const server = await startServer({ maxConnectionsPerUser: 100 });
    try {
      const a = await server.register();
      const requests = () => {
        Bun.gc(true);
        return heapStats().objectTypeCounts.Request ?? 0;
      };
      const before = requests();
      const sockets: TestSocket[] = [];
      for (let i = 0; i < 40; i++) sockets.push(await TestSocket.connect(`${server.wsBase}/ws/user?token=${a.token}`));
      // A frame still works on each (the shared handlers are the socket's own).
      await sockets[0]!.request("ping", {});
      const held = requests() - before;
      for (const s of sockets) s.close();
      expect(held).toBeLessThan(10);
    } finally {
      await server.stop();
    }
  });
});
