
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

import os, stat, subprocess

def ssl(*args):
    r = subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=20)
    assert r.returncode == 0, r.stderr
    return r.stdout

def test_key():
    out = ssl("rsa", "-in", "/app/ssl/server.key", "-noout", "-text")
    assert "2048 bit" in out, out[:200]
    assert stat.S_IMODE(os.stat("/app/ssl/server.key").st_mode) == 0o600

def test_cert_subject_and_self_signed():
    subj = ssl("x509", "-in", "/app/ssl/server.crt", "-noout", "-subject")
    assert "CN = abl.local" in subj and "O = Abliterate Dev" in subj, subj
    ssl("verify", "-CAfile", "/app/ssl/server.crt", "/app/ssl/server.crt")

def test_key_matches_and_validity():
    a = ssl("x509", "-in", "/app/ssl/server.crt", "-noout", "-pubkey")
    b = ssl("rsa", "-in", "/app/ssl/server.key", "-pubout")
    assert a.strip() == b.strip(), "certificate is not for server.key"
    ssl("x509", "-in", "/app/ssl/server.crt", "-noout", "-checkend", str(364 * 86400))
    r = subprocess.run(["openssl", "x509", "-in", "/app/ssl/server.crt", "-noout", "-checkend", str(366 * 86400)], capture_output=True)
    assert r.returncode != 0, "certificate is valid for more than 365 days"

def test_fingerprint():
    fp = ssl("x509", "-in", "/app/ssl/server.crt", "-noout", "-fingerprint", "-sha256").strip().split("=", 1)[1]
    assert open("/app/ssl/fingerprint.txt").read().strip() == fp

if __name__ == "__main__":
    main([test_key, test_cert_subject_and_self_signed, test_key_matches_and_validity, test_fingerprint])
