/**
 * Whether process `pid` exists on this machine. Crash-leftover sweeps use it: temp folders carry
 * their writer's pid, and a folder whose pid is gone belongs to a killed run.
 */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but belongs to someone else.
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}
