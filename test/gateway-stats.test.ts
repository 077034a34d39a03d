import { describe, expect, it } from "vitest";
import { GatewayStats } from "../examples/gateway-stats.js";
import { manualClock } from "./helpers/fixtures.js";

describe("gateway stats", () => {
  it("counts what the upstream answered each key", () => {
    const stats = new GatewayStats(2, { now: manualClock(0).now });
    for (const status of [200, 201, 429, 429, 401, 403, 500, 504, 0, 404]) stats.attempt(1, status);
    stats.attempt(0, 200);
    expect(stats.key(1)).toEqual({ served: 2, rateLimited: 2, rejected: 2, failed: 3 });
    expect(stats.key(0)).toEqual({ served: 1, rateLimited: 0, rejected: 0, failed: 0 });
    // Out of range: nothing counted, zeros read.
    stats.attempt(2, 200);
    expect(stats.key(2)).toEqual({ served: 0, rateLimited: 0, rejected: 0, failed: 0 });
    expect(stats.totals().rateLimited).toBe(2);
  });

  it("counts requests, those that waited and those that failed", () => {
    const stats = new GatewayStats(1, { now: manualClock(0).now });
    stats.request(200, false);
    stats.request(200, true);
    stats.request(503, true);
    stats.request(429, false);
    expect(stats.totals()).toEqual({ requests: 4, waited: 2, failed: 1, rateLimited: 0 });
  });

  it("keeps per-second counts of requests and 429s for historySeconds, oldest first", () => {
    const clock = manualClock(10_000_500);
    const stats = new GatewayStats(1, { now: clock.now, historySeconds: 4 });
    stats.request(200, false);
    stats.attempt(0, 429);
    clock.advance(1_000);
    stats.request(200, false);
    stats.request(200, false);
    clock.advance(2_000);
    stats.request(200, false);
    expect(stats.series()).toEqual({ end: 10_003, requests: [1, 2, 0, 1], rateLimited: [1, 0, 0, 0] });
    // Seconds with nothing in them are zeros; older ones drop out.
    clock.advance(2_000);
    expect(stats.series()).toEqual({ end: 10_005, requests: [0, 1, 0, 0], rateLimited: [0, 0, 0, 0] });
    clock.advance(60_000);
    expect(stats.series()).toEqual({ end: 10_065, requests: [0, 0, 0, 0], rateLimited: [0, 0, 0, 0] });
  });

  it("rejects a size or history that is not a whole number", () => {
    expect(() => new GatewayStats(-1)).toThrow(RangeError);
    expect(() => new GatewayStats(1, { historySeconds: 0 })).toThrow(/historySeconds/);
  });
});
