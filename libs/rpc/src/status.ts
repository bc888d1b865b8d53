import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { Metadata, type ServiceError } from "@grpc/grpc-js";
import { ErrorDetailSchema } from "./gen/abliterate/v1/common_pb.ts";

/** gRPC status codes by name (the numbers are fixed by the gRPC protocol). */
export const Code = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

/** Name of a gRPC status code, e.g. `"NOT_FOUND"`. */
export type CodeName = keyof typeof Code;

const CODE_NAMES = Object.fromEntries(Object.entries(Code).map(([k, v]) => [v, k])) as Record<
  number,
  CodeName
>;

/** The name of a numeric gRPC status code (`"UNKNOWN"` for numbers outside the protocol). */
export function codeName(code: number): CodeName {
  return CODE_NAMES[code] ?? "UNKNOWN";
}

/**
 * Trailer key carrying an encoded `abliterate.v1.ErrorDetail` (the `-bin` suffix makes gRPC
 * base64 it on the wire).
 */
export const ERROR_DETAIL_TRAILER = "abl-error-detail-bin";

/**
 * Longest status message sent to a caller. Lib error messages are one line with the numbers;
 * anything longer is most likely an embedded payload that belongs in the log.
 */
const MAX_DETAILS_CHARS = 1024;

/** Options for {@link RpcError}. */
export interface RpcErrorOptions {
  cause?: unknown;
  /** Offending request fields, path -> problem; sent to the caller in the error detail. */
  fields?: Record<string, string>;
}

/**
 * An error with a gRPC status: thrown by handlers to choose the code and the message the caller
 * sees, and thrown by clients for every failed call.
 */
export class RpcError extends Error {
  override name = "RpcError";
  readonly code: CodeName;
  readonly fields: Record<string, string>;
  constructor(code: CodeName, message: string, options: RpcErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.fields = options.fields ?? {};
  }
}

/** The status a server sends for an error: numeric code, caller-safe message, trailers. */
export interface GrpcStatus {
  code: number;
  details: string;
  metadata: Metadata;
}

/** Options for {@link toGrpcStatus}. */
export interface StatusMappingOptions {
  /**
   * Error class names mapped to codes, checked first along the prototype chain
   * (e.g. `{ StoreError: "UNAVAILABLE" }` also covers its subclasses).
   */
  errorCodes?: Readonly<Record<string, CodeName>>;
}

/**
 * How lib error class names map to codes when no explicit mapping applies. The libs name their
 * errors after what went wrong (`ObjectNotFoundError`, `InvalidKeyError`, `SpecError`), so the
 * name is the contract; order matters (the first match wins).
 */
const NAME_RULES: ReadonlyArray<readonly [RegExp, CodeName]> = [
  [/^AbortError$/, "CANCELLED"],
  [/Timeout/, "DEADLINE_EXCEEDED"],
  [/NotFound/, "NOT_FOUND"],
  [/AlreadyExists|Duplicate/, "ALREADY_EXISTS"],
  [/Precondition|Conflict|Revision/, "FAILED_PRECONDITION"],
  [/Exhausted|TooLarge|LimitExceeded|Quota|Oversize/, "RESOURCE_EXHAUSTED"],
  [/Unavailable/, "UNAVAILABLE"],
  [/Invalid|Validation|Usage|Spec|Config|Parse|Input/, "INVALID_ARGUMENT"],
];

/** Class names of `err` from its own class up to (not including) Error. */
function classNames(err: Error): string[] {
  const names = [err.name];
  for (
    let p = Object.getPrototypeOf(err);
    p && p !== Error.prototype;
    p = Object.getPrototypeOf(p)
  ) {
    const name = (p.constructor as { name?: string } | undefined)?.name;
    if (name && !names.includes(name)) names.push(name);
  }
  return names;
}

function truncate(message: string): string {
  const firstLine = message.split("\n")[0] ?? "";
  return firstLine.length > MAX_DETAILS_CHARS
    ? `${firstLine.slice(0, MAX_DETAILS_CHARS)}…`
    : firstLine;
}

function errorDetailTrailer(code: CodeName, message: string, fields: Record<string, string>) {
  const metadata = new Metadata();
  if (Object.keys(fields).length > 0) {
    const detail = create(ErrorDetailSchema, { code: code.toLowerCase(), message, fields });
    metadata.set(ERROR_DETAIL_TRAILER, Buffer.from(toBinary(ErrorDetailSchema, detail)));
  }
  return metadata;
}

/**
 * Maps any thrown value to the gRPC status sent to the caller. {@link RpcError} keeps its code
 * and message; named lib errors map by class name (explicit `errorCodes` first, then the
 * built-in rules: not-found, invalid, already-exists, precondition, exhausted, timeout, abort)
 * and keep their one-line message; everything else becomes INTERNAL with a generic message.
 * Stacks and causes never reach the caller: the server logs the original error.
 */
export function toGrpcStatus(err: unknown, options: StatusMappingOptions = {}): GrpcStatus {
  if (err instanceof RpcError) {
    const details = truncate(err.message);
    return {
      code: Code[err.code],
      details,
      metadata: errorDetailTrailer(err.code, details, err.fields),
    };
  }
  if (err instanceof Error) {
    const names = classNames(err);
    let code: CodeName | undefined;
    for (const name of names) {
      code = options.errorCodes?.[name];
      if (code) break;
    }
    if (!code) {
      for (const [pattern, mapped] of NAME_RULES) {
        if (names.some((n) => pattern.test(n))) {
          code = mapped;
          break;
        }
      }
    }
    if (code && code !== "INTERNAL" && code !== "UNKNOWN") {
      const details = truncate(err.message);
      return { code: Code[code], details, metadata: errorDetailTrailer(code, details, {}) };
    }
  }
  return { code: Code.INTERNAL, details: "internal error", metadata: new Metadata() };
}

/** True for a grpc-js client error (an Error with a numeric `code` and `details`). */
function isServiceError(err: unknown): err is ServiceError {
  return err instanceof Error && typeof (err as Partial<ServiceError>).code === "number";
}

/** Turns a grpc-js client error into an {@link RpcError} with the server's fields, if any. */
export function fromServiceError(err: unknown): RpcError {
  if (err instanceof RpcError) return err;
  if (!isServiceError(err)) {
    return new RpcError("UNKNOWN", err instanceof Error ? err.message : String(err), {
      cause: err,
    });
  }
  let fields: Record<string, string> = {};
  const raw = err.metadata?.get(ERROR_DETAIL_TRAILER)[0];
  if (raw instanceof Buffer) {
    try {
      fields = { ...fromBinary(ErrorDetailSchema, raw).fields };
    } catch {
      // A malformed detail trailer must not hide the status itself.
    }
  }
  return new RpcError(codeName(err.code), err.details, { cause: err, fields });
}
