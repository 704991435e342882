package agent

import (
	"errors"
	"slices"

	"github.com/edgeagent/edgeagent/agent/config"
)

// Reload outcomes, the result label of edgeagent_reloads_total.
const (
	ReloadApplied = "applied" // everything in the new file is in force
	ReloadPartial = "partial" // in force but for keys that need a restart; those kept their value
	ReloadInvalid = "invalid" // the file has mistakes; nothing changed
)

// ReloadReport says what a reload did.
type ReloadReport struct {
	Result                             string
	Added, Removed, Changed, Unchanged []string // device ids
	RestartNeeded                      []string // keys whose new value waits for a restart
	SessionRestarted                   bool     // node or mqtt changed: a new MQTT session
}

// Reload re-reads the configuration file the agent was built from and its
// tag-map files, and applies them while running (SIGHUP, systemctl reload).
//
// An invalid file changes nothing: every mistake is logged at its
// file:line:col and returned. A valid one is applied without losing
// anything stored:
//   - a device whose configuration is unchanged keeps running untouched
//     (no PLC reconnect, no DDEATH, no DBIRTH);
//   - a removed device stops and gets its DDEATH; an added one starts and
//     gets its DBIRTH when its PLC answers; a changed one does both;
//   - a change under node or mqtt starts a new MQTT session (NDEATH, the
//     next bdSeq, births);
//   - log, health.listen, buffer.max_bytes, replay_rate,
//     max_metrics_per_message and in_order apply at once, touching neither
//     devices nor the session;
//   - state_dir, buffer.path and buffer.mode need a restart: a change to
//     them is refused with a warning that says so, their old value stays,
//     and the rest applies (result partial).
//
// The buffer stays open throughout; records stored before the reload are
// published after it, against the device set they were stored under.
func (a *Agent) Reload() (ReloadReport, error) {
	a.mu.Lock()
	file := a.cfg.File
	a.mu.Unlock()
	next, err := config.Load(file)
	if err != nil {
		a.reloads[2].Add(1)
		var es config.Errors
		if errors.As(err, &es) {
			for _, e := range es {
				a.log.Error("configuration reload refused; the running configuration stays", "error", e.Error())
			}
		} else {
			a.log.Error("configuration reload refused; the running configuration stays", "error", err.Error())
		}
		return ReloadReport{Result: ReloadInvalid}, err
	}
	return a.apply(next)
}

// apply switches to a loaded configuration.
func (a *Agent) apply(next *config.Config) (ReloadReport, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.running {
		return ReloadReport{}, errNotRunning
	}
	old := a.cfg
	rep := ReloadReport{Result: ReloadApplied}

	keep := func(key string, oldV, newV string, restore func()) {
		if oldV != newV {
			rep.RestartNeeded = append(rep.RestartNeeded, key)
			a.log.Warn("changing this key needs a restart (systemctl restart edgeagent); keeping the running value until then",
				"key", key, "running", oldV, "new", newV)
			restore()
		}
	}
	keep("state_dir", old.StateDir, next.StateDir, func() { next.StateDir = old.StateDir })
	keep("buffer.path", old.Buffer.Path, next.Buffer.Path, func() { next.Buffer.Path = old.Buffer.Path })
	keep("buffer.mode", old.Buffer.Mode, next.Buffer.Mode, func() { next.Buffer.Mode = old.Buffer.Mode })
	if len(rep.RestartNeeded) > 0 {
		rep.Result = ReloadPartial
	}

	applyLog(a.log, next.Log)
	a.buf.SetMaxBytes(int64(next.Buffer.MaxBytes))
	if next.Health.Listen != old.Health.Listen {
		a.stopHealth()
		a.startHealth(next.Health.Listen)
	}
	rep.SessionRestarted = !config.SessionEqual(old, next)

	// Devices: keep the unchanged, stop the removed and changed (their
	// Offline events are stored under the old set), hand the uplink the
	// new set at that point in the records, then start the new ones.
	running := map[string]*device{}
	for _, d := range a.devs {
		running[d.cfg.ID] = d
	}
	var devs, start []*device
	for _, dc := range next.Devices {
		d, ok := running[dc.ID]
		switch {
		case ok && d.cfg.Fingerprint == dc.Fingerprint:
			rep.Unchanged = append(rep.Unchanged, dc.ID)
			delete(running, dc.ID)
			if d.view.template != dc.Template {
				// node.templates changed, and with it the session: the
				// device keeps running, the uplink births it anew.
				d.view = &deviceView{d.scan, dc.Template}
			}
		case ok:
			rep.Changed = append(rep.Changed, dc.ID)
			d = a.newDevice(dc)
			start = append(start, d)
		default:
			rep.Added = append(rep.Added, dc.ID)
			d = a.newDevice(dc)
			start = append(start, d)
		}
		devs = append(devs, d)
	}
	var stopping []*device
	for _, d := range a.devs {
		if r, ok := running[d.cfg.ID]; ok && r == d {
			if !slices.Contains(rep.Changed, d.cfg.ID) {
				rep.Removed = append(rep.Removed, d.cfg.ID)
			}
			d.scan.Retire()
			d.stop()
			stopping = append(stopping, d)
		}
	}
	for _, d := range stopping {
		<-d.done
	}
	at := a.store.Mark(nil)
	a.devs = devs
	a.cfg = next
	a.up.Update(next, a.views(), at)
	for _, d := range start {
		a.start(d)
	}
	switch rep.Result {
	case ReloadApplied:
		a.reloads[0].Add(1)
	case ReloadPartial:
		a.reloads[1].Add(1)
	}
	a.log.Info("configuration reloaded", "result", rep.Result, "added", rep.Added, "removed", rep.Removed,
		"changed", rep.Changed, "unchanged", len(rep.Unchanged), "new_session", rep.SessionRestarted)
	return rep, nil
}
