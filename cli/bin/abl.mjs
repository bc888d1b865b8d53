#!/usr/bin/env node
// Entry point for the `abl` command: registers the tsx loader in this process and runs the
// TypeScript sources, so signals reach the command itself (no wrapper process in between).
import { register } from "tsx/esm/api";

register();
await import("../src/main.ts");
