package uplink

import (
	"log/slog"

	"github.com/edgeagent/edgeagent/buffer"
)

// acker deletes proven records from the buffer on its own goroutine, so
// the uplink keeps publishing while a delete waits for its fsync. Deletes
// run in the order given; consecutive ones are merged. A crash before a
// delete commits resends those records, as it would have had the uplink
// deleted them itself.
type acker struct {
	buf  *buffer.Buffer
	log  *slog.Logger
	ops  chan ackOp
	done chan struct{}
}

// ackOp deletes records up to `to`: all of them when from is 0, else
// from..to.
type ackOp struct{ from, to uint64 }

func startAcker(buf *buffer.Buffer, log *slog.Logger) *acker {
	a := &acker{buf: buf, log: log, ops: make(chan ackOp, 256), done: make(chan struct{})}
	go a.run()
	return a
}

// ack queues a delete. It blocks only if 256 deletes are already queued.
func (a *acker) ack(from, to uint64) { a.ops <- ackOp{from, to} }

// stop finishes the queued deletes.
func (a *acker) stop() {
	close(a.ops)
	<-a.done
}

func (a *acker) run() {
	defer close(a.done)
	var batch []ackOp
	for op := range a.ops {
		batch = append(batch[:0], op)
	drain:
		for {
			select {
			case op, ok := <-a.ops:
				if !ok {
					break drain
				}
				batch = append(batch, op)
			default:
				break drain
			}
		}
		for _, op := range merge(batch) {
			var err error
			if op.from == 0 {
				err = a.buf.Ack(op.to)
			} else {
				err = a.buf.AckRange(op.from, op.to)
			}
			if err != nil {
				a.log.Error("deleting delivered records failed; they stay buffered and will be resent", "from", op.from, "to", op.to, "err", err)
			}
		}
	}
}

// merge joins consecutive deletes of the same kind: prefixes into the
// longest, adjoining or overlapping ranges into one.
func merge(ops []ackOp) []ackOp {
	out := ops[:0]
	for _, op := range ops {
		if n := len(out); n > 0 {
			last := &out[n-1]
			switch {
			case last.from == 0 && op.from == 0:
				last.to = max(last.to, op.to)
				continue
			case last.from != 0 && op.from != 0 && op.from <= last.to+1 && op.to+1 >= last.from:
				last.from, last.to = min(last.from, op.from), max(last.to, op.to)
				continue
			}
		}
		out = append(out, op)
	}
	return out
}
