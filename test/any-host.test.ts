/**
 * §7.7: the WebSocket upgrade works whatever the Host header, as REST does. Elysia's
 * router assumed a host of at least four characters (`url.indexOf("/", 11)`), so a reverse
 * proxy forwarding `Host: app` got 404. Sent over a raw TCP socket: fetch and WebSocket
 * clients would not send such a Host.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { startServer, type TestServer } from "./helpers";

let s: TestServer;
let token: string;

beforeAll(async () => {
  s = await startServer();
  token = (await s.register()).token;
});
afterAll(() => s.stop());

/** Sends one raw HTTP/1.1 request and resolves with the response's status line. */
async function statusLine(request: string): Promise<string> {
  let received = "";
  const { promise, resolve } = Promise.withResolvers<string>();
  const socket = await Bun.connect({
    hostname: "127.0.0.1",
    port: s.app.app.server!.port!,
    socket: {
      data(_socket, chunk) {
        received += chunk.toString();
        const end = received.indexOf("\r\n");
        if (end >= 0) resolve(received.slice(0, end));
      },
      close() {
        resolve(received.split("\r\n")[0] ?? "");
      },
    },
  });
  socket.write(request);
  try {
    return await promise;
  } finally {
    socket.end();
  }
}

const upgrade = (host: string, path = `/ws/user?token=${token}`) =>
  [`GET ${path} HTTP/1.1`, `Host: ${host}`, "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version: 13", "", ""].join("\r\n");

describe("any Host", () => {
  for (const host of ["app", "x", "ab:80", "[::1]", "[::1]:8080", "localhost", "chat.example.com:443"]) {
    test(`the upgrade answers 101 with Host: ${host}`, async () => {
      expect(await statusLine(upgrade(host))).toBe("HTTP/1.1 101 Switching Protocols");
    });
  }

  test("a refused token is still 401 with a short Host, and REST answers there too", async () => {
    expect(await statusLine(upgrade("app", "/ws/user?token=nope"))).toStartWith("HTTP/1.1 401");
    expect(await statusLine(`GET /ws/user HTTP/1.1\r\nHost: x\r\n\r\n`)).toStartWith("HTTP/1.1 400");
    expect(await statusLine(`GET /api/events?since=0 HTTP/1.1\r\nHost: ab:80\r\nAuthorization: Bearer ${token}\r\n\r\n`)).toStartWith("HTTP/1.1 200");
    expect(await statusLine(`GET /nowhere HTTP/1.1\r\nHost: [::1]\r\n\r\n`)).toStartWith("HTTP/1.1 404");
  });

  test("a query that is not valid percent-encoding is 400 whatever the Host (one holding \"/\" too); a fragment is not the query", async () => {
    const get = (target: string, host: string) => statusLine(`GET ${target} HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Bearer ${token}\r\n\r\n`);
    for (const host of ["x", "a/b", "[::1]:80"]) {
      expect({ host, line: await get("/api/users?q=%E0%A4%A", host) }).toEqual({ host, line: expect.stringMatching(/^HTTP\/1.1 400/) });
      expect({ host, line: await get("/api/users?q=ok#%E0", host) }).toEqual({ host, line: expect.stringMatching(/^HTTP\/1.1 200/) });
    }
  });
});
