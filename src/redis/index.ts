/**
 * `credential-router/redis`: shares key states between routers through Redis (Node only). See
 * {@link attachRedis}.
 * @packageDocumentation
 */
export { attachRedis } from "./link.js";
export type { AttachRedisOptions, RedisLink, RedisLinkEvent, RedisLinkListener, RedisLinkStatus, SharedRouter } from "./link.js";
export type { RedisConnectionEvent, RedisLike, RedisSubscriberLike } from "./client.js";
export { RedisSyncError, isRedisSyncError, type RedisSyncOperation } from "./errors.js";
