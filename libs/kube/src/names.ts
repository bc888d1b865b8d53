import { createHash } from "node:crypto";
import { KubeSpecError } from "./errors.ts";

/** DNS-1123 label limit for object names and label values. */
export const MAX_NAME_LENGTH = 63;

/**
 * Turns any string into a DNS-1123 label (lower-case alphanumerics and '-', ≤ 63 chars,
 * alphanumeric at both ends). Long or changed inputs get an 8-hex suffix of their sha256 so that
 * two different inputs do not collapse to the same name.
 */
export function toDnsLabel(input: string, maxLength = MAX_NAME_LENGTH): string {
  const cleaned = input
    .toLowerCase()
    .replace(/[^a-z0-9-]+/g, "-")
    .replace(/^-+|-+$/g, "");
  if (cleaned === input && cleaned.length <= maxLength && cleaned !== "") return cleaned;
  const hash = createHash("sha256").update(input).digest("hex").slice(0, 8);
  const head = cleaned.slice(0, maxLength - 9).replace(/-+$/g, "");
  return head === "" ? `x-${hash}` : `${head}-${hash}`;
}

/** A label value: ≤ 63 chars of [A-Za-z0-9._-], alphanumeric at both ends (hash-suffixed if changed). */
export function toLabelValue(input: string): string {
  const cleaned = input
    .replace(/[^A-Za-z0-9._-]+/g, "-")
    .replace(/^[^A-Za-z0-9]+|[^A-Za-z0-9]+$/g, "");
  if (cleaned === input && cleaned.length <= MAX_NAME_LENGTH) return cleaned;
  const hash = createHash("sha256").update(input).digest("hex").slice(0, 8);
  const head = cleaned.slice(0, MAX_NAME_LENGTH - 9).replace(/[^A-Za-z0-9]+$/g, "");
  return head === "" ? hash : `${head}-${hash}`;
}

/** Throws unless `name` already is a DNS-1123 label. */
export function assertDnsLabel(name: string, key: string): void {
  if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(name) || name.length > MAX_NAME_LENGTH) {
    throw new KubeSpecError(
      `${key} "${name}" is not a DNS-1123 label (lower-case alphanumerics and '-', at most ${MAX_NAME_LENGTH} chars)`,
    );
  }
}

/** Label keys used on every object the project creates. */
export const LABELS = {
  name: "app.kubernetes.io/name",
  component: "app.kubernetes.io/component",
  managedBy: "app.kubernetes.io/managed-by",
  sweep: "abliterate.dev/sweep",
  variant: "abliterate.dev/variant",
  trial: "abliterate.dev/trial",
  task: "abliterate.dev/task",
} as const;

/** Ids that identify what an object belongs to; each becomes a label. */
export interface WorkloadIds {
  readonly sweep?: string;
  readonly variant?: string;
  readonly trial?: string;
  readonly task?: string;
}

/** The standard label set for a component plus the given ids. */
export function workloadLabels(component: string, ids: WorkloadIds = {}): Record<string, string> {
  const labels: Record<string, string> = {
    [LABELS.name]: "abliterate",
    [LABELS.component]: component,
    [LABELS.managedBy]: "abliterate",
  };
  for (const k of ["sweep", "variant", "trial", "task"] as const) {
    const v = ids[k];
    if (v !== undefined) labels[LABELS[k]] = toLabelValue(v);
  }
  return labels;
}
