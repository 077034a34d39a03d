/**
 * `credential-router/otel`: reports a router's keys as OpenTelemetry metrics. See
 * {@link instrument}. Needs `@opentelemetry/api` (an optional peer dependency) for its types only;
 * it imports nothing at run time, and runs in Node, browsers and edge runtimes alike.
 * @packageDocumentation
 */
export { instrument } from "./instrument.js";
export type { InstrumentOptions, InstrumentedRouter, MeterLike } from "./instrument.js";
