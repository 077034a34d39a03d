/**
 * The gateway's dashboard in a real Chromium (the system's, as the browser suite drives it; never a
 * browser Playwright downloads). Without Chromium these tests are skipped, and the config says so in
 * one line; under CI=true they run, and fail, as test/browser/chromium.node.ts does.
 */
import { mkdirSync } from "node:fs";
import { chromium, type Browser, type Page } from "playwright";
import { afterAll, beforeAll, describe, expect, inject, it, vi } from "vitest";
import { startGateway, type Gateway } from "../examples/gateway.js";
import { startMockUpstream, type MockUpstream } from "../examples/mock-upstream.js";
import { fingerprint } from "../src/index.js";
import { manualClock } from "./helpers/fixtures.js";

// Generous bounds for waiting on a loaded machine; the one timed promise (a change on the page within
// a second of the router's) is measured from the two events, not from these.
vi.setConfig({ testTimeout: 60_000, hookTimeout: 60_000 });
const EVENTUALLY = { timeout: 30_000 };

const TOKEN = "gateway-client-token-0123456789";
const KEY_A = "sk-test-AAAA1111bbbb2222cccc";
const KEY_B = "sk-test-BBBB3333dddd4444eeee";
const KEY_C = "sk-test-CCCC5555ffff6666gggg";
const SECRETS = [KEY_A, KEY_B, KEY_C, TOKEN, ...[KEY_A, KEY_B, KEY_C].map(fingerprint)];
/** Where the screenshot goes: under reports/, which git ignores. */
const SCREENSHOT = new URL("../reports/dashboard/dashboard.png", import.meta.url);

const { path, found, required } = inject("chromium");

