#!/bin/bash
set -euo pipefail
export GIT_AUTHOR_DATE="2024-01-01T00:00:00Z" GIT_COMMITTER_DATE="2024-01-01T00:00:00Z"
g() { git -c user.name=dev -c user.email=dev@example.com -c init.defaultBranch=main "$@"; }
mkdir -p /app/repo && cd /app/repo
g init -q
printf 'print("v1")\n' > app.py && g add app.py && g commit -q -m "Initial app"
printf 'print("v2")\n' > app.py && g commit -q -am "Bump to v2"
g checkout -q --detach
printf '# Release notes\n\n- v2: prints v2\n- fixes the greeting\n' > NOTES.md
g add NOTES.md && g commit -q -m "Add release notes"
g checkout -q main
