package opcua

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"strings"
	"time"

	"github.com/gopcua/opcua/ua"

	"github.com/edgeagent/edgeagent/drivers"
)

// device is the driver-specific part of a device's configuration.
// Optional numbers are pointers so an explicit 0 is told from a missing key.
type device struct {
	Endpoint           string            `yaml:"endpoint"`
	SessionEndpointURL string            `yaml:"session_endpoint_url"`
	Mode               string            `yaml:"mode"`
	PublishingInterval drivers.Duration  `yaml:"publishing_interval"`
	SamplingInterval   *drivers.Duration `yaml:"sampling_interval"`
	QueueSize          *int              `yaml:"queue_size"`
	Keepalive          drivers.Duration  `yaml:"keepalive"`
	SessionTimeout     drivers.Duration  `yaml:"session_timeout"`
	ApplicationURI     string            `yaml:"application_uri"`
	RegisterNodes      *bool             `yaml:"register_nodes"`
	Security           security          `yaml:"security"`
	Auth               auth              `yaml:"auth"`
	Limits             limitKeys         `yaml:"limits"`
}

// security is how the channel is secured and whom it trusts.
type security struct {
	Policy     string `yaml:"policy"`
	Mode       string `yaml:"mode"`
	CertFile   string `yaml:"cert_file"`
	KeyFile    string `yaml:"key_file"`
	TrustDir   string `yaml:"trust_dir"`
	ServerCert string `yaml:"server_cert"`
	// TrustAny is named so that nobody sets it by accident: the driver
	// warns at every connect while it is on.
	TrustAny bool `yaml:"trust_any_server_certificate"`
}

// auth is the session's user identity: anonymous, a user name with a
// password read from a file, or a certificate.
type auth struct {
	Username     string `yaml:"username"`
	PasswordFile string `yaml:"password_file"`
	CertFile     string `yaml:"cert_file"`
	KeyFile      string `yaml:"key_file"`
}

// limitKeys caps service calls below what the server advertises, for
// servers that advertise nothing and fail large requests.
type limitKeys struct {
	MaxNodesPerRead                  int `yaml:"max_nodes_per_read"`
	MaxNodesPerWrite                 int `yaml:"max_nodes_per_write"`
	MaxNodesPerBrowse                int `yaml:"max_nodes_per_browse"`
	MaxNodesPerRegisterNodes         int `yaml:"max_nodes_per_register_nodes"`
	MaxMonitoredItemsPerCall         int `yaml:"max_monitored_items_per_call"`
	MaxMonitoredItemsPerSubscription int `yaml:"max_monitored_items_per_subscription"`
}

// tag is one configured tag: the common keys plus OPC UA addressing and
// monitoring.
type tag struct {
	drivers.TagConfig `yaml:",inline"`
	Node              string            `yaml:"node"`
	SamplingInterval  *drivers.Duration `yaml:"sampling_interval"`
	QueueSize         *int              `yaml:"queue_size"`
	DeadbandPercent   *float64          `yaml:"deadband_percent"`
}

// Modes of reading a device.
const (
	modeSubscribe = "subscribe"
	modePoll      = "poll"
)

// Policies and message security modes, as configuration spells them.
var (
	policies = map[string]string{
		"None":                  ua.SecurityPolicyURINone,
		"Basic256Sha256":        ua.SecurityPolicyURIBasic256Sha256,
		"Aes128_Sha256_RsaOaep": ua.SecurityPolicyURIAes128Sha256RsaOaep,
		"Aes256_Sha256_RsaPss":  ua.SecurityPolicyURIAes256Sha256RsaPss,
	}
	msgModes = map[string]ua.MessageSecurityMode{
		"None":           ua.MessageSecurityModeNone,
		"Sign":           ua.MessageSecurityModeSign,
		"SignAndEncrypt": ua.MessageSecurityModeSignAndEncrypt,
	}
)

