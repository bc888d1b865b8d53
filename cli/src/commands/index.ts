import type { Command } from "../command.ts";

/**
 * One `abl` sub-command as the dispatcher sees it: its name and summary, and how to load it. The
 * command's module (and the libraries it needs: onnxruntime, the Kubernetes client, ...) is only
 * imported when that command runs, so `abl --help` and light commands start fast.
 */
export interface CommandEntry {
  readonly name: readonly string[];
  readonly summary: string;
  load(): Promise<Command>;
}

/** Every `abl` sub-command. Each lives in its own file beside this one; add one entry per command. */
export const commands: readonly CommandEntry[] = [
  {
    name: ["run"],
    summary: "run a sweep spec embedded on this machine (resumes after a kill)",
    load: async () => (await import("./run.ts")).runCommand,
  },
  {
    name: ["demo"],
    summary: "the built-in sweep on SmolLM2-135M-Instruct, end to end to report.html",
    load: async () => (await import("./demo.ts")).demoCommand,
  },
  {
    name: ["bench", "run"],
    summary: "run an agent through Terminal-Bench tasks in sandboxes and record every trial",
    load: async () => (await import("./bench.ts")).benchRunCommand,
  },
  {
    name: ["report"],
    summary: "statistics, plots and an HTML report from trial records",
    load: async () => (await import("./report.ts")).reportCommand,
  },
  {
    name: ["patch"],
    summary: "remove the refusal direction from a checkpoint's weights (streamed, folder or S3)",
    load: async () => (await import("./patch.ts")).patchCommand,
  },
  {
    name: ["convert", "gguf"],
    summary: "convert a GGUF model into a Hugging Face checkpoint folder",
    load: async () => (await import("./convert.ts")).convertCommand,
  },
  {
    name: ["capture"],
    summary: "capture residual activations of a model over a contrast set",
    load: async () => (await import("./capture.ts")).captureCommand,
  },
  {
    name: ["directions"],
    summary: "compute per-layer refusal directions, rank layers and select one",
    load: async () => (await import("./directions.ts")).directionsCommand,
  },
  {
    name: ["eval-refusal"],
    summary: "measure refusal rate (Wilson CI, judges) and KL against the base model",
    load: async () => (await import("./eval-refusal.ts")).evalRefusalCommand,
  },
  {
    name: ["serve"],
    summary: "serve a model on the built-in CPU engine with an OpenAI-compatible API",
    load: async () => (await import("./serve.ts")).serveCommand,
  },
];
