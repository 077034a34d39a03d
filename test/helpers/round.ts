/**
 * One round of the public API (picks, marks, events, `execute` against a fake `fetch`, the parsers),
 * run against each build of the package in each runtime: Node ESM, Node CommonJS, an edge VM and a
 * browser. It returns a JSON-safe transcript of what it saw; each test compares it with
 * `EXPECTED_ROUND`, section by section.
 *
 * This file must stay self-contained: no import is left at run time (the one below is a type), it
 * touches only the library it is given and web-standard globals (`Response`, `Headers`,
 * `AbortController`), and time is a variable it moves itself. That is what lets the edge test
 * transpile it and evaluate it inside the VM, where there is no module loader, `process` or `require`.
 */
import type * as Library from "../../src/index.js";

/** The parts of the package the round uses: the module namespace of any build has them. */
export type RoundLibrary = Pick<
  typeof Library,
  "CredentialRouter" | "NoKeyAvailableError" | "isNoKeyAvailableError" | "parseRetryAfter" | "fingerprint"
>;

/** What the round saw, in sections; `null` stands for `undefined` so that it survives JSON. */
export type RoundTranscript = { [Section in keyof typeof EXPECTED_ROUND]: unknown };

// Long enough (>= 16 characters) that events and snapshots show a masked hint instead of "#<index>".
const ALPHA = "sk-alpha-0000000000000001";
const BRAVO = "sk-bravo-0000000000000002";
const CHARLIE = "sk-charlie-00000000000003";

/** The transcript every runtime must produce. */
export const EXPECTED_ROUND = {
  rotation: {
    size: 3,
    strategy: "round-robin",
    picks: ["alpha", "bravo", "charlie", "alpha", "bravo", "charlie"],
  },
  cooldown: {
    marked: true,
    state: { status: "cooldown", remainingMs: 5_000 },
    // Bravo is out: the other two alternate, each getting an equal share.
    picksWhileCooling: ["alpha", "charlie", "alpha", "charlie"],
    stateAfter4999Ms: { status: "cooldown", remainingMs: 1 },
    stateAfter5000Ms: { status: "ready" },
    pickAfter: "alpha",
  },
  outOfRotation: {
    marks: [true, true, true],
    states: [{ status: "blocked" }, { status: "disabled" }, { status: "cooldown", remainingMs: 1_000 }],
    pickWhileAllOut: null,
    nextReadyInMs: 1_000,
    // A lower mark never downgrades: a cooldown on a blocked key leaves it blocked.
    cooldownOnBlocked: { marked: true, state: { status: "blocked" } },
    pickAfterCooldown: "charlie",
    pickAfterClear: ["alpha", "charlie", "alpha"],
    nextReadyInMsWhenOnlyBlockedOrDisabled: null,
  },
  unknownKey: { markError: false, markBlocked: false, clearCooldown: false, stateOf: null },
  events: [
    "cooldown sk-b…0002 5000",
    "ready sk-b…0002 expired",
    "blocked sk-a…0001",
    "disabled sk-b…0002",
    "cooldown sk-c…0003 1000",
    "exhausted 1000",
    "ready sk-c…0003 expired",
    "ready sk-a…0001 cleared",
    "blocked sk-a…0001",
    "blocked sk-c…0003",
    "exhausted never",
  ],
  secrecy: {
    anyKeyInStringOrJson: false,
    snapshot: [
      { index: 0, hint: "sk-a…0001", state: { status: "blocked" }, failures: 0 },
      { index: 1, hint: "sk-b…0002", state: { status: "disabled" }, failures: 1 },
      { index: 2, hint: "sk-c…0003", state: { status: "blocked" }, failures: 1 },
    ],
    anyKeyInEventsOrSnapshot: false,
  },
  execute: {
    // 429 with Retry-After: 7 cools alpha for 7 s; 401 blocks bravo; charlie's 200 is returned.
    attempts: ["1:alpha", "2:bravo", "3:charlie"],
    status: 200,
    body: "ok from charlie",
    states: [{ status: "cooldown", remainingMs: 7_000 }, { status: "blocked" }, { status: "ready" }],
    // Only charlie is left; a value without a status is a success and comes back as is.
    nextAttempts: ["1:charlie"],
    value: "value from charlie",
    // A 404 is not the key's fault: returned at once, nothing marked.
    notFound: { status: 404, attempts: 1, state: { status: "ready" } },
  },
  noKeyAvailable: {
    called: false,
    isNoKeyAvailableError: true,
    instanceOfClass: true,
    name: "NoKeyAvailableError",
    code: "NO_KEY_AVAILABLE",
    retryAfterMs: 6_000,
  },
  afterWaiting: { attempts: ["1:alpha"], status: 200, state: { status: "ready" } },
  abort: { rejectedWithReason: true, called: false },
  parsers: {
    retryAfterSeconds: 3_000,
    retryAfterDate: 30_000,
    retryAfterMissing: null,
    fingerprintOfAbc: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
  },
};

