/**
 * The `abl` command: dispatches to the sub-command whose name matches the longest prefix of the
 * arguments. Only this file reads `process.argv`; SIGINT/SIGTERM abort the running command.
 */
import { UsageError } from "./command.ts";
import { type CommandEntry, commands } from "./commands/index.ts";

function findCommand(argv: string[]): { entry: CommandEntry; rest: string[] } | undefined {
  let best: CommandEntry | undefined;
  for (const c of commands) {
    if (c.name.every((w, i) => argv[i] === w) && (!best || c.name.length > best.name.length))
      best = c;
  }
  return best ? { entry: best, rest: argv.slice(best.name.length) } : undefined;
}

function help(): string {
  const width = Math.max(...commands.map((c) => c.name.join(" ").length), 8);
  return [
    "abl — find and remove the refusal direction of language models, and measure the effect",
    "",
    "usage: abl <command> [options]   (abl <command> --help for details)",
    "",
    ...commands.map((c) => `  ${c.name.join(" ").padEnd(width)}  ${c.summary}`),
  ].join("\n");
}

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  if (argv.length === 0 || argv[0] === "--help" || argv[0] === "-h" || argv[0] === "help") {
    console.log(help());
    return 0;
  }
  const found = findCommand(argv);
  if (!found) {
    console.error(`abl: unknown command "${argv.join(" ")}"\n\n${help()}`);
    return 2;
  }
  const command = await found.entry.load();
  if (found.rest.includes("--help") || found.rest.includes("-h")) {
    console.log(command.usage);
    return 0;
  }
  const controller = new AbortController();
  let interrupts = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    interrupts++;
    if (interrupts > 1) process.exit(130);
    controller.abort(new Error(`interrupted by ${sig}`));
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  try {
    return await command.run(found.rest, controller.signal);
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`abl ${command.name.join(" ")}: ${err.message}\n\n${command.usage}`);
      return 2;
    }
    if (controller.signal.aborted) {
      console.error(`abl: ${String((controller.signal.reason as Error)?.message ?? "aborted")}`);
      return 130;
    }
    console.error(
      `abl ${command.name.join(" ")}: ${err instanceof Error ? err.message : String(err)}`,
    );
    if (process.env.ABL_DEBUG && err instanceof Error) console.error(err.stack);
    return 1;
  }
}

process.exitCode = await main();
