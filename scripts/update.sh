#!/usr/bin/env bash
# Update a validator (or miner) checkout to the newest commit of its branch, and restart it.
#
# Run it by hand, from cron, or from the systemd timer in README.md ("Updates"). It does nothing
# when the checkout is current, so it is safe to run every few minutes. On an update it
# fast-forwards (never merges or discards local changes), reinstalls into .venv, checks that the
# new code imports and reports its version, and only then restarts the service; if the install or
# the check fails it goes back to the previous commit and leaves the running service alone.
#
#   SUBNET_DIR       checkout to update            (default: the checkout holding this script)
#   SUBNET_REMOTE    git remote                    (default: origin)
#   SUBNET_BRANCH    branch to follow              (default: the checked-out branch)
#   SUBNET_RESTART   command that restarts it      (default: systemctl restart subnet-validator;
#                                                   pm2 users: "pm2 restart subnet-validator")
#
# Exit codes: 0 up to date or updated, 1 update failed (rolled back), 2 cannot update (dirty tree, no branch).
set -euo pipefail

dir="${SUBNET_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
remote="${SUBNET_REMOTE:-origin}"
restart="${SUBNET_RESTART:-systemctl restart subnet-validator}"
cd "$dir"
branch="${SUBNET_BRANCH:-$(git symbolic-ref --short -q HEAD || true)}"
log() { echo "$(date -Iseconds) update: $*"; }

if [ -z "$branch" ]; then log "detached HEAD in $dir: set SUBNET_BRANCH"; exit 2; fi
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
    log "local changes in $dir: not updating (commit or stash them)"; exit 2
fi

git fetch --quiet "$remote" "$branch"
old="$(git rev-parse HEAD)"
new="$(git rev-parse FETCH_HEAD)"
if [ "$old" = "$new" ]; then log "up to date at ${old:0:12}"; exit 0; fi
if ! git merge-base --is-ancestor "$old" "$new"; then
    log "$remote/$branch is not a fast-forward of ${old:0:12}: not updating"; exit 2
fi

log "updating ${old:0:12} -> ${new:0:12}"
git merge --quiet --ff-only "$new"
if ! { make install >/dev/null && .venv/bin/python -m subnet --version; }; then
    log "install or self-check failed: rolling back to ${old:0:12}"
    git reset --quiet --hard "$old"
    make install >/dev/null || true
    exit 1
fi
log "restarting: $restart"
$restart
log "updated to ${new:0:12}"
