package agent

import (
	"context"
	"io"
	"log/slog"
	"sync/atomic"

	"github.com/edgeagent/edgeagent/agent/config"
)

// NewLogger returns a logger writing to w at the level and in the format
// of the log section. An Agent built with it changes both when a reload
// changes them, including in the loggers already derived with With.
func NewLogger(w io.Writer, c config.LogConfig) *slog.Logger {
	sw := &switchHandler{w: w, level: new(slog.LevelVar), base: new(atomic.Pointer[slog.Handler])}
	sw.apply(c)
	return slog.New(sw)
}

// applyLog applies the log section to a logger made by NewLogger; others
// are left as they are.
func applyLog(l *slog.Logger, c config.LogConfig) {
	if sw, ok := l.Handler().(*switchHandler); ok {
		sw.apply(c)
	}
}

// switchHandler is a slog.Handler whose level and format can change while
// loggers derived from it live. Logs are rare, so resolving the current
// handler per record costs nothing that matters.
type switchHandler struct {
	w     io.Writer
	level *slog.LevelVar
	base  *atomic.Pointer[slog.Handler] // shared by every derived handler
	ops   []func(slog.Handler) slog.Handler
}

func (h *switchHandler) apply(c config.LogConfig) {
	var l slog.Level
	_ = l.UnmarshalText([]byte(c.Level))
	h.level.Set(l)
	opts := &slog.HandlerOptions{Level: h.level}
	var base slog.Handler
	if c.Format == "json" {
		base = slog.NewJSONHandler(h.w, opts)
	} else {
		base = slog.NewTextHandler(h.w, opts)
	}
	h.base.Store(&base)
}

func (h *switchHandler) current() slog.Handler {
	out := *h.base.Load()
	for _, op := range h.ops {
		out = op(out)
	}
	return out
}

func (h *switchHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= h.level.Level() }

func (h *switchHandler) Handle(ctx context.Context, r slog.Record) error {
	return h.current().Handle(ctx, r)
}

func (h *switchHandler) with(op func(slog.Handler) slog.Handler) *switchHandler {
	c := *h
	c.ops = append(h.ops[:len(h.ops):len(h.ops)], op)
	return &c
}

func (h *switchHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return h.with(func(b slog.Handler) slog.Handler { return b.WithAttrs(as) })
}

func (h *switchHandler) WithGroup(name string) slog.Handler {
	return h.with(func(b slog.Handler) slog.Handler { return b.WithGroup(name) })
}
