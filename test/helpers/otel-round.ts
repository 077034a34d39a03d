/**
 * One round of `credential-router/otel`, run against each build in each runtime (Node ESM, Node
 * CommonJS, an edge VM, a browser) with a small recording meter of its own, so that it needs no
 * OpenTelemetry SDK where there is no module loader. It returns a JSON-safe transcript; each test
 * compares it with `EXPECTED_OTEL_ROUND`. The Node tests also run `instrument` against the real SDK.
 *
 * Self-contained like `round.ts`: no import is left at run time (the ones below are types), so the
 * edge test can transpile it and evaluate it inside the VM.
 */
import type * as Library from "../../src/index.js";
import type * as Otel from "../../src/otel/index.js";

/** The parts of the packages the round uses. */
export type OtelRoundLibrary = Pick<typeof Library, "CredentialRouter">;
export type OtelRoundEntry = Pick<typeof Otel, "instrument">;

type Attributes = Record<string, string | number>;
interface Instrument {
  name: string;
}

/**
 * A meter that keeps what it is told: counters add up per attribute set, and `collect()` runs the
 * batch callbacks registered. Each data point becomes one line, `name{attributes} value`, with the
 * attributes sorted by name.
 */
export function recordingMeter() {
  const sums = new Map<string, number>();
  const callbacks = new Set<(result: { observe(instrument: Instrument, value: number, attributes?: Attributes): void }) => void>();
  const line = (name: string, attributes: Attributes = {}) =>
    `${name}{${Object.keys(attributes)
      .sort()
      .map((key) => `${key}=${String(attributes[key])}`)
      .join(",")}}`;
  const meter = {
    createObservableGauge: (name: string): Instrument => ({ name }),
    createObservableCounter: (name: string): Instrument => ({ name }),
    createCounter: (name: string) => ({
      add(value: number, attributes?: Attributes) {
        const at = line(name, attributes);
        sums.set(at, (sums.get(at) ?? 0) + value);
      },
    }),
    addBatchObservableCallback: (callback: Parameters<(typeof callbacks)["add"]>[0]) => void callbacks.add(callback),
    removeBatchObservableCallback: (callback: Parameters<(typeof callbacks)["add"]>[0]) => void callbacks.delete(callback),
  };
  const collect = (): { callbacks: number; lines: string[] } => {
    const lines = [...sums].map(([at, value]) => `${at} ${value}`);
    for (const callback of callbacks) callback({ observe: (instrument, value, attributes) => void lines.push(`${line(instrument.name, attributes)} ${value}`) });
    return { callbacks: callbacks.size, lines: lines.sort() };
  };
  return { meter, collect };
}

const ALPHA = "sk-alpha-0000000000000001";
const BRAVO = "sk-bravo-0000000000000002";
const CHARLIE = "sk-charlie-00000000000003";

/** What every runtime must see. */
export const EXPECTED_OTEL_ROUND = {
  watching: {
    callbacks: 1,
    lines: [
      "credential_router.exhaustions{scope=gpt-4o} 1",
      "credential_router.exhaustions{} 0",
      "credential_router.key.state{hint=sk-b…0002,index=1,label=bravo,reason=auth,state=blocked} 1",
      "credential_router.keys{scope=gpt-4o,state=blocked} 1",
      "credential_router.keys{scope=gpt-4o,state=cooldown} 2",
      "credential_router.keys{scope=gpt-4o,state=disabled} 0",
      "credential_router.keys{scope=gpt-4o,state=ready} 0",
      "credential_router.keys{state=blocked} 1",
      "credential_router.keys{state=cooldown} 0",
      "credential_router.keys{state=disabled} 0",
      "credential_router.keys{state=ready} 2",
      "credential_router.marks{reason=auth,state=blocked} 1",
      "credential_router.marks{reason=rate_limit,scope=gpt-4o,state=cooldown} 2",
      "credential_router.picks{} 3",
    ],
  },
  stopped: {
    callbacks: 0,
    lines: [
      "credential_router.exhaustions{scope=gpt-4o} 1",
      "credential_router.exhaustions{} 0",
      "credential_router.marks{reason=auth,state=blocked} 1",
      "credential_router.marks{reason=rate_limit,scope=gpt-4o,state=cooldown} 2",
    ],
  },
};

export type OtelRoundTranscript = { [Section in keyof typeof EXPECTED_OTEL_ROUND]: unknown };

export function runOtelRound(lib: OtelRoundLibrary, otel: OtelRoundEntry): OtelRoundTranscript {
  const time = 1_000;
  const router = new lib.CredentialRouter([ALPHA, BRAVO, CHARLIE], { now: () => time, labels: ["alpha", "bravo", "charlie"] });
  const { meter, collect } = recordingMeter();
  const stop = otel.instrument(router, { meter: meter as unknown as Parameters<typeof otel.instrument>[1]["meter"] });
  router.nextKey();
  router.nextKey();
  router.markErrorWithDelay(ALPHA, 5_000, { reason: "rate_limit", scope: "gpt-4o" });
  router.markErrorWithDelay(CHARLIE, 5_000, { reason: "rate_limit", scope: "gpt-4o" });
  router.markBlocked(BRAVO, { reason: "auth" });
  router.nextKey();
  router.nextKey("gpt-4o");
  const watching = collect();
  stop();
  router.markDisabled(CHARLIE);
  router.nextKey();
  return { watching, stopped: collect() };
}
