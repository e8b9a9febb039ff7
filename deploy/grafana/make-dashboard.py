#!/usr/bin/env python3
"""Writes tlscensus.json, the Grafana (10+) dashboard for tlscensus sensors.

The dashboard is generated so every panel follows the same conventions:
the Prometheus data source is the ${datasource} variable, every query is
restricted to the chosen sensors with instance=~"$instance", and ranges use
Grafana's $__range / $__rate_interval. Run it after changing a panel and
commit both files; tests/monitoring.rs checks the JSON and runs every query
against a real Prometheus.
"""
import json
import pathlib
import sys

DS = {"type": "prometheus", "uid": "${datasource}"}
SEL = 'instance=~"$instance"'
LEGACY_RE = "SSLv2|SSLv3|TLSv1\\\\.0|TLSv1\\\\.1"
MODERN_RE = "TLSv1\\\\.2|TLSv1\\\\.3"

# Legacy flows in range by sensor, host, version and outcome (a series new in
# the range counts too: its first sample is already a flow).
LEGACY_HOSTS = (
    f'sum by (instance, source, version, outcome) (increase(tlscensus_legacy_flows_total{{{SEL}}}[$__range])) > 0'
    f' or sum by (instance, source, version, outcome) (tlscensus_legacy_flows_total{{{SEL}}} unless tlscensus_legacy_flows_total{{{SEL}}} offset $__range)'
)
# The passive host name of each labelled legacy source (one per sensor and host).
HOST_INFO = f'max by (instance, source, host_name, name_source) (tlscensus_host_info{{{SEL}}})'

panels = []
next_id = 1


def panel(kind, title, targets, x, y, w, h, **extra):
    global next_id
    p = {
        "id": next_id,
        "type": kind,
        "title": title,
        "datasource": DS,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "targets": [
            dict({"refId": chr(ord("A") + i), "datasource": DS, "editorMode": "code"}, **t)
            for i, t in enumerate(targets)
        ],
    }
    p.update(extra)
    next_id += 1
    panels.append(p)


def ts(expr, legend):
    return {"expr": expr, "legendFormat": legend, "range": True, "instant": False}


def instant_table(expr):
    return {"expr": expr, "format": "table", "instant": True, "range": False}


