// Package prometheus tests the operator's monitoring artefacts: the alert rules in
// config/prometheus/thingspace-operator.rules.yaml with Prometheus' own rule evaluation (promtool test
// rules, on synthetic series: each alert fires when it should and stays quiet on healthy rotations),
// the kustomize PrometheusRule written from them, and the Grafana dashboard in config/grafana. Every
// metric name a rule or a panel queries must be one the operator (or controller-runtime) registers, so
// renaming a metric breaks these tests rather than a dashboard in production.
//
// promtool comes from `make promtool` (bin/promtool-<version>); `make test` and `make test-rules` pass
// it as PROMTOOL. Without it the promtool tests skip, except under CI or when PROMTOOL is set.
package prometheus
