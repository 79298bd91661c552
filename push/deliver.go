package push

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"
)

type job struct {
	ep  *endpoint
	msg *Message
}

type drop struct {
	msg Message
	err error
}

// Run loads the outbox from the Store and delivers until ctx ends or Close
// is called; then it stops every try in flight (the messages stay in the
// Store) and returns nil. A second Run returns an error wrapping ErrClosed
// ("Run called twice"); Run after Close returns ErrClosed (see the package
// doc).
func (e *Engine) Run(ctx context.Context) error {
	ctx, err := e.life.Start(ctx, "push.Engine", ErrClosed)
	if err != nil {
		return err
	}
	defer e.life.Finish()

	deletes := make(chan Message, 4096)
	e.loadMu.Lock()
	var msgs []Message
	if e.claim == nil {
		msgs, err = e.store.Messages(ctx)
		if err != nil {
			e.loadMu.Unlock()
			return fmt.Errorf("push: loading the outbox: %w", err)
		}
	}
	e.mu.Lock()
	for i := range msgs {
		e.add(&msgs[i])
	}
	e.loaded = true
	e.deletes = deletes
	if e.claim != nil {
		e.claim.held = make(map[msgKey]struct{})
	}
	e.mu.Unlock()
	e.loadMu.Unlock()
	if e.claim != nil {
		// Only what this node claims: its own messages from before a
		// restart, and those nobody else holds.
		n, err := e.claimRound(ctx)
		if err != nil {
			e.unload()
			close(deletes)
			return fmt.Errorf("push: loading the outbox: %w", err)
		}
		msgs = make([]Message, n)
	}
	if len(msgs) > 0 {
		e.cfg.Logger.Info("push: outbox loaded", "messages", len(msgs), "node", e.cfg.Node)
	}

	var delWG, wg, claimWG sync.WaitGroup
	delWG.Go(func() { e.deleter(deletes) })
	if e.claim != nil {
		claimWG.Go(func() { e.claimLoop(ctx) })
	}
	work := make(chan job)
	for range e.cfg.Workers {
		wg.Go(func() {
			for j := range work {
				if e.claim != nil && !e.startable(j) {
					continue
				}
				e.finish(ctx, j, e.try(ctx, j.msg))
			}
		})
	}
	e.dispatch(ctx, work)
	close(work)
	wg.Wait()
	claimWG.Wait()

	e.unload()
	close(deletes)
	delWG.Wait()
	if e.transport != nil {
		e.transport.CloseIdleConnections()
	}
	e.tlsMu.Lock()
	for _, c := range e.appClients {
		c.transport.CloseIdleConnections()
	}
	e.tlsMu.Unlock()
	return nil
}

// unload empties the engine's memory of the outbox as Run ends.
func (e *Engine) unload() {
	e.loadMu.Lock()
	e.mu.Lock()
	e.loaded = false
	e.deletes = nil
	for _, ep := range e.eps {
		ep.queue, ep.inRing = nil, false
	}
	e.ring, e.rr = nil, 0
	e.mu.Unlock()
	e.loadMu.Unlock()
}

// Close stops Run and waits for it to return; it may come before Run and
// is idempotent. Later Run, Publish, PublishReport and Send calls fail
// with ErrClosed.
func (e *Engine) Close() error {
	e.life.Stop()
	return nil
}

// dispatch hands due messages to the workers, one endpoint after another
// (round-robin), until ctx ends.
func (e *Engine) dispatch(ctx context.Context, work chan<- job) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		now := time.Now()
		var (
			j     job
			next  time.Time
			drops []drop
		)
		e.mu.Lock()
		if e.mayStart(now) {
			// Else the leases may end before a try would: wait for the
			// claim loop to renew them (it wakes this loop).
			j, next, drops = e.pick(now)
		}
		e.mu.Unlock()
		e.report(drops, nil)
		if j.msg != nil {
			select {
			case work <- j:
				continue
			case <-ctx.Done():
				e.mu.Lock()
				j.ep.inflight--
				e.add(j.msg)
				e.mu.Unlock()
				return
			}
		}
		var tc <-chan time.Time
		if !next.IsZero() {
			timer.Reset(next.Sub(now))
			tc = timer.C
		}
		select {
		case <-e.wake:
		case <-tc:
		case <-ctx.Done():
			return
		}
		timer.Stop()
	}
}

