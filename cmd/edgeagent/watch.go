package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgeagent/edgeagent/sparkplug"
)

// watchOptions are the flags of edgeagent watch.
type watchOptions struct {
	broker, topic, clientID string
	caFile, certFile        string
	keyFile, serverName     string
	insecure                bool
	username, passwordFile  string
	check                   time.Duration // 0: watch until stopped
	rebirth, quiet          bool
}

const watchUsage = `usage: edgeagent watch [flags]

Prints decoded Sparkplug B traffic, one line per message, and checks it as a
Sparkplug host would: the seq chain, bdSeq between NBIRTH and NDEATH, births
before data, aliases and datatypes against the births. A VIOLATION line
breaks a Sparkplug B 3.0 rule; an info line is allowed but worth knowing
(joined mid-session, a duplicate re-send after a fault, a stale NDEATH).
With -check D it stops after D, prints a summary and exits 1 on any
violation (or when no edge node published anything):

  edgeagent watch -b ssl://broker:8883 -ca-file ca.pem -check 5m -rebirth -q

flags:
`

func cmdWatch(ctx context.Context, args []string, out io.Writer) error {
	var o watchOptions
	fs := flag.NewFlagSet("watch", flag.ContinueOnError)
	fs.StringVar(&o.broker, "b", "tcp://localhost:1883", "broker URL: tcp://, ssl:// (or tls://, mqtts://), ws://, wss://")
	fs.StringVar(&o.topic, "t", "spBv1.0/#", "topic filter")
	fs.StringVar(&o.clientID, "client-id", "", "MQTT client id (default edgeagent-watch-<unique>)")
	fs.StringVar(&o.caFile, "ca-file", "", "PEM CA certificates to verify the broker with (default: the system's)")
	fs.StringVar(&o.certFile, "cert-file", "", "PEM client certificate, for brokers that require one (with -key-file)")
	fs.StringVar(&o.keyFile, "key-file", "", "PEM private key of -cert-file")
	fs.StringVar(&o.serverName, "server-name", "", "name to verify the broker's certificate against (default: the URL's host)")
	fs.BoolVar(&o.insecure, "insecure-skip-verify", false, "do not verify the broker's certificate (testing only)")
	fs.StringVar(&o.username, "username", "", "MQTT username")
	fs.StringVar(&o.passwordFile, "password-file", "", "file holding the MQTT password (a trailing newline is dropped)")
	fs.DurationVar(&o.check, "check", 0, "check for this long, print a summary, exit 1 on any violation (e.g. 5m)")
	fs.BoolVar(&o.rebirth, "rebirth", false, "ask every edge node whose stream the watcher joined mid-session for its births (NCMD Node Control/Rebirth), once")
	fs.BoolVar(&o.quiet, "q", false, "print only violations, info and the summary, no traffic lines")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), watchUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("watch: unexpected argument %q (flags go before it; -h lists them)", fs.Arg(0))
	}
	if o.check < 0 {
		return fmt.Errorf("watch: -check %s: want a positive duration", o.check)
	}
	return runWatch(ctx, o, out)
}

// watch prints decoded, checked Sparkplug traffic until ctx ends, then a
// summary. The demo runs it beside the agent.
func watch(ctx context.Context, broker, topic string, out io.Writer) error {
	return runWatch(ctx, watchOptions{broker: broker, topic: topic}, out)
}

// errCheckFailed is what watch -check returns when it saw a violation or
// nothing to check; the summary says which.
var errCheckFailed = errors.New("sparkplug check failed")

// runWatch subscribes, handles every message through a checker until ctx
// ends or -check elapses, and prints the summary. With -check, violations
// (or no edge node traffic at all) make it fail.
func runWatch(ctx context.Context, o watchOptions, out io.Writer) error {
	opts, err := o.clientOptions()
	if err != nil {
		return err
	}
	c := newChecker(out, o.quiet)
	var client mqtt.Client
	if o.rebirth {
		c.rebirth = func(group, node string) error {
			topic := sparkplug.Topic{Group: group, Type: sparkplug.NCMD, Node: node}.String()
			now := uint64(time.Now().UnixMilli())
			m := []sparkplug.Metric{{Name: sparkplug.MetricRebirth, Type: sparkplug.TypeBoolean, Int: 1, Timestamp: now}}
			// Not waited for: this runs in paho's message handler.
			client.Publish(topic, 1, false, sparkplug.AppendCommand(nil, now, m))
			return nil
		}
	}
	subscribed := make(chan error, 1)
	opts.SetOnConnectHandler(func(cl mqtt.Client) {
		tok := cl.Subscribe(o.topic, 1, func(_ mqtt.Client, m mqtt.Message) {
			c.handle(watchMsg{At: time.Now(), Topic: m.Topic(), Payload: m.Payload(), QoS: m.Qos(), Retained: m.Retained()})
		})
		err := subscribeError(tok, o.topic)
		select {
		case subscribed <- err: // the first connection
		default:
			if err != nil {
				c.watcherInfo(time.Now(), fmt.Sprintf("reconnected, but %v: nothing is seen", err))
			}
		}
	})
	opts.SetConnectionLostHandler(func(_ mqtt.Client, err error) { c.connectionLost(time.Now(), err) })
	client = mqtt.NewClient(opts)
	if t := client.Connect(); !t.WaitTimeout(opts.ConnectTimeout+5*time.Second) || t.Error() != nil {
		err := t.Error()
		if err == nil {
			err = errors.New("timed out")
		}
		return fmt.Errorf("connecting to %s: %w", redactURL(o.broker), err)
	}
	defer client.Disconnect(250)
	select {
	case err := <-subscribed:
		if err != nil {
			return err
		}
	case <-ctx.Done():
		return nil
	}
	from := time.Now()
	if o.check > 0 {
		fmt.Fprintf(out, "%s  watching %s on %s: checking for %s\n", from.Format("15:04:05.000"), o.topic, redactURL(o.broker), o.check)
	} else {
		fmt.Fprintf(out, "%s  watching %s on %s until stopped\n", from.Format("15:04:05.000"), o.topic, redactURL(o.broker))
	}
	interrupted := false
	if o.check > 0 {
		t := time.NewTimer(o.check)
		defer t.Stop()
		select {
		case <-ctx.Done():
			interrupted = true
		case <-t.C:
		}
	} else {
		<-ctx.Done()
	}
	to := time.Now()
	c.close()
	violations, msgs := c.summary(out, watchRun{broker: o.broker, topic: o.topic, from: from, to: to, check: o.check})
	switch {
	case o.check == 0:
		return nil
	case interrupted:
		return fmt.Errorf("%w: interrupted after %s of %s", errCheckFailed, to.Sub(from).Round(time.Second), o.check)
	case violations > 0:
		return fmt.Errorf("%w: %d violation(s) in %s", errCheckFailed, violations, o.check)
	case msgs == 0:
		return fmt.Errorf("%w: no Sparkplug message from an edge node in %s", errCheckFailed, o.check)
	}
	return nil
}

