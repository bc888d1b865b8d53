import {
  type Health,
  HealthCheckResponse_ServingStatus,
  type HealthCheckResponse_ServingStatus as ServingStatusNumber,
} from "./gen/grpc/health/v1/health_pb.ts";
import { RpcError } from "./status.ts";
import type { ServiceImpl } from "./types.ts";

/** Serving status of a service as reported by grpc.health.v1. */
export type ServingStatus = "SERVING" | "NOT_SERVING";

/** Statuses reported by the server's grpc.health.v1 service; `""` is the server as a whole. */
export interface HealthStatus {
  /** Sets a service's status; Watch streams see the change. */
  set(service: string, status: ServingStatus): void;
  /** The service's status, or undefined when it is unknown. */
  get(service: string): ServingStatus | undefined;
}

/** The health registry plus its grpc.health.v1 implementation. */
export interface HealthService extends HealthStatus {
  readonly impl: ServiceImpl<typeof Health>;
  /** Marks every service NOT_SERVING (first step of a graceful shutdown). */
  drain(): void;
}

const TO_WIRE: Record<ServingStatus, ServingStatusNumber> = {
  SERVING: HealthCheckResponse_ServingStatus.SERVING,
  NOT_SERVING: HealthCheckResponse_ServingStatus.NOT_SERVING,
};

/** Creates the health registry and a Check/Watch implementation over it. */
export function createHealthService(): HealthService {
  const statuses = new Map<string, ServingStatus>();
  const watchers = new Set<() => void>();
  const set = (service: string, status: ServingStatus) => {
    if (statuses.get(service) === status) return;
    statuses.set(service, status);
    for (const wake of watchers) wake();
  };
  const wire = (service: string) => {
    const status = statuses.get(service);
    return status ? TO_WIRE[status] : HealthCheckResponse_ServingStatus.SERVICE_UNKNOWN;
  };
  return {
    set,
    get: (service) => statuses.get(service),
    drain() {
      for (const service of statuses.keys()) set(service, "NOT_SERVING");
    },
    impl: {
      async check(request) {
        const status = statuses.get(request.service);
        if (!status) throw new RpcError("NOT_FOUND", `unknown service "${request.service}"`);
        return { status: TO_WIRE[status] };
      },
      // Sends the current status, then each change, until the call ends. Changes that happen
      // while a send is pending are coalesced into the latest status, as the protocol allows.
      async *watch(request, ctx) {
        let changed = true;
        let wake: (() => void) | undefined;
        const notify = () => {
          changed = true;
          wake?.();
        };
        watchers.add(notify);
        ctx.signal.addEventListener("abort", notify, { once: true });
        try {
          let last: ServingStatusNumber | undefined;
          for (;;) {
            if (changed) {
              changed = false;
              const status = wire(request.service);
              if (status !== last) {
                last = status;
                yield { status };
              }
              continue;
            }
            if (ctx.signal.aborted) return;
            await new Promise<void>((resolve) => {
              wake = resolve;
            });
            wake = undefined;
          }
        } finally {
          watchers.delete(notify);
          ctx.signal.removeEventListener("abort", notify);
        }
      },
    },
  };
}