// Defaults of the device keys.
const (
	defaultQueueSize      = 10
	defaultKeepalive      = 5 * time.Second
	defaultSessionTimeout = 2 * time.Minute
)

// settings is a validated device.
type settings struct {
	endpoint       string // dialled, whatever host name the server advertises
	sessionURL     string // named in CreateSession; endpoint unless set
	poll           bool
	publishing     time.Duration
	sampling       time.Duration
	queueSize      uint32
	keepalive      time.Duration
	sessionTimeout time.Duration
	appURI         string
	register       bool
	policyURI      string
	policy         string // as configured, for messages
	msgMode        ua.MessageSecurityMode
	sec            security
	auth           auth
	limits         limitKeys
}

// validate checks the device keys, reporting every mistake (joined).
func (d *device) validate(poll time.Duration) (settings, error) {
	s := settings{register: true}
	var errs []error
	bad := func(key string, err error) { errs = append(errs, drivers.KeyErr(key, err)) }

	switch u, err := url.Parse(d.Endpoint); {
	case d.Endpoint == "":
		bad("endpoint", errors.New("is required (e.g. opc.tcp://10.0.0.9:4840)"))
	case err != nil || u.Scheme != "opc.tcp" || u.Host == "":
		bad("endpoint", fmt.Errorf("%q is not an opc.tcp://host:port URL", d.Endpoint))
	default:
		s.endpoint = d.Endpoint
		if u.Port() == "" {
			s.endpoint = "opc.tcp://" + u.Host + ":4840" + u.Path
		}
	}
	s.sessionURL = s.endpoint
	if d.SessionEndpointURL != "" {
		if u, err := url.Parse(d.SessionEndpointURL); err != nil || u.Scheme != "opc.tcp" || u.Host == "" {
			bad("session_endpoint_url", fmt.Errorf("%q is not an opc.tcp://host:port URL", d.SessionEndpointURL))
		}
		s.sessionURL = d.SessionEndpointURL
	}

	switch d.Mode {
	case "", modeSubscribe:
	case modePoll:
		s.poll = true
	default:
		bad("mode", fmt.Errorf("%q is not subscribe or poll", d.Mode))
	}
	s.publishing = d.PublishingInterval.D()
	if s.publishing == 0 {
		s.publishing = poll
	}
	if s.publishing < 10*time.Millisecond {
		bad("publishing_interval", fmt.Errorf("%v is shorter than 10ms", s.publishing))
	}
	s.sampling = s.publishing
	if d.SamplingInterval != nil {
		s.sampling = d.SamplingInterval.D()
	}
	queue := defaultQueueSize
	if d.QueueSize != nil {
		queue = *d.QueueSize
	}
	if queue < 1 || queue > math.MaxUint16 {
		bad("queue_size", fmt.Errorf("%d is not in 1..65535", queue))
	}
	s.queueSize = uint32(max(queue, 1))
	s.keepalive = d.Keepalive.D()
	if s.keepalive == 0 {
		s.keepalive = max(defaultKeepalive, 2*s.publishing)
	}
	if s.keepalive < s.publishing {
		bad("keepalive", fmt.Errorf("%v is shorter than the publishing interval %v", s.keepalive, s.publishing))
	}
	s.sessionTimeout = d.SessionTimeout.D()
	if s.sessionTimeout == 0 {
		s.sessionTimeout = defaultSessionTimeout
	}
	if s.sessionTimeout < 10*time.Second {
		bad("session_timeout", fmt.Errorf("%v is shorter than 10s", s.sessionTimeout))
	}
	s.appURI = d.ApplicationURI
	if d.RegisterNodes != nil {
		s.register = *d.RegisterNodes
	}

	sec := d.Security
	s.policy = sec.Policy
	if s.policy == "" {
		s.policy = "None"
	}
	var ok bool
	if s.policyURI, ok = policies[s.policy]; !ok {
		bad("security.policy", fmt.Errorf("%q is not one of None, Basic256Sha256, Aes128_Sha256_RsaOaep, Aes256_Sha256_RsaPss", sec.Policy))
	}
	mode := sec.Mode
	if mode == "" {
		mode = "None"
		if s.policy != "None" {
			mode = "SignAndEncrypt"
		}
	}
	if s.msgMode, ok = msgModes[mode]; !ok {
		bad("security.mode", fmt.Errorf("%q is not one of None, Sign, SignAndEncrypt", sec.Mode))
	} else if (mode == "None") != (s.policy == "None") {
		bad("security.mode", fmt.Errorf("%s with policy %s: policy None goes with mode None, and only with it", mode, s.policy))
	}
	if (sec.CertFile == "") != (sec.KeyFile == "") {
		bad("security.cert_file", errors.New("and security.key_file go together (leave both out to have a certificate made in state_dir)"))
	}
	if sec.TrustAny && (sec.TrustDir != "" || sec.ServerCert != "") {
		bad("security.trust_any_server_certificate", errors.New("makes security.trust_dir and security.server_cert pointless; set one or the other"))
	}
	if s.policy != "None" && !sec.TrustAny && sec.TrustDir == "" && sec.ServerCert == "" {
		bad("security", errors.New("needs the server's certificate trusted: security.trust_dir (a directory of trusted certificates) or security.server_cert (one file), or explicitly security.trust_any_server_certificate: true"))
	}
	s.sec = sec

	a := d.Auth
	switch {
	case a.Username != "" && a.CertFile != "":
		bad("auth", errors.New("has a username and a certificate; a session has one identity"))
	case a.Username != "" && a.PasswordFile == "":
		bad("auth.password_file", errors.New("is required with auth.username (a file holding the password, readable only by the agent)"))
	case a.Username == "" && a.PasswordFile != "":
		bad("auth.username", errors.New("is required with auth.password_file"))
	case (a.CertFile == "") != (a.KeyFile == ""):
		bad("auth.cert_file", errors.New("and auth.key_file go together"))
	}
	s.auth = a

	for key, v := range map[string]int{
		"limits.max_nodes_per_read": d.Limits.MaxNodesPerRead, "limits.max_nodes_per_write": d.Limits.MaxNodesPerWrite,
		"limits.max_nodes_per_browse": d.Limits.MaxNodesPerBrowse, "limits.max_nodes_per_register_nodes": d.Limits.MaxNodesPerRegisterNodes,
		"limits.max_monitored_items_per_call":         d.Limits.MaxMonitoredItemsPerCall,
		"limits.max_monitored_items_per_subscription": d.Limits.MaxMonitoredItemsPerSubscription,
	} {
		if v < 0 {
			bad(key, fmt.Errorf("%d is negative (0 or absent: what the server advertises)", v))
		}
	}
	s.limits = d.Limits
	return s, errors.Join(errs...)
}

