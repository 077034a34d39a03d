/**
 * The few Redis commands the adapter uses, as structural types: an ioredis client fits them, and so
 * does any client (or test double) with the same methods.
 */

/** Connection events the adapter listens to. */
export type RedisConnectionEvent = "ready" | "close" | "end";

/**
 * What `attachRedis` needs of the client it is given: two script commands, one read, a way to open a
 * second connection for the subscription, and the connection events. An `ioredis` `Redis` fits.
 * The adapter never ends this client: it belongs to the caller.
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
  /** `HMGET key field…`: `null` for a missing field. */
  hmget(key: string, ...fields: string[]): Promise<Array<string | null>>;
  /** A new connection with the same settings: the adapter subscribes on it and ends it on `close()`. */
  duplicate(): RedisSubscriberLike;
  /** Adds a connection event listener. */
  on(event: RedisConnectionEvent, listener: () => void): unknown;
  /** Removes a listener added with `on`. */
  off(event: RedisConnectionEvent, listener: () => void): unknown;
}

/** The connection the adapter opens with `duplicate()` to receive other instances' changes. */
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
