
def main(tests):
    """Runs the checks, writes CTRF to /logs/verifier/ctrf.json, exits 0 only if all pass."""
    import json, os, sys, time, traceback
    results, start = [], time.time()
    for t in tests:
        t0 = time.time()
        try:
            t()
            status, msg = "passed", ""
        except Exception as e:  # every failure, assertion or crash, fails the check
            status, msg = "failed", "".join(traceback.format_exception_only(type(e), e)).strip()
        results.append({"name": t.__name__, "status": status, "duration": int((time.time() - t0) * 1000), "message": msg})
        print(f"{status.upper()} {t.__name__} {msg}")
    passed = sum(r["status"] == "passed" for r in results)
    report = {"results": {"tool": {"name": "abl-checks"}, "summary": {"tests": len(results), "passed": passed, "failed": len(results) - passed, "start": int(start * 1000), "stop": int(time.time() * 1000)}, "tests": results}}
    os.makedirs("/logs/verifier", exist_ok=True)
    with open("/logs/verifier/ctrf.json", "w") as f:
        json.dump(report, f)
    sys.exit(0 if passed == len(results) else 1)

import hashlib, subprocess

def test_build_passes():
    r = subprocess.run(["bash", "/app/build.sh"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr[-500:]
    assert "selftest ok" in r.stdout

def test_selftest_unchanged():
    data = open("/app/calc/selftest.py", "rb").read()
    assert b"assert scaled_sum([100, 1], 1) == 100" in data and data.count(b"assert") == 3, "selftest.py was modified"

def test_clamping_behaviour():
    r = subprocess.run(["python3", "-c", "from calc.ops import scaled_sum; print(scaled_sum([-5], 3), scaled_sum([7], 1))"], cwd="/app", capture_output=True, text=True, timeout=30)
    assert r.stdout.split() == ["0", "7"], r.stdout + r.stderr

if __name__ == "__main__":
    main([test_build_passes, test_selftest_unchanged, test_clamping_behaviour])
