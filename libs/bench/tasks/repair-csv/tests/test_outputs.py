
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


EXPECTED = [
    "id,date,customer,amount",
    "1,2024-01-05,Bob,30.00",
    '2,2024-01-07,"Carol, Inc.",12.50',
    "3,2024-02-10,Alice Smith,1200.50",
    "4,2024-03-01,Dan,2000.00",
    "10,2024-03-15,Eve,0.50",
]

def test_clean_file():
    got = open("/app/data/orders_clean.csv").read().splitlines()
    assert got == EXPECTED, got

def test_original_kept():
    assert "Carol, Inc." in open("/app/data/orders.csv").read(), "orders.csv must not be deleted"

if __name__ == "__main__":
    main([test_clean_file, test_original_kept])
