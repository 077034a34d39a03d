import { measure } from "mitata";
import { CredentialRouter } from "../src/index.js";
const keys = Array.from({ length: 4 }, (_, i) => `sk-test-${i}-abcdefghijklmnop`);
const router = new CredentialRouter(keys);
const fn = async () => 1;
const s = await measure(async () => router.execute(fn));
console.log("execute", s.avg.toFixed(0));
const s2 = await measure(async () => { const k = router.nextKey()!; const v = await fn(); router.markSuccess(k); return v; });
console.log("manual", s2.avg.toFixed(0));
