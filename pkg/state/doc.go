// Package state exports the release state of a cluster — every
// ContainerVersion's spec, its last successful version and digest, and its
// rollout history — to a backend (a local directory or an S3 bucket), and
// imports it into another cluster for failover or a blue/green cluster
// upgrade.
//
// Layout under the backend's path:
//
//	manifest.json                  schema version, cluster id, owner, heartbeat, object list
//	cvs/<namespace>/<name>.json    one CVState per ContainerVersion
//
// The manifest is written last, so a reader that follows it never sees a
// half-written export: it names each object with its SHA-256 (and, on a
// versioned S3 bucket, its version id), and Import reads exactly those.
//
// Ownership: the manifest names the cluster that writes the path. An
// exporter refuses to write a path another cluster owns, and Import refuses
// to take over a path whose owner's continuous exporter is still alive
// (fresh heartbeat), so two clusters never write the same state.
package state