# Row 1: what to fix.
panel(
    "stat",
    "Legacy hosts in range",
    [{"expr": f'count(sum by (source) (increase(tlscensus_legacy_flows_total{{{SEL}}}[$__range])) > 0 or sum by (source) (tlscensus_legacy_flows_total{{{SEL}}} unless tlscensus_legacy_flows_total{{{SEL}}} offset $__range)) or vector(0)',
      "instant": True, "range": False}],
    0, 0, 4, 8,
    description="Distinct source hosts with a legacy-TLS flow to the targets in the time range.",
    fieldConfig={"defaults": {"thresholds": {"mode": "absolute", "steps": [
        {"color": "green", "value": None}, {"color": "red", "value": 1}]}}, "overrides": []},
)
panel(
    "stat",
    "Rejected handshakes in range",
    [{"expr": f'sum(increase(tlscensus_flows_total{{{SEL},outcome="rejected",target="true"}}[$__range])) or vector(0)',
      "instant": True, "range": False}],
    0, 8, 4, 8,
    description="Target handshakes the server answered with an alert: clients that are already broken.",
    fieldConfig={"defaults": {"decimals": 0, "thresholds": {"mode": "absolute", "steps": [
        {"color": "green", "value": None}, {"color": "red", "value": 1}]}}, "overrides": []},
)
panel(
    "table",
    "Legacy hosts (host, version, outcome, flows in range)",
    [instant_table(
        f'(({LEGACY_HOSTS}) * on (instance, source) group_left (host_name, name_source) {HOST_INFO})'
        f' or (({LEGACY_HOSTS}) unless on (instance, source) {HOST_INFO})')],
    4, 0, 20, 16,
    description="Every source host that made a TLS 1.1-or-older flow to Azure Blob Storage in the time range, with its name where the sensor learned one passively (DHCP, DHCPv6, Kerberos, DNS PTR, NBNS, mDNS, LLMNR: tlscensus_host_info). source=\"other\": more hosts than --max-legacy-sources (see the sensor's event log).",
    transformations=[{"id": "organize", "options": {
        "excludeByName": {"Time": True},
        "indexByName": {"instance": 0, "source": 1, "host_name": 2, "name_source": 3,
                        "version": 4, "outcome": 5, "Value": 6},
        "renameByName": {"instance": "sensor", "source": "host", "host_name": "host name",
                         "name_source": "name from", "version": "version",
                         "outcome": "outcome", "Value": "flows"}}}],
    fieldConfig={"defaults": {"decimals": 0}, "overrides": []},
    options={"sortBy": [{"displayName": "flows", "desc": True}], "showHeader": True},
)
# Row 2: migration progress.
panel(
    "timeseries",
    "Legacy vs modern flows to Azure Blob Storage",
    [ts(f'sum(rate(tlscensus_flows_total{{{SEL},target="true",version=~"{LEGACY_RE}"}}[$__rate_interval]))', "legacy (TLS 1.1 and older)"),
     ts(f'sum(rate(tlscensus_flows_total{{{SEL},target="true",version=~"{MODERN_RE}"}}[$__rate_interval]))', "modern (TLS 1.2, 1.3)")],
    0, 16, 12, 9,
    fieldConfig={"defaults": {"unit": "ops", "custom": {"drawStyle": "line", "fillOpacity": 10}}, "overrides": []},
)
panel(
    "timeseries",
    "Rejected handshakes by version",
    [ts(f'sum by (version) (rate(tlscensus_flows_total{{{SEL},outcome="rejected"}}[$__rate_interval]))', "{{version}}")],
    12, 16, 12, 9,
    description="Handshakes answered with an alert instead of a ServerHello (what Azure sends a TLS 1.0/1.1 client).",
    fieldConfig={"defaults": {"unit": "ops", "custom": {"drawStyle": "bars", "fillOpacity": 60}}, "overrides": []},
)
panel(
    "piechart",
    "Share of versions (target flows in range)",
    [{"expr": f'sum by (version) (increase(tlscensus_flows_total{{{SEL},target="true"}}[$__range])) > 0',
      "legendFormat": "{{version}}", "instant": True, "range": False}],
    0, 25, 8, 9,
    options={"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
             "pieType": "donut", "legend": {"displayMode": "table", "placement": "right", "values": ["percent"]}},
)
panel(
    "timeseries",
    "All TLS flows by version (every server)",
    [ts(f'sum by (version) (rate(tlscensus_flows_total{{{SEL}}}[$__rate_interval]))', "{{version}}")],
    8, 25, 16, 9,
    description="Server names and storage accounts are not metric labels (unbounded); they are in the sensor's event log and in `tlscensus read` reports.",
    fieldConfig={"defaults": {"unit": "ops"}, "overrides": []},
)
# Row 3: sensor health.
panel(
    "timeseries",
    "Packets and drops",
    [ts(f'sum by (instance) (rate(tlscensus_packets_total{{{SEL}}}[$__rate_interval]))', "{{instance}} packets"),
     ts(f'sum by (instance, interface) (rate(tlscensus_capture_kernel_drops_total{{{SEL}}}[$__rate_interval]))', "{{instance}} {{interface}} kernel drops"),
     ts(f'sum by (instance, interface) (rate(tlscensus_capture_interface_drops_total{{{SEL}}}[$__rate_interval]))', "{{instance}} {{interface}} interface drops"),
     ts(f'sum by (instance) (rate(tlscensus_queue_drops_total{{{SEL}}}[$__rate_interval]))', "{{instance}} queue drops")],
    0, 34, 12, 9,
    fieldConfig={"defaults": {"unit": "pps"}, "overrides": []},
)
panel(
    "timeseries",
    "Flows tracked and bound hits",
    [ts(f'sum by (instance) (tlscensus_flows_tracked{{{SEL}}})', "{{instance}} flows tracked"),
     ts(f'sum by (instance, bound) (rate(tlscensus_bound_hits_total{{{SEL}}}[$__rate_interval]))', "{{instance}} bound {{bound}}")],
    12, 34, 12, 9,
    options={"tooltip": {"mode": "multi", "hideZeros": True}, "legend": {"showLegend": True}},
)
panel(
    "stat",
    "Sensors up / interfaces captured",
    [{"expr": f'sum(up{{job="tlscensus",{SEL}}})', "legendFormat": "sensors up", "instant": True, "range": False},
     {"expr": f'sum(tlscensus_interface_up{{{SEL}}})', "legendFormat": "interfaces up", "instant": True, "range": False},
     {"expr": f'max(tlscensus_uptime_seconds{{{SEL}}})', "legendFormat": "longest uptime (s)", "instant": True, "range": False}],
    0, 43, 12, 5,
)
panel(
    "timeseries",
    "Non-TLS flows and parse errors",
    [ts(f'sum by (instance) (rate(tlscensus_non_tls_flows_total{{{SEL}}}[$__rate_interval]))', "{{instance}} non-TLS flows"),
     ts(f'sum by (instance, kind) (rate(tlscensus_tls_parse_errors_total{{{SEL}}}[$__rate_interval]))', "{{instance}} parse error {{kind}}"),
     ts(f'sum by (instance, reason) (rate(tlscensus_decode_errors_total{{{SEL}}}[$__rate_interval]))', "{{instance}} decode error {{reason}}")],
    12, 43, 12, 5,
)
# Row 5: per-destination readiness (tlscensus live --services).
panel(
    "table",
    "Destinations: days since the last legacy client (safe to enforce TLS 1.2 after 30)",
    [instant_table(
        f'(time() - max by (instance, service, destination) (tlscensus_destination_legacy_last_seen_timestamp_seconds{{{SEL}}})) / 86400')],
    0, 48, 24, 9,
    description="Per storage account, SQL server, namespace or vault: days since the sensor last saw a TLS 1.1-or-older flow to it (capture time). After 30 days the owner can require TLS 1.2 without breaking a client the sensor has seen (alert TLSCensusSafeToEnforce). destination=\"other\": more than 500 destinations.",
    transformations=[{"id": "organize", "options": {
        "excludeByName": {"Time": True},
        "renameByName": {"instance": "sensor", "service": "service", "destination": "destination",
                         "Value": "days since last legacy flow"}}}],
    fieldConfig={"defaults": {"decimals": 1}, "overrides": []},
    options={"sortBy": [{"displayName": "days since last legacy flow", "desc": False}], "showHeader": True},
)
# Row 6: mirror health (what the mirror fails to deliver).
panel(
    "timeseries",
    "Mirror loss: share of handshake bytes never captured",
    [ts(f'sum by (instance, interface) (rate(tlscensus_capture_loss_bytes_total{{{SEL}}}[$__rate_interval])) / sum by (instance, interface) (rate(tlscensus_capture_loss_window_bytes_total{{{SEL}}}[$__rate_interval]))', "{{instance}} {{interface}} loss"),
     ts(f'sum by (instance, interface) (rate(tlscensus_handshake_gaps_total{{{SEL}}}[$__rate_interval])) / on (instance) group_left sum by (instance) (rate(tlscensus_flows_total{{{SEL}}}[$__rate_interval]))', "{{instance}} {{interface}} handshakes lost to gaps")],
    0, 57, 12, 9,
    description="TCP bytes the hosts exchanged in handshakes (acknowledged, or shown by later bytes) that never reached the sensor, and the share of handshakes they cost. Upstream loss when kernel and queue drops stay at 0: the SPAN session or TAP drops packets (alert TLSCensusMirrorLoss above 1% for 15 minutes).",
    fieldConfig={"defaults": {"unit": "percentunit", "min": 0}, "overrides": []},
)
panel(
    "timeseries",
    "Flows seen one way only",
    [ts(f'sum by (instance, interface) (rate(tlscensus_mirror_flows_total{{{SEL},seen=~"client_only|server_only"}}[$__rate_interval])) / sum by (instance, interface) (rate(tlscensus_mirror_flows_total{{{SEL}}}[$__rate_interval]))', "{{instance}} {{interface}} one-way share"),
     ts(f'sum by (instance, interface) (tlscensus_mirror_one_sided_blocks{{{SEL}}})', "{{instance}} {{interface}} one-sided client blocks")],
    12, 57, 12, 9,
    description="Share of TCP connections whose opening was captured that showed one side only, and client blocks (/24, /64) seen one way only (tlscensus_mirror_one_sided_block names them). Near 100% on an interface: the mirror carries one direction (alert TLSCensusMirrorOneSided).",
    fieldConfig={"defaults": {"min": 0}, "overrides": [
        {"matcher": {"id": "byRegexp", "options": ".*one-way share"},
         "properties": [{"id": "unit", "value": "percentunit"}]}]},
)
# Row 7: policy what-if (tlscensus live --policy).
panel(
    "table",
    "Server policies: hosts that would break, failing flows by reason (in range)",
    [instant_table(f'max by (instance, policy) (tlscensus_policy_failing_hosts{{{SEL}}})'),
     instant_table(f'sum by (instance, policy, reason) (increase(tlscensus_policy_flows_total{{{SEL},verdict="fail"}}[$__range])) > 0')],
    0, 66, 12, 9,
    description="For each server policy the sensor judges hellos by (--policy): the inventory's hosts with a hello a server holding it would refuse, and the flows in the time range that would fail, by reason (no common version, suite, group, signature algorithm, or a missing requirement). Who and which software: /inventory?by=policy on the sensor (alert TLSCensusPolicyWouldBreakHosts).",
    transformations=[{"id": "organize", "options": {
        "excludeByName": {"Time": True},
        "renameByName": {"instance": "sensor", "policy": "policy", "reason": "reason",
                         "Value #A": "hosts failing", "Value #B": "failing flows"}}}],
    fieldConfig={"defaults": {"decimals": 0}, "overrides": []},
)
panel(
    "timeseries",
    "Server policies: share of flows that would fail",
    [ts(f'sum by (policy) (rate(tlscensus_policy_flows_total{{{SEL},verdict="fail"}}[$__rate_interval])) / sum by (policy) (rate(tlscensus_policy_flows_total{{{SEL},verdict=~"pass|fail"}}[$__rate_interval]))', "{{policy}}")],
    12, 66, 12, 9,
    description="Of the judged flows, the share a server holding each policy would refuse: the migration's progress towards enforcing it.",
    fieldConfig={"defaults": {"unit": "percentunit", "min": 0, "max": 1}, "overrides": []},
)

