export * from "./router.js";
export type { CredentialRouterOptions } from "./options.js";
export type { KeyState, KeyStatus } from "./key-state.js";
export type { RoutingStrategy } from "./strategy.js";
