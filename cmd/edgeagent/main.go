// Command edgeagent polls PLCs and publishes their tags as Sparkplug B to
// a central MQTT broker, buffering on disk while the link is down.
//
//	edgeagent run -c /etc/edgeagent/config.yaml
//	edgeagent validate -c config.yaml
//	edgeagent watch -b tcp://broker:1883
//	edgeagent demo
//	edgeagent buffer -c config.yaml
//	edgeagent browse -c config.yaml -device oven-1 -o oven-1.yaml
//	edgeagent opcua-cert -c config.yaml
//	edgeagent version
//
// This package is flag parsing and wiring only; the agent lives in package
// agent.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/edgeagent/edgeagent/agent/config"
	_ "github.com/edgeagent/edgeagent/drivers/modbus"
	_ "github.com/edgeagent/edgeagent/drivers/opcua"
	"github.com/edgeagent/edgeagent/internal/version"
)

const usage = `usage: edgeagent <command> [flags]

commands:
  run       run the agent:                 edgeagent run -c config.yaml
  validate  check a configuration offline: edgeagent validate -c config.yaml
  watch     print decoded Sparkplug traffic: edgeagent watch -b tcp://localhost:1883
  demo      simulated PLCs, embedded broker, agent and live decoded traffic
  buffer    show the store-and-forward buffer: edgeagent buffer -c config.yaml
  browse    walk an OPC UA server, print a tag map: edgeagent browse -c config.yaml -device oven-1
            (or -endpoint opc.tcp://host:4840; -h lists the flags)
  opcua-cert  print the client certificate OPC UA servers must trust: edgeagent opcua-cert -c config.yaml
  version   print the version
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// run runs one command and returns the process's exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) < 1 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	cmd, args := args[0], args[1:]
	switch cmd {
	case "run":
		err = cmdRun(ctx, args, stderr)
	case "validate":
		err = cmdValidate(args, stdout)
	case "watch":
		err = cmdWatch(ctx, args, stdout)
	case "demo":
		err = cmdDemo(ctx, args, stdout)
	case "buffer":
		err = cmdBuffer(args, stdout)
	case "browse":
		err = cmdBrowse(ctx, args, stdout, stderr)
	case "opcua-cert":
		err = cmdOPCUACert(args, stdout)
	case "version", "-v", "--version":
		fmt.Fprintln(stdout, "edgeagent", version.Version)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "edgeagent: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	default:
		var es config.Errors
		if errors.As(err, &es) {
			fmt.Fprintln(stderr, es.Error())
			fmt.Fprintf(stderr, "edgeagent: %d error(s) in the configuration\n", len(es))
			return 1
		}
		fmt.Fprintln(stderr, "edgeagent:", err)
		return 1
	}
}

func configFlag(fs *flag.FlagSet) *string {
	return fs.String("c", "/etc/edgeagent/config.yaml", "configuration file")
}

// loadFromArgs parses a command whose only flag is -c and loads that
// configuration; it returns the file's path too.
func loadFromArgs(cmd string, args []string) (*config.Config, string, error) {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	file := configFlag(fs)
	if err := fs.Parse(args); err != nil {
		return nil, "", err
	}
	cfg, err := config.Load(*file)
	return cfg, *file, err
}

func cmdValidate(args []string, out io.Writer) error {
	cfg, file, err := loadFromArgs("validate", args)
	if err != nil {
		return err
	}
	tags := 0
	for _, d := range cfg.Devices {
		tags += len(d.Instance.Tags())
	}
	fmt.Fprintf(out, "%s: ok (%s/%s, %d devices, %d tags, %d servers)\n", file, cfg.Node.GroupID, cfg.Node.EdgeNodeID, len(cfg.Devices), tags, len(cfg.MQTT.Servers))
	return nil
}
