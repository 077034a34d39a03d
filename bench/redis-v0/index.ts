// The Redis adapter as it was before issue 9 (commit 9e43ddd), kept as the baseline of bench/redis.ts.
// Not part of the package; do not edit but to keep it compiling.
/**
 * `credential-router/redis`: shares key states between routers through Redis (Node only). See
 * {@link attachRedis}.
 * @packageDocumentation
 */
export { attachRedis } from "./link.js";
export type { AttachRedisOptions, RedisLink, RedisLinkEvent, RedisLinkListener, RedisLinkStatus, SharedRouter } from "./link.js";
export type { RedisConnectionEvent, RedisLike, RedisSubscriberLike } from "./client.js";
export { RedisSyncError, isRedisSyncError, type RedisSyncOperation } from "./errors.js";