/** Runs the round against `lib` and returns what it saw; it throws only if the library does. */
export async function runRound(lib: RoundLibrary): Promise<RoundTranscript> {
  const name = (key: string | undefined): string | null => (key === undefined ? null : key.split("-")[1]!);
  // An origin far from 0: the library must not assume the clock starts anywhere in particular.
  let clock = 1_000_000;
  const now = (): number => clock;
  const keys = [ALPHA, BRAVO, CHARLIE];

  const router = new lib.CredentialRouter(keys, { cooldownMs: 1_000, now });
  const events: string[] = [];
  const eventText: string[] = [];
  router.subscribe((event) => {
    eventText.push(JSON.stringify(event));
    switch (event.type) {
      case "exhausted":
        events.push(`exhausted ${event.retryAfterMs ?? "never"}`);
        break;
      case "cooldown":
        events.push(`cooldown ${event.hint} ${event.delayMs}`);
        break;
      case "ready":
        events.push(`ready ${event.hint} ${event.reason}`);
        break;
      default:
        events.push(`${event.type} ${event.hint}`);
    }
  });
  const picks = (count: number): (string | null)[] => Array.from({ length: count }, () => name(router.nextKey()));

  const rotation = { size: router.size, strategy: router.strategy.type, picks: picks(6) };

  const marked = router.markErrorWithDelay(BRAVO, 5_000);
  const state = router.stateOf(BRAVO);
  const picksWhileCooling = picks(4);
  clock += 4_999;
  const stateAfter4999Ms = router.stateOf(BRAVO);
  clock += 1;
  const stateAfter5000Ms = router.stateOf(BRAVO);
  // The cursor is past charlie, so alpha is next; bravo's turn comes after it.
  const cooldown = { marked, state, picksWhileCooling, stateAfter4999Ms, stateAfter5000Ms, pickAfter: name(router.nextKey()) };

  const marks = [router.markBlocked(ALPHA), router.markDisabled(BRAVO), router.markError(CHARLIE)];
  const states = keys.map((key) => router.stateOf(key));
  const pickWhileAllOut = name(router.nextKey());
  const nextReadyInMs = router.nextReadyInMs() ?? null;
  const cooldownOnBlocked = { marked: router.markErrorWithDelay(ALPHA, 10), state: router.stateOf(ALPHA) };
  clock += 1_000;
  const pickAfterCooldown = name(router.nextKey());
  router.clearCooldown(ALPHA);
  const pickAfterClear = picks(3);
  router.markBlocked(ALPHA);
  router.markBlocked(CHARLIE);
  router.nextKey();
  const outOfRotation = {
    marks,
    states,
    pickWhileAllOut,
    nextReadyInMs,
    cooldownOnBlocked,
    pickAfterCooldown,
    pickAfterClear,
    nextReadyInMsWhenOnlyBlockedOrDisabled: router.nextReadyInMs() ?? null,
  };

  const unknown = "sk-unknown-0000000000000";
  const unknownKey = {
    markError: router.markError(unknown),
    markBlocked: router.markBlocked(unknown),
    clearCooldown: router.clearCooldown(unknown),
    stateOf: router.stateOf(unknown) ?? null,
  };

  const snapshot = router.snapshot().map(({ index, hint, state, failures }) => ({ index, hint, state, failures }));
  const seen = eventText.join("\n") + JSON.stringify(router.snapshot());
  const shown = `${String(router)} ${JSON.stringify(router)}`;
  const secrecy = {
    anyKeyInStringOrJson: keys.some((key) => shown.includes(key)),
    snapshot,
    anyKeyInEventsOrSnapshot: keys.some((key) => seen.includes(key)),
  };

  // execute, against a fake fetch that answers by key and by how often that key was called.
  const calls = new Map<string, number>();
  const fakeFetch = async (key: string): Promise<Response> => {
    const who = name(key)!;
    const call = (calls.get(who) ?? 0) + 1;
    calls.set(who, call);
    if (who === "alpha" && call === 1) {
      return new Response("slow down", { status: 429, headers: { "retry-after": "7" } });
    }
    if (who === "bravo") return new Response("bad key", { status: 401 });
    return new Response(`ok from ${who}`, { status: 200, headers: { "content-type": "text/plain" } });
  };
  const executor = new lib.CredentialRouter(keys, { cooldownMs: 1_000, now });
  let attempts: string[] = [];
  const response = await executor.execute((key, { attempt }) => {
    attempts.push(`${attempt}:${name(key)}`);
    return fakeFetch(key);
  });
  const firstAttempts = attempts;
  const body = await response.text();
  const executeStates = keys.map((key) => executor.stateOf(key));
  attempts = [];
  const value = await executor.execute(async (key, { attempt }) => {
    attempts.push(`${attempt}:${name(key)}`);
    return `value from ${name(key)}`;
  });
  let notFoundAttempts = 0;
  const notFound = await executor.execute(async () => {
    notFoundAttempts++;
    return new Response(null, { status: 404 });
  });
  const execute = {
    attempts: firstAttempts,
    status: response.status,
    body,
    states: executeStates,
    nextAttempts: attempts,
    value,
    notFound: { status: notFound.status, attempts: notFoundAttempts, state: executor.stateOf(CHARLIE) },
  };

  // Every key out: with maxWaitMs 0 (the default, stated here) no real time passes.
  clock += 1_000;
  executor.markErrorWithDelay(CHARLIE, 6_500);
  let called = false;
  const failure: unknown = await executor
    .execute(
      async () => {
        called = true;
      },
      { maxWaitMs: 0 },
    )
    .then(
      () => undefined,
      (error: unknown) => error,
    );
  const error = failure as InstanceType<RoundLibrary["NoKeyAvailableError"]>;
  const noKeyAvailable = {
    called,
    isNoKeyAvailableError: lib.isNoKeyAvailableError(failure),
    instanceOfClass: failure instanceof lib.NoKeyAvailableError,
    name: error?.name,
    code: error?.code,
    // Alpha's 7 s cooldown started 1 s ago; charlie's 6.5 s ends later.
    retryAfterMs: error?.retryAfterMs ?? null,
  };

  clock += 6_000;
  attempts = [];
  const later = await executor.execute((key, { attempt }) => {
    attempts.push(`${attempt}:${name(key)}`);
    return fakeFetch(key);
  });
  await later.body?.cancel();
  const afterWaiting = { attempts, status: later.status, state: executor.stateOf(ALPHA) };

  const controller = new AbortController();
  const reason = new Error("the caller gave up");
  controller.abort(reason);
  let abortCalled = false;
  const aborted = await executor
    .execute(
      async () => {
        abortCalled = true;
      },
      { signal: controller.signal },
    )
    .then(
      () => undefined,
      (error: unknown) => error,
    );
  const abort = { rejectedWithReason: aborted === reason, called: abortCalled };

  const parsers = {
    retryAfterSeconds: lib.parseRetryAfter(new Headers({ "retry-after": "3" })) ?? null,
    retryAfterDate:
      lib.parseRetryAfter({ "Retry-After": "Sun, 06 Nov 1994 08:49:37 GMT" }, Date.UTC(1994, 10, 6, 8, 49, 7)) ?? null,
    retryAfterMissing: lib.parseRetryAfter(new Headers()) ?? null,
    fingerprintOfAbc: lib.fingerprint("abc"),
  };

  return {
    rotation,
    cooldown,
    outOfRotation,
    unknownKey,
    events,
    secrecy,
    execute,
    noKeyAvailable,
    afterWaiting,
    abort,
    parsers,
  };
}