// tagSpec is a validated tag.
type tagSpec struct {
	node     nodeSpec
	sampling time.Duration // -1: the device's
	queue    uint32        // 0: the device's
	percent  float64       // deadband_percent; 0: none
}

// supported lists the types OPC UA tags may be given, for messages.
const supported = "bool, int8..int64, uint8..uint64, float32, float64, string, datetime, bytes, or an array of one but bytes (e.g. float64_array); or leave type out to take the node's"

// spec validates a tag's OPC UA keys.
func (t *tag) spec() (tagSpec, error) {
	s := tagSpec{sampling: -1}
	if t.Node == "" {
		return s, drivers.KeyErr("node", errors.New("is required (e.g. ns=2;s=Line1.Press.Pressure or nsu=urn:plc:press;i=1042)"))
	}
	n, err := parseNode(t.Node)
	if err != nil {
		return s, drivers.KeyErr("node", err)
	}
	s.node = n
	if t.Type != drivers.TypeInvalid && !t.Type.Valid() {
		return s, drivers.KeyErr("type", fmt.Errorf("%v is not supported (want %s)", t.Type, supported))
	}
	numeric := t.Type == drivers.TypeInvalid || t.Type.IsNumeric()
	if (t.Scale != nil || t.Offset != nil) && !numeric {
		return s, drivers.KeyErr("scale", fmt.Errorf("applies to numbers, not %v", t.Type))
	}
	if t.Deadband != 0 && !numeric {
		return s, drivers.KeyErr("deadband", fmt.Errorf("applies to numbers, not %v", t.Type))
	}
	if t.Deadband < 0 {
		return s, drivers.KeyErr("deadband", fmt.Errorf("%v is negative", t.Deadband))
	}
	if err := t.CheckLimits(); err != nil {
		return s, err
	}
	if t.SamplingInterval != nil {
		s.sampling = t.SamplingInterval.D()
	}
	if t.QueueSize != nil {
		if q := *t.QueueSize; q < 1 || q > math.MaxUint16 {
			return s, drivers.KeyErr("queue_size", fmt.Errorf("%d is not in 1..65535", q))
		}
		s.queue = uint32(*t.QueueSize)
	}
	if p := t.DeadbandPercent; p != nil {
		switch {
		case t.Deadband != 0:
			return s, drivers.KeyErr("deadband_percent", errors.New("and deadband exclude each other"))
		case *p <= 0 || *p > 100:
			return s, drivers.KeyErr("deadband_percent", fmt.Errorf("%v is not in (0, 100]", *p))
		case !numeric:
			return s, drivers.KeyErr("deadband_percent", fmt.Errorf("applies to numbers, not %v", t.Type))
		}
		s.percent = *p
	}
	return s, nil
}

