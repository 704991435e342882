package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/edgeagent/edgeagent/agent/config"
	"github.com/edgeagent/edgeagent/buffer"
)

// cmdBuffer prints the store-and-forward buffer's state. bbolt allows one
// process at a time, so it works while the agent is stopped and says so
// otherwise.
func cmdBuffer(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("buffer", flag.ContinueOnError)
	file := configFlag(fs)
	path := fs.String("path", "", "buffer file (default: from the configuration)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	p := *path
	if p == "" {
		cfg, err := config.Load(*file)
		if err != nil {
			return err
		}
		p = cfg.Buffer.Path
	}
	b, err := buffer.Open(buffer.Options{Path: p, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return fmt.Errorf("%w (is the agent running? stop it to inspect the buffer)", err)
	}
	defer b.Close()
	s := b.Stats()
	fmt.Fprintf(out, "buffer %s\n  records    %d (seq %d..%d)\n  bytes      %d\n  file       %d bytes\n  oldest     %s old\n",
		p, s.Records, s.OldestSeq, s.NewestSeq, s.Bytes, s.FileBytes, s.OldestAge.Round(time.Second))
	return nil
}
