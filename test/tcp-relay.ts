/**
 * A TCP relay on 127.0.0.1 to a service of this machine that can be cut (every connection
 * closed, new ones refused) and restored on the same port: a network that goes away for a
 * moment while the service, and its state, stay (the machine's services are never stopped).
 */
import type { Socket, TCPSocketListener } from "bun";
import { freePort } from "./own-services";

interface Side { up: Socket<unknown> | null; queued: Uint8Array[] }

export function tcpRelay(target: { hostname: string; port: number }) {
  const port = freePort();
  const open = new Set<Socket<Side>>();
  let listener: TCPSocketListener<Side> | null = null;
  const listen = () => {
    listener = Bun.listen<Side>({
      hostname: "127.0.0.1",
      port,
      socket: {
        async open(s) {
          s.data = { up: null, queued: [] };
          open.add(s);
          try {
            const up = await Bun.connect({ ...target, socket: { data: (_u, d) => void s.write(d), close: () => void s.end(), error: () => void s.end() } });
            s.data.up = up;
            for (const chunk of s.data.queued.splice(0)) up.write(chunk);
          } catch {
            s.end();
          }
        },
        data: (s, d) => void (s.data.up ? s.data.up.write(d) : s.data.queued.push(new Uint8Array(d))),
        close(s) {
          open.delete(s);
          s.data.up?.end();
        },
      },
    });
  };
  listen();
  return {
    port,
    /** `url` with its host and port replaced by the relay's. */
    through(url: string) {
      const u = new URL(url);
      u.hostname = "127.0.0.1";
      u.port = String(port);
      return u.toString();
    },
    cut() {
      listener?.stop(true);
      listener = null;
      for (const s of open) {
        s.data.up?.end();
        s.end();
      }
      open.clear();
    },
    restore: () => listen(),
    close() {
      this.cut();
    },
  };
}
