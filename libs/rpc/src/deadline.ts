import type { Deadline } from "@grpc/grpc-js";

/**
 * A client gives up at its own deadline and resets the stream; the reset reaches the server
 * before the server's copy of the deadline (grpc-timeout counted from when the headers arrived)
 * has passed, by one network trip plus event-loop delay. A cancellation this close to the
 * deadline is reported as the deadline. Half a second covers a loaded machine; an explicit
 * cancel that close to the deadline would have lost the race anyway.
 */
export const DEADLINE_SLACK_MS = 500;

/** The deadline as epoch milliseconds, or undefined when the call has none. */
export function deadlineMs(deadline: Deadline): number | undefined {
  if (deadline === Infinity) return undefined;
  return deadline instanceof Date ? deadline.getTime() : deadline;
}

/** Why a call with this deadline was cancelled now: its deadline, or the client. */
export function cancelCause(
  deadline: number | undefined,
  now = Date.now(),
): "DEADLINE_EXCEEDED" | "CANCELLED" {
  return deadline !== undefined && now >= deadline - DEADLINE_SLACK_MS
    ? "DEADLINE_EXCEEDED"
    : "CANCELLED";
}
