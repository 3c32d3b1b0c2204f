/**
 * RemoteIndicators (src/realtime/remote-indicators.ts): what a node relays of other nodes'
 * typing and active state, it ends itself when the other node does not (cluster mode; the
 * node killed end to end: test/cluster-indicators.test.ts). Here its rules, with real timers.
 */
import { describe, expect, test } from "bun:test";
import { RemoteIndicators } from "../src/realtime/remote-indicators";
import { frame } from "../src/realtime/protocol";

function indicators(ttlMs: number) {
  const ended: { conversation: string; type: string; data: unknown }[] = [];
  const r = new RemoteIndicators(ttlMs, (conversation, text) => {
    const f = JSON.parse(text) as { type: string; data: unknown };
    ended.push({ conversation, type: f.type, data: f.data });
  });
  return { r, ended };
}
const typing = (c: string, u: string, is_typing: boolean) => frame("message.typing", { conversation_id: c, user_id: u, is_typing });

describe("indicators relayed from other nodes", () => {
  test("a typing indicator nobody ends is ended TTL and a second after its last refresh; one that is ended is not", async () => {
    const { r, ended } = indicators(100);
    r.heard(typing("c1", "u1", true));
    r.heard(typing("c2", "u2", true));
    await Bun.sleep(300);
    r.heard(typing("c1", "u1", true)); // refreshed: it now ends at 300 + 1,100 ms
    r.heard(typing("c2", "u2", false)); // ended by its own node
    await Bun.sleep(600);
    expect(ended).toEqual([]);
    await Bun.sleep(1100);
    expect(ended).toEqual([{ conversation: "c1", type: "message.typing", data: { conversation_id: "c1", user_id: "u1", is_typing: false } }]);
    r.stop();
  });

  test("a user gone offline: their typing and active state end at once; other users' stay", () => {
    const { r, ended } = indicators(60_000);
    r.heard(typing("c1", "u1", true));
    r.heard(typing("c1", "u2", true));
    r.heard(frame("conversation.user_active", { conversation_id: "c1", user_id: "u1" }));
    r.heard(frame("conversation.user_active", { conversation_id: "c3", user_id: "u1" }));
    r.heard(frame("conversation.user_active", { conversation_id: "c2", user_id: "u1" }));
    r.heard(frame("conversation.user_inactive", { conversation_id: "c2", user_id: "u1" }));
    r.userGone("u1");
    expect(ended.map((e) => [e.conversation, e.type])).toEqual([["c1", "message.typing"], ["c1", "conversation.user_inactive"], ["c3", "conversation.user_inactive"]]);
    r.userGone("u1");
    expect(ended).toHaveLength(3);
    r.stop();
  });

  test("a node gone (missing from presence's live nodes for the settle time): the active state it announced ends; what live nodes (or a node that did not say) announced stays", () => {
    const { r, ended } = indicators(60_000);
    const active = (c: string, u: string) => frame("conversation.user_active", { conversation_id: c, user_id: u });
    // Heard at -1 ms: before every word below was read.
    r.heard(active("c1", "u1"), "n1", -1);
    r.heard(active("c2", "u1"), "n2", -1);
    r.heard(active("c1", "u2"), "n1", -1);
    r.heard(active("c3", "u3"), undefined, -1);
    r.heard(frame("conversation.user_active", { conversation_id: "c4", user_id: "u2" }), "n1", -1);
    r.heard(frame("conversation.user_inactive", { conversation_id: "c4", user_id: "u2" }), "n1", -1);
    expect([...r.announcers()].sort()).toEqual(["n1", "n2"]);
    r.nodesAlive(new Set(["n1", "n2"]), 0, 1000);
    expect(ended).toEqual([]);
    // Missing from one word, or for less than the settle time (a store restarted empty lists no node until each beats): nothing ends.
    r.nodesAlive(new Set(), 1000, 1000);
    r.nodesAlive(new Set(["n1", "n2"]), 1500, 1000);
    r.nodesAlive(new Set(["n2"]), 2000, 1000);
    r.nodesAlive(new Set(["n2"]), 2999, 1000);
    expect(ended).toEqual([]);
    r.nodesAlive(new Set(["n2"]), 3000, 1000);
    expect(ended.map((e) => [e.conversation, e.type, (e.data as { user_id: string }).user_id])).toEqual([
      ["c1", "conversation.user_inactive", "u1"],
      ["c1", "conversation.user_inactive", "u2"],
    ]);
    expect([...r.announcers()]).toEqual(["n2"]);
    // Once: it is no longer held.
    r.nodesAlive(new Set(["n2"]), 5000, 1000);
    expect(ended).toHaveLength(2);
    // The user active again through n1's successor: a new announcer.
    r.heard(active("c1", "u1"), "n3", 5000);
    r.userGone("u1");
    expect(ended.slice(2).map((e) => [e.conversation, (e.data as { user_id: string }).user_id])).toEqual([
      ["c2", "u1"],
      ["c1", "u1"],
    ]);
    r.stop();
  });

  test("a node heard announcing after a word on the live nodes was read is alive, though that word (answered later) leaves it out", () => {
    const { r, ended } = indicators(300);
    const active = (c: string, u: string) => frame("conversation.user_active", { conversation_id: c, user_id: u });
    r.heard(active("c1", "u1"), "n1", 0);
    r.nodesAlive(new Set(), 1000, 1000, 900); // n1 stalled: missing from 1000 on
    // Back: its next beat re-announces what its users have on screen (at 2,500 ms)...
    r.heard(active("c1", "u1"), "n1", 2500);
    // ... while a read that began before that answers after it, without n1: nothing ends (it did, for good).
    r.nodesAlive(new Set(), 3000, 1000, 2000);
    expect(ended).toEqual([]);
    // A word read after it that still leaves n1 out counts again, from then on.
    r.nodesAlive(new Set(), 3100, 1000, 3050);
    r.nodesAlive(new Set(), 4100, 1000, 4050);
    expect(ended.map((e) => e.conversation)).toEqual(["c1"]);
    r.stop();
  });

  test("other frames, and frames it cannot read, are let through untouched", () => {
    const { r, ended } = indicators(10);
    for (const text of [frame("pong", {}), '{"type":"message.typing","data":', '{"type":"message.typing","data":{"conversation_id":1}}', "not json"]) r.heard(text);
    r.userGone("anyone");
    expect(ended).toEqual([]);
    r.stop();
  });
});
