
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

import json

EXPECTED = {
    "debug": True,
    "features": ["search"],
    "log": {"level": "info"},
    "region": "eu-west",
    "server": {"host": "0.0.0.0", "port": 9090, "tls": {"cert": "/etc/ssl/a.pem", "enabled": True}},
}

def test_merged_values():
    assert json.load(open("/app/config/merged.json")) == EXPECTED

def test_format():
    text = open("/app/config/merged.json").read()
    assert text.strip() == json.dumps(EXPECTED, indent=2, sort_keys=True), "keys must be sorted, indent 2"

if __name__ == "__main__":
    main([test_merged_values, test_format])
