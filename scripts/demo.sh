#!/usr/bin/env bash
# Rotate the credentials of a fleet of simulated Salesforce orgs: bash scripts/demo.sh [ANSIBLE_PLAYBOOK_ARGS]
# Starts the embedded simulator (eca_simulator, seed eca_simulator/seeds/demo.yml), writes an
# inventory of its orgs, runs playbooks/rotate.yml against them and prints where the report is.
# Extra arguments go to ansible-playbook (e.g. --check, -v, --limit org01). Stops the simulator at exit.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib/common.sh
. "$ROOT/scripts/lib/common.sh"

SEED="eca_simulator/seeds/demo.yml"
INVENTORY_MAKER="scripts/lib/make_demo_inventory.py"
PLAYBOOK="playbooks/rotate.yml"

missing=0
for f in eca_simulator/__main__.py "$SEED" "$INVENTORY_MAKER" "$PLAYBOOK"; do
    if [ ! -f "$ROOT/$f" ]; then
        echo "demo: $f is missing: the demo cannot run until it exists." >&2
        missing=1
    fi
done
[ "$missing" = 0 ] || exit 1

sfdc_banner "setup: .venv"
sfdc_venv "$ROOT" || { echo "demo: could not set up $ROOT/.venv" >&2; exit 1; }
export VIRTUAL_ENV="$ROOT/.venv"
export PATH="$ROOT/.venv/bin:$PATH"

# ansible-playbook finds the collection through a symlink layout (fine outside ansible-test).
COLLS="$ROOT/.tmp/collections"
mkdir -p "$COLLS/ansible_collections/sfdc"
ln -sfn "$ROOT" "$COLLS/ansible_collections/sfdc/eca"
export ANSIBLE_COLLECTIONS_PATH="$COLLS"

DEMO="$ROOT/.tmp/demo"
OUT="$DEMO/out"
STATE="$DEMO/simulator-state.json"
SIMLOG="$DEMO/simulator.log"
REPORT_DIR="$OUT/report"
rm -rf "$OUT"
mkdir -p "$DEMO" "$OUT"

trap 'sfdc_sim_stop' EXIT
trap 'exit 130' INT TERM

sfdc_banner "start the simulator ($SEED)"
sfdc_sim_start "$ROOT" "$ROOT/$SEED" "$STATE" "$SIMLOG" || exit 1
echo "simulator running (pid $SFDC_SIM_PID); state file $STATE; log $SIMLOG"

sfdc_banner "inventory of the simulated orgs"
python "$ROOT/$INVENTORY_MAKER" "$STATE" "$OUT" || { echo "demo: $INVENTORY_MAKER failed" >&2; exit 1; }
[ -f "$OUT/inventory.yml" ] || { echo "demo: $INVENTORY_MAKER did not write $OUT/inventory.yml" >&2; exit 1; }

vault=()
[ -f "$OUT/vault-password" ] && vault=(--vault-password-file "$OUT/vault-password")

sfdc_banner "ansible-playbook $PLAYBOOK"
(cd "$ROOT" && ansible-playbook "$PLAYBOOK" -i "$OUT/inventory.yml" "${vault[@]}" \
    -e "sfdc_eca_report_dir=$REPORT_DIR" "$@" </dev/null)
rc=$?

sfdc_banner "report"
if [ -d "$REPORT_DIR" ] && [ -n "$(ls -A "$REPORT_DIR" 2>/dev/null)" ]; then
    echo "report directory: $REPORT_DIR"
    for f in "$REPORT_DIR"/report.*; do [ -f "$f" ] && echo "  $f"; done
else
    echo "no report was written to $REPORT_DIR"
fi
[ $rc -eq 0 ] && echo "demo: done" || echo "demo: ansible-playbook failed (exit $rc)"
exit $rc
