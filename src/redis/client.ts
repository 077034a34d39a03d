/**
 * The clients the adapter accepts, as structural types (ioredis, its `Cluster`, node-redis 4 and 5,
 * or any client or test double shaped like one of them), and the one internal shape the link uses
 * whatever the kind: {@link Connection} for commands, {@link Subscription} for the channel.
 */
import { describe } from "../secret.js";

/** Connection events the adapter listens to on an ioredis-shaped client. */
export type RedisConnectionEvent = "ready" | "close" | "end";

/**
 * An ioredis-shaped client: an ioredis `Redis` or `Cluster` fits. The adapter never ends it: it
 * belongs to the caller.
 */
export interface RedisLike {
  /**
   * The connection's state, as ioredis names it (`"wait"`, `"connecting"`, `"ready"`, `"reconnecting"`,
   * `"close"`, `"end"`). Optional: without it, the adapter follows the `ready`/`close`/`end` events.
   */
  readonly status?: string;
  /** `EVALSHA sha1 numkeys key… arg…`. */
  evalsha(sha1: string, numberOfKeys: number, ...keysAndArgs: string[]): Promise<unknown>;
  /** `EVAL script numkeys key… arg…`, used when the server answers `NOSCRIPT` to `EVALSHA`. */
  eval(script: string, numberOfKeys: number, ...keysAndArgs: string[]): Promise<unknown>;
  /** A new connection with the same settings: the adapter subscribes on it and ends it on `close()`. */
  duplicate(): RedisSubscriberLike;
  /** Adds a connection event listener. */
  on(event: RedisConnectionEvent, listener: () => void): unknown;
  /** Removes a listener added with `on`. */
  off(event: RedisConnectionEvent, listener: () => void): unknown;
}

/** The connection the adapter opens with an ioredis-shaped client's `duplicate()`. */
export interface RedisSubscriberLike {
  /** As {@link RedisLike.status}. */
  readonly status?: string;
  /** `SUBSCRIBE channel`; resolves once the server confirmed it. */
  subscribe(channel: string): Promise<unknown>;
  /** Adds a listener for published messages: the channel and the message. */
  on(event: "message", listener: (channel: string, message: string) => void): unknown;
  /** Adds a listener for connection errors. */
  on(event: "error", listener: (error: Error) => void): unknown;
  /** Adds a connection event listener. */
  on(event: RedisConnectionEvent, listener: () => void): unknown;
  /** Removes a `message` listener added with `on`. */
  off(event: "message", listener: (channel: string, message: string) => void): unknown;
  /** Removes an `error` listener added with `on`. */
  off(event: "error", listener: (error: Error) => void): unknown;
  /** Removes a connection event listener added with `on`. */
  off(event: RedisConnectionEvent, listener: () => void): unknown;
  /** Ends the connection politely (`QUIT`). */
  quit(): Promise<unknown>;
  /** Ends the connection at once, without reconnecting. */
  disconnect(): void;
}

/** Connection events the adapter listens to on a node-redis client. */
export type NodeRedisConnectionEvent = "ready" | "end" | "reconnecting";

/**
 * A node-redis client (`redis` 4 or 5, `createClient()`, connected by the caller): what the adapter
 * uses of it. The adapter never ends it.
 */
export interface NodeRedisLike {
  /** Whether the connection is up and ready for commands. */
  readonly isReady: boolean;
  /** `EVALSHA`. */
  evalSha(sha1: string, options: { keys: string[]; arguments: string[] }): Promise<unknown>;
  /** `EVAL`, used when the server answers `NOSCRIPT` to `EVALSHA`. */
  eval(script: string, options: { keys: string[]; arguments: string[] }): Promise<unknown>;
  /** A new, unconnected client with the same settings: the adapter connects it, subscribes on it and ends it on `close()`. */
  duplicate(): NodeRedisSubscriberLike;
  /** Adds a connection event listener. */
  on(event: NodeRedisConnectionEvent, listener: () => void): unknown;
  /** Removes a listener added with `on`. */
  off(event: NodeRedisConnectionEvent, listener: () => void): unknown;
}

