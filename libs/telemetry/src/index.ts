export {
  createLogger,
  LOG_LEVELS,
  type Logger,
  type LoggerOptions,
  TelemetryConfigError,
} from "./logger.ts";
export { createMetrics, type MetricsOptions } from "./metrics.ts";
export { isSecretKey, REDACTED, redactText, redactValue } from "./redact.ts";
export {
  startTelemetryServer,
  type TelemetryServer,
  type TelemetryServerOptions,
} from "./telemetry-server.ts";
