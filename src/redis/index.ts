/**
 * `credential-router/redis`: shares key states between routers through Redis (Node only). See
 * {@link attachRedis}.
 * @packageDocumentation
 */
export { attachRedis, type AttachRedisOptions } from "./attach.js";
export type { RedisLink, RedisLinkEvent, RedisLinkListener, RedisLinkStatus, SharedRouter } from "./link.js";
export type {
  NodeRedisConnectionEvent,
  NodeRedisLike,
  NodeRedisSubscriberLike,
  RedisConnectionEvent,
  RedisLike,
  RedisSubscriberLike,
} from "./client.js";
export { RedisSyncError, isRedisSyncError, type RedisSyncOperation } from "./errors.js";
