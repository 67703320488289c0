// Package gen holds the one set of test builders for ContainerVersions and
// workloads, used by unit tests with fake clientsets and by the suites on
// the real control plane alike. It imports nothing that starts processes,
// so a unit test pays only for the API types.
package gen
