/**
 * A small Dockerfile reader for the local sandbox, which has no image: it honours WORKDIR, ENV,
 * COPY/ADD of local files, and RUN; FROM, ARG, LABEL, USER, EXPOSE, CMD, ENTRYPOINT and
 * HEALTHCHECK are recorded but have no effect here. A RUN directly preceded by the comment
 * `# local: skip` is skipped by the sandbox (it installs what the host already provides, e.g.
 * apt packages, which the offline sandbox cannot fetch).
 */
import { TaskLoadError } from "./errors.ts";

/** One step the local sandbox applies. */
export type DockerStep =
  | { readonly type: "workdir"; readonly path: string }
  | { readonly type: "env"; readonly name: string; readonly value: string }
  | { readonly type: "copy"; readonly sources: readonly string[]; readonly dest: string }
  | { readonly type: "run"; readonly command: string; readonly skipLocal: boolean };

const IGNORED = new Set([
  "FROM",
  "ARG",
  "LABEL",
  "USER",
  "EXPOSE",
  "CMD",
  "ENTRYPOINT",
  "HEALTHCHECK",
  "SHELL",
  "STOPSIGNAL",
  "VOLUME",
  "MAINTAINER",
]);

function splitWords(text: string): string[] {
  const t = text.trim();
  if (t.startsWith("[")) {
    try {
      const arr = JSON.parse(t) as unknown;
      if (Array.isArray(arr) && arr.every((x) => typeof x === "string")) return arr as string[];
    } catch {
      // Not JSON form; fall through to whitespace words.
    }
  }
  return t.split(/\s+/).filter((w) => w !== "");
}

/** Parses Dockerfile text into the steps the local sandbox applies. */
export function parseDockerfile(text: string, where = "Dockerfile"): DockerStep[] {
  const steps: DockerStep[] = [];
  const lines = text.split("\n");
  let skipNext = false;
  for (let i = 0; i < lines.length; i++) {
    let line = lines[i]!;
    const lineNo = i + 1;
    if (line.trim() === "") continue;
    if (line.trim().startsWith("#")) {
      if (/^#\s*local:\s*skip\s*$/.test(line.trim())) skipNext = true;
      continue;
    }
    while (line.endsWith("\\") && i + 1 < lines.length) {
      i++;
      const next = lines[i]!;
      if (next.trim().startsWith("#")) continue;
      line = `${line.slice(0, -1)}\n${next}`;
    }
    const m = /^\s*([A-Za-z]+)\s+([\s\S]*)$/.exec(line);
    if (!m) throw new TaskLoadError(`${where}:${lineNo}: cannot parse "${line.slice(0, 80)}"`);
    const op = m[1]!.toUpperCase();
    const rest = m[2]!.trim();
    if (IGNORED.has(op)) continue;
    switch (op) {
      case "WORKDIR":
        steps.push({ type: "workdir", path: rest });
        break;
      case "ENV": {
        const eq = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/s;
        const words = rest.match(/(?:[^\s"']+|"[^"]*"|'[^']*')+/g) ?? [];
        if (words.length > 0 && eq.test(words[0]!)) {
          for (const w of words) {
            const kv = eq.exec(w);
            if (!kv) throw new TaskLoadError(`${where}:${lineNo}: bad ENV "${w}"`);
            steps.push({
              type: "env",
              name: kv[1]!,
              value: kv[2]!.replace(/^(["'])(.*)\1$/s, "$2"),
            });
          }
        } else {
          const sp = /^(\S+)\s+(.*)$/s.exec(rest);
          if (!sp) throw new TaskLoadError(`${where}:${lineNo}: bad ENV "${rest}"`);
          steps.push({ type: "env", name: sp[1]!, value: sp[2]! });
        }
        break;
      }
      case "COPY":
      case "ADD": {
        const words = splitWords(rest).filter(
          (w) => !w.startsWith("--chown") && !w.startsWith("--chmod"),
        );
        if (words.some((w) => w.startsWith("--"))) {
          throw new TaskLoadError(
            `${where}:${lineNo}: ${op} option ${words.find((w) => w.startsWith("--"))} is not supported by the local sandbox`,
          );
        }
        if (words.length < 2)
          throw new TaskLoadError(`${where}:${lineNo}: ${op} needs a source and a destination`);
        const sources = words.slice(0, -1);
        if (sources.some((s) => /^[a-z]+:\/\//.test(s) || s.split("/").includes(".."))) {
          throw new TaskLoadError(
            `${where}:${lineNo}: ${op} sources must be files inside environment/`,
          );
        }
        steps.push({ type: "copy", sources, dest: words.at(-1)! });
        break;
      }
      case "RUN":
        steps.push({ type: "run", command: rest, skipLocal: skipNext });
        break;
      default:
        throw new TaskLoadError(
          `${where}:${lineNo}: instruction ${op} is not supported by the local sandbox`,
        );
    }
    skipNext = false;
  }
  return steps;
}
