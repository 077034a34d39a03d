/**
 * `credential-router/redis`: shares key states between routers through Redis (Node only). See
 * {@link attachRedis}.
 * @packageDocumentation
 */
export {
  attachRedis,
  type AttachRedisOptions,
  type RedisLink,
  type RedisLinkEvent,
  type RedisLinkListener,
  type RedisLinkStatus,
  type SharedRouter,
} from "./attach.js";
export type {
  NodeRedisConnectionEvent,
  NodeRedisLike,
  NodeRedisSubscriberLike,
  RedisConnectionEvent,
  RedisLike,
  RedisSubscriberLike,
} from "./client.js";
export { RedisSyncError, isRedisSyncError, type RedisSyncOperation } from "./errors.js";
