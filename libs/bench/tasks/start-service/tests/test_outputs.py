
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

import hashlib, urllib.request

def test_health():
    with urllib.request.urlopen("http://127.0.0.1:8123/health", timeout=5) as r:
        assert r.status == 200 and r.read().strip() == b"ok"

def test_server_unchanged():
    src = open("/app/service/server.py").read()
    assert 'int(cfg["server"]["port"])' in src and "serve_forever" in src, "server.py was modified"

if __name__ == "__main__":
    main([test_health, test_server_unchanged])