// nodeSpec is a node id as configured: with a namespace index, or a
// namespace URI resolved against the server's namespace array at every
// connect (a restarted server may renumber its namespaces).
type nodeSpec struct {
	text  string     // as written
	uri   string     // nsu= form: the namespace URI
	ident string     // nsu= form: the identifier part (i=…, s=…)
	id    *ua.NodeID // ns= form: the id
}

// parseNode parses ns=<i>;<x>=…, nsu=<uri>;<x>=… and the namespace-0
// forms i=…, s=…, where <x> is i (numeric), s (string), g (GUID) or b
// (base64 opaque).
func parseNode(s string) (nodeSpec, error) {
	n := nodeSpec{text: s}
	if rest, ok := strings.CutPrefix(s, "nsu="); ok {
		cut := -1
		for _, k := range []string{";i=", ";s=", ";g=", ";b="} {
			if i := strings.Index(rest, k); i >= 0 && (cut < 0 || i < cut) {
				cut = i
			}
		}
		if cut <= 0 {
			return n, fmt.Errorf("%q: want nsu=<namespace URI>;i=<number> (or s=, g=, b=)", s)
		}
		n.uri, n.ident = rest[:cut], rest[cut+1:]
		if _, err := ua.ParseNodeID("ns=1;" + n.ident); err != nil {
			return n, fmt.Errorf("%q: %v", s, err)
		}
		return n, nil
	}
	if !strings.HasPrefix(s, "ns=") && !strings.HasPrefix(s, "i=") && !strings.HasPrefix(s, "s=") &&
		!strings.HasPrefix(s, "g=") && !strings.HasPrefix(s, "b=") {
		return n, fmt.Errorf("%q: want ns=<index>;s=<name> (or i=, g=, b=), or nsu=<namespace URI>;…", s)
	}
	id, err := ua.ParseNodeID(s)
	if err != nil {
		return n, fmt.Errorf("%q: %v", s, err)
	}
	n.id = id
	return n, nil
}

// resolve returns the node id on a server with namespace array ns.
func (n *nodeSpec) resolve(ns []string) (*ua.NodeID, error) {
	if n.uri == "" {
		return n.id, nil
	}
	for i, u := range ns {
		if u == n.uri {
			return ua.ParseNodeID(fmt.Sprintf("ns=%d;%s", i, n.ident))
		}
	}
	return nil, fmt.Errorf("the server has no namespace %q", n.uri)
}