describe.runIf(found || required)("dashboard in Chromium", () => {
  let browser: Browser;
  beforeAll(async () => {
    browser = await chromium.launch({
      executablePath: path,
      // As vitest.config.ts launches it for the browser suite.
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
    });
  });
  afterAll(async () => {
    await browser?.close();
  });

  async function setup(): Promise<{ upstream: MockUpstream; gateway: Gateway; page: Page; close(): Promise<void> }> {
    const upstream = await startMockUpstream({ keys: [KEY_A, KEY_B, KEY_C], errorRate: 0, slowRate: 0, chunkDelayMs: 0, now: manualClock(10_000).now });
    const gateway = await startGateway({
      upstream: upstream.url,
      keys: [KEY_A, KEY_B, KEY_C],
      clientToken: TOKEN,
      adminPort: 0,
      // The first ready key, always, so that the test knows which key each attempt uses.
      routerOptions: { strategy: { type: "fill-first" }, preemptive: false, labels: ["main", "backup", "spare"] },
    });
    const page = await browser.newPage({ viewport: { width: 1100, height: 560 } });
    await page.goto(`${gateway.adminUrl}/`);
    return {
      upstream,
      gateway,
      page,
      close: async () => {
        await page.close();
        await gateway.close();
        await upstream.close();
      },
    };
  }

  /** The state badge of each row, and the scope chips it shows. */
  const rows = (page: Page) =>
    page.$$eval("#keys tbody tr", (trs) =>
      trs.map((tr) => ({
        index: Number((tr as HTMLElement).dataset.index),
        hint: tr.querySelector(".hint")!.textContent,
        label: tr.children[2]!.textContent,
        state: (tr as HTMLElement).dataset.state,
        served: tr.querySelector(".served")!.textContent,
        limited: tr.querySelector(".limited")!.textContent,
        scopes: Array.from(tr.querySelectorAll<HTMLElement>(".scope"), (chip) => `${chip.dataset.scope}:${chip.dataset.state}`),
      })),
    );

  it("shows a 429 and a 401 within a second of the router seeing them, and clear makes the blocked key ready", async () => {
    const { upstream, gateway, page, close } = await setup();
    try {
      await page.waitForFunction(() => document.querySelectorAll('#keys tbody tr[data-state="ready"]').length === 3, null, EVENTUALLY);
      expect(await page.textContent("#live")).toBe("live");

      // The page notes when each row shows the change; the router, when it makes it.
      await page.evaluate(() => {
        const seen: Record<string, number> = {};
        (window as unknown as { seen: typeof seen }).seen = seen;
        new MutationObserver(() => {
          const cooling = document.querySelector('tr[data-index="0"] .scope[data-scope="gpt-4o"][data-state="cooldown"]');
          const blocked = document.querySelector('tr[data-index="1"][data-state="blocked"]');
          if (cooling !== null) seen.cooling ??= Date.now();
          if (blocked !== null) seen.blocked ??= Date.now();
        }).observe(document.querySelector("#keys tbody")!, { subtree: true, childList: true, attributes: true, characterData: true });
      });
      const changed: Record<string, number> = {};
      gateway.router.subscribe((event) => {
        if (event.type === "cooldown" && event.index === 0) changed.cooling ??= Date.now();
        if (event.type === "blocked" && event.index === 1) changed.blocked ??= Date.now();
      });

      // Key A answers 429 for gpt-4o, key B has been revoked (401), key C serves the request.
      upstream.throttle(KEY_A, 60_000);
      upstream.revoke(KEY_B);
      const response = await fetch(`${gateway.url}/v1/chat/completions`, {
        method: "POST",
        headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
        body: JSON.stringify({ model: "gpt-4o", messages: [{ role: "user", content: "hi" }] }),
      });
      expect(response.headers.get("x-gateway-attempts")).toBe("3");
      await response.text();

      await page.waitForFunction(() => {
        const { seen } = window as unknown as { seen: Record<string, number> };
        return seen.cooling !== undefined && seen.blocked !== undefined;
      }, null, EVENTUALLY);
      const seen = await page.evaluate(() => (window as unknown as { seen: Record<string, number> }).seen);
      expect(Object.keys(changed).sort()).toEqual(["blocked", "cooling"]);
      for (const change of ["cooling", "blocked"]) {
        expect(seen[change]! - changed[change]!, `${change}: on the page ${seen[change]! - changed[change]!} ms after the router`).toBeLessThanOrEqual(1_000);
      }
      expect(await rows(page)).toEqual([
        { index: 0, hint: "sk-t…cccc", label: "main", state: "ready", served: "0", limited: "1", scopes: ["gpt-4o:cooldown"] },
        { index: 1, hint: "sk-t…eeee", label: "backup", state: "blocked", served: "0", limited: "0", scopes: [] },
        { index: 2, hint: "sk-t…gggg", label: "spare", state: "ready", served: "1", limited: "0", scopes: [] },
      ]);
      expect(await page.textContent('tr[data-index="1"] .reason')).toBe("auth");
      expect(await page.textContent('tr[data-index="0"] .scope')).toMatch(/^gpt-4o: cooldown (\d+ min )?\d+(\.\d)? s \(rate_limit\)$/);
      // The chart's counters: one request, one 429.
      await page.waitForFunction(() => document.querySelector("#total-requests")?.textContent === "1", null, EVENTUALLY);
      expect(await page.textContent("#total-limited")).toBe("1");
      expect(await page.textContent("#count-blocked")).toBe("1");

      mkdirSync(new URL(".", SCREENSHOT), { recursive: true });
      await page.screenshot({ path: SCREENSHOT.pathname });

      await page.click('tr[data-index="1"] button.clear');
      await page.waitForSelector('tr[data-index="1"][data-state="ready"]', EVENTUALLY);
      expect(gateway.router.stateOf(KEY_B)).toEqual({ status: "ready" });
      expect(await page.textContent("#message")).toBe("");

      const html = await page.content();
      for (const secret of SECRETS) expect(html).not.toContain(secret);
    } finally {
      await close();
    }
  });

  it("disables a key from its row, and counts a cooldown down to ready", async () => {
    const { gateway, page, close } = await setup();
    try {
      await page.waitForSelector('tr[data-index="2"][data-state="ready"]', EVENTUALLY);
      await page.click('tr[data-index="2"] button.disable');
      await page.waitForSelector('tr[data-index="2"][data-state="disabled"]', EVENTUALLY);
      expect(gateway.router.stateOf(KEY_C)).toEqual({ status: "disabled" });
      expect(await page.textContent('tr[data-index="2"] .reason')).toBe("manual");
      expect(await page.isDisabled('tr[data-index="2"] button.disable')).toBe(true);

      // A short cooldown: the page shows it, then the key back, with no request in between (the admin
      // looks again when the cooldown is due to end).
      gateway.router.markErrorWithDelay(KEY_A, 300, { reason: "rate_limit" });
      await page.waitForSelector('tr[data-index="0"][data-state="cooldown"]', EVENTUALLY);
      await page.waitForSelector('tr[data-index="0"][data-state="ready"]', EVENTUALLY);
      expect(await page.textContent('tr[data-index="0"] .left')).toBe("");
    } finally {
      await close();
    }
  });
});
