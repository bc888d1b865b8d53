#!/bin/bash
sed -i 's/^port = .*/port = 8123/' /app/service/config.ini
cd /app/service && nohup setsid python3 server.py > /tmp/server.log 2>&1 &
for _ in $(seq 50); do
  python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8123/health', timeout=1)" 2>/dev/null && exit 0
  sleep 0.1
done
exit 1
