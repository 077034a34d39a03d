/**
 * Throws unless the package's own names resolve to its build (`dist/`, what users run). The
 * tsconfig maps them to `src/` for type-checking, and tsx follows it unless told otherwise:
 * `npm run bench` runs the benchmarks with `TSX_TSCONFIG_PATH=bench/tsx.tsconfig.json`, which has
 * no such mapping.
 */
export function assertBuilt(): void {
  for (const name of ["credential-router", "credential-router/redis"]) {
    const resolved = import.meta.resolve(name);
    if (!resolved.includes("/dist/")) throw new Error(`${name} resolves to ${resolved}, not to the build: run the benchmarks with \`npm run bench\``);
  }
}
