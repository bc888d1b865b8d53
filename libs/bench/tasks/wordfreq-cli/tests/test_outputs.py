
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

import os, subprocess, tempfile

TEXT = "Apple banana apple. BANANA cherry, apple! don't Don't dog's cherry banana kiwi\nzebra Zebra ZEBRA"

def run(*args):
    return subprocess.run(["/app/wordfreq", *args], capture_output=True, text=True, timeout=20)

def test_executable():
    assert os.access("/app/wordfreq", os.X_OK), "/app/wordfreq must be executable"

def test_counts_and_ties():
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write(TEXT)
    r = run(f.name, "4")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["3 apple", "3 banana", "3 zebra", "2 cherry"], r.stdout

def test_apostrophes():
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write(TEXT)
    lines = run(f.name, "10").stdout.splitlines()
    assert "2 don't" in lines and "1 dog's" in lines, lines

def test_missing_file():
    r = run("/nonexistent/file.txt", "3")
    assert r.returncode == 2 and r.stderr.strip() != "", (r.returncode, r.stderr)

if __name__ == "__main__":
    main([test_executable, test_counts_and_ties, test_apostrophes, test_missing_file])
