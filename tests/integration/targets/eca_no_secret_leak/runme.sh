#!/usr/bin/env bash
# Run a whole rotation, failures included, at -vvv; then prove that no secret the simulator
# issued or accepted (client secrets, staged secrets, tokens, private keys) is in that output.
set -eu
export ANSIBLE_ROLES_PATH=..
log="${OUTPUT_DIR:-/tmp}/sfdc-eca-leak-scan.log"
# ansible-test hands script targets no -e @integration_config.yml: read it from its usual place.
config="$(cd ../.. && pwd)/integration_config.yml"
[ -f "$config" ] || { echo "missing $config: run through scripts/test.sh, which writes it" >&2; exit 1; }
set -- -e "@$config" "$@"
ansible-playbook leak.yml -i "${INVENTORY_PATH}" "$@" -vvv >"$log" 2>&1 || {
    echo "the -vvv playbook failed; last lines of its output:" >&2
    tail -n 40 "$log" >&2
    exit 1
}
ansible-playbook scan.yml -i "${INVENTORY_PATH}" "$@" -e "scan_log=$log"
rm -f "$log"