// subscribeError waits for the SUBACK and reports a refusal (an ACL).
func subscribeError(tok mqtt.Token, topic string) error {
	if !tok.WaitTimeout(10 * time.Second) {
		return fmt.Errorf("subscribing to %s: no SUBACK within 10s", topic)
	}
	if err := tok.Error(); err != nil {
		return fmt.Errorf("subscribing to %s: %w", topic, err)
	}
	if st, ok := tok.(*mqtt.SubscribeToken); ok && st.Result()[topic] == 0x80 {
		return fmt.Errorf("subscribing to %s: refused by the broker (not allowed for this user?)", topic)
	}
	return nil
}

// tlsSchemes are the broker URL schemes paho speaks TLS on.
var tlsSchemes = map[string]bool{"ssl": true, "tls": true, "mqtts": true, "mqtt+ssl": true, "tcps": true, "wss": true}

// clientOptions builds paho's options from the flags: the broker URL,
// client id, credentials and TLS. Files named by flags are read here, so a
// missing or bad one fails before any connection is tried.
func (o watchOptions) clientOptions() (*mqtt.ClientOptions, error) {
	broker := o.broker
	if !strings.Contains(broker, "://") {
		broker = "tcp://" + broker
	}
	u, err := url.Parse(broker)
	if err != nil {
		return nil, fmt.Errorf("-b %s: %w", redactURL(o.broker), err)
	}
	switch {
	case u.Scheme != "tcp" && u.Scheme != "mqtt" && u.Scheme != "ws" && !tlsSchemes[u.Scheme]:
		return nil, fmt.Errorf("-b %s: unsupported scheme %q (want tcp, ssl, tls, mqtts, ws or wss)", redactURL(o.broker), u.Scheme)
	case u.Host == "":
		return nil, fmt.Errorf("-b %s: no host", redactURL(o.broker))
	}
	id := o.clientID
	if id == "" {
		id = fmt.Sprintf("edgeagent-watch-%d", time.Now().UnixNano())
	}
	opts := mqtt.NewClientOptions().AddBroker(broker).SetClientID(id).
		SetCleanSession(true).SetAutoReconnect(true).SetMaxReconnectInterval(5 * time.Second).
		SetConnectTimeout(10 * time.Second).SetOrderMatters(true)
	if o.username != "" {
		opts.SetUsername(o.username)
	}
	if o.passwordFile != "" {
		if o.username == "" {
			return nil, errors.New("-password-file needs -username (MQTT sends no password without a username)")
		}
		b, err := os.ReadFile(o.passwordFile)
		if err != nil {
			return nil, fmt.Errorf("-password-file: %w", err)
		}
		opts.SetPassword(strings.TrimRight(string(b), "\r\n"))
	}
	tc, err := o.tlsConfig(u.Scheme)
	if err != nil {
		return nil, err
	}
	if tc != nil {
		opts.SetTLSConfig(tc)
	}
	return opts, nil
}

// tlsConfig is the TLS configuration for a TLS scheme, nil for a plain one.
// TLS flags with a plain URL are a mistake worth an error: they would
// otherwise be silently ignored.
func (o watchOptions) tlsConfig(scheme string) (*tls.Config, error) {
	flags := o.caFile != "" || o.certFile != "" || o.keyFile != "" || o.serverName != "" || o.insecure
	if !tlsSchemes[scheme] {
		if flags {
			return nil, fmt.Errorf("-ca-file, -cert-file, -key-file, -server-name and -insecure-skip-verify need a TLS broker URL (ssl://, tls://, mqtts:// or wss://), not %s://", scheme)
		}
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: o.serverName, InsecureSkipVerify: o.insecure}
	if o.caFile != "" {
		pem, err := os.ReadFile(o.caFile)
		if err != nil {
			return nil, fmt.Errorf("-ca-file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("-ca-file %s: no PEM certificate in it", o.caFile)
		}
		tc.RootCAs = pool
	}
	switch {
	case o.certFile == "" && o.keyFile == "":
	case o.certFile == "" || o.keyFile == "":
		return nil, errors.New("-cert-file and -key-file go together")
	default:
		cert, err := tls.LoadX509KeyPair(o.certFile, o.keyFile)
		if err != nil {
			return nil, fmt.Errorf("-cert-file %s, -key-file %s: %w", o.certFile, o.keyFile, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// redactURL hides a password in a broker URL.
func redactURL(s string) string {
	if u, err := url.Parse(s); err == nil && u.User != nil {
		return u.Redacted()
	}
	return s
}
