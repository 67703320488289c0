// Package history records rollouts of a ContainerVersion (CV) in a ConfigMap,
// so "what was deployed when, from what, and how did it go" survives
// controller restarts and is readable with nothing but kubectl.
//
// # Storage format
//
// As in the original cvmanager, a rollout is recorded in the history of each
// workload it changed: ConfigMap "<workload>.history" (WorkloadConfigMapName)
// in the workload's namespace, one record per workload, naming the CV (CV)
// and the rollout (Rollout). The CV's own history "<name>.history"
// (ConfigMapName, name being spec.history.name or the CV's name) holds its
// promotions and the rollouts earlier versions recorded there; CVHistory
// merges the two into the CV's view. Either ConfigMap looks like this:
//
//	metadata:
//	  name: web.history
//	  labels:
//	    cvmanager.dev/history: "true"            # dashboards list histories with this selector
//	    app.kubernetes.io/managed-by: cvmanager
//	  annotations:
//	    cvmanager.dev/container-version: web      # the CV that created it
//	  ownerReferences: [{kind: ContainerVersion, name: web, controller: true}]
//	data:
//	  records.json: |
//	    [
//	    {"id":"9f2c…","time":"2025-01-02T03:04:05Z","workload":"Deployment/web",…},
//	    {"id":"41aa…","time":"2025-01-01T10:00:00Z","workload":"Deployment/web",…}
//	    ]
//
// The records.json key holds a JSON array of Record, newest first, one record
// per line so `kubectl get cm web.history -o yaml` stays readable and diffs
// stay small. Unknown fields are ignored on read, so older controllers can read
// newer histories.
//
// A rollout of a CV with spec.writeBack carries writeBack ({rolloutID,
// state, commit, url, reason}): the rollout's finish records it Pending,
// and Store.SetWriteBack records the writer's outcome in place once the
// commit (or its failure) is known. It is the one change ever made to a
// stored record.
//
// # Bounds
//
// A history keeps at most spec.history.limit records (DefaultLimit when unset)
// and at most DefaultByteBudget bytes of data, well under the 1 MiB object
// limit of etcd; the oldest records are dropped first. A Reason longer than
// MaxReasonBytes is truncated so one noisy failure cannot evict the history.
//
// # Concurrency and idempotency
//
// Store.Append reads, edits and writes with the ConfigMap's resourceVersion and
// retries on conflict, re-reading each time, so concurrent writers never lose a
// record. A record whose ID is already present is not added again, so a
// controller that restarts after writing does not duplicate its rollout.
//
// The ConfigMap is owned by the CV (a controller ownerReference), so the
// garbage collector deletes it with the CV. When several CVs share a history
// name, each later CV is added as a further, non-controller owner and the
// ConfigMap lives until the last of them is deleted.
package history
