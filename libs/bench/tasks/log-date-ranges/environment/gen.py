# Writes deterministic logs to /app/logs (a fixed linear congruential generator, no randomness).
import os
os.makedirs("/app/logs", exist_ok=True)
state = 12345
def nxt(n):
    global state
    state = (state * 1103515245 + 12345) % 2**31
    return state % n
levels = ["ERROR", "WARNING", "INFO", "INFO", "INFO", "WARNING"]
for f in range(3):
    with open(f"/app/logs/service{f}.log", "w") as out:
        for _ in range(400):
            day = 1 + nxt(20)
            out.write(f"2024-03-{day:02d} {nxt(24):02d}:{nxt(60):02d}:{nxt(60):02d} [{levels[nxt(6)]}] event {nxt(1000)}\n")
