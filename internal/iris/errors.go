package iris

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/velohunt/velohunt/internal/ioc"
)

// StatusError is a failed IRIS call, classified once so that retry loops,
// status output and metrics share the decision.
type StatusError struct {
	Op         string // e.g. "POST /case/assets/add"
	Status     int    // HTTP status, 0 for transport errors
	Message    string // IRIS's message, or a short description
	Retryable  bool
	RetryAfter time.Duration // from a Retry-After header, 0 if none
	code       string
}

func (e *StatusError) Error() string {
	if e.Status == 0 {
		return fmt.Sprintf("iris %s: %s", e.Op, e.Message)
	}
	return fmt.Sprintf("iris %s: HTTP %d: %s", e.Op, e.Status, e.Message)
}

// Unwrap exposes the error code as an *ioc.Error.
func (e *StatusError) Unwrap() error { return &ioc.Error{Code: e.code, Message: e.Message} }

// IsRetryable reports whether err is worth retrying later.
func IsRetryable(err error) bool {
	var se *StatusError
	if errors.As(err, &se) {
		return se.Retryable
	}
	return false
}

// AnswerMaybeLost reports whether IRIS may still be running, or may have
// done, the request although the caller saw a failure: transport errors
// (timeouts, dropped connections) and 504 from a proxy whose upstream is
// still busy. A retry must give the request time to finish before it looks
// for what it would have created.
func AnswerMaybeLost(err error) bool {
	var se *StatusError
	return errors.As(err, &se) && (se.Status == 0 || se.Status == http.StatusGatewayTimeout)
}

// RetryAfter returns the delay IRIS asked for, or 0.
func RetryAfter(err error) time.Duration {
	var se *StatusError
	if errors.As(err, &se) {
		return se.RetryAfter
	}
	return 0
}

// classify turns an HTTP answer into nil (2xx) or a *StatusError:
// 429 and 5xx except 501 are retryable; 401/403 are permanent permission
// errors; other 4xx are permanent.
func classify(op string, status int, header http.Header, msg string) error {
	if status >= 200 && status < 300 {
		return nil
	}
	e := &StatusError{Op: op, Status: status, Message: msg}
	switch {
	case status == http.StatusTooManyRequests || (status >= 500 && status != http.StatusNotImplemented):
		e.Retryable, e.code = true, ioc.EUNAVAILABLE
		e.RetryAfter = parseRetryAfter(header.Get("Retry-After"))
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		e.code = ioc.EPERMISSION
	case status == http.StatusNotFound:
		e.code = ioc.ENOTFOUND
	default:
		e.code = ioc.EINVALID
	}
	return e
}

// transportError classifies a failed round trip: retryable, except for TLS
// certificate problems, which need an operator.
func transportError(op string, err error) error {
	e := &StatusError{Op: op, Message: err.Error(), Retryable: true, code: ioc.EUNAVAILABLE}
	var nerr net.Error
	switch {
	case isCertError(err):
		e.Retryable, e.code = false, ioc.EPERMISSION
	case errors.As(err, &nerr) && nerr.Timeout():
		e.Message = "timeout"
	}
	return e
}

func isCertError(err error) bool {
	var verr *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	var ci x509.CertificateInvalidError
	return errors.As(err, &verr) || errors.As(err, &ua) || errors.As(err, &he) || errors.As(err, &ci)
}

func parseRetryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}
