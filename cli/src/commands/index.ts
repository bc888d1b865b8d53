import type { Command } from "../command.ts";
import { benchRunCommand } from "./bench.ts";
import { captureCommand } from "./capture.ts";
import { convertCommand } from "./convert.ts";
import { directionsCommand } from "./directions.ts";
import { evalRefusalCommand } from "./eval-refusal.ts";
import { reportCommand } from "./report.ts";
import { serveCommand } from "./serve.ts";

/**
 * Every `abl` sub-command. Each lives in its own file beside this one; add one line here per
 * command.
 */
export const commands: readonly Command[] = [benchRunCommand, reportCommand, convertCommand, captureCommand, directionsCommand, evalRefusalCommand, serveCommand];
