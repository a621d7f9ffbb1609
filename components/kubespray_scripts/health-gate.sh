#!/bin/bash
# The cluster's health gate, run on the control host after kubespray installed or changed
# the cluster and before any add-on is deployed:
#
#   health-gate.sh KUBECTL KUBECONFIG TIMEOUT NODE...
#
# Waits, at most TIMEOUT seconds, until the API server answers /readyz, every NODE is
# registered and Ready, and every Deployment, StatefulSet and DaemonSet in kube-system has
# all its replicas ready. Exit 0 with one summary line; on timeout, exit 1 with what is not
# ready and what it reports (node conditions, kube-system pods and their waiting reasons).
set -u

if [ "$#" -lt 3 ]; then
    echo "usage: health-gate.sh KUBECTL KUBECONFIG TIMEOUT NODE..." >&2
    exit 2
fi
kubectl=$1
kubeconfig=$2
timeout=$3
shift 3
interval=${HEALTH_GATE_INTERVAL:-5}

k() {
    "$kubectl" --kubeconfig "$kubeconfig" --request-timeout=10s "$@"
}

# One line per problem; nothing when the cluster is healthy.
check() {
    local out nodes line name status msg work
    if ! out=$(k get --raw /readyz 2>&1); then
        printf 'API server not ready (/readyz): %s\n' "$(printf '%s' "$out" | tail -n 2 | tr '\n' ' ')"
        return
    fi
    if ! nodes=$(k get nodes --no-headers \
        -o 'custom-columns=NAME:.metadata.name,READY:.status.conditions[?(@.type=="Ready")].status,MESSAGE:.status.conditions[?(@.type=="Ready")].message' 2>&1); then
        printf 'cannot list nodes: %s\n' "$nodes"
        return
    fi
    for name in "$@"; do
        line=$(awk -v n="$name" '$1 == n' <<<"$nodes")
        if [ -z "$line" ]; then
            printf 'node %s: not registered with the API server\n' "$name"
            continue
        fi
        read -r _ status msg <<<"$line"
        if [ "$status" != True ]; then
            printf 'node %s: Ready=%s (%s)\n' "$name" "$status" "${msg:-no message}"
        fi
    done
    if ! work=$(k -n kube-system get deployments,statefulsets,daemonsets --no-headers \
        -o 'custom-columns=KIND:.kind,NAME:.metadata.name,WANT:.spec.replicas,READY:.status.readyReplicas,DWANT:.status.desiredNumberScheduled,DREADY:.status.numberReady' 2>&1); then
        printf 'cannot list kube-system workloads: %s\n' "$work"
        return
    fi
    awk '
        NF >= 6 {
            daemon = ($1 == "DaemonSet")
            want = daemon ? $5 : $3
            ready = daemon ? $6 : $4
            if (want == "<none>") want = 0
            if (ready == "<none>") ready = 0
            if (ready + 0 < want + 0) printf "kube-system %s/%s: %d/%d ready\n", tolower($1), $2, ready, want
        }' <<<"$work"
}

# kube-system pods that are not running, with why (waiting reason, scheduling message).
pod_report() {
    k -n kube-system get pods --no-headers \
        -o 'custom-columns=NAME:.metadata.name,PHASE:.status.phase,WAITING:.status.containerStatuses[*].state.waiting.reason,SCHEDULED:.status.conditions[?(@.type=="PodScheduled")].message' 2>/dev/null |
        awk '$2 != "Running" && $2 != "Succeeded"' | head -n 15
}

deadline=$((SECONDS + timeout))
while :; do
    problems=$(check "$@")
    if [ -z "$problems" ]; then
        printf 'health gate: API server ready, %d node(s) Ready, kube-system workloads available\n' "$#"
        exit 0
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
        printf 'health gate: the cluster is not healthy after %ss; add-ons and apps were not deployed:\n' "$timeout" >&2
        printf '%s\n' "$problems" | sed 's/^/  /' >&2
        pods=$(pod_report)
        if [ -n "$pods" ]; then
            printf '  kube-system pods not running (name, phase, waiting reason, scheduling):\n' >&2
            printf '%s\n' "$pods" | sed 's/^/    /' >&2
        fi
        exit 1
    fi
    sleep "$interval"
done
