package controller

import (
	"testing"
	"time"
)

func TestStatusEchoesAreAwaitedUntilTheCacheMovesOn(t *testing.T) {
	var echoes statusEchoes
	echoes.wrote("team/web", "7", "8", t0)
	if !echoes.awaited("team/web", "7", t0.Add(time.Second)) {
		t.Error("the cache still holds the replaced object: the sync must wait for the echo")
	}
	if echoes.awaited("team/api", "7", t0) {
		t.Error("another CV waited for web's echo")
	}
	if echoes.awaited("team/web", "8", t0.Add(time.Second)) {
		t.Error("the cache shows the write: nothing to wait for")
	}
	if echoes.awaited("team/web", "7", t0.Add(time.Second)) {
		t.Error("a write whose echo was seen is waited for again")
	}
}

func TestAStatusEchoIsNotWaitedForBeyondItsTTL(t *testing.T) {
	var echoes statusEchoes
	echoes.wrote("team/web", "7", "8", t0)
	if echoes.awaited("team/web", "7", t0.Add(expectationTTL)) {
		t.Error("a cache that lags beyond the TTL is waited for")
	}
}

func TestAWriteThatDidNotMoveTheVersionLeavesNoEcho(t *testing.T) {
	var echoes statusEchoes
	echoes.wrote("team/web", "7", "7", t0)
	if echoes.awaited("team/web", "7", t0) {
		t.Error("a write that kept the resourceVersion is waited for")
	}
}
