/** Runs Parley as a child process (source or compiled binary) and reads its JSON log lines. */
import type { Subprocess } from "bun";

export interface Running {
  proc: Subprocess<"ignore", "pipe", "pipe">;
  base: string;
  lines: Record<string, any>[];
  /** Sends a signal and waits for the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number>;
}

/** `inherit: false`: the child's environment is `env` and where to listen, nothing of this process's. */
export async function spawnServer(cmd: string[], env: Record<string, string>, cwd?: string, o: { inherit?: boolean } = {}): Promise<Running> {
  const listen = { PORT: "0", HOST: "127.0.0.1" };
  // CONTACT_POLICY=open as in startServer (test/helpers.ts): these tests group strangers.
  const childEnv = o.inherit === false ? { ...listen, ...env } : { ...process.env, ...listen, CONTACT_POLICY: "open", ...env };
  const proc = Bun.spawn(cmd, { cwd, env: childEnv, stdout: "pipe", stderr: "pipe" });
  const lines: Record<string, any>[] = [];
  let port = 0;
  const listening = (async () => {
    const decoder = new TextDecoder();
    let buffered = "";
    for await (const chunk of proc.stdout) {
      buffered += decoder.decode(chunk);
      let nl: number;
      while ((nl = buffered.indexOf("\n")) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        try {
          const parsed = JSON.parse(line);
          lines.push(parsed);
          if (parsed.msg === "listening") port = parsed.port;
        } catch {}
      }
    }
  })();
  const deadline = Date.now() + 15_000;
  while (!port) {
    if (proc.exitCode !== null || Date.now() > deadline)
      throw new Error(`server did not start: exit ${proc.exitCode}, stderr: ${await new Response(proc.stderr).text()}`);
    await Bun.sleep(20);
  }
  return {
    proc,
    base: `http://127.0.0.1:${port}`,
    lines,
    async stop(signal = "SIGTERM") {
      proc.kill(signal);
      const code = await proc.exited;
      await listening;
      return code;
    },
  };
}

export async function registerAndLogin(base: string, username: string) {
  const reg = await fetch(`${base}/api/auth/register`, { method: "POST", body: JSON.stringify({ username, password: "password123" }) });
  if (reg.status !== 201) throw new Error(`register: ${reg.status}`);
  const login = await fetch(`${base}/api/auth/login`, { method: "POST", body: JSON.stringify({ username, password: "password123" }) });
  const { token } = (await login.json()) as { token: string };
  const me = await fetch(`${base}/api/users/me`, { headers: { authorization: `Bearer ${token}` } });
  return { status: me.status, user: (await me.json()) as { username: string }, token };
}
