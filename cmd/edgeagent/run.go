package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"

	"github.com/edgeagent/edgeagent/agent"
)

func cmdRun(ctx context.Context, args []string, stderr io.Writer) error {
	// The heap is mostly per-tag state that lives as long as the process;
	// what a scan allocates is short-lived. Collecting at 50 % growth
	// instead of Go's 100 % keeps the resident size a third lower for a
	// few more collections a minute. GOGC in the environment still wins.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(50)
	}
	cfg, _, err := loadFromArgs("run", args)
	if err != nil {
		return err
	}
	log := agent.NewLogger(stderr, cfg.Log)
	a, err := agent.New(cfg, log)
	if err != nil {
		return err
	}
	cfg = nil
	// What loading left behind goes back to the system now.
	debug.FreeOSMemory()
	return serve(ctx, a, log)
}

// serve runs the agent under systemd's notify protocol: READY=1 once
// running; on SIGHUP, RELOADING=1, the reload, READY=1; STOPPING=1 on the
// way out; and WATCHDOG=1 only while every loop of the agent turns. Each
// is a no-op without NOTIFY_SOCKET.
func serve(ctx context.Context, a *agent.Agent, log *slog.Logger) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		defer cancel()
		err := a.Run(ctx)
		notify(log, daemon.SdNotifyStopping)
		return err
	})
	g.Go(func() error {
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-hup:
				notify(log, fmt.Sprintf("RELOADING=1\nMONOTONIC_USEC=%d", monotonicUsec()))
				a.Reload()
				notify(log, daemon.SdNotifyReady)
			}
		}
	})
	g.Go(func() error { return feedWatchdog(ctx, a, log) })
	notify(log, daemon.SdNotifyReady)
	return g.Wait()
}

func notify(log *slog.Logger, state string) {
	if _, err := daemon.SdNotify(false, state); err != nil {
		log.Warn("telling systemd", "state", state, "err", err)
	}
}

// monotonicUsec is CLOCK_MONOTONIC in µs, which systemd wants with
// RELOADING=1 to tell this reload from an earlier one.
func monotonicUsec() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return ts.Nano() / 1000
}

// feedWatchdog pings systemd's watchdog at a third of its interval while
// no loop of the agent has stalled for half of it. A dead WAN or PLC never
// stalls a loop (they wait and beat); a deadlock or a hung call does, and
// then systemd restarts the agent. Without WatchdogSec it does nothing.
func feedWatchdog(ctx context.Context, a *agent.Agent, log *slog.Logger) error {
	every, err := daemon.SdWatchdogEnabled(false)
	if err != nil || every == 0 {
		return nil
	}
	t := time.NewTicker(every / 3)
	defer t.Stop()
	warned := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if stalled := a.Stalled(every / 2); len(stalled) > 0 {
			if !warned {
				log.Error("not feeding the watchdog: loops stopped turning; systemd will restart the agent", "stalled", stalled)
				warned = true
			}
			continue
		}
		warned = false
		notify(log, daemon.SdNotifyWatchdog)
	}
}
