
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

import glob, re

def expected():
    rows = {"week1": [0, 0, 0], "week2": [0, 0, 0], "total": [0, 0, 0]}
    idx = {"ERROR": 0, "WARNING": 1, "INFO": 2}
    for path in sorted(glob.glob("/app/logs/*.log")):
        for line in open(path):
            m = re.match(r"(\d{4}-\d{2}-\d{2}) \S+ \[(\w+)\]", line)
            if not m:
                continue
            d, lvl = m.group(1), m.group(2)
            rows["total"][idx[lvl]] += 1
            if "2024-03-01" <= d <= "2024-03-07":
                rows["week1"][idx[lvl]] += 1
            elif "2024-03-08" <= d <= "2024-03-14":
                rows["week2"][idx[lvl]] += 1
    return ["period,ERROR,WARNING,INFO"] + [f"{k},{v[0]},{v[1]},{v[2]}" for k, v in rows.items()]

def test_summary():
    got = [l.strip() for l in open("/app/summary.csv") if l.strip()]
    assert got == expected(), f"summary.csv is {got}"

if __name__ == "__main__":
    main([test_summary])
