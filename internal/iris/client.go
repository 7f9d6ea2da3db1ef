// Package iris is velohunt's client of the DFIR-IRIS REST API. It targets the
// legacy routes of IRIS 2.4 (which 2.5 still serves), always passes the case
// as ?cid= (without it IRIS silently uses the caller's current case), and
// classifies every failure as retryable or permanent. The API key never
// appears in errors or logs.
package iris

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

// maxResponse bounds how much of a response is read.
const maxResponse = 64 << 20

// Client talks to one IRIS instance.
type Client struct {
	base    *url.URL
	key     string
	http    *http.Client
	observe func(op string, status int, d time.Duration, err error, retryable bool)
}

// Options configure a Client.
type Options struct {
	URL                string
	APIKey             string
	CAFile             string
	InsecureSkipVerify bool
	Timeout            time.Duration
	// Transport replaces the HTTP transport (tests inject faults with it).
	Transport http.RoundTripper
	// Observe, when set, is told about every request: "METHOD /path", the
	// HTTP status (0 for transport errors), the latency and the error.
	Observe func(op string, status int, d time.Duration, err error, retryable bool)
}

// New returns a client. It does not contact IRIS.
func New(opts Options) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(opts.URL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("iris: bad URL %q", redactURL(opts.URL))
	}
	if opts.APIKey == "" {
		return nil, errors.New("iris: empty API key")
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 30 * time.Second
	}
	rt := opts.Transport
	if rt == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		// Keep a connection per concurrent writer request alive (the
		// default keeps 2 per host and reopens the others).
		tr.MaxIdleConnsPerHost = 16
		tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: opts.InsecureSkipVerify}
		if opts.CAFile != "" {
			pem, err := os.ReadFile(opts.CAFile)
			if err != nil {
				return nil, fmt.Errorf("iris: CA file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("iris: CA file %s holds no PEM certificate", opts.CAFile)
			}
			tr.TLSClientConfig.RootCAs = pool
		}
		rt = tr
	}
	// No cookie jar: IRIS sets a session cookie that an API client must not
	// send back (it would switch CSRF checks on).
	return &Client{base: u, key: opts.APIKey, http: &http.Client{Timeout: opts.Timeout, Transport: rt}, observe: opts.Observe}, nil
}

// envelope is IRIS's legacy reply: {"status","message","data"}.
type envelope struct {
	Status  string          `json:"status"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data"`
}

// do sends a request and decodes data into out (if not nil). cid < 0 means
// the route takes no case.
func (c *Client) do(ctx context.Context, method, path string, cid int64, body, out any) error {
	var rd io.Reader
	if body == nil && method == http.MethodPost {
		body = map[string]any{}
	}
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("iris %s %s: encode: %w", method, path, err)
		}
		rd = bytes.NewReader(b)
	}
	return c.send(ctx, method, path, cid, "application/json", rd, out)
}

// send is do with a body of any content type.
func (c *Client) send(ctx context.Context, method, path string, cid int64, contentType string, rd io.Reader, out any) (err error) {
	op := method + " " + path
	if c.observe != nil {
		start := time.Now()
		defer func() {
			status := 0
			var se *StatusError
			if errors.As(err, &se) {
				status = se.Status
			}
			c.observe(op, status, time.Since(start), err, IsRetryable(err))
		}()
	}
	u := *c.base
	u.Path = c.base.Path + path
	if cid >= 0 {
		q := u.Query()
		q.Set("cid", strconv.FormatInt(cid, 10))
		u.RawQuery = q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return fmt.Errorf("iris %s: %w", op, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	// With a JSON content type IRIS answers unknown routes with JSON, not HTML.
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Accept", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("iris %s: %w", op, ctx.Err())
		}
		return transportError(op, stripURL(err))
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return transportError(op, stripURL(err))
	}
	var env envelope
	jsonErr := json.Unmarshal(raw, &env)
	if err := classify(op, resp.StatusCode, resp.Header, replyMessage(resp.StatusCode, env, jsonErr, raw)); err != nil {
		return err
	}
	if jsonErr != nil {
		return &StatusError{Op: op, Status: resp.StatusCode, Message: "reply is not JSON", Retryable: true, code: "unavailable"}
	}
	if env.Status != "success" {
		return classify(op, http.StatusBadRequest, resp.Header, replyMessage(400, env, nil, raw))
	}
	if out != nil && len(env.Data) > 0 {
		if err := json.Unmarshal(env.Data, out); err != nil {
			return fmt.Errorf("iris %s: decode data: %w", op, err)
		}
	}
	return nil
}

// replyMessage extracts a short human message: IRIS's message and, for
// validation errors ("Data error"), the reasons IRIS puts in data, either a
// list of messages or an object of field → messages (contract, "Observed on
// a real IRIS", item 14). HTML error pages are not quoted.
func replyMessage(status int, env envelope, jsonErr error, raw []byte) string {
	if jsonErr != nil {
		return http.StatusText(status)
	}
	msg := env.Message
	if d := bytes.TrimSpace(env.Data); len(d) > 0 && (d[0] == '{' || d[0] == '[') && status >= 400 {
		var reasons any
		if json.Unmarshal(d, &reasons) == nil {
			if b, err := json.Marshal(reasons); err == nil && len(b) < 500 && string(b) != "[]" && string(b) != "{}" {
				msg += " " + string(b)
			}
		}
	}
	if msg == "" {
		msg = http.StatusText(status)
	}
	return msg
}

// stripURL removes the request URL from net/http errors: it holds no key,
// but it may hold a user:password in the base URL.
func stripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "<unparseable URL>"
	}
	return u.Redacted()
}
