import { type DestinationStream, type LevelWithSilent, type Logger, pino } from "pino";
import { redactJsonLine, redactValue } from "./redact.ts";

/** A pino logger; children made with `log.child({ jobId })` carry their bound ids on every line. */
export type { Logger };

/** Log levels accepted by {@link createLogger}. */
export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;

/** Options for {@link createLogger}. */
export interface LoggerOptions {
  /** Service name, bound as `service` on every line. */
  service: string;
  /** Minimum level; default `info`. */
  level?: LevelWithSilent;
  /** Where lines go; default stdout. Tests pass a stream to capture the output. */
  destination?: DestinationStream;
}

/** Thrown when logger options are invalid. */
export class TelemetryConfigError extends Error {
  override name = "TelemetryConfigError";
}

/**
 * Creates the process logger: pino JSON lines to stdout with an ISO `time`, the level as a word,
 * `service` bound, and secrets redacted (authorization headers, keys ending in `secretKey`,
 * `password` or `token`, `HF_TOKEN`, bearer credentials and `hf_…` tokens inside text).
 */
export function createLogger(options: LoggerOptions): Logger {
  const level = options.level ?? "info";
  if (!(LOG_LEVELS as readonly string[]).includes(level)) {
    throw new TelemetryConfigError(`log level "${level}" is not one of ${LOG_LEVELS.join(", ")}`);
  }
  if (options.service.length === 0) {
    throw new TelemetryConfigError("logger service name must not be empty");
  }
  return pino(
    {
      level,
      base: { service: options.service, pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: {
        level: (label) => ({ level: label }),
        bindings: (bindings) => redactValue(bindings) as Record<string, unknown>,
        log: (obj) => redactValue(obj) as Record<string, unknown>,
      },
      hooks: { streamWrite: redactJsonLine },
    },
    options.destination ?? pino.destination({ dest: 1, sync: false }),
  );
}
