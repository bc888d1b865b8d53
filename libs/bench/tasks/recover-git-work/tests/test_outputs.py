
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

import subprocess

def git(*args):
    return subprocess.run(["git", "-C", "/app/repo", *args], check=True, capture_output=True, text=True).stdout

EXPECTED = "# Release notes\n\n- v2: prints v2\n- fixes the greeting\n"

def test_on_main():
    assert git("rev-parse", "--abbrev-ref", "HEAD").strip() == "main", "main must be checked out"

def test_notes_on_main():
    assert git("show", "main:NOTES.md") == EXPECTED, "NOTES.md on main differs from the lost commit"

def test_history_kept():
    log = git("log", "--format=%s", "main")
    assert "Bump to v2" in log and "Initial app" in log, "earlier history of main was lost"

if __name__ == "__main__":
    main([test_on_main, test_notes_on_main, test_history_kept])
