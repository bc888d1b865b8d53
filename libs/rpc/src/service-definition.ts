import {
  create,
  type DescMessage,
  type DescMethod,
  type DescService,
  fromBinary,
  isMessage,
  type Message,
  toBinary,
} from "@bufbuild/protobuf";
import type { MethodDefinition, ServiceDefinition } from "@grpc/grpc-js";

/** Thrown when a service or its implementation cannot be served or called. */
export class RpcConfigError extends Error {
  override name = "RpcConfigError";
}

/** The gRPC path of a method, e.g. `/abliterate.v1.CaptureService/StartCapture`. */
export function methodPath(method: DescMethod): string {
  return `/${method.parent.typeName}/${method.name}`;
}

/** Serializer for a message type: accepts a full message or a plain init object. */
export function serializer(schema: DescMessage): (value: object) => Buffer {
  return (value) => {
    const message = isMessage(value, schema) ? value : create(schema, value as never);
    const bytes = toBinary(schema, message as Message);
    // Wrap without copying: grpc-js wants a Buffer, protobuf-es gives a Uint8Array.
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  };
}

/** Deserializer for a message type. */
export function deserializer(schema: DescMessage): (bytes: Buffer) => Message {
  return (bytes) => fromBinary(schema, bytes);
}

/**
 * Only unary and server-streaming methods are supported: every abliterate contract is
 * Start/Get (unary) and Watch (server streaming), and grpc.health.v1 is the same.
 */
export function assertSupported(method: DescMethod): void {
  if (method.methodKind !== "unary" && method.methodKind !== "server_streaming") {
    throw new RpcConfigError(
      `${methodPath(method)} is ${method.methodKind}; @abl/rpc serves unary and server_streaming methods only`,
    );
  }
}

/**
 * Builds the grpc-js service definition of a protobuf-es service descriptor (keys are the
 * methods' local names, so they match the implementation object's keys).
 */
export function serviceDefinition(service: DescService): ServiceDefinition {
  const definition: Record<string, MethodDefinition<object, object>> = {};
  for (const method of service.methods) {
    assertSupported(method);
    definition[method.localName] = {
      path: methodPath(method),
      originalName: method.name,
      requestStream: false,
      responseStream: method.methodKind === "server_streaming",
      requestSerialize: serializer(method.input),
      requestDeserialize: deserializer(method.input),
      responseSerialize: serializer(method.output),
      responseDeserialize: deserializer(method.output),
    };
  }
  return definition as ServiceDefinition;
}