// pick drops expired messages and returns the next message to try, going
// round the ring from where the last pick stopped; when none is ready it
// returns the earliest time one may be. e.mu is held.
func (e *Engine) pick(now time.Time) (j job, next time.Time, drops []drop) {
	n := len(e.ring)
	if n == 0 {
		return job{}, time.Time{}, nil
	}
	start := e.rr % n
	chosen := -1
	empty := false
	for k := range n {
		i := (start + k) % n
		ep := e.ring[i]
		for len(ep.queue) > 0 && !ep.queue[0].Expires.After(now) {
			drops = append(drops, e.expire(ep, ep.pop()))
		}
		if len(ep.queue) == 0 {
			empty = true
			continue
		}
		next = earliest(next, ep.queue[0].Expires)
		t, ready := ep.readyAt(now, &e.cfg)
		if ready {
			chosen = i
			break
		}
		next = earliest(next, t)
	}
	if chosen >= 0 {
		ep := e.ring[chosen]
		j = job{ep: ep, msg: ep.pop()}
		ep.inflight++
		if ep.invalid {
			// One probe per interval; the try's outcome sets the next.
			ep.probeAt = now.Add(e.cfg.ProbeInterval)
		}
		e.rr = chosen + 1
	}
	if empty {
		kept := e.ring[:0]
		rr := 0
		for i, ep := range e.ring {
			if i == chosen {
				// Next turn: the endpoint after the chosen one, which is
				// at len(kept) if the chosen one is dropped here.
				rr = len(kept)
				if len(ep.queue) > 0 {
					rr++
				}
			}
			if len(ep.queue) == 0 {
				ep.inRing = false
				continue
			}
			kept = append(kept, ep)
		}
		clear(e.ring[len(kept):])
		e.ring = kept
		if chosen >= 0 {
			e.rr = rr
		} else {
			e.rr = 0
		}
	}
	return j, next, drops
}

func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

// expire counts m as dropped by keep time. e.mu is held.
func (e *Engine) expire(ep *endpoint, m *Message) drop {
	e.dropped.Add(1)
	ep.dropped++
	last := ep.lastError
	if last == "" {
		last = "none"
	}
	return drop{msg: *m, err: fmt.Errorf("%w (kept %v, %d tries; last error: %s)", ErrExpired, e.cfg.KeepTime, m.Attempts, last)}
}

