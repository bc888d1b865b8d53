import type { Command } from "../command.ts";
import { convertCommand } from "./convert.ts";
import { reportCommand } from "./report.ts";

/**
 * Every `abl` sub-command. Each lives in its own file beside this one; add one line here per
 * command.
 */
export const commands: readonly Command[] = [reportCommand, convertCommand];
