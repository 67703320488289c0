package registry

import (
	"context"
	"time"
)

// Lane is the priority of a registry request in the per-host budget (the
// controller's host guard, pkg/registry/poller): when requests wait for the
// budget, an urgent one goes before a scheduled one, and a scheduled one
// before background reads, and the lanes behind leave part of the burst to
// the lanes ahead. The total rate stays what was configured.
type Lane int

// Lanes, most urgent first.
const (
	// LaneUrgent: a resolve someone is waiting for: a trigger, a webhook, a
	// push re-check.
	LaneUrgent Lane = iota + 1
	// LaneScheduled: a CV's scheduled poll; requests that name no lane.
	LaneScheduled
	// LaneBackground: reads no rollout waits on: provenance, signatures,
	// attestations and tag lists for policies.
	LaneBackground
)

// Lanes lists every lane, most urgent first.
var Lanes = []Lane{LaneUrgent, LaneScheduled, LaneBackground}

// String is the lane's name, the value of the lane label of
// cvmanager_registry_budget_wait_seconds.
func (l Lane) String() string {
	switch l {
	case LaneUrgent:
		return "urgent"
	case LaneBackground:
		return "background"
	default:
		return "scheduled"
	}
}

type laneKey struct{}

// WithLane returns ctx whose registry requests go in lane l: every request
// made with the returned context (resolves, tag lists, manifest and blob
// reads, token fetches) waits for the budget in that lane.
func WithLane(ctx context.Context, l Lane) context.Context {
	return context.WithValue(ctx, laneKey{}, l)
}

// LaneOf is the lane WithLane put in ctx, LaneScheduled when none.
func LaneOf(ctx context.Context) Lane {
	if l, ok := ctx.Value(laneKey{}).(Lane); ok && l >= LaneUrgent && l <= LaneBackground {
		return l
	}
	return LaneScheduled
}

type originKey struct{}

// WithOrigin returns ctx stamped with when the work its requests serve
// began (a trigger's resolve). Within a lane the host budget serves the
// oldest work first, so one trigger's follow-up requests (the tag list, the
// new version tag) go before the next triggers' first ones: under a tight
// budget each trigger finishes in turn instead of all of them finishing
// together at the end.
func WithOrigin(ctx context.Context, t time.Time) context.Context {
	return context.WithValue(ctx, originKey{}, t)
}

// OriginOf is the time WithOrigin put in ctx; ok is false when none.
func OriginOf(ctx context.Context) (t time.Time, ok bool) {
	t, ok = ctx.Value(originKey{}).(time.Time)
	return t, ok
}
