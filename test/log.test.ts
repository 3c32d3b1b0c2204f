/**
 * The log's stdout destination (src/log.ts LineBuffer): info lines leave together, within
 * 10 ms; warnings and errors at once; everything at exit.
 */
import { describe, expect, test } from "bun:test";
import { closeSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createLogger, infoLines, LineBuffer } from "../src/log";
import { tempDir } from "./helpers";

const linesOf = (file: string) => readFileSync(file, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);

describe("LineBuffer", () => {
  test("info lines are written together within 10 ms, in order", async () => {
    const file = join(tempDir(), "out.log");
    const fd = openSync(file, "w");
    const log = createLogger("info", new LineBuffer(fd));
    for (let i = 0; i < 50; i++) log.info({ i }, "request");
    expect(readFileSync(file, "utf8")).toBe("");
    await Bun.sleep(30);
    expect(linesOf(file).map((l) => l.i)).toEqual([...Array(50).keys()]);
    closeSync(fd);
  });

  test("a warning or an error is written at once, after the lines before it", () => {
    const file = join(tempDir(), "out.log");
    const fd = openSync(file, "w");
    const log = createLogger("info", new LineBuffer(fd));
    log.info("first");
    log.warn("careful");
    expect(linesOf(file).map((l) => l.msg)).toEqual(["first", "careful"]);
    log.info("second");
    log.error("broken");
    expect(linesOf(file).map((l) => [l.level, l.msg])).toEqual([["info", "first"], ["warn", "careful"], ["info", "second"], ["error", "broken"]]);
    closeSync(fd);
  });

  test("flush() writes what is pending (the shutdown calls it), and past 16 KB lines go out without waiting", () => {
    const file = join(tempDir(), "out.log");
    const fd = openSync(file, "w");
    const log = createLogger("info", new LineBuffer(fd));
    log.info("pending");
    log.flush();
    expect(linesOf(file).map((l) => l.msg)).toEqual(["pending"]);
    const padding = "x".repeat(1000);
    for (let i = 0; i < 20; i++) log.info({ padding }, "big");
    expect(linesOf(file).length).toBeGreaterThan(10);
    log.flush();
    closeSync(fd);
  });

  // What a process that ends loses: nothing, however it ends, except by SIGKILL (its last 10 ms of info lines).
  const script = (dir: string) => {
    const file = join(dir, "logging.ts");
    writeFileSync(file, `
      import { createLogger } from ${JSON.stringify(join(import.meta.dir, "../src/log"))};
      const log = createLogger("info");
      log.info("written");
      const how = process.argv[2];
      if (how === "exit") process.exit(3);
      if (how === "throw") throw new Error("boom");
      if (how === "kill") setTimeout(() => { log.info("lost"); process.kill(process.pid, "SIGKILL"); }, 50);
    `);
    return file;
  };
  for (const [how, code, expected] of [["end", 0, ["written"]], ["exit", 3, ["written"]], ["throw", 1, ["written"]], ["kill", 137, ["written"]]] as const) {
    const name = how === "kill" ? "SIGKILL loses the info lines of its last 10 ms only" : `a process that ends by ${how} has written every line`;
    test(name, () => {
      const p = Bun.spawnSync([process.execPath, script(tempDir()), how], { stdout: "pipe", stderr: "pipe" });
      expect(p.exitCode ?? 128 + 9).toBe(code);
      const msgs = p.stdout.toString().split("\n").filter(Boolean).map((l) => JSON.parse(l).msg);
      expect(msgs).toEqual([...expected]);
    });
  }
});

describe("infoLines", () => {
  const capture = () => {
    const out: string[] = [];
    return { out, stream: { write: (line: string) => void out.push(line) } };
  };
  const untimed = (line: string) => line.replace(/"time":"[^"]+"/, '"time":"T"');

  test("writes the line pino writes for the same fields, byte for byte but the time", () => {
    const { out, stream } = capture();
    const log = createLogger("info", stream);
    log.child({ method: "POST", route: "/api/conversations/:id/messages" }).info({ status: 201, ms: 1.25, request_id: "0193a1b2-c3d4-7e5f", user_id: "u-1" }, "request");
    log.child({ method: "GET", route: "/health" }).info({ status: 200, ms: 0, request_id: "given.id_9", user_id: undefined }, "request");
    const line = infoLines(log);
    line(`,"method":"POST","route":"/api/conversations/:id/messages","status":201,"ms":1.25,"request_id":"0193a1b2-c3d4-7e5f","user_id":"u-1"`, "request");
    line(`,"method":"GET","route":"/health","status":200,"ms":0,"request_id":"given.id_9"`, "request");
    expect(out).toHaveLength(4);
    expect(out.map(untimed).slice(2)).toEqual(out.map(untimed).slice(0, 2));
    expect(JSON.parse(out[2]!).time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  });

  test("writes nothing above info, and a LineBuffer keeps the line with the other info lines", async () => {
    const { out, stream } = capture();
    infoLines(createLogger("warn", stream))(`,"status":200`, "request");
    expect(out).toEqual([]);
    const file = join(tempDir(), "out.log");
    const fd = openSync(file, "w");
    const log = createLogger("info", new LineBuffer(fd));
    log.warn("first");
    infoLines(log)(`,"status":200`, "request");
    expect(linesOf(file).map((l) => l.msg)).toEqual(["first"]); // not written at once, as an info line
    log.error("then");
    expect(linesOf(file).map((l) => [l.level, l.msg, l.status])).toEqual([["warn", "first", undefined], ["info", "request", 200], ["error", "then", undefined]]);
    closeSync(fd);
  });
});
