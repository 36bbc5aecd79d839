#!/usr/bin/env bash
# Suite "dns" (issue 7, benchmark 8): the DNS flood, bench/dns/run.sh (its knobs, BENCH_DNS_*, are described there).
#   bash bench/run.sh dns
exec bash "$(dirname "${BASH_SOURCE[0]}")/../dns/run.sh" "$@"
