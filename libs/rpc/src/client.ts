import type { DescMethod, DescService, Message } from "@bufbuild/protobuf";
import {
  type ChannelCredentials,
  type ChannelOptions,
  Client,
  type CallOptions as GrpcCallOptions,
  credentials as grpcCredentials,
  Metadata,
} from "@grpc/grpc-js";
import { MAX_MESSAGE_BYTES } from "./server.ts";
import {
  assertSupported,
  deserializer,
  methodPath,
  RpcConfigError,
  serializer,
} from "./service-definition.ts";
import { fromServiceError, RpcError } from "./status.ts";
import type { CallOptions, RpcClient } from "./types.ts";

/** Options for {@link createClient}. */
export interface ClientOptions {
  /** Server address, `host:port` (any grpc-js target works, e.g. `dns:///svc:50051`). */
  address: string;
  /** Channel credentials; default insecure (inside the cluster network). */
  credentials?: ChannelCredentials;
  /** Extra grpc-js channel options. */
  channelOptions?: ChannelOptions;
  /** Deadline applied to calls that give no `timeoutMs` (default: none). */
  defaultTimeoutMs?: number;
}

function toMetadata(values: Record<string, string> | undefined): Metadata {
  const metadata = new Metadata();
  for (const [key, value] of Object.entries(values ?? {})) metadata.set(key, value);
  return metadata;
}

function callOptions(options: CallOptions, defaultTimeoutMs: number | undefined): GrpcCallOptions {
  const timeoutMs = options.timeoutMs ?? defaultTimeoutMs;
  if (timeoutMs === undefined) return {};
  if (!(timeoutMs > 0) || !Number.isFinite(timeoutMs)) {
    throw new RpcConfigError(`timeoutMs must be a positive finite number, got ${timeoutMs}`);
  }
  return { deadline: Date.now() + timeoutMs };
}

function cancelledBefore(signal: AbortSignal): RpcError {
  return new RpcError("CANCELLED", "call cancelled before it started", { cause: signal.reason });
}

/**
 * Creates a typed client for a protobuf-es service over @grpc/grpc-js. Unary methods return
 * promises, server-streaming methods async iterables (the call starts on first iteration and is
 * cancelled when the loop exits early). Every call takes `{ signal, timeoutMs, metadata }`;
 * failures reject with {@link RpcError}.
 *
 * @example
 * const capture = createClient(CaptureService, { address: "capture:50051" });
 * const { jobId } = await capture.startCapture({ model, batchSize: 8 }, { timeoutMs: 5_000 });
 * for await (const { event } of capture.watchCapture({ jobId }, { signal })) console.log(event);
 * capture.close();
 */
export function createClient<S extends DescService>(
  service: S,
  options: ClientOptions,
): RpcClient<S> {
  const client = new Client(
    options.address,
    options.credentials ?? grpcCredentials.createInsecure(),
    {
      "grpc.max_receive_message_length": MAX_MESSAGE_BYTES,
      "grpc.max_send_message_length": MAX_MESSAGE_BYTES,
      ...options.channelOptions,
    },
  );
  const { defaultTimeoutMs } = options;

  const unary = (method: DescMethod) => {
    const path = methodPath(method);
    const serialize = serializer(method.input);
    const deserialize = deserializer(method.output);
    return (request: object, opts: CallOptions = {}) =>
      new Promise<Message>((resolve, reject) => {
        const { signal } = opts;
        if (signal?.aborted) {
          reject(cancelledBefore(signal));
          return;
        }
        const call = client.makeUnaryRequest(
          path,
          serialize,
          deserialize,
          request,
          toMetadata(opts.metadata),
          callOptions(opts, defaultTimeoutMs),
          (err, response) => {
            signal?.removeEventListener("abort", onAbort);
            if (err || !response) reject(fromServiceError(err));
            else resolve(response);
          },
        );
        const onAbort = () => call.cancel();
        signal?.addEventListener("abort", onAbort, { once: true });
      });
  };

  const serverStreaming = (method: DescMethod) => {
    const path = methodPath(method);
    const serialize = serializer(method.input);
    const deserialize = deserializer(method.output);
    return async function* (request: object, opts: CallOptions = {}): AsyncGenerator<Message> {
      const { signal } = opts;
      if (signal?.aborted) throw cancelledBefore(signal);
      const call = client.makeServerStreamRequest(
        path,
        serialize,
        deserialize,
        request,
        toMetadata(opts.metadata),
        callOptions(opts, defaultTimeoutMs),
      );
      const onAbort = () => call.cancel();
      signal?.addEventListener("abort", onAbort, { once: true });
      try {
        for await (const message of call) yield message as Message;
      } catch (err) {
        throw fromServiceError(err);
      } finally {
        signal?.removeEventListener("abort", onAbort);
        // No-op once the status arrived; stops the server's handler when the loop broke early.
        call.cancel();
      }
    };
  };

  const methods: Record<string, unknown> = {};
  for (const method of service.methods) {
    assertSupported(method);
    methods[method.localName] =
      method.methodKind === "unary" ? unary(method) : serverStreaming(method);
  }
  methods.close = () => client.close();
  return methods as RpcClient<S>;
}
