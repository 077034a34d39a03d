/**
 * Scopes through Redis (issue 11): a state marked in one scope on one instance reaches the others in
 * that scope, and only there; a key-wide clear clears the key's scoped states everywhere; the
 * severity rule holds per (key, scope). Against a real `redis-server`.
 */
import { afterEach, expect, it, vi } from "vitest";
import { CredentialRouter, fingerprint, type RouterEvent } from "../src/index.js";
import { attachRedis } from "../src/redis/index.js";
import { escapeText } from "../src/redis/record.js";
import { describeRedis, KEYS, redisContext, TEN_MINUTES, waitFor, type Instance } from "./helpers/redis-suite.js";

const [K0, K1, K2, K3] = KEYS as [string, string, string, string];
const DAY = 86_400_000;
const GPT = "gpt-4o";
const MINI = "gpt-4o-mini";
/** A scope name with every character a record must not carry raw. */
const ODD = "team a/b | c%d — ünï\u{1F600}";

const statusIn = (instance: Instance, key: string, scope?: string) => instance.router.stateOf(key, scope)?.status;
const remainingIn = (instance: Instance, key: string, scope: string) =>
  (instance.router.stateOf(key, scope) as { remainingMs?: number }).remainingMs ?? 0;
/** Each scope in which the key is out, on `instance`: `"<scope>:<status>:<reason>"`, sorted. */
const scopesOf = (instance: Instance, index: number) =>
  instance.router
    .snapshot()
    [index]!.scopes.map((row) => `${row.scope}:${row.state.status}:${row.reason}`)
    .sort();

