import type {
  DescMessage,
  DescMethod,
  DescService,
  MessageInitShape,
  MessageShape,
} from "@bufbuild/protobuf";
import type { Metadata } from "@grpc/grpc-js";
import type { Logger } from "pino";

/** What a handler gets besides its request. */
export interface HandlerContext {
  /**
   * Aborted when the deadline passes, the client cancels, or the server shuts down; the reason
   * is an `RpcError` (DEADLINE_EXCEEDED, CANCELLED or UNAVAILABLE). Pass it to long operations.
   */
  readonly signal: AbortSignal;
  /** Logger with `rpc` (method) and `rpcId` bound. */
  readonly log: Logger;
  /** Method path without the leading slash, e.g. `abliterate.v1.CaptureService/StartCapture`. */
  readonly method: string;
  /** Deadline as epoch milliseconds, if the caller set one. */
  readonly deadline: number | undefined;
  /** Request metadata (headers). */
  readonly metadata: Metadata;
  /** The caller's address. */
  readonly peer: string;
}

/** A unary handler: one request in, one response out. */
export type UnaryHandler<I extends DescMessage, O extends DescMessage> = (
  request: MessageShape<I>,
  ctx: HandlerContext,
) => Promise<MessageInitShape<O>>;

/** A server-streaming handler, written as an `async function*` yielding responses. */
export type ServerStreamingHandler<I extends DescMessage, O extends DescMessage> = (
  request: MessageShape<I>,
  ctx: HandlerContext,
) => AsyncIterable<MessageInitShape<O>>;

type HandlerFor<M> = M extends {
  methodKind: "unary";
  input: infer I extends DescMessage;
  output: infer O extends DescMessage;
}
  ? UnaryHandler<I, O>
  : M extends {
        methodKind: "server_streaming";
        input: infer I extends DescMessage;
        output: infer O extends DescMessage;
      }
    ? ServerStreamingHandler<I, O>
    : never;

/** The implementation of a service: one handler per method, keyed by the method's local name. */
export type ServiceImpl<S extends DescService> = {
  [K in keyof S["method"]]: HandlerFor<S["method"][K]>;
};

/** Per-call options on the client. */
export interface CallOptions {
  /** Cancels the call (the server's handler sees its `ctx.signal` abort). */
  signal?: AbortSignal;
  /** Deadline relative to now; the server sees it as `ctx.deadline`. */
  timeoutMs?: number;
  /** Extra request metadata (ASCII values). */
  metadata?: Record<string, string>;
}

type ClientMethodFor<M> = M extends {
  methodKind: "unary";
  input: infer I extends DescMessage;
  output: infer O extends DescMessage;
}
  ? (request: MessageInitShape<I>, options?: CallOptions) => Promise<MessageShape<O>>
  : M extends {
        methodKind: "server_streaming";
        input: infer I extends DescMessage;
        output: infer O extends DescMessage;
      }
    ? (request: MessageInitShape<I>, options?: CallOptions) => AsyncIterable<MessageShape<O>>
    : never;

/** A typed client: unary methods return promises, streaming methods async iterables. */
export type RpcClient<S extends DescService> = {
  [K in keyof S["method"]]: ClientMethodFor<S["method"][K]>;
} & {
  /** Closes the channel; calls in flight fail with CANCELLED. */
  close(): void;
};

/** Any handler, as stored internally. */
export type AnyHandler = (
  request: never,
  ctx: HandlerContext,
) => Promise<object> | AsyncIterable<object>;

/** A method descriptor with its handler. */
export interface BoundMethod {
  method: DescMethod;
  handler: AnyHandler;
}