// try makes one POST of m (PSH-4): nil on 2xx, a *StatusError otherwise,
// or the transport's error (timeout, connection failure, guard refusal).
func (e *Engine) try(ctx context.Context, m *Message) error {
	ctx, cancel := context.WithTimeout(ctx, e.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, m.URL, bytes.NewReader(m.Body))
	if err != nil {
		return fmt.Errorf("%w: %v", ErrRejected, err)
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("User-Agent", "doze-push/1")
	req.Header.Set(HeaderID, m.ID)
	if m.Secret != "" {
		now := time.Now()
		sig, err := Sign(m.Secret, m.ID, now, m.Body)
		if err != nil {
			return fmt.Errorf("%w: %v", ErrRejected, err)
		}
		req.Header.Set(HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
		req.Header.Set(HeaderSignature, sig)
	}
	client, app := e.clientFor(ctx, m)
	resp, err := client.Do(req)
	if cv, ok := errors.AsType[*tls.CertificateVerificationError](err); ok {
		return &CertificateError{URL: m.URL, AppID: app, Err: cv}
	}
	if err != nil {
		return err
	}
	_, rerr := io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch c := resp.StatusCode; {
	case c >= 200 && c <= 299:
		if rerr != nil {
			// The answer did not arrive whole within the timeout.
			return rerr
		}
		return nil
	case Retryable(c):
		return &StatusError{URL: m.URL, Code: c}
	default:
		return &StatusError{URL: m.URL, Code: c, Err: ErrRejected}
	}
}

// Retryable reports whether an HTTP status means "try again later":
// 501, 502, 503, 504 (FAQ §5.15). Other non-2xx answers are final.
func Retryable(code int) bool { return code >= 501 && code <= 504 }

// final reports whether err ends the message's life without retry.
func final(err error) bool {
	return errors.Is(err, ErrRejected) || errors.Is(err, ErrAddressDenied)
}

// finish applies a try's outcome.
func (e *Engine) finish(ctx context.Context, j job, err error) {
	now := time.Now()
	ep, m := j.ep, j.msg
	var (
		drops   []drop
		changed *EndpointState
	)
	e.mu.Lock()
	ep.inflight--
	switch {
	case err == nil:
		m.Attempts++
		e.delivered.Add(1)
		ep.delivered++
		ep.lastSuccess = now
		if ep.answered() {
			s := ep.state()
			changed = &s
		}
	case final(err):
		// Checked before stopping: an answer that came in as Run stops
		// still ends the message.
		m.Attempts++
		e.rejected.Add(1)
		ep.rejected++
		ep.lastError = err.Error()
		var se *StatusError
		if errors.As(err, &se) && ep.answered() { // it answered, so it is reachable
			s := ep.state()
			changed = &s
		}
		drops = append(drops, drop{msg: *m, err: err})
	case ctx.Err() != nil:
		// Stopping: not a failure; the message stays in the Store.
		e.add(m)
	default:
		m.Attempts++
		e.retried.Add(1)
		ep.retried++
		ep.lastError = err.Error()
		if ep.failed(now, &e.cfg) {
			s := ep.state()
			changed = &s
		}
		e.add(m) // if its keep time is over, the next pick drops it
	}
	deletes := e.deletes
	e.mu.Unlock()
	if err == nil && deletes != nil {
		deletes <- *m
	}
	e.wakeup()
	if err == nil {
		if l, ok := e.cfg.Listener.(DeliveryListener); ok {
			l.Delivered(*m)
		}
	}
	e.report(drops, changed)
}

// report deletes dropped messages from the Store, logs them and tells the
// Listener; it also reports endpoint state changes.
func (e *Engine) report(drops []drop, changed *EndpointState) {
	if changed != nil {
		e.cfg.Logger.Warn("push: endpoint state changed", "url", changed.CallbackURL, "state", changed.State,
			"failures", changed.Failures, "lastError", changed.LastError)
		if l, ok := e.cfg.Listener.(EndpointListener); ok {
			l.EndpointChanged(*changed)
		}
	}
	if len(drops) == 0 {
		return
	}
	e.mu.Lock()
	deletes := e.deletes
	e.mu.Unlock()
	for _, d := range drops {
		if deletes != nil {
			deletes <- d.msg
		}
		e.cfg.Logger.Warn("push: message dropped", "id", d.msg.ID, "url", d.msg.URL,
			"notifyType", string(d.msg.NotifyType), "tries", d.msg.Attempts, "err", d.err)
		if e.cfg.Listener != nil {
			e.cfg.Listener.Dropped(d.msg, d.err)
		}
	}
}

// deleter removes finished messages from the Store in batches. Deletion is
// not waited for: a crash before it only means a repeat delivery, which
// receivers drop by webhook-id (PSH-5).
func (e *Engine) deleter(ch <-chan Message) {
	batch := make([]Message, 0, 1024)
	for m := range ch {
		batch = append(batch[:0], m)
	more:
		for len(batch) < cap(batch) {
			select {
			case m, ok := <-ch:
				if !ok {
					break more
				}
				batch = append(batch, m)
			default:
				break more
			}
		}
		if e.claim != nil {
			e.claim.mu.Lock()
		}
		if err := e.store.DeleteMessages(context.Background(), batch...); err != nil {
			// Nothing is lost: they stay in the outbox and go out
			// again after a restart (with Config.Node: at the next
			// claim), under the same webhook-id.
			e.cfg.Logger.Error("push: deleting finished messages from the outbox; they will be sent again after a restart",
				"count", len(batch), "err", err)
		}
		if e.claim != nil {
			e.unhold(batch)
			e.claim.mu.Unlock()
		}
	}
}
