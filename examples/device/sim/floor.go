package sim

// The deliveries alone: what the machine can push to the sink with no
// platform in between, measured in the same run as the platform and the
// bare server, so that an end-to-end figure can be read against what its
// parts cost on the machine at hand.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// FloorConcurrency is how many pushes the floor keeps in flight: the
// platform's push engine's default for one callback URL
// (push.Config.EndpointConcurrency).
const FloorConcurrency = 16

// floorHeader marks the floor's posts, so that the sink tells them from a
// platform's late or repeated pushes (at least once) arriving meanwhile.
const floorHeader = "X-Doze-Delivery-Floor"

// maxFloorBodies bounds the push bodies a sink keeps for the floor.
const maxFloorBodies = 256

// deliveryFloor posts n of bodies (round robin) to url, FloorConcurrency
// at a time over kept-alive connections of its own, and returns how long
// they took. A push the sink did not answer 200 is an error.
func deliveryFloor(ctx context.Context, url string, bodies [][]byte, n int64) (time.Duration, error) {
	if len(bodies) == 0 || n <= 0 {
		return 0, fmt.Errorf("sim: delivery floor: no push arrived at the sink to post again")
	}
	tr := &http.Transport{MaxIdleConnsPerHost: FloorConcurrency, MaxConnsPerHost: FloorConcurrency}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	var next atomic.Int64
	var once sync.Once
	var failed error
	var wg sync.WaitGroup
	start := time.Now()
	for range min(int64(FloorConcurrency), n) {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(bodies[i%int64(len(bodies))]))
				if err == nil {
					req.Header.Set("Content-Type", "application/json")
					req.Header.Set(floorHeader, "1")
					var resp *http.Response
					if resp, err = c.Do(req); err == nil {
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode != http.StatusOK {
							err = fmt.Errorf("the sink answered %s", resp.Status)
						}
					}
				}
				if err != nil {
					once.Do(func() { failed = fmt.Errorf("sim: delivery floor: push %d of %d: %w", i+1, n, err) })
					return
				}
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	if failed == nil && ctx.Err() != nil {
		failed = fmt.Errorf("sim: delivery floor: %w", ctx.Err())
	}
	return took, failed
}

// partsBound is the rate two kinds of work reach together on one machine
// when each alone reaches a and b per second and each item needs both:
// their times per item add up.
func partsBound(a, b float64) float64 {
	if a <= 0 || b <= 0 {
		return 0
	}
	return 1 / (1/a + 1/b)
}
