/** The task set shipped with the project (libs/bench/tasks): offline, small, TB2 format. */
import { fileURLToPath } from "node:url";

/** Absolute path of the shipped local task set. */
export const LOCAL_TASKS_DIR = fileURLToPath(new URL("../tasks/", import.meta.url));
