import type { Command } from "../command.ts";
import { patchCommand } from "./patch.ts";
import { reportCommand } from "./report.ts";

/**
 * Every `abl` sub-command. Each lives in its own file beside this one; add one line here per
 * command.
 */
export const commands: readonly Command[] = [reportCommand, patchCommand];
