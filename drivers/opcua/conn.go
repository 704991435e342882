package opcua

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"

	"github.com/gopcua/opcua"
	"github.com/gopcua/opcua/ua"
	"github.com/gopcua/opcua/uasc"

	"github.com/edgeagent/edgeagent/drivers"
)

// linkStatuses are the statuses that mean the channel or the session is
// gone: the scanner reconnects.
var linkStatuses = map[ua.StatusCode]bool{
	ua.StatusBadServerNotConnected: true, ua.StatusBadSecureChannelClosed: true, ua.StatusBadSecureChannelIDInvalid: true,
	ua.StatusBadSecureChannelTokenUnknown: true, ua.StatusBadConnectionClosed: true, ua.StatusBadConnectionRejected: true,
	ua.StatusBadSessionIDInvalid: true, ua.StatusBadSessionClosed: true, ua.StatusBadSessionNotActivated: true,
	ua.StatusBadTimeout: true, ua.StatusBadRequestTimeout: true, ua.StatusBadNotConnected: true,
	ua.StatusBadCommunicationError: true, ua.StatusBadNoCommunication: true, ua.StatusBadServerHalted: true,
	ua.StatusBadShutdown: true, ua.StatusBadDisconnect: true, ua.StatusBadTCPInternalError: true,
	ua.StatusBadTCPSecureChannelUnknown: true, ua.StatusBadTCPServerTooBusy: true,
}

// isLinkErr reports whether err means the link (channel, session or
// connection) is gone.
func isLinkErr(err error) bool {
	var sc ua.StatusCode
	var ne net.Error
	switch {
	case err == nil:
		return false
	case errors.As(err, &sc):
		return linkStatuses[sc]
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne):
		return true
	}
	// gopcua reports a closed channel in words.
	msg := err.Error()
	return strings.Contains(msg, "secure channel") || strings.Contains(msg, "closed network connection")
}

