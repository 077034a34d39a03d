import { measure } from "mitata";
import { CredentialRouter } from "../dist/index.js";
const [type, size] = [process.argv[2], +process.argv[3]];
const keys = Array.from({ length: size }, (_, i) => `sk-bench-${i}-secret`);
const strategy = type === "weighted" ? { type, weights: keys.map((_, i) => 1 + (i % 5)) } : type === "priority" ? { type, tiers: keys.map((_, i) => (i < size / 2 ? 0 : 1)) } : { type };
const r = new CredentialRouter(keys, { strategy });
let best = Infinity;
for (let i = 0; i < 3; i++) best = Math.min(best, (await measure(() => r.nextKey())).avg);
console.log(type, size, best.toFixed(2));
