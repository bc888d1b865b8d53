import type { Command } from "../command.ts";
import { benchRunCommand } from "./bench.ts";
import { captureCommand } from "./capture.ts";
import { convertCommand } from "./convert.ts";
import { demoCommand } from "./demo.ts";
import { directionsCommand } from "./directions.ts";
import { evalRefusalCommand } from "./eval-refusal.ts";
import { patchCommand } from "./patch.ts";
import { reportCommand } from "./report.ts";
import { runCommand } from "./run.ts";
import { serveCommand } from "./serve.ts";

/**
 * Every `abl` sub-command. Each lives in its own file beside this one; add one line here per
 * command.
 */
export const commands: readonly Command[] = [
  runCommand,
  demoCommand,
  benchRunCommand,
  reportCommand,
  patchCommand,
  convertCommand,
  captureCommand,
  directionsCommand,
  evalRefusalCommand,
  serveCommand,
];