// link wraps an error of a call that failed because the link is gone, so
// the scanner reconnects, and marks the connection broken (its session is
// kept to be reactivated).
func (d *Driver) link(op string, err error) error {
	if isLinkErr(err) {
		d.broken.Store(true)
		return fmt.Errorf("%s: %v: %w", op, err, drivers.ErrNotConnected)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// endpoint finds the server's endpoint of the configured policy and mode.
// The URL it advertises is never dialled: servers often advertise a host
// name the gateway cannot resolve, so the configured endpoint is used.
func (d *Driver) endpoint(ctx context.Context) (*ua.EndpointDescription, error) {
	eps, err := opcua.GetEndpoints(ctx, d.set.endpoint, opcua.DialTimeout(d.timeout), opcua.RequestTimeout(d.timeout))
	if err != nil {
		return nil, d.link("asking the server for its endpoints", err)
	}
	var offered []string
	for _, ep := range eps {
		if ep.SecurityPolicyURI == d.set.policyURI && ep.SecurityMode == d.set.msgMode {
			return ep, nil
		}
		offered = append(offered, strings.TrimPrefix(ep.SecurityPolicyURI, ua.SecurityPolicyURIPrefix)+"/"+strings.TrimPrefix(ep.SecurityMode.String(), "MessageSecurityMode"))
	}
	return nil, fmt.Errorf("the server offers no endpoint with security policy %s and mode %s (it offers %s): change security.policy and security.mode",
		d.set.policy, strings.TrimPrefix(d.set.msgMode.String(), "MessageSecurityMode"), strings.Join(offered, ", "))
}

// tokenFor finds the user token policy of the configured identity on ep.
func (d *Driver) tokenFor(ep *ua.EndpointDescription) (*ua.UserTokenPolicy, error) {
	want, name := ua.UserTokenTypeAnonymous, "anonymous"
	switch {
	case d.set.auth.Username != "":
		want, name = ua.UserTokenTypeUserName, "user name and password"
	case d.set.auth.CertFile != "":
		want, name = ua.UserTokenTypeCertificate, "certificate"
	}
	var offered []string
	for _, t := range ep.UserIdentityTokens {
		if t.TokenType == want {
			return t, nil
		}
		offered = append(offered, strings.ToLower(strings.TrimPrefix(t.TokenType.String(), "UserTokenType")))
	}
	return nil, fmt.Errorf("the server does not accept %s login on this endpoint (it accepts %s): change auth", name, strings.Join(offered, ", "))
}

// sessionConfig builds the session's identity for ep.
func (d *Driver) sessionConfig(ep *ua.EndpointDescription) (*uasc.SessionConfig, error) {
	tok, err := d.tokenFor(ep)
	if err != nil {
		return nil, err
	}
	cfg := &uasc.SessionConfig{
		SessionTimeout: d.set.sessionTimeout,
		SessionName:    "edgeagent " + d.id,
		LocaleIDs:      []string{"en-US"},
		ClientDescription: &ua.ApplicationDescription{
			ApplicationURI:  d.appURI,
			ProductURI:      "urn:edgeagent",
			ApplicationName: ua.NewLocalizedText("edgeagent"),
			ApplicationType: ua.ApplicationTypeClient,
		},
		UserTokenSignature: &ua.SignatureData{},
		AuthPolicyURI:      tok.SecurityPolicyURI,
	}
	if cfg.AuthPolicyURI == "" {
		cfg.AuthPolicyURI = ep.SecurityPolicyURI
	}
	switch tok.TokenType {
	case ua.UserTokenTypeAnonymous:
		cfg.UserIdentityToken = &ua.AnonymousIdentityToken{PolicyID: tok.PolicyID}
	case ua.UserTokenTypeUserName:
		if cfg.AuthPolicyURI == ua.SecurityPolicyURINone {
			return nil, errors.New("the password would travel in clear text: the endpoint has security None and its user name policy does not encrypt; set security.policy and security.mode")
		}
		pw, err := os.ReadFile(d.set.auth.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("auth.password_file: %w", err)
		}
		cfg.UserIdentityToken = &ua.UserNameIdentityToken{PolicyID: tok.PolicyID, UserName: d.set.auth.Username}
		cfg.AuthPassword = strings.TrimRight(string(pw), "\r\n")
	case ua.UserTokenTypeCertificate:
		cfg.UserIdentityToken = &ua.X509IdentityToken{PolicyID: tok.PolicyID, CertificateData: d.userCert.Cert}
	}
	return cfg, nil
}

// open dials a secure channel to the server and opens a session on it:
// the session kept from a link that broke, if the server still has it
// (its subscriptions then live on), else a new one. It reports which.
func (d *Driver) open(ctx context.Context) (c *opcua.Client, resumed bool, err error) {
	if err := d.loadSecurity(); err != nil {
		return nil, false, err
	}
	ep, err := d.endpoint(ctx)
	if err != nil {
		return nil, false, err
	}
	if d.set.policyURI != ua.SecurityPolicyURINone {
		if d.trust.Skipping() {
			d.log.Warn("NOT verifying the OPC UA server's certificate (security.trust_any_server_certificate: true): anyone between the gateway and the PLC can pose as it",
				"server_thumbprint", Thumbprint(ep.ServerCertificate))
		} else if err := d.trust.Verify(ep.ServerCertificate); err != nil {
			return nil, false, err
		}
	}
	scfg, err := d.sessionConfig(ep)
	if err != nil {
		return nil, false, err
	}
	opts := []opcua.Option{
		opcua.AutoReconnect(false),
		// Every call is bounded by its context (the device's timeout);
		// this is the longest, a publish request waiting for a keep-alive.
		opcua.RequestTimeout(3*d.set.keepalive + d.timeout),
		opcua.DialTimeout(d.timeout),
		// The channel's policy, mode, the server's certificate and its
		// thumbprint (which servers use to pick their key); the identity
		// it also sets is gopcua's, unused: sessionConfig makes ours.
		opcua.SecurityFromEndpoint(ep, ua.UserTokenTypeAnonymous),
	}
	if d.cert != nil {
		opts = append(opts, opcua.Certificate(d.cert.Cert), opcua.PrivateKey(d.cert.Key))
	}
	if d.userCert != nil {
		opts = append(opts, opcua.AuthPrivateKey(d.userCert.Key))
	}
	c, err = opcua.NewClient(d.set.endpoint, opts...)
	if err != nil {
		return nil, false, err
	}
	if err := c.Dial(ctx); err != nil {
		return nil, false, d.refused("opening a secure channel", err)
	}
	if d.sess != nil {
		err := c.ActivateSession(ctx, d.sess)
		if err == nil && c.Session() == d.sess {
			return c, true, nil
		}
		d.log.Info("the server no longer has the session; opening a new one", "err", err)
		d.sess = nil
	}
	s, err := c.CreateSession(ctx, scfg)
	if err == nil && s == nil {
		// gopcua returns neither when the server's signature does not
		// verify.
		err = errors.New("the server's session signature does not verify against its certificate")
	}
	if err != nil {
		c.Close(ctx)
		return nil, false, d.refused("creating a session", err)
	}
	if err := c.ActivateSession(ctx, s); err != nil || c.Session() != s {
		c.Close(ctx)
		if err == nil {
			err = errors.New("the session could not be signed")
		}
		return nil, false, d.refused("activating the session", err)
	}
	d.sess = s
	return c, false, nil
}

// refused explains a failure to open a channel or session: our
// certificate or our user refused, or the link.
func (d *Driver) refused(op string, err error) error {
	if d.cert != nil {
		if rej := RejectedByServer(d.cert, err); rej != nil {
			return rej
		}
	}
	var sc ua.StatusCode
	if errors.As(err, &sc) {
		switch sc {
		case ua.StatusBadUserAccessDenied, ua.StatusBadIdentityTokenRejected, ua.StatusBadIdentityTokenInvalid, ua.StatusBadUserSignatureInvalid:
			return d.identityRefused(op, sc, err)
		case ua.StatusBadTooManySessions, ua.StatusBadMaxConnectionsReached:
			return d.link(op+": the server has no room for another session", err)
		}
	}
	return d.link(op, err)
}

// identityRefused explains a server refusing the session's user
// identity, in the words of the configuration: the endpoint, the user or
// the user certificate (file and thumbprint), the status by its name, and
// what to do. It unwraps to the stack's error.
func (d *Driver) identityRefused(op string, sc ua.StatusCode, err error) error {
	var who, why string
	switch {
	case d.set.auth.Username != "":
		who, why = fmt.Sprintf("user %q", d.set.auth.Username), "wrong user name or password?"
		if sc == ua.StatusBadUserAccessDenied {
			why = "wrong user name or password, or the user may not log in"
		}
	case d.set.auth.CertFile != "" && d.userCert != nil:
		who = fmt.Sprintf("the user certificate %s (thumbprint %s)", d.set.auth.CertFile, Thumbprint(d.userCert.Cert))
		switch sc {
		case ua.StatusBadUserSignatureInvalid:
			why = "it refused the proof of possession signed with the key in auth.key_file for its security policy"
		case ua.StatusBadUserAccessDenied:
			why = "it knows the certificate but does not let its user log in"
		default:
			// Servers answer BadIdentityTokenRejected for a user
			// certificate they do not trust, and for an expired or
			// revoked one (node-opcua 2.182, measured: untrusted).
			why = fmt.Sprintf("it does not accept it as a user identity (not trusted, expired or revoked); have the server trust it: "+
				"add %s to its trusted user certificates (a PKI of its own, apart from application certificates; node-opcua: user/trusted/certs), "+
				"or trust it among its rejected user certificates (a file whose name holds %s)", d.set.auth.CertFile, ThumbprintHex(d.userCert.Cert))
		}
	default:
		who, why = "anonymous login", "set auth to a user name and password or a user certificate"
	}
	return &identityError{msg: fmt.Sprintf("%s on %s: the server refused %s with %s: %s", op, d.set.endpoint, who, statusName(sc), why), err: err}
}

// identityError is a refused user identity: its message is for the
// user, and it unwraps to the stack's error (errors.Is(err,
// ua.StatusBadIdentityTokenRejected) holds).
type identityError struct {
	msg string
	err error
}

func (e *identityError) Error() string { return e.msg }
func (e *identityError) Unwrap() error { return e.err }
