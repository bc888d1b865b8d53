export { type ClientOptions, createClient } from "./client.ts";
export * from "./gen/abliterate/v1/capture_pb.ts";
export * from "./gen/abliterate/v1/common_pb.ts";
export * from "./gen/abliterate/v1/directions_pb.ts";
export * from "./gen/abliterate/v1/patcher_pb.ts";
export * from "./gen/abliterate/v1/scheduler_pb.ts";
export * from "./gen/grpc/health/v1/health_pb.ts";
export type { HealthStatus, ServingStatus } from "./health.ts";
export { loggingInterceptor, metricsInterceptor } from "./interceptors.ts";
export {
  isTerminalJobState,
  JOB_STATE_NAMES,
  type JobStateName,
  jobStateFromName,
  jobStateName,
} from "./job-state.ts";
export {
  type JobRecordFields,
  jobProgress,
  jobStatus,
  requireJobRecord,
  type StepKind,
} from "./job-status.ts";
export {
  type RunGrpcServiceOptions,
  type RunningGrpcService,
  runGrpcService,
} from "./run-service.ts";
export {
  createServer,
  DEFAULT_SHUTDOWN_GRACE_MS,
  MAX_MESSAGE_BYTES,
  type RpcServer,
  type ServerOptions,
  type ShutdownOptions,
} from "./server.ts";
export { RpcConfigError } from "./service-definition.ts";
export {
  Code,
  type CodeName,
  codeName,
  ERROR_DETAIL_TRAILER,
  fromServiceError,
  type GrpcStatus,
  RpcError,
  type RpcErrorOptions,
  type StatusMappingOptions,
  toGrpcStatus,
} from "./status.ts";
export type {
  CallOptions,
  HandlerContext,
  RpcClient,
  ServerStreamingHandler,
  ServiceImpl,
  UnaryHandler,
} from "./types.ts";