/** The client the adapter opens with a node-redis client's `duplicate()`. */
export interface NodeRedisSubscriberLike {
  /** As {@link NodeRedisLike.isReady}. */
  readonly isReady: boolean;
  /** Opens the connection. */
  connect(): Promise<unknown>;
  /** `SUBSCRIBE channel`, with the listener of its messages (message first, then channel). */
  subscribe(channel: string, listener: (message: string, channel: string) => void): Promise<unknown>;
  /** Adds a connection event listener. */
  on(event: NodeRedisConnectionEvent, listener: () => void): unknown;
  /** Adds a listener for connection errors. */
  on(event: "error", listener: (error: Error) => void): unknown;
  /** Removes a connection event listener added with `on`. */
  off(event: NodeRedisConnectionEvent, listener: () => void): unknown;
  /** Removes an `error` listener added with `on`. */
  off(event: "error", listener: (error: Error) => void): unknown;
  /** Ends the connection at once (node-redis 5). */
  destroy?(): void;
  /** Ends the connection at once (node-redis 4; deprecated in 5). */
  disconnect?(): Promise<unknown>;
}

/** What the link uses to send commands, whatever the client. @internal */
export interface Connection {
  evalsha(sha1: string, keys: string[], args: string[]): Promise<unknown>;
  eval(script: string, keys: string[], args: string[]): Promise<unknown>;
  /** Whether the connection is up, when the client says so; `undefined`: follow the events. */
  readonly up: boolean | undefined;
  /** Listens to the connection going up and down; returns the function that stops listening. */
  listen(onUp: () => void, onDown: () => void): () => void;
  /** Opens the subscriber connection (may throw, as a client's `duplicate()` may). */
  openSubscription(): Subscription;
}

/** The subscriber connection the link opened. @internal */
export interface Subscription {
  /** Subscribes to `channel` (again: nothing more), resolving once the server confirmed it. */
  subscribe(channel: string): Promise<unknown>;
  readonly up: boolean | undefined;
  /** Listens to messages, the connection going up and down, and errors; returns the function that stops. */
  listen(
    onMessage: (channel: string, message: string) => void,
    onUp: () => void,
    onDown: () => void,
    onError: (error: Error) => void,
  ): () => void;
  /** Ends the connection (within `timeoutMs` when polite); never rejects. */
  close(timeoutMs: number): Promise<void>;
}

function isFunction(value: unknown, name: string): boolean {
  return typeof (value as Record<string, unknown>)[name] === "function";
}

/**
 * The {@link Connection} of an ioredis- or node-redis-shaped client.
 * @throws TypeError when `redis` is neither.
 * @internal
 */
export function connectionOf(redis: unknown): Connection {
  if (typeof redis !== "object" || redis === null) throw new TypeError(`redis must be an ioredis or node-redis client, received ${describe(redis)}`);
  const common = ["eval", "duplicate", "on", "off"];
  if (isFunction(redis, "evalsha")) return checked(redis, ["evalsha", ...common]) && ioredisConnection(redis as RedisLike);
  if (isFunction(redis, "evalSha")) return checked(redis, ["evalSha", ...common]) && nodeRedisConnection(redis as NodeRedisLike);
  throw new TypeError(`redis.evalsha (ioredis) or redis.evalSha (node-redis) must be a function, received ${describe((redis as { evalsha?: unknown }).evalsha)}`);
}

function checked(redis: object, methods: readonly string[]): true {
  for (const method of methods) {
    const member = (redis as Record<string, unknown>)[method];
    if (typeof member !== "function") throw new TypeError(`redis.${method} must be a function, received ${describe(member)}`);
  }
  return true;
}

function listenAll(target: { on(event: string, listener: () => void): unknown; off(event: string, listener: () => void): unknown }, events: Array<[string, () => void]>): () => void {
  for (const [event, listener] of events) target.on(event, listener);
  return () => {
    for (const [event, listener] of events) target.off(event, listener);
  };
}

type Emitter = Parameters<typeof listenAll>[0];

