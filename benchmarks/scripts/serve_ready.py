"""Seconds from `serve` process start to the first 200 of /healthz, then two `GET /v1/payouts?limit=100` (peak RSS after).

    python benchmarks/scripts/serve_ready.py STORE_URL
"""
import json, os, subprocess, sys, time, urllib.request, socket
store = sys.argv[1]
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
tokens = "/tmp/serve_tokens.toml"
open(tokens, "w").write('[[tokens]]\nname = "bench"\nrole = "finance"\nsha256 = "c91270f01ceee8339ac31ca5df0f3cff64c6c6dfdc6887bce31e3def0e2ed882"\n')
t0 = time.monotonic()
p = subprocess.Popen([os.environ.get("LEDGER_CLI", "commission-ledger"), "--store", store, "serve", "--port", str(port), "--tokens", tokens],
                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
def get(path, auth=False):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if auth: req.add_header("Authorization", "Bearer fin-secret-0123456789abcdef")
    return urllib.request.urlopen(req, timeout=30)
ready = None
while time.monotonic() - t0 < 120:
    try:
        if get("/healthz").status == 200:
            ready = time.monotonic() - t0; break
    except Exception:
        time.sleep(0.02)
t1 = time.monotonic(); r = get("/v1/payouts?limit=100", True); body = r.read(); first = time.monotonic() - t1
t2 = time.monotonic(); r = get("/v1/payouts?limit=100", True); r.read(); second = time.monotonic() - t2
rss = int([l for l in open(f"/proc/{p.pid}/status") if l.startswith("VmHWM")][0].split()[1]) // 1024
p.terminate(); p.wait()
print(f"serve ready {ready:.2f} s; first /v1/payouts?limit=100 {first*1000:.0f} ms ({len(body)} bytes), second {second*1000:.0f} ms; peak RSS {rss} MiB")