dashboard = {
    "uid": "tlscensus",
    "title": "tlscensus: legacy TLS to Azure Blob Storage",
    "description": "Hosts still using TLS 1.0/1.1 with Azure Blob Storage, seen passively by tlscensus sensors.",
    "tags": ["tlscensus", "tls", "azure"],
    "timezone": "browser",
    "schemaVersion": 39,
    "version": 1,
    "editable": True,
    "graphTooltip": 1,
    "refresh": "1m",
    "time": {"from": "now-24h", "to": "now"},
    "templating": {"list": [
        {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
         "current": {}, "hide": 0, "refresh": 1, "regex": "", "options": []},
        {"name": "instance", "label": "Sensor", "type": "query", "datasource": DS,
         "definition": "label_values(tlscensus_build_info, instance)",
         "query": {"query": "label_values(tlscensus_build_info, instance)", "refId": "instance"},
         "refresh": 2, "multi": True, "includeAll": True, "allValue": ".*",
         "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
         "sort": 1, "hide": 0, "options": []},
    ]},
    "annotations": {"list": []},
    "links": [],
    "panels": panels,
}

out = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else pathlib.Path(__file__).with_name("tlscensus.json")
out.write_text(json.dumps(dashboard, indent=2) + "\n")
print(f"wrote {out} ({len(panels)} panels)")