function ioredisConnection(redis: RedisLike): Connection {
  return {
    evalsha: (sha1, keys, args) => redis.evalsha(sha1, keys.length, ...keys, ...args),
    eval: (script, keys, args) => redis.eval(script, keys.length, ...keys, ...args),
    get up() {
      const status = redis.status;
      // "wait" is ioredis's lazyConnect before the first command, which connects it.
      return typeof status === "string" ? status === "ready" || status === "wait" : undefined;
    },
    listen: (onUp, onDown) => listenAll(redis as unknown as Emitter, [["ready", onUp], ["close", onDown], ["end", onDown]]),
    openSubscription: () => ioredisSubscription(redis.duplicate()),
  };
}

function ioredisSubscription(subscriber: RedisSubscriberLike): Subscription {
  return {
    subscribe: (channel) => subscriber.subscribe(channel),
    get up() {
      const status = subscriber.status;
      return typeof status === "string" ? status === "ready" : undefined;
    },
    listen(onMessage, onUp, onDown, onError) {
      const emitter = subscriber as unknown as Emitter;
      const stop = listenAll(emitter, [["message", onMessage as () => void], ["ready", onUp], ["close", onDown], ["end", onDown]]);
      subscriber.on("error", onError);
      // The error listener stays after stop(), so that the client does not report the errors of a
      // connection being ended as unhandled.
      return stop;
    },
    async close(timeoutMs) {
      try {
        if (subscriber.status === undefined || subscriber.status === "ready") await withTimeout(subscriber.quit(), timeoutMs);
      } catch {
        // Ending it below is enough.
      }
      try {
        subscriber.disconnect();
      } catch {
        // Already ended.
      }
    },
  };
}

function nodeRedisConnection(redis: NodeRedisLike): Connection {
  return {
    evalsha: (sha1, keys, args) => redis.evalSha(sha1, { keys, arguments: args }),
    eval: (script, keys, args) => redis.eval(script, { keys, arguments: args }),
    get up() {
      return typeof redis.isReady === "boolean" ? redis.isReady : undefined;
    },
    listen: (onUp, onDown) => listenAll(redis as unknown as Emitter, [["ready", onUp], ["end", onDown], ["reconnecting", onDown]]),
    openSubscription: () => nodeRedisSubscription(redis.duplicate()),
  };
}

function nodeRedisSubscription(subscriber: NodeRedisSubscriberLike): Subscription {
  let onMessage: ((channel: string, message: string) => void) | undefined;
  let subscribed: Promise<unknown> | undefined;
  let connecting: Promise<unknown> | undefined;
  const connect = () => {
    // Failures arrive as `error` events too; the link retries by itself.
    connecting ??= subscriber.connect().then(undefined, (error: unknown) => {
      connecting = undefined;
      throw error;
    });
    return connecting;
  };
  return {
    subscribe(channel) {
      // node-redis subscribes again by itself after a reconnect: once is enough.
      subscribed ??= connect()
        .then(() => subscriber.subscribe(channel, (message, from) => onMessage?.(from, message)))
        .then(undefined, (error: unknown) => {
          subscribed = undefined;
          throw error;
        });
      return subscribed;
    },
    get up() {
      return typeof subscriber.isReady === "boolean" ? subscriber.isReady : undefined;
    },
    listen(listener, onUp, onDown, onError) {
      onMessage = listener;
      const stop = listenAll(subscriber as unknown as Emitter, [["ready", onUp], ["end", onDown], ["reconnecting", onDown]]);
      subscriber.on("error", onError);
      return () => {
        onMessage = undefined;
        stop();
      };
    },
    async close() {
      try {
        if (typeof subscriber.destroy === "function") subscriber.destroy();
        else await subscriber.disconnect?.();
      } catch {
        // Already ended.
      }
    },
  };
}

/** Resolves with the promise's value, or `undefined` once `ms` passed or when it rejects. @internal */
export function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(undefined), ms);
    (timer as { unref?: () => void }).unref?.();
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      () => {
        clearTimeout(timer);
        resolve(undefined);
      },
    );
  });
}
