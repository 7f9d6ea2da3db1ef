// Package ioc is velohunt's domain: indicator kinds, the mapping from IRIS IOC
// type names to hunt kinds, validation and normalisation of IOC values, and the
// small error model shared by every other package. It imports no other
// velohunt package.
package ioc

import (
	"errors"
	"fmt"
)

// Error codes. They classify an error for machines; Message is for people.
const (
	EINVALID     = "invalid"     // the input is malformed or unsupported
	ENOTFOUND    = "not_found"   // the object does not exist
	ECONFLICT    = "conflict"    // the object already exists
	EUNAVAILABLE = "unavailable" // a peer is down or timed out; try again
	EPERMISSION  = "permission"  // credentials lack a right; an operator must act
	EINTERNAL    = "internal"    // anything else
)

// Error is an application error with a code and a human-readable message.
// The message is safe to show on the IOC tab: it never holds secrets or
// internal detail.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Code, e.Message) }

// Errorf returns an *Error with the code and a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first *Error in err's chain, EINTERNAL
// for any other non-nil error and "" for nil.
func ErrorCode(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the human message of the first *Error in err's chain,
// or "internal error" for other errors, so internal detail never reaches a user.
func ErrorMessage(err error) string {
	var e *Error
	if err == nil {
		return ""
	} else if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}
