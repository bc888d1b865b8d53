#!/bin/bash
set -euo pipefail
cd /app/repo
sha=$(git log -g --format='%H %s' HEAD | awk '/Add release notes/ {print $1; exit}')
git -c user.name=oracle -c user.email=oracle@example.com cherry-pick "$sha"
