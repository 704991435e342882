package main

import (
	"context"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// startWatchdog feeds systemd's watchdog at half its interval while ctx
// lives. Without WatchdogSec in the unit it does nothing.
func startWatchdog(ctx context.Context) func() {
	every, err := daemon.SdWatchdogEnabled(false)
	if err != nil || every == 0 {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	go func() {
		t := time.NewTicker(every / 2)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				daemon.SdNotify(false, daemon.SdNotifyWatchdog)
			}
		}
	}()
	return cancel
}
