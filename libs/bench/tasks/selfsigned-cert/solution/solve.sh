#!/bin/bash
set -e
mkdir -p /app/ssl && cd /app/ssl
openssl req -x509 -newkey rsa:2048 -nodes -keyout server.key -out server.crt -days 365 \
  -subj "/O=Abliterate Dev/CN=abl.local" 2>/dev/null
chmod 600 server.key
openssl x509 -in server.crt -noout -fingerprint -sha256 | cut -d= -f2 > fingerprint.txt
