// Package backoff computes capped, jittered exponential retry delays and
// sleeps them cancellably. It holds no global state.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff yields delays from Min doubling up to Max, each with ±20 % jitter
// so that many gateways restarting together do not retry in lockstep.
type Backoff struct {
	Min, Max time.Duration
	n        int
}

// Next returns the next delay.
func (b *Backoff) Next() time.Duration {
	d := b.Min << min(b.n, 30)
	if d > b.Max || d <= 0 {
		d = b.Max
	} else {
		b.n++
	}
	j := time.Duration(rand.Int64N(int64(d)/5 + 1))
	if rand.IntN(2) == 0 {
		return d - j
	}
	return d + j
}

// Reset starts again from Min after a success.
func (b *Backoff) Reset() { b.n = 0 }

// Sleep waits d or until ctx is done, reporting whether it slept fully.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