describeRedis("Redis adapter with scopes", () => {
  const redis = redisContext();
  const stateKey = (ns: string) => `{${ns}}:state`;
  const field = (key: string, scope: string) => `${fingerprint(key)}/${escapeText(scope)}`;

  afterEach(() => {
    vi.useRealTimers();
  });

  async function pair(): Promise<{ ns: string; a: Instance; b: Instance }> {
    const ns = redis.namespace();
    const a = await redis.instance(ns);
    const b = await redis.instance(ns);
    return { ns, a, b };
  }

  it("a scoped cooldown marked on one instance reaches the others in the same scope, and only there", async () => {
    const { ns, a, b } = await pair();
    const seen: RouterEvent[] = [];
    b.router.subscribe((event) => void (event.type !== "exhausted" && event.index === 0 && seen.push(event)));
    a.router.markErrorWithDelay(K0, 60_000, { scope: GPT, reason: "rate_limit" });
    await waitFor(() => statusIn(b, K0, GPT) === "cooldown", "B to see K0 cooling for gpt-4o");
    expect(statusIn(b, K0)).toBe("ready");
    expect(statusIn(b, K0, MINI)).toBe("ready");
    expect(seen).toMatchObject([{ type: "cooldown", reason: "rate_limit", scope: GPT }]);
    expect(Math.abs(remainingIn(a, K0, GPT) - remainingIn(b, K0, GPT))).toBeLessThan(50);
    // B routes gpt-4o around K0, and every other model through it.
    for (let pick = 0; pick < 3 * KEYS.length; pick++) expect(b.router.nextKey(GPT)).not.toBe(K0);
    expect(Array.from({ length: KEYS.length }, () => b.router.nextKey(MINI))).toContain(K0);
    // As stored: one field per key and scope.
    expect(await redis.reader.hget(stateKey(ns), field(K0, GPT))).toMatch(/^\d+\|cooldown\|\d+\|rate_limit$/);
    expect(await redis.reader.hget(stateKey(ns), fingerprint(K0))).toBeNull();
    expect([...a.errors, ...b.errors]).toEqual([]);
  });

  it("scoped blocks and scoped clears are shared, and a scope name with separators and non-ASCII survives", async () => {
    const { a, b } = await pair();
    a.router.markBlocked(K1, { scope: ODD, reason: "model_not_found" });
    a.router.markDisabled(K2, { scope: GPT });
    await waitFor(() => statusIn(b, K1, ODD) === "blocked" && statusIn(b, K2, GPT) === "disabled", "B to take the scoped block and disable");
    expect(scopesOf(b, 1)).toEqual([`${ODD}:blocked:model_not_found`]);
    expect(statusIn(b, K1)).toBe("ready");
    b.router.clearCooldown(K1, { scope: ODD });
    await waitFor(() => statusIn(a, K1, ODD) === "ready", "A to take B's scoped clear");
    // Only that scope: the other key's state in gpt-4o stays.
    expect(statusIn(a, K2, GPT)).toBe("disabled");
    expect(await a.link.flush()).toBe(true);
    expect(await b.link.flush()).toBe(true);
    expect(scopesOf(a, 1)).toEqual([]);
    expect(scopesOf(b, 2)).toEqual([`${GPT}:disabled:manual`]);
    expect([...a.errors, ...b.errors]).toEqual([]);
  });

  it("a key-wide clear on one instance clears the key's scoped states everywhere, also in scopes it never saw", async () => {
    const { ns, a, b } = await pair();
    const c = await redis.instance(ns);
    a.router.markErrorWithDelay(K0, TEN_MINUTES, { scope: GPT });
    c.router.markBlocked(K0, { scope: MINI });
    c.router.markBlocked(K0);
    b.router.markErrorWithDelay(K1, TEN_MINUTES, { scope: GPT });
    await waitFor(
      () => [a, b, c].every((instance) => statusIn(instance, K0, GPT) === "blocked" && statusIn(instance, K0, MINI) === "blocked"),
      "every instance to hold K0 out in both scopes",
    );
    // A scoped record no instance here holds (its router dropped the scope, or it marked it while
    // these were away): written as an instance of this version writes it, without a message.
    const seq = Number(await redis.reader.hget(stateKey(ns), "seq"));
    await redis.reader.hset(stateKey(ns), field(K0, "elsewhere"), `${seq}|blocked|0|auth`);
    await redis.reader.zadd(`{${ns}}:scopes`, 0, field(K0, "elsewhere"));
    // B clears K0 key-wide, without a scope: every layer of K0 is ready again, on every instance.
    b.router.clearCooldown(K0);
    await waitFor(
      () => [a, c].every((instance) => statusIn(instance, K0) === "ready" && statusIn(instance, K0, GPT) === "ready" && statusIn(instance, K0, MINI) === "ready"),
      "A and C to see K0 cleared everywhere",
    );
    for (const instance of [a, b, c]) expect(await instance.link.flush()).toBe(true);
    for (const instance of [a, b, c]) expect(scopesOf(instance, 0)).toEqual([]);
    const stored = await redis.reader.hmget(stateKey(ns), fingerprint(K0), field(K0, GPT), field(K0, MINI), field(K0, "elsewhere"));
    expect(stored.map((record) => record?.split("|")[1])).toEqual(["ready", "ready", "ready", "ready"]);
    // Another key's scoped state is untouched.
    expect([a, b, c].map((instance) => statusIn(instance, K1, GPT))).toEqual(["cooldown", "cooldown", "cooldown"]);
    expect(scopesOf(a, 1)).toEqual([`${GPT}:cooldown:manual`]);
    // Out in a scope only (key-wide ready), a key-wide clear is the clear of each scope it ended.
    a.router.clearCooldown(K1);
    await waitFor(() => statusIn(b, K1, GPT) === "ready" && statusIn(c, K1, GPT) === "ready", "B and C to see K1 cleared in gpt-4o");
    // A listener that marks the key again in a scope while the clear runs leaves that mark in Redis:
    // the script clears the key's scoped records first, then applies the scoped marks of the batch.
    c.router.subscribe((event) => {
      if (event.type === "ready" && event.reason === "cleared" && event.index === 3 && event.scope === GPT) {
        c.router.markErrorWithDelay(K3, 60_000, { scope: GPT });
      }
    });
    c.router.markBlocked(K3);
    c.router.markBlocked(K3, { scope: GPT });
    c.router.clearCooldown(K3);
    expect(statusIn(c, K3, GPT)).toBe("cooldown");
    expect(await c.link.flush()).toBe(true);
    await waitFor(() => statusIn(a, K3, GPT) === "cooldown", "A to see K3 cooling in gpt-4o after the clear");
    expect((await redis.reader.hget(stateKey(ns), field(K3, GPT)))?.split("|")[1]).toBe("cooldown");
    expect([...a.errors, ...b.errors, ...c.errors]).toEqual([]);
  });

  it("keeps the severity rule per key and scope: a 429 never undoes a block, a cooldown never shortens a longer one", async () => {
    const { a, b } = await pair();
    a.router.markBlocked(K2, { scope: GPT });
    b.router.markErrorWithDelay(K2, 30_000, { scope: GPT });
    b.router.markErrorWithDelay(K3, TEN_MINUTES, { scope: MINI });
    a.router.markErrorWithDelay(K3, 1_000, { scope: MINI });
    // The same key in another scope, and key-wide, is its own record.
    a.router.markErrorWithDelay(K2, 5_000, { scope: MINI });
    await waitFor(
      () =>
        [a, b].every(
          (instance) =>
            statusIn(instance, K2, GPT) === "blocked" && remainingIn(instance, K3, MINI) > TEN_MINUTES - 10_000 && statusIn(instance, K2, MINI) === "cooldown",
        ),
      "both to hold the block and the longer cooldown",
    );
    expect(await a.link.flush()).toBe(true);
    expect(await b.link.flush()).toBe(true);
    for (const instance of [a, b]) {
      expect(statusIn(instance, K2, GPT)).toBe("blocked");
      expect(remainingIn(instance, K3, MINI)).toBeGreaterThan(TEN_MINUTES - 10_000);
      expect(statusIn(instance, K2)).toBe("ready");
    }
    expect([...a.errors, ...b.errors]).toEqual([]);
  });

  it("an instance attached later, or restored from saved state, starts with the scoped states", async () => {
    const { ns, a } = await pair();
    a.router.markErrorWithDelay(K0, TEN_MINUTES, { scope: GPT, reason: "quota" });
    a.router.markBlocked(K1, { scope: ODD });
    expect(await a.link.flush()).toBe(true);
    const late = await redis.instance(ns);
    // No waiting: attachRedis resolved after loading the shared state.
    expect(scopesOf(late, 0)).toEqual([`${GPT}:cooldown:quota`]);
    expect(scopesOf(late, 1)).toEqual([`${ODD}:blocked:manual`]);
    expect(statusIn(late, K0)).toBe("ready");

    // A router restored with a scoped state of its own offers it on attach.
    const saved = new CredentialRouter(KEYS);
    saved.markDisabled(K2, { scope: MINI, reason: "auth" });
    const restored = new CredentialRouter(KEYS, { initialState: saved.exportState() });
    const link = await attachRedis(restored, redis.client(), { namespace: ns });
    redis.links.push(link);
    expect(restored.stateOf(K0, GPT)?.status).toBe("cooldown");
    expect(await link.flush()).toBe(true);
    await waitFor(() => statusIn(a, K2, MINI) === "disabled", "A to take the restored scoped disable");
    expect(scopesOf(a, 2)).toEqual([`${MINI}:disabled:auth`]);
    expect([...a.errors, ...late.errors]).toEqual([]);
  });

  it("a scoped field no instance could have written (a space in it) hides no real state, at attach or in a key-wide clear", async () => {
    const { ns, a } = await pair();
    a.router.markBlocked(K0, { scope: GPT, reason: "quota" });
    expect(await a.link.flush()).toBe(true);
    // Someone else's field of K0, sorted before the real one, with a record that holds the key out:
    // replies and messages separate fields and records by spaces.
    const seq = Number(await redis.reader.hget(stateKey(ns), "seq"));
    const forged = `${fingerprint(K0)}/a b`;
    await redis.reader.hset(stateKey(ns), forged, `${seq}|blocked|0|auth`);
    await redis.reader.zadd(`{${ns}}:scopes`, 0, forged);
    const late = await redis.instance(ns);
    expect(scopesOf(late, 0)).toEqual([`${GPT}:blocked:quota`]);
    late.router.clearCooldown(K0);
    await waitFor(() => statusIn(a, K0, GPT) === "ready", "A to take the key-wide clear in gpt-4o");
    expect(await late.link.flush()).toBe(true);
    expect(await a.link.flush()).toBe(true);
    expect([...a.errors, ...late.errors]).toEqual([]);
  });

  it("a receiving router with few scopes keeps the newest (maxScopes), and routes without errors", async () => {
    const ns = redis.namespace();
    const a = await redis.instance(ns);
    const small = await redis.instance(ns, { router: { maxScopes: 2 } });
    for (const scope of ["m1", "m2", "m3"]) a.router.markBlocked(K0, { scope });
    expect(await a.link.flush()).toBe(true);
    await waitFor(() => statusIn(small, K0, "m3") === "blocked", "the small router to take the newest scope");
    expect(small.router.snapshot()[0]!.scopes.length).toBeLessThanOrEqual(2);
    // A scope whose keys are all ready again is dropped by the router: a clear from A does that.
    a.router.clearCooldown(K0, { scope: "m3" });
    await waitFor(() => statusIn(small, K0, "m3") === "ready", "the small router to take the clear");
    expect(small.router.nextKey("m3")).toBeDefined();
    expect(await small.link.flush()).toBe(true);
    expect([...a.errors, ...small.errors]).toEqual([]);
  });

  it("scoped states survive a loss of the shared state: every instance offers them again", async () => {
    const { ns, a, b } = await pair();
    a.router.markBlocked(K0, { scope: GPT });
    b.router.markErrorWithDelay(K1, TEN_MINUTES, { scope: MINI });
    await waitFor(() => statusIn(b, K0, GPT) === "blocked" && statusIn(a, K1, MINI) === "cooldown", "the scoped states to spread");
    await redis.reader.del(stateKey(ns));
    // A learns of the loss from its own write's reply (a new epoch), and offers what it holds.
    a.router.markBlocked(K3);
    expect(await a.link.flush()).toBe(true);
    await waitFor(async () => {
      const [gpt, mini] = await redis.reader.hmget(stateKey(ns), field(K0, GPT), field(K1, MINI));
      return gpt?.split("|")[1] === "blocked" && mini?.split("|")[1] === "cooldown";
    }, "Redis to hold the scoped states again");
    expect(statusIn(a, K0, GPT)).toBe("blocked");
    expect(statusIn(b, K1, MINI)).toBe("cooldown");
    expect([...a.errors, ...b.errors]).toEqual([]);
  });

  it("prunes scoped records with their key: ready ones after a day, and those of keys no instance holds", async () => {
    const ns = redis.namespace();
    vi.useFakeTimers({ toFake: ["Date"], now: Date.now() });
    const gone = Array.from({ length: 4 }, (_, index) => `sk-gone-${index}-${"z".repeat(20)}`);
    const old = await redis.instance(ns, { keys: gone });
    old.router.markBlocked(gone[0]!, { scope: GPT });
    old.router.markBlocked(gone[1]!, { scope: MINI });
    expect(await old.link.flush()).toBe(true);
    await old.link.close();
    expect(await redis.reader.zcard(`{${ns}}:scopes`)).toBe(2);
    vi.setSystemTime(Date.now() + DAY + 60_000);

    const today = await redis.instance(ns);
    today.router.markBlocked(K0, { scope: GPT });
    today.router.markErrorWithDelay(K1, 1, { scope: GPT });
    today.router.markBlocked(K2, { scope: MINI });
    today.router.clearCooldown(K2, { scope: MINI });
    expect(await today.link.flush()).toBe(true);
    await waitFor(
      async () => (await redis.reader.hmget(stateKey(ns), field(gone[0]!, GPT), field(gone[1]!, MINI))).every((value) => value === null),
      "the scoped records of keys nobody holds to go",
    );
    vi.setSystemTime(Date.now() + DAY + 60_000);
    await waitFor(
      async () => (await redis.reader.hmget(stateKey(ns), field(K1, GPT), field(K2, MINI))).every((value) => value === null),
      "the old ready scoped records to go",
    );
    expect((await redis.reader.hget(stateKey(ns), field(K0, GPT)))?.split("|")[1]).toBe("blocked");
    expect(await redis.reader.zrange(`{${ns}}:scopes`, 0, -1)).toEqual([field(K0, GPT)]);
    expect(statusIn(today, K0, GPT)).toBe("blocked");
    expect(today.errors).toEqual([]);
  });
});
