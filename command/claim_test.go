package command

import (
	"context"
	"strings"
	"testing"
	"time"
)

// claimStore is a MemStore that claims (a stand-in, enough for New).
type claimStore struct{ *MemStore }

func (claimStore) ClaimCommands(context.Context, string, time.Time, time.Duration, int) ([]Command, error) {
	return nil, nil
}

func TestNewNodeNeedsClaimer(t *testing.T) {
	snd := SenderFunc(func(context.Context, Command) error { return nil })
	_, err := New(NewMemStore(), snd, nil, Config{Node: "n1"})
	if err == nil || !strings.Contains(err.Error(), "does not implement command.Claimer") {
		t.Fatalf("Node without a Claimer: err = %v, want a refusal naming command.Claimer", err)
	}
	if _, err := New(claimStore{NewMemStore()}, snd, nil, Config{Node: "n1"}); err != nil {
		t.Fatalf("Node with a Claimer: %v", err)
	}
	for _, c := range []Config{{Node: "n\x001"}, {Node: strings.Repeat("n", maxNode+1)}, {Node: "n1", ClaimLease: -time.Second}} {
		if _, err := New(claimStore{NewMemStore()}, snd, nil, c); err == nil {
			t.Errorf("New(%q, lease %v) accepted", c.Node, c.ClaimLease)
		}
	}
	if _, err := New(NewMemStore(), snd, nil, Config{}); err != nil {
		t.Fatalf("one node: %v", err)
	}
}
