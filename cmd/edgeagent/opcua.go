package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/edgeagent/edgeagent/agent/config"
	"github.com/edgeagent/edgeagent/drivers"
	"github.com/edgeagent/edgeagent/drivers/opcua"
)

// cmdBrowse walks an OPC UA server and prints a tag map. With -c and
// -device it connects exactly as the service does (security, user, the
// client certificate in state_dir), so a server that trusts the service
// trusts it too; run it as the service's user for that:
//
//	sudo -u edgeagent edgeagent browse -c /etc/edgeagent/config.yaml -device oven-1 -o oven-1.yaml
func cmdBrowse(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("browse", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("c", "", "configuration file whose device to connect as (with -device)")
	device := fs.String("device", "", "the OPC UA device of -c to browse")
	endpoint := fs.String("endpoint", "", "or: the server to browse, opc.tcp://host:port")
	policy := fs.String("policy", "None", "with -endpoint: security policy (None, Basic256Sha256, Aes128_Sha256_RsaOaep, Aes256_Sha256_RsaPss)")
	mode := fs.String("mode", "", "with -endpoint: security mode (None, Sign, SignAndEncrypt)")
	user := fs.String("username", "", "with -endpoint: user name")
	pwFile := fs.String("password-file", "", "with -endpoint: file holding the password")
	trustDir := fs.String("trust-dir", "", "with -endpoint: directory of trusted server certificates")
	serverCert := fs.String("server-cert", "", "with -endpoint: the server's certificate, trusted")
	trustAny := fs.Bool("trust-any-server-certificate", false, "with -endpoint: do not verify the server's certificate")
	stateDir := fs.String("state-dir", config.DefaultStateDir, "with -endpoint: where the client certificate is kept (the service's state_dir)")
	root := fs.String("root", "", "node to start from (default: the Objects folder, without the server's own nodes)")
	depth := fs.Int("depth", 0, "levels below the root to walk (0: all)")
	out := fs.String("o", "", "write the tag map to this file instead of standard output")
	save := fs.String("save-server-cert", "", "save the server's certificate into this directory (to check its thumbprint and trust it)")
	timeout := fs.Duration("timeout", 10*time.Second, "bound on each request")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var drv drivers.Driver
	switch {
	case *file != "" && *endpoint != "":
		return errors.New("browse: give -c with -device, or -endpoint, not both")
	case *file != "":
		cfg, err := config.Load(*file)
		if err != nil {
			return err
		}
		var ids []string
		for _, d := range cfg.Devices {
			if d.Driver != "opcua" {
				continue
			}
			ids = append(ids, d.ID)
			if d.ID == *device {
				drv = d.Instance
			}
		}
		if drv == nil {
			return fmt.Errorf("browse: -device %q is not an OPC UA device of %s (its OPC UA devices: %s)", *device, *file, strings.Join(ids, ", "))
		}
	case *endpoint != "":
		var b strings.Builder
		fmt.Fprintf(&b, "endpoint: %q\nsecurity: {policy: %q", *endpoint, *policy)
		if *mode != "" {
			fmt.Fprintf(&b, ", mode: %q", *mode)
		}
		if *trustDir != "" {
			fmt.Fprintf(&b, ", trust_dir: %q", *trustDir)
		}
		if *serverCert != "" {
			fmt.Fprintf(&b, ", server_cert: %q", *serverCert)
		}
		if *trustAny {
			b.WriteString(", trust_any_server_certificate: true")
		}
		b.WriteString("}\n")
		if *user != "" || *pwFile != "" {
			fmt.Fprintf(&b, "auth: {username: %q, password_file: %q}\n", *user, *pwFile)
		}
		b.WriteString("tags: [{name: browse, node: \"i=2258\"}]\n") // a device needs a tag; never read
		dc, err := config.DriverConfig(b.String())
		if err != nil {
			return flagErrors(err)
		}
		dc.StateDir, dc.Timeout, dc.Poll = *stateDir, *timeout, time.Second
		if drv, err = opcua.New(dc); err != nil {
			return flagErrors(err)
		}
	default:
		return errors.New("browse: give -c config.yaml -device ID, or -endpoint opc.tcp://host:port")
	}
	if l, ok := drv.(drivers.Logging); ok {
		l.SetLogger(slog.New(slog.NewTextHandler(stderr, nil)))
	}
	res, err := opcua.Browse(ctx, drv, opcua.BrowseOptions{Root: *root, Depth: *depth, SaveServerCert: *save})
	if res != nil && res.SavedCert != "" {
		fmt.Fprintf(stderr, "saved the server's certificate to %s; check its thumbprint with the server's administrator before you trust it\n", res.SavedCert)
	}
	if err != nil {
		return fmt.Errorf("browse: %w", err)
	}
	w := stdout
	if *out != "" {
		f, err := os.Create(*out)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	if err := res.WriteTagMap(w); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "browsed %d nodes in %v: %d variables, %d skipped (listed at the end of the tag map)\n",
		res.Nodes, res.Took.Round(time.Millisecond), len(res.Variables), len(res.Skipped))
	if *out != "" {
		fmt.Fprintf(stderr, "tag map written to %s: name a device's tag_map after it, then run edgeagent validate\n", *out)
	}
	return nil
}

// flagErrors says which flag a device key of browse's came from.
func flagErrors(err error) error {
	msg := err.Error()
	for key, flag := range map[string]string{
		"security.policy": "-policy", "security.mode": "-mode", "security.trust_dir": "-trust-dir",
		"security.server_cert": "-server-cert", "auth.password_file": "-password-file", "auth.username": "-username",
		"endpoint": "-endpoint", "security": "-trust-dir, -server-cert or -trust-any-server-certificate",
	} {
		msg = strings.ReplaceAll(msg, key+":", flag+":")
	}
	return fmt.Errorf("browse: %s", msg)
}

// cmdOPCUACert prints the client certificate the agent presents to OPC UA
// servers (made once, in state_dir, if it does not exist yet), for the
// servers' trust lists. Run it as the service's user, so that a
// certificate it makes belongs to the service.
func cmdOPCUACert(args []string, out io.Writer) error {
	cfg, file, err := loadFromArgs("opcua-cert", args)
	if err != nil {
		return err
	}
	type use struct {
		cert    *opcua.ClientCert
		devices []string
	}
	var uses []*use
	byFile := map[string]*use{}
	for _, d := range cfg.Devices {
		if d.Driver != "opcua" {
			continue
		}
		c, err := opcua.ClientCertOf(d.Instance)
		if err != nil {
			return fmt.Errorf("device %s: %w", d.ID, err)
		}
		if c == nil {
			continue // security None: no certificate
		}
		u, ok := byFile[c.CertFile]
		if !ok {
			u = &use{cert: c}
			byFile[c.CertFile] = u
			uses = append(uses, u)
		}
		u.devices = append(u.devices, d.ID)
	}
	if len(uses) == 0 {
		fmt.Fprintf(out, "%s: no OPC UA device uses security, so none presents a certificate\n", file)
		return nil
	}
	for _, u := range uses {
		c := u.cert
		fmt.Fprintf(out, "client certificate  %s\n", c.CertFile)
		fmt.Fprintf(out, "thumbprint (SHA-1)  %s\n", c.Thumbprint())
		fmt.Fprintf(out, "application URI     %s\n", c.AppURI)
		fmt.Fprintf(out, "valid until         %s\n", c.NotAfter.UTC().Format("2006-01-02"))
		fmt.Fprintf(out, "used by             %s\n", strings.Join(u.devices, ", "))
		if w := c.ExpiryWarning(time.Now()); w != "" {
			fmt.Fprintf(out, "WARNING             %s\n", w)
		}
		fmt.Fprintln(out)
	}
	fmt.Fprintln(out, "Have each server trust it: copy the file into the server's trusted certificates, or accept it")
	fmt.Fprintln(out, "where the server lists rejected ones after a first connect (compare the thumbprint).")
	return nil
}
